"""``output_rerun``: the pasted output against the learner's own script run again (issue 14, part 1).

The table cases model how real verification output varies: numpy's full-precision reprs on another machine,
fixed formats (``%.1e``), a print format edited after pasting, trimmed matrices, shell prompts and notes pasted
with the output, random inputs without a seed, and a run pasted before a bug was introduced.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader import printed
from grader.grading import grade_lab
from grader.i18n import say
from grader.model import Status
from grader.rubric import load_rubric
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
FAST = Limits(call_seconds=2.0, learner_seconds=60.0)
LAB00 = ROOT / "rubrics" / "phase-04" / "lab-00.yaml"
GOOD = ROOT / "tests" / "fixtures" / "pasted-matches-elsewhere" / "phase-04"


@pytest.mark.parametrize("pasted, rerun, compared, wrong", [
    ("max_err = 1.1e-11", "max_err = 2.7e-11", 1, 0),                        # rounding noise, another machine
    ("max_err = 5.110717404832599e-12", "max_err = 4.4e-12", 1, 0),          # full repr against a fixed format
    ("max_err = 2.3e-11", "max_err = 4.8e-07", 1, 1),                        # the stale run
    ("sum = 0.9999999999999999", "sum = 1.0", 1, 0),                          # one printed digit decides
    ("p = [0.563  0.2071 0.1256]", "p = [0.56302123 0.20712394 0.12562702]", 3, 0),  # precision=4 vs default
    ("p = [0.563  0.2071 0.1256]", "p = [0.56302123 0.21712394 0.12562702]", 3, 1),
    ("logsumexp = 3.407606", "logsumexp = 0.407606", 1, 1),
    ("max_err: 1.1e-11", "max_err = 1.1e-11", 1, 0),                          # the format edited after pasting
    ("y = 3: max_err = 2.2e-11", "y = 3: max_err = 2.2e-11", 1, 0),           # y = 3 is a label, not a measure
    ("loss = nan", "loss = nan", 1, 0),
    ("loss = inf", "loss = -inf", 1, 1),
    ("$ python lab-00.py\nmax_err = 1e-11\n...", "max_err = 1.1e-11", 1, 0),  # a prompt and an ellipsis pasted
    ("Jacobian check passed ~ 1e-10", "softmax Jacobian: max_err = 5.1e-12", 0, 0),  # typed in, not printed
    ("row 1: 0.25\nrow 2: 0.50\nrow 3: 0.75", "row 1: 0.25\nrow 3: 0.75", 2, 0),  # a line trimmed
    # a 50-step loop log pasted as its first and last three lines, "..." between (how long logs are pasted)
    ("\n".join([*(f"loss = {0.9 ** k:.6f}" for k in (1, 2, 3)), "...", *(f"loss = {0.9 ** k:.6f}" for k in (48, 49, 50))]),
     "\n".join(f"loss = {0.9 ** k:.6f}" for k in range(1, 51)), 6, 0),
])
def test_numbers_are_paired_by_line_and_compared_within_what_was_printed(pasted: str, rerun: str, compared: int,
                                                                         wrong: int) -> None:
    comparison = printed.compare(pasted, rerun)
    assert (comparison.compared, len(comparison.disagreements)) == (compared, wrong)


def test_numbers_that_change_from_run_to_run_are_left_out() -> None:
    first, second = "seed-free: 0.8137 max_err = 1.1e-11", "seed-free: 0.2291 max_err = 1.3e-11"
    unstable = printed.unstable_numbers(first, second)
    assert printed.compare("seed-free: 0.5 max_err = 1.0e-11", first, unstable).disagreements == ()
    assert printed.compare("seed-free: 0.5 max_err = 1.0e-11", first).disagreements != ()


@pytest.mark.parametrize("text", ["9" * 60_000, "1." * 30_000, ("-1e-" * 10_000) + "x", "[" + "0.1 " * 20_000])
def test_hostile_output_is_read_in_bounded_time(text: str) -> None:
    import time

    start = time.perf_counter()
    printed.compare(text, text)
    assert time.perf_counter() - start < 2.0


def _learner(tmp_path: Path, main: str, pasted: str) -> Path:
    """The pasted-matches-elsewhere learner with another __main__ block and another pasted output."""
    learner = tmp_path / "learner"
    shutil.copytree(GOOD.parent, learner, ignore=shutil.ignore_patterns("EXPECTED.yaml"))
    code = learner / "phase-04" / "lab-00-softmax-gradient.py"
    source = code.read_text(encoding="utf-8")
    code.write_text(source[:source.index('if __name__ == "__main__":')] + main, encoding="utf-8")
    md = learner / "phase-04" / "lab-00-softmax-gradient.md"
    text = md.read_text(encoding="utf-8")
    start = text.index("```\n$ python")
    end = text.index("```", start + 3) + 3
    md.write_text(text[:start] + "```\n" + pasted + "\n```" + text[end:], encoding="utf-8")
    return learner


def _rerun(learner: Path):  # noqa: ANN202
    result = grade_lab(load_rubric(LAB00), learner, FAST)
    return next(c for c in result.checks if c.id == "output-rerun"), result


@pytest.mark.parametrize("main, pasted, status, words", [
    # no __main__ block at all (a module of definitions): a note, nothing compared
    ("", "max_err = 1.1e-11", Status.SKIP, ["prints no numbers", "__main__"]),
    # unseeded random inputs: their numbers change every run and are not compared; the fixed ones match
    ('if __name__ == "__main__":\n    z = np.random.randn(5)\n    print("z =", z)\n'
     '    print("max_err =", np.abs(softmax_jacobian(z) - softmax_jacobian_fd(z)).max())\n',
     "z = [ 0.1 -1.2  0.3  0.9 -0.4]\nmax_err = 3.3e-12", Status.PASS, ["matches", "change from run to run"]),
    # the script stops with an error before the lines pasted: review, with the reason
    ('if __name__ == "__main__":\n    print("max_err = 1.1e-11")\n    raise RuntimeError("stopped here")\n',
     "max_err = 1.1e-11\nce max_err = 2.2e-11", Status.REVIEW, ["stops before", "RuntimeError", "stopped here"]),
    # the script's own assert fails now: it printed nothing, review with the assert's message
    ('if __name__ == "__main__":\n    assert False, "Jacobian mismatch: 0.38"\n', "max_err = 1.1e-11",
     Status.REVIEW, ["stopped before it printed any number", "AssertionError", "Jacobian mismatch"]),
    # sys.exit(0) at the end of a good run is an ordinary end
    ('if __name__ == "__main__":\n    import sys\n    print("max_err = 1.2e-11")\n    sys.exit(0)\n',
     "max_err = 1.1e-11", Status.PASS, ["matches"]),
])
def test_a_rerun_says_what_it_could_compare(tmp_path: Path, main: str, pasted: str, status: Status,
                                            words: list[str]) -> None:
    check, result = _rerun(_learner(tmp_path, main, pasted))
    assert check.status == status, check.message.english()
    assert all(w in check.message.english() for w in words), check.message.english()
    assert check.max_score == 0 and not check.acceptance and result.passed  # never a grade change


def test_a_second_pasted_block_is_compared_on_its_own(tmp_path: Path) -> None:
    """A good block, then "after fixing the bug" a block with a stale number: the stale one is shown."""
    learner = _learner(tmp_path, 'if __name__ == "__main__":\n    print("max_err = 1.1e-11")\n', "max_err = 1.1e-11")
    md = learner / "phase-04" / "lab-00-softmax-gradient.md"
    text = md.read_text(encoding="utf-8")
    at = text.index("## What I learned")
    md.write_text(text[:at] + "After fixing the bug, the output was:\n\n```\nmax_err = 9.9e-05\n```\n\n" + text[at:],
                  encoding="utf-8")
    check, _ = _rerun(learner)
    assert check.status == Status.REVIEW and "says 9.9e-05" in check.message.english(), check.message.english()


def test_the_rerun_is_said_in_spanish_and_never_shows_an_expected_value(tmp_path: Path) -> None:
    check, _ = _rerun(_learner(tmp_path, 'if __name__ == "__main__":\n    print("max_err = 4.8e-07")\n',
                               "max_err = 2.3e-11"))
    assert check.status == Status.REVIEW
    spanish = say(check.message, "es")
    assert "tu salida pegada dice 2.3e-11" in spanish and "4.8e-07" in spanish
