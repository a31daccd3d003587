"""End to end: every fixture learner graded by the real sandbox, statuses and causes asserted.

Each row names a fixture (tests/fixtures/<case>/), the checks whose status is not ``pass``,
and words the message must contain (the cause, not just "something failed"). Checks not named
must pass: a defect costs only the checks that use it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.grading import grade, grade_lab
from grader.model import LabResult, Status
from grader.rubric import load_rubric
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
P04 = ROOT / "rubrics" / "phase-04" / "lab-00.yaml"
P05 = ROOT / "rubrics" / "phase-05" / "lab-02.yaml"
FAST = Limits(call_seconds=2.0, learner_seconds=60.0)

FAIL, ERROR, SKIP, REVIEW = Status.FAIL, Status.ERROR, Status.SKIP, Status.REVIEW

@pytest.fixture(scope="module")
def rubrics() -> dict[str, object]:
    return {"p04": load_rubric(P04), "p05": load_rubric(P05)}


_CACHE: dict[str, LabResult] = {}


def _graded(rubrics: dict[str, object], case: str, which: str) -> LabResult:
    if case not in _CACHE:
        _CACHE[case] = grade_lab(rubrics[which], FIXTURES / case, FAST)  # type: ignore[arg-type]
    return _CACHE[case]


def test_borja_passes_every_lab() -> None:
    results = grade([ROOT / "learners" / "borja"], rubrics_dir=ROOT / "rubrics")
    assert {r.lab for r in results} == {"phase-04/lab-00", "phase-05/lab-02"}
    for result in results:
        bad = [(c.id, c.message.english()) for c in result.checks if c.status != Status.PASS]
        assert not bad, bad
        assert result.passed and result.score == result.max_score


def test_infinite_loop_costs_one_timeout(rubrics: dict[str, object]) -> None:
    result = _graded(rubrics, "infinite-loop", "p04")
    assert result.seconds < 2 * FAST.call_seconds + 3


def test_chatty_output_is_capped_not_fatal(rubrics: dict[str, object]) -> None:
    result = _graded(rubrics, "chatty", "p04")
    body, marker = result.output.rsplit("\n[… output cut here", 1)
    assert 0 < len(body.encode()) <= FAST.output_bytes and marker.startswith(": only the first 64 KiB are kept")


def test_every_kind_is_documented_in_the_readme() -> None:
    from grader.rubric import KINDS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for kind in KINDS:
        assert f"`{kind}`" in readme, kind


def test_one_learner_never_changes_another(tmp_path: Path) -> None:
    """A hanging, crashing learner graded in the same run leaves the others' results exactly as alone."""
    import shutil

    klass = tmp_path / "class"
    for name in ("infinite-loop", "segfault", "mutates-input"):
        shutil.copytree(FIXTURES / name, klass / name)
    shutil.copytree(ROOT / "learners" / "borja", klass / "borja")
    together = {r.learner: r for r in grade([klass], rubrics_dir=ROOT / "rubrics", lab="phase-04/lab-00", limits=FAST)}
    for name in ("borja", "mutates-input"):
        alone = grade([klass / name], rubrics_dir=ROOT / "rubrics", lab="phase-04/lab-00", limits=FAST)[0]
        assert together[name].checks == alone.checks
        assert together[name].output == alone.output


@pytest.mark.parametrize(("content", "words"), [
    ("{}", "not an nbformat 4 notebook"),
    ('{"nbformat": 4, "cells": [', "not JSON (line 1)"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}', "not a valid nbformat 4 notebook"),
])
def test_a_broken_notebook_is_one_line_and_extra_files_are_named(tmp_path: Path, rubrics: dict[str, object], content: str,
                                                                 words: str) -> None:
    import shutil

    nb = tmp_path / "nb"
    (nb / "phase-04").mkdir(parents=True)
    shutil.copy(FIXTURES / "forward-diff" / "phase-04" / "lab-00-softmax-gradient.md", nb / "phase-04")
    (nb / "phase-04" / "lab-00.ipynb").write_text(content, encoding="utf-8")
    first = grade_lab(rubrics["p04"], nb, FAST)  # type: ignore[arg-type]
    assert first.checks[0].status == FAIL and words in first.checks[0].message.english() and "\n" not in first.checks[0].message.english()
    assert first.checks[0].message.english().startswith("phase-04/lab-00.ipynb: ")

    two = tmp_path / "two"
    shutil.copytree(ROOT / "learners" / "borja", two)
    shutil.copy(two / "phase-04" / "lab-00-softmax-gradient.py", two / "phase-04" / "lab_00_old.py")
    second = grade_lab(rubrics["p04"], two, FAST)  # type: ignore[arg-type]
    assert "also found lab_00_old.py, not graded" in second.checks[0].message.english()


