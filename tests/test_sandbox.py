"""The worker boundary: what a learner's process can and cannot see, and what each fault costs."""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grader import zygote
from grader.runner import LearnerRun
from grader.sandbox import Limits

LEARNER = '''
import os, sys, json
import numpy as np

print("top-level output")
print('{"ok": true, "value": {"dtype": "float64", "shape": [], "data": [42.0]}}')

def modules(z):
    bad = [m for m in sys.modules if m.startswith(("_grader_reference", "grader.rubric", "grader.checks", "yaml", "jinja2", "markdown_it"))]
    return float(len(bad))

def forge(z):
    print('{"ok": true, "value": {"dtype": "float64", "shape": [], "data": [42.0]}, "after": []}')
    return 1.0

def liar(z):
    class Lying(np.ndarray):
        def __eq__(self, other):
            return True
        def __sub__(self, other):
            return np.zeros(1)
    return np.asarray([7.0, 8.0]).view(Lying)

def nothing(z):
    return None

def text(z):
    return "0.5"

def cwd(z):
    return float(os.getcwd().startswith(os.path.dirname(__file__)) and "grader-" in os.getcwd())

def pgid(z):
    return float(os.getpgid(0) == os.getpid())

def loud(z):
    sys.stdout.write("x" * 1_000_000)
    return 2.0

def boom(z):
    os._exit(4)

def spin(z):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass

def ok(z):
    return np.asarray(z) * 2

def hog(z):
    return np.ones(400_000_000)
'''


@pytest.fixture
def run(tmp_path: Path):
    learner = tmp_path / "ana"
    (learner / "phase-04").mkdir(parents=True)
    module = learner / "phase-04" / "lab-00.py"
    module.write_text(textwrap.dedent(LEARNER), encoding="utf-8")
    names = ("modules", "forge", "liar", "nothing", "text", "cwd", "pgid", "loud", "boom", "spin", "ok", "hog")
    with LearnerRun(learner, module, names, Limits(call_seconds=1.0, output_bytes=4096)) as r:
        assert r.start().ok
        yield r


Z = (np.array([1.0, 2.0]),)


def test_worker_never_held_the_grader_or_a_reference(run: LearnerRun) -> None:
    import grader.rubric  # noqa: F401 - the parent has it; the worker must not

    outcome = run.call("modules", Z)
    assert outcome.ok and outcome.value is not None
    assert outcome.value.array.tolist() == 0.0


def test_printed_protocol_lines_are_output_not_results(run: LearnerRun) -> None:
    outcome = run.call("forge", Z)
    assert outcome.value is not None and outcome.value.array.tolist() == 1.0
    assert '"data": [42.0]' in run.output.decode()


def test_lying_ndarray_subclass_arrives_as_plain_numbers(run: LearnerRun) -> None:
    outcome = run.call("liar", Z)
    assert outcome.value is not None
    assert type(outcome.value.array) is np.ndarray
    assert outcome.value.array.tolist() == [7.0, 8.0]


@pytest.mark.parametrize(("fn", "words"), [("nothing", "returned None"), ("text", "returned a str")])
def test_non_numbers_are_described_not_trusted(run: LearnerRun, fn: str, words: str) -> None:
    outcome = run.call(fn, Z)
    assert outcome.fault == "bad-return" and words in outcome.message


def test_worker_runs_in_a_temporary_copy_in_its_own_session(run: LearnerRun) -> None:
    assert run.call("cwd", Z).value.array.tolist() == 1.0  # type: ignore[union-attr]
    assert run.call("pgid", Z).value.array.tolist() == 1.0  # type: ignore[union-attr]
    assert run.module_path.is_file() and "grader-" in str(run.module_path)


def test_output_is_capped_and_the_learner_keeps_running(run: LearnerRun) -> None:
    assert run.call("loud", Z).value.array.tolist() == 2.0  # type: ignore[union-attr]
    assert len(run.output) == 4096
    assert run.call("ok", Z).ok


