"""The whole fixture class, graded and compared with a stored copy of its JSON results, byte for byte.

The sandbox's protocol, the runner's batching and the worker's life cycle change how learner code is called, never
what a learner is told: every fixture (the learner cases, the adversarial ones and ``learners/borja``) keeps the same
statuses, scores, messages and evidence. Only the wall time (``seconds``) is left out. Refresh after a deliberate change
of results with ``pytest tests/test_golden_class.py --update-goldens`` and read the diff: one line per lab.
"""

from __future__ import annotations

import json
from pathlib import Path

from grader.grading import grade
from grader.results import lab_to_dict
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "class.jsonl"
CLASSES = (ROOT / "tests" / "fixtures", ROOT / "tests" / "adversarial" / "fixtures", ROOT / "learners")
FAST = Limits(call_seconds=2.0, learner_seconds=60.0)


def _lines() -> list[str]:
    lines = []
    for folder in CLASSES:
        for result in grade([folder], rubrics_dir=ROOT / "rubrics", limits=FAST):
            data = lab_to_dict(result)
            del data["seconds"]
            key = f"{folder.relative_to(ROOT).as_posix()}/{result.learner} {result.lab}"
            lines.append(key + " " + json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
    return sorted(lines)


def test_the_fixture_class_grades_exactly_as_stored(update_goldens: bool) -> None:
    lines = _lines()
    if update_goldens:
        GOLDEN.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stored = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 70
    assert [line.split(" ", 2)[:2] for line in lines] == [line.split(" ", 2)[:2] for line in stored]
    changed = [line.split(" ", 2)[:2] for line, old in zip(lines, stored) if line != old]
    assert not changed, changed