def test_partial_credit_is_the_fraction_of_inputs_right(rubrics: dict[str, object]) -> None:
    result = _graded(rubrics, "page-copy", "p04")
    stable = next(c for c in result.checks if c.id == "ce-loss-stable")
    assert stable.status == FAIL and "wrong on 2 of 9 inputs" in stable.message.english()
    assert stable.score == pytest.approx(stable.max_score * 7 / 9)
    assert result.score == pytest.approx(result.max_score - stable.max_score * 2 / 9)


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("case", ["deliverable-spanish", "sign-flipped", "deliverable-photo", "os-exit-in-function"])
def test_real_report_matches_golden(rubrics: dict[str, object], case: str, lang: str, update_goldens: bool) -> None:
    """End to end: the Markdown report, the learner's terminal summary and Gradescope's results of a graded fixture,
    word for word, in each language (a passing learner and three failing ones; refresh: pytest --update-goldens)."""
    import json

    from grader.exports import gradescope_results
    from grader.reports import render_markdown, render_summary

    result = _graded(rubrics, case, "p04")
    suffix = "" if lang == "en" else f".{lang}"
    gradescope = {k: v for k, v in gradescope_results([result], lang).items() if k != "execution_time"}
    for text, golden in ((render_markdown(result, lang), ROOT / "tests" / "golden" / f"fixture-{case}{suffix}.md"),
                         (render_summary([result], detailed=True, lang=lang),
                          ROOT / "tests" / "golden" / f"fixture-{case}{suffix}.txt"),
                         (json.dumps(gradescope, ensure_ascii=False, indent=1) + "\n",
                          ROOT / "tests" / "golden" / f"fixture-{case}{suffix}.gradescope.json")):
        if update_goldens:
            golden.write_text(text, encoding="utf-8")
        assert text == golden.read_text(encoding="utf-8")


def test_a_bold_line_in_place_of_a_heading_gets_a_hint(tmp_path: Path, rubrics: dict[str, object]) -> None:
    import shutil

    learner = tmp_path / "dora"
    shutil.copytree(ROOT / "learners" / "borja", learner)
    md = learner / "phase-04" / "lab-00-softmax-gradient.md"
    md.write_text(md.read_text(encoding="utf-8").replace("## Reflection", "**Reflection**"), encoding="utf-8")
    result = grade_lab(rubrics["p04"], learner, FAST)  # type: ignore[arg-type]
    reflection = next(c for c in result.checks if c.id == "reflection")
    assert reflection.status == Status.PASS  # never failed for a heading's wording; told how to make it clearer
    assert "looks like one: make it a heading, '## Reflection'" in reflection.message.english()


def test_a_stub_or_old_copy_with_the_same_names_does_not_win(tmp_path: Path, rubrics: dict[str, object]) -> None:
    import shutil

    learner = tmp_path / "eva"
    shutil.copytree(ROOT / "learners" / "borja", learner)
    names = ["softmax(z)", "softmax_jacobian(z)", "softmax_jacobian_fd(z, h=1e-5)", "ce_loss(z, y)", "ce_grad(z, y)", "ce_grad_fd(z, y, h=1e-5)"]
    (learner / "phase-04" / "lab-00-a.py").write_text("".join(f"def {n}:\n    return None\n" for n in names), encoding="utf-8")
    shutil.copy(learner / "phase-04" / "lab-00-softmax-gradient.py", learner / "phase-04" / "lab-00-softmax-gradient-old.py")
    result = grade_lab(rubrics["p04"], learner, FAST)  # type: ignore[arg-type]
    assert result.passed and result.score == result.max_score
    assert result.checks[0].message.english().startswith("lab-00-softmax-gradient.py loaded")


@pytest.mark.parametrize(("link", "make", "words"), [
    ("lab-00-softmax-gradient.py", None, "not a picture"),
    ("empty.jpg", b"", "not a picture"),
])
def test_only_a_real_picture_stands_in_for_a_derivation(tmp_path: Path, rubrics: dict[str, object], link: str,
                                                        make: bytes | None, words: str) -> None:
    import shutil

    learner = tmp_path / "fede"
    shutil.copytree(FIXTURES / "deliverable-photo", learner)
    phase = learner / "phase-04"
    if make is not None:
        (phase / link).write_bytes(make)
    md = phase / "lab-00-softmax-gradient.md"
    md.write_text(md.read_text(encoding="utf-8").replace("derivation.jpg", link), encoding="utf-8")
    result = grade_lab(rubrics["p04"], learner, FAST)  # type: ignore[arg-type]
    check = next(c for c in result.checks if c.id == "derivation-softmax")
    assert check.status == FAIL and words in check.message.english()


def test_pasted_source_code_is_not_the_printed_output(tmp_path: Path, rubrics: dict[str, object]) -> None:
    import re
    import shutil

    learner = tmp_path / "gil"
    shutil.copytree(ROOT / "learners" / "borja", learner)
    md = learner / "phase-04" / "lab-00-softmax-gradient.md"
    text = md.read_text(encoding="utf-8")
    start = text.index("## Part B")
    end = text.index("## Reflection")
    source = "## Part B — Verification output\n\n```python\nimport numpy as np\nh = 1e-5\nfor y in range(5):\n    print(y)\n```\n\n"
    md.write_text(text[:start] + source + text[end:], encoding="utf-8")
    result = grade_lab(rubrics["p04"], learner, FAST)  # type: ignore[arg-type]
    check = next(c for c in result.checks if c.id == "verification-output")
    assert check.status == FAIL and re.search("source code, not the printed output", check.message.english())


