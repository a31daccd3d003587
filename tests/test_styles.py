"""Submissions written the way real learners write them, each modelled on a public pattern.

Every folder under ``tests/fixtures/styles/<kind>/`` is a learner with an ``EXPECTED.yaml`` saying which
public pattern it models and, worked out by hand, which checks must not pass (with words their message must
contain); every other check of that kind must pass, and the lab verdict is given. ``deliverables`` are graded
on the deliverable checks only, ``code`` on the code checks only. The false-fail and false-pass counts of
this corpus are what ``bench/styles.py`` reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from grader.grading import grade_lab
from grader.model import LabResult
from grader.rubric import load_rubric
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
STYLES = ROOT / "tests" / "fixtures" / "styles"
FAST = Limits(call_seconds=2.0, learner_seconds=60.0)
DELIVERABLE_KINDS = frozenset({"deliverable", "section"})
BOTH_PARTS = frozenset({"output_rerun"})  # needs the code and the deliverable: a style folder holds one of them


def expectations(kind: str) -> list[Any]:
    return [pytest.param(p.parent, id=p.parent.name) for p in sorted((STYLES / kind).glob("*/EXPECTED.yaml"))]


@pytest.fixture(scope="module")
def rubrics() -> dict[str, Any]:
    return {r.lab: r for r in (load_rubric(p) for p in sorted((ROOT / "rubrics").glob("*/*.yaml")))}


def _check(rubrics: dict[str, Any], case: Path, kind: str) -> None:
    expected = yaml.safe_load((case / "EXPECTED.yaml").read_text(encoding="utf-8"))
    rubric = rubrics[expected["lab"]]
    result: LabResult = grade_lab(rubric, case, FAST)
    kinds = {c.id: c.kind for c in rubric.checks}
    graded = [c for c in result.checks if kinds[c.id] not in BOTH_PARTS
              and (kinds[c.id] in DELIVERABLE_KINDS) == (kind == "deliverables")]
    wanted = expected.get("checks") or {}
    assert set(wanted) <= {c.id for c in graded}, f"EXPECTED.yaml names checks of another kind: {set(wanted)}"
    problems = []
    for check in graded:
        want = wanted.get(check.id) or {"status": "pass", "words": []}
        if check.status.value != want["status"]:
            problems.append(f"{check.id}: {check.status} (expected {want['status']}) — {check.message.english()}")
        for word in want.get("words") or []:
            if word not in check.message.english():
                problems.append(f"{check.id}: {word!r} not in {check.message.english()!r}")
    verdict = all(c.status.earns_points for c in graded if c.acceptance)
    if verdict != expected["passed"]:
        problems.append(f"lab verdict {verdict}, expected {expected['passed']}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", expectations("deliverables"))
def test_deliverable_in_a_real_style(rubrics: dict[str, Any], case: Path) -> None:
    _check(rubrics, case, "deliverables")


@pytest.mark.parametrize("case", expectations("code"))
def test_code_in_a_real_style(rubrics: dict[str, Any], case: Path) -> None:
    _check(rubrics, case, "code")
