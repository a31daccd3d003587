"""Every shipped lab, found rather than listed: its rubric loads, lints clean, and its fixture learners grade as
their ``EXPECTED.yaml`` says. A new lab is a rubric, its reference module and fixture folders — no test to edit.

A fixture is ``tests/fixtures/<case>/`` with the learner's ``phase-NN/`` folder and an ``EXPECTED.yaml``: the
``lab``, whether it ``passed``, and each check that must not pass with its ``status`` and ``words`` its message
must contain; every other check of the lab must pass. (The real-styles corpus under ``styles/`` has its own test.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from grader.grading import grade_lab
from grader.lint import lint
from grader.model import Rubric, Status
from grader.rubric import load_rubric
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
RUBRICS = sorted((ROOT / "rubrics").glob("*/*.yaml"))
CASES = sorted(FIXTURES.glob("*/EXPECTED.yaml"))
FAST = Limits(call_seconds=2.0, learner_seconds=60.0)


def _expected(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def labs() -> dict[str, Rubric]:
    return {r.lab: r for r in map(load_rubric, RUBRICS)}


@pytest.mark.parametrize("path", RUBRICS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_shipped_rubric_loads_and_lints_clean(path: Path) -> None:
    rubric = load_rubric(path)
    assert rubric.lab == f"{path.parent.name}/{path.stem}" and rubric.phase_dir == path.parent.name
    assert lint([path]) == []  # no problem, every learner-facing text in every language


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.parent.name)
def test_a_fixture_learner_grades_as_expected(labs: dict[str, Rubric], path: Path) -> None:
    expected = _expected(path)
    assert expected["lab"] in labs, f"{path}: no shipped rubric for lab {expected['lab']}"
    result = grade_lab(labs[expected["lab"]], path.parent, FAST)
    wanted = expected.get("checks") or {}
    by_id = {c.id: c for c in result.checks}
    assert set(wanted) <= set(by_id), f"{path}: checks the lab does not have: {set(wanted) - set(by_id)}"
    problems = []
    for check in result.checks:
        want = wanted.get(check.id) or {"status": "pass", "words": []}
        if check.status.value != want["status"]:
            problems.append(f"{check.id}: {check.status} (expected {want['status']}) — {check.message.english()}")
        problems += [f"{check.id}: {w!r} not in {check.message.english()!r}" for w in want.get("words") or []
                     if w not in check.message.english()]
    if result.passed is not expected["passed"]:
        problems.append(f"lab verdict {result.passed}, expected {expected['passed']}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", RUBRICS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_check_of_a_lab_has_a_fixture_that_fails_it_and_one_that_passes(path: Path) -> None:
    """A check no fixture fails is one nobody has seen fail: it may be unable to."""
    rubric = load_rubric(path)
    mine = [e for e in map(_expected, [*CASES, *sorted((FIXTURES / "styles").glob("*/*/EXPECTED.yaml"))])
            if e["lab"] == rubric.lab]
    assert any(e["passed"] and not e.get("checks") for e in mine), f"{rubric.lab}: no fixture passes every check"
    failing = {cid for e in mine for cid, c in (e.get("checks") or {}).items() if c["status"] != Status.PASS.value}
    assert not [c.id for c in rubric.checks if c.id not in failing], f"{rubric.lab}: no fixture fails these"