def test_a_crash_costs_one_call_and_the_worker_restarts(run: LearnerRun) -> None:
    crashed = run.call("boom", Z)
    assert crashed.fault == "crashed" and "exited with code 4" in crashed.message
    assert run.call("ok", Z).value.array.tolist() == [2.0, 4.0]  # type: ignore[union-attr]


def test_a_loop_that_swallows_exceptions_still_times_out_once(run: LearnerRun) -> None:
    first = run.call("spin", Z)
    assert first.fault == "timeout" and "timed out after 1 s" in first.message
    again = run.call("spin", (np.array([5.0]),))
    assert again.fault == "timeout" and "timed out earlier" in again.message
    assert run.call("ok", Z).ok


def test_memory_is_limited(run: LearnerRun) -> None:
    outcome = run.call("hog", Z)
    assert outcome.fault in ("raised", "crashed") and "MemoryError" in outcome.message
    assert run.call("ok", Z).ok


def test_no_process_is_left_behind(tmp_path: Path) -> None:
    learner = tmp_path / "bo"
    (learner / "phase-04").mkdir(parents=True)
    module = learner / "phase-04" / "lab-00.py"
    module.write_text("import os\ndef pid(z):\n    return float(os.getpid())\n", encoding="utf-8")
    server = zygote.get()
    with LearnerRun(learner, module, ("pid",), Limits()) as r:
        r.start()
        pid = int(r.call("pid", Z).value.array.tolist())  # type: ignore[union-attr]  # in the server's PID namespace
        assert pid in server.census()
        private = r.private_dir
    assert server.census() == []
    assert not private.exists()
    assert not (tmp_path / "bo").joinpath("__pycache__").exists()


def test_no_lab_specific_code_in_the_package() -> None:
    package = Path(__file__).resolve().parent.parent / "grader"
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8").lower()
        for word in ("softmax", "jacobian", "logsumexp", "cross_entropy", "ce_grad"):
            assert word not in text, f"{path.name} mentions {word}"


def test_a_fifo_in_the_learner_folder_does_not_block_the_copy(tmp_path: Path) -> None:
    learner = tmp_path / "cy"
    (learner / "phase-04").mkdir(parents=True)
    module = learner / "phase-04" / "lab-00.py"
    module.write_text("def f(z):\n    return 1.0\n", encoding="utf-8")
    os.mkfifo(learner / "phase-04" / "pipe")
    with LearnerRun(learner, module, ("f",), Limits()) as r:
        assert r.start().ok
        assert r.call("f", Z).ok


def test_definitions_are_loaded_even_when_a_constant_hangs(tmp_path: Path) -> None:
    learner = tmp_path / "ivo"
    (learner / "phase-04").mkdir(parents=True)
    module = learner / "phase-04" / "lab-00.py"
    module.write_text(
        "def _step():\n    return 1e-5\n\nSTEP = _step()\n\ndef forever():\n    while True:\n        pass\n\n"
        "RESULT = forever()\n\ndef f(z, h=STEP):\n    return h\n",
        encoding="utf-8",
    )
    with LearnerRun(learner, module, ("f",), Limits(call_seconds=0.5)) as r:
        load = r.start()
        assert load.ok and load.mode == "ast-strict" and "timed out" in load.note
        assert any("not run" in s for s in load.skipped)
        assert not r.call("f", Z).ok  # STEP was left out with the hanging constant: said, not hidden


def test_a_constant_computed_by_a_local_function_is_kept(tmp_path: Path) -> None:
    learner = tmp_path / "jon"
    (learner / "phase-04").mkdir(parents=True)
    module = learner / "phase-04" / "lab-00.py"
    module.write_text("def _step():\n    return 1e-5\n\nSTEP = _step()\n\ndef f(z, h=STEP):\n    return h\n\nassert False\n",
                      encoding="utf-8")
    with LearnerRun(learner, module, ("f",), Limits()) as r:
        assert r.start().mode == "ast"
        assert r.call("f", Z).value.array.tolist() == 1e-5  # type: ignore[union-attr]


