"""False fails and false passes on submissions written the way real learners write them.

    python bench/styles.py

Grades every folder of ``tests/fixtures/styles/`` (deliverables on the deliverable checks, code on the code
checks) against its hand-worked ``EXPECTED.yaml`` and prints, per corpus: how many checks should pass and
failed anyway (false fails — the worst defect), how many should fail and passed (false passes), how many got
the right status but a message without the expected cause words, and the time per submission.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.grading import grade_lab  # noqa: E402
from grader.rubric import load_rubric  # noqa: E402
from grader.sandbox import Limits  # noqa: E402

DELIVERABLE_KINDS = {"deliverable", "section"}


def main() -> int:
    rubrics = {r.lab: r for r in (load_rubric(p) for p in sorted((ROOT / "rubrics").glob("*/*.yaml")))}
    limits = Limits(call_seconds=2.0, learner_seconds=60.0)
    print(f"{'corpus':<13} {'cases':>5} {'checks':>6} {'false fail':>10} {'false pass':>10} {'cause missing':>13} "
          f"{'verdict wrong':>13} {'ms/case':>8}")
    total_bad = 0
    for kind in ("deliverables", "code"):
        folders = sorted(p.parent for p in (ROOT / "tests" / "fixtures" / "styles" / kind).glob("*/EXPECTED.yaml"))
        checks = false_fail = false_pass = words = verdicts = 0
        started = time.perf_counter()
        for folder in folders:
            expected = yaml.safe_load((folder / "EXPECTED.yaml").read_text(encoding="utf-8"))
            rubric = rubrics[expected["lab"]]
            kinds = {c.id: c.kind for c in rubric.checks}
            result = grade_lab(rubric, folder, limits)
            wanted = expected.get("checks") or {}
            graded = [c for c in result.checks if (kinds[c.id] in DELIVERABLE_KINDS) == (kind == "deliverables")]
            for check in graded:
                checks += 1
                want = wanted.get(check.id) or {"status": "pass", "words": []}
                if want["status"] == "pass" and check.status.value != "pass":
                    false_fail += 1
                    print(f"  false fail: {folder.name} {check.id}: {check.message.english()[:160]}")
                elif want["status"] != "pass" and check.status.value == "pass":
                    false_pass += 1
                    print(f"  false pass: {folder.name} {check.id}: {check.message.english()[:160]}")
                elif any(w not in check.message.english() for w in want.get("words") or []):
                    words += 1
                    print(f"  cause missing: {folder.name} {check.id}: {check.message.english()[:160]}")
            verdict = all(c.status.earns_points for c in graded if c.acceptance)
            verdicts += verdict != expected["passed"]
        ms = (time.perf_counter() - started) / max(len(folders), 1) * 1000
        print(f"{kind:<13} {len(folders):>5} {checks:>6} {false_fail:>10} {false_pass:>10} {words:>13} {verdicts:>13} {ms:>8.0f}")
        total_bad += false_fail + false_pass + words + verdicts
    return 1 if total_bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