def test_near_miss_file_names_get_a_rename_hint(tmp_path: Path, rubrics: dict[str, object]) -> None:
    import shutil

    learner = tmp_path / "hugo"
    shutil.copytree(ROOT / "learners" / "borja", learner)
    phase = learner / "phase-04"
    (phase / "lab-00-softmax-gradient.py").rename(phase / "Lab00-softmax-gradient.py")
    (phase / "lab-00-softmax-gradient.md").rename(phase / "lab-00-softmax-gradient.MD")
    result = grade_lab(rubrics["p04"], learner, FAST)  # type: ignore[arg-type]
    by_id = {c.id: c for c in result.checks}
    found = by_id["implementation-found"]
    assert found.status == Status.PASS and "defines 6 of the lab's 6 functions" in found.message.english() and "rename it" in found.message.english()
    delivered = by_id["deliverable-found"]
    assert delivered.status == Status.PASS and "graded lab-00-softmax-gradient.MD as the deliverable" in delivered.message.english()
    assert "rename it" in delivered.message.english() and result.passed


def test_a_function_named_in_other_words_is_suggested(tmp_path: Path, rubrics: dict[str, object]) -> None:
    import shutil

    learner = tmp_path / "kai"
    shutil.copytree(ROOT / "learners" / "borja", learner)
    code = learner / "phase-04" / "lab-00-softmax-gradient.py"
    code.write_text(code.read_text(encoding="utf-8").replace("def softmax_jacobian(", "def jacobiano_softmax("), encoding="utf-8")
    result = grade_lab(rubrics["p04"], learner, FAST)  # type: ignore[arg-type]
    analytic = next(c for c in result.checks if c.id == "jacobian-analytic")
    assert "found 'jacobiano_softmax', which computes what 'softmax_jacobian' should — rename it" in analytic.message.english()


def test_a_suggested_function_must_play_the_missing_ones_role(tmp_path: Path, rubrics: dict[str, object]) -> None:
    """The analytic Jacobian under a near name is offered for softmax_jacobian, never for the finite difference."""
    import shutil

    learner = tmp_path / "lia"
    shutil.copytree(ROOT / "learners" / "borja", learner)
    code = learner / "phase-04" / "lab-00-softmax-gradient.py"
    text = code.read_text(encoding="utf-8").replace("def softmax_jacobian(", "def softmax_jacobian_f(")
    code.write_text(text.replace("def softmax_jacobian_fd(", "def numeric_jacobian("), encoding="utf-8")
    result = grade_lab(rubrics["p04"], learner, FAST)  # type: ignore[arg-type]
    by_id = {c.id: c for c in result.checks}
    assert "found 'softmax_jacobian_f'" in by_id["jacobian-analytic"].message.english()
    assert "softmax_jacobian_f'" not in by_id["jacobian-fd"].message.english() and "rename" not in by_id["jacobian-fd"].message.english()
    assert "no function 'softmax_jacobian_fd'" in by_id["jacobian-fd"].message.english()


def test_a_spanish_and_after_a_step_is_no_contradicting_statement(rubrics: dict[str, object]) -> None:
    """'… con h = 1e-5 y todas las clases' (y: "and") read as the formula "1e-5 y" once told a correct learner that a
    later line states the gradient differently (a QA pass as a Spanish-speaking learner)."""
    result = _graded(rubrics, "deliverable-spanish", "p04")
    derivation = next(c for c in result.checks if c.id == "derivation-ce")
    assert derivation.status == Status.PASS and "states it differently" not in derivation.message.english()


def test_a_function_whose_definition_failed_is_named_with_its_statement(tmp_path: Path, rubrics: dict[str, object]) -> None:
    """Models a notebook exported to .py: a decorator (here a cache helper) made by a top-level call that the
    grader skips after the script failed; the learner is told which line and why, in their language."""
    import shutil

    from grader.i18n import say

    learner = tmp_path / "ines"
    shutil.copytree(ROOT / "learners" / "borja", learner)
    module = next((learner / "phase-04").glob("*.py"))
    source = module.read_text(encoding="utf-8")
    source = source.replace("def softmax(", "@memo\ndef softmax(", 1)
    module.write_text(source + "\nraise RuntimeError('plots need a display')\n", encoding="utf-8")
    result = grade_lab(rubrics["p04"], learner, FAST)  # type: ignore[arg-type]
    check = next(c for c in result.checks if c.id == "softmax-correct")
    assert check.status == FAIL
    assert "its definition failed to run (line " in say(check.message, "en") and "(def softmax): NameError" in say(check.message, "en")
    assert "(def softmax): NameError" in say(check.message, "es") and "línea" in say(check.message, "es")