def test_the_learner_time_budget_is_said_as_such(tmp_path: Path) -> None:
    learner = tmp_path / "lia"
    (learner / "phase-04").mkdir(parents=True)
    module = learner / "phase-04" / "lab-00.py"
    module.write_text("import time\ndef slow(z):\n    time.sleep(0.6)\n    return 1.0\n", encoding="utf-8")
    with LearnerRun(learner, module, ("slow",), Limits(call_seconds=5.0, learner_seconds=1.0)) as r:
        assert r.start().ok
        assert r.call("slow", (np.array([1.0]),)).ok
        stopped = r.call("slow", (np.array([2.0]),))
        assert stopped.fault == "budget" and "time budget (1 s) ran out" in stopped.message
        refused = r.call("slow", (np.array([3.0]),))
        assert refused.fault == "budget" and "is used up" in refused.message


def test_reports_never_show_the_graders_temporary_paths() -> None:
    """Warnings and errors name the learner's own files (page-copy's log(0) warning names its line)."""
    from grader.grading import grade
    from grader.results import lab_to_dict

    root = Path(__file__).resolve().parent
    results = grade([root / "fixtures" / "page-copy", root / "fixtures" / "raises"])
    text = "".join(json.dumps(lab_to_dict(r)) + r.output for r in results)
    assert "page-copy/phase-04/" in text or "raises" in text
    assert "grader-" not in text and tempfile.gettempdir() + "/" not in text


def test_a_grader_bug_on_one_submission_costs_only_that_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    from grader import grading
    from grader.rubric import discover_rubrics

    root = Path(__file__).resolve().parent.parent
    rubric = next(r for r in discover_rubrics(root / "rubrics") if r.lab == "phase-04/lab-00")
    monkeypatch.setattr(grading, "find_submission", lambda *_: (_ for _ in ()).throw(ValueError("boom")))
    result = grading.grade_lab(rubric, root / "learners" / "borja", Limits())
    assert {c.status.value for c in result.checks} == {"error"} and not result.passed
    assert "the grader itself failed on this submission (ValueError: boom)" in result.checks[0].message.english()


def test_a_grader_bug_in_the_formula_reader_costs_only_the_checks_that_read_formulas(monkeypatch: pytest.MonkeyPatch) -> None:
    from grader import grading
    from grader.checks import section
    from grader.rubric import discover_rubrics

    root = Path(__file__).resolve().parent.parent
    rubric = next(r for r in discover_rubrics(root / "rubrics") if r.lab == "phase-04/lab-00")
    monkeypatch.setattr(section, "analyse", lambda *_, **__: (_ for _ in ()).throw(NameError("boom")))
    result = grading.grade_lab(rubric, root / "learners" / "borja", Limits())
    errors = {c.id for c in result.checks if c.status.value == "error"}
    assert errors == {"derivation-softmax", "derivation-softmax-steps", "derivation-ce", "derivation-ce-steps"}
    assert all(c.status.value == "pass" for c in result.checks if c.id not in errors)
    assert result.retry and "NameError: boom" in next(c.message.english() for c in result.checks if c.id in errors)


@pytest.mark.parametrize("value", [
    {"dtype": "float64", "shape": [1] * 100, "data": [0.0]},
    {"dtype": "float64", "shape": [2 ** 32, 2 ** 32], "data": []},
    {"dtype": "float64", "shape": [0, 10 ** 22], "data": []},
    {"dtype": "float64", "shape": [1], "data": [10 ** 400]},
    {"dtype": "float64", "shape": [200_000], "data": [0.0] * 200_000},
    {"dtype": "float64", "shape": [True], "data": [1.0]},
    {"dtype": "float64", "shape": [1], "data": [None]},
])
def test_a_forged_value_is_unreadable_not_a_crash(value: dict) -> None:
    from grader.runner import decode_value

    assert decode_value(value) == "an unreadable value"


def test_a_failing_top_level_statement_is_data_said_in_the_learners_language(tmp_path: Path) -> None:
    """The worker sends line, name, type and text; the grader words them (here in Spanish) and bounds them."""
    from grader.i18n import say

    learner = tmp_path / "rocio"
    (learner / "phase-04").mkdir(parents=True)
    module = learner / "phase-04" / "lab-00.py"
    module.write_text("import numpy as np\n\ndef f(z):\n    return z\n\nSTEP = undefined_name\n"
                      "@no_such_decorator\ndef g(z):\n    return z\n\nraise SystemExit(3)\n", encoding="utf-8")
    with LearnerRun(learner, module, ("f",), Limits()) as r:
        load = r.start()
        assert load.ok and load.mode == "ast"
        assert load.skipped == ("line 6: NameError: name 'undefined_name' is not defined",
                                "line 8 (def g): NameError: name 'no_such_decorator' is not defined")
        assert [say(m, "es") for m in load.skipped_said] == [
            "línea 6: NameError: name 'undefined_name' is not defined",
            "línea 8 (def g): NameError: name 'no_such_decorator' is not defined"]


@pytest.mark.parametrize("data", [{"line": True, "def": "", "type": "E", "text": ""}, {"line": 1, "def": 3},
                                  {"line": 1, "def": "", "type": "E" * 10_000, "text": "x" * 10_000}, "line 1: boom"])
def test_a_top_level_statement_report_is_checked_as_plain_data(data: object) -> None:
    from grader.runner import statement_message

    said = statement_message(data)
    assert said is None or len(said.english()) < 500


# ----------------------------------------------------------------------------- the binary channel, written by learner code

HOSTILE = '''
import os, stat, struct
import numpy as np

def _channel():
    for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
        try:
            if fd > 2 and stat.S_ISSOCK(os.fstat(fd).st_mode):
                return fd
        except OSError:
            pass

def _frame(body):
    return struct.pack("<I", len(body)) + body

def write(raw, then_exit=False):
    os.write(_channel(), raw)
    if then_exit:
        os._exit(0)
    return 1.0

def huge_header(z):
    return write(b"\\xff\\xff\\xff\\xff" + b"x" * 100)

def cap_plus_one(z):
    return write(struct.pack("<I", (16 << 20) + 1))

def truncated(z):
    return write(struct.pack("<I", 1000) + b"\\x81" * 10, then_exit=True)

def not_msgpack(z):
    return write(_frame(b"\\xc1\\xc1\\xc1"))

def extension(z):
    return write(_frame(b"\\xd4\\x01\\x00"))

def deep(z):
    return write(_frame(b"\\x91" * 100_000 + b"\\xc0"))

def a_list(z):
    return write(_frame(b"\\x90"))

def trailing(z):
    return write(_frame(b"\\x80\\xc0"))

def ok(z):
    return np.asarray(z) * 2
'''
# Each function writes one hostile frame on the worker's channel, the way a learner's code can reach it (the socket
# among its descriptors), in place of its reply: what the parent must refuse, and say, before the real reply comes.
HOSTILE_FRAMES = [
    ("huge_header", "crashed", "sent a result larger than the limit"),
    ("cap_plus_one", "crashed", "sent a result larger than the limit"),
    ("truncated", "crashed", "exited with code 0"),
    ("not_msgpack", "crashed", "protocol violation"),
    ("extension", "crashed", "protocol violation"),
    ("deep", "crashed", "protocol violation"),
    ("a_list", "crashed", "protocol violation"),
    ("trailing", "crashed", "protocol violation"),
]


@pytest.mark.parametrize(("fn", "fault", "words"), HOSTILE_FRAMES)
def test_a_hostile_frame_costs_its_call_and_the_worker_restarts(tmp_path: Path, fn: str, fault: str, words: str) -> None:
    learner = tmp_path / "eve"
    (learner / "phase-04").mkdir(parents=True)
    module = learner / "phase-04" / "lab-00.py"
    module.write_text(HOSTILE, encoding="utf-8")
    names = tuple(name for name, _, _ in HOSTILE_FRAMES) + ("ok",)
    with LearnerRun(learner, module, names, Limits(call_seconds=2.0)) as run:
        assert run.start().ok
        outcome = run.call(fn, Z)
        assert outcome.fault == fault and words in outcome.message, outcome.message
        assert run.call("ok", Z).value.array.tolist() == [2.0, 4.0]  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [
    {"dtype": "float64", "shape": [3], "data": b"\0" * 16},  # fewer bytes than the shape says
    {"dtype": "float64", "shape": [1], "data": b"\0" * 9},  # not whole numbers
    {"dtype": "float64", "shape": [2 ** 32, 2 ** 32], "data": b""},
    {"dtype": "float64", "shape": [0, 10 ** 22], "data": b""},
    {"dtype": "float64", "shape": [200_000], "data": b"\0" * 1_600_000},
    {"dtype": "float64", "shape": [1] * 40, "data": b"\0" * 8},
    {"dtype": "float64", "shape": [-1], "data": b"\0" * 8},
    {"dtype": "float64", "shape": [1.0], "data": b"\0" * 8},
    {"dtype": "float64", "shape": [1], "data": "\0" * 8},  # a string, not bytes
    {"dtype": "float64", "shape": [1], "data": [0.0]},  # the old JSON list
])
def test_a_forged_binary_value_is_unreadable_not_a_crash(value: dict) -> None:
    from grader.runner import decode_value

    assert decode_value(value) == "an unreadable value"


def test_a_value_arrives_exactly_and_as_the_parents_own_copy() -> None:
    from grader.child import encode
    from grader.protocol import frame, unpack
    from grader.runner import decode_value

    values = np.array([[0.1, -0.0, np.nan], [np.inf, -np.inf, 5e-324]])
    observed = decode_value(unpack(frame(encode(values))[4:]))
    assert not isinstance(observed, str) and observed.dtype == "float64" and observed.array.flags.writeable
    assert observed.array.tobytes() == values.tobytes()
    assert decode_value(unpack(frame(encode(np.float32(0.5)))[4:])).dtype == "float32"  # type: ignore[union-attr]


def test_a_hostile_frame_costs_that_learners_lab_and_the_class_goes_on(tmp_path: Path) -> None:
    import shutil

    from grader.grading import grade
    from grader.model import Status

    root = Path(__file__).resolve().parent.parent
    klass = tmp_path / "class"
    shutil.copytree(root / "learners" / "borja", klass / "borja")
    shutil.copytree(root / "learners" / "borja", klass / "eve")
    code = klass / "eve" / "phase-04" / "lab-00-softmax-gradient.py"
    hostile = HOSTILE.split("def huge_header")[0] + "def ce_grad(*args):\n    return write(b'\\xff\\xff\\xff\\xff')\n\n\n"
    code.write_text(code.read_text(encoding="utf-8").replace("def ce_grad(", hostile + "def _honest_ce_grad(", 1),
                    encoding="utf-8")
    results = {(r.learner, r.lab): r for r in grade([klass], rubrics_dir=root / "rubrics", lab="phase-04/lab-00",
                                                     limits=Limits(call_seconds=2.0))}
    eve = {c.id: c for c in results[("eve", "phase-04/lab-00")].checks}
    assert eve["ce-grad-analytic"].status == Status.ERROR
    assert "larger than the limit" in eve["ce-grad-analytic"].message.english()
    assert eve["softmax-correct"].status == Status.PASS  # the other functions' checks are untouched
    assert results[("borja", "phase-04/lab-00")].passed


def test_phase_timings_are_written_and_never_stop_a_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    for folder, written in ((tmp_path / "phases", True), (Path("/proc/no-such-place"), False)):
        done = subprocess.run([sys.executable, "-m", "grader", str(root / "learners" / "borja"), "--out", str(tmp_path / "r"),
                               "--quiet"], env={**os.environ, "GRADER_PHASES": str(folder)}, capture_output=True, text=True)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        if written:
            from grader.phases import PHASES, gather

            totals = gather(folder)
            assert set(PHASES) <= set(totals) and all(totals[name][2] > 0 for name in PHASES)
