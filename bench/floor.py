"""The floor: every learner's functions run once on the rubric's call plan, in ONE unisolated process.

    python bench/floor.py CLASS [--rubrics DIR]

No sandbox, no checks, no reports, no history: what grading a class cannot go below. The call plan is
recorded from grading ``learners/borja`` (a learner who passes: a failing learner's diagnosis adds a few
calls, which the floor leaves out) — every (function, arguments) pair the rubric's checks make, the
finite-difference steps and mutation probes included. Prints one JSON line: learners, seconds, calls.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def record_plan(rubrics_dir: Path) -> dict[str, list[tuple[str, tuple[Any, ...]]]]:
    """lab -> the calls grading a passing learner makes, in order, each once."""
    from grader import runner
    from grader.grading import grade_lab, select_rubrics
    from grader.sandbox import Limits

    plan: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    current: list[tuple[str, tuple[Any, ...]]] = []
    seen: set[Any] = set()
    original_call, original_prefetch = runner.LearnerRun.call, runner.LearnerRun.prefetch

    def note(fn: str, args: tuple[Any, ...]) -> None:
        key = (fn, runner.key_of(args))
        if key not in seen:
            seen.add(key)
            current.append((fn, args))

    def call(self: Any, fn: str, args: tuple[Any, ...]) -> Any:
        note(fn, args)
        return original_call(self, fn, args)

    def prefetch(self: Any, fn: str, calls: list[tuple[Any, ...]]) -> None:
        for args in calls:
            note(fn, args)
        return original_prefetch(self, fn, calls)

    runner.LearnerRun.call, runner.LearnerRun.prefetch = call, prefetch  # type: ignore[method-assign]
    try:
        for rubric in select_rubrics(rubrics_dir, None):
            current.clear()
            seen.clear()
            grade_lab(rubric, ROOT / "learners" / "borja", Limits())
            if current:
                plan[rubric.lab] = list(current)
    finally:
        runner.LearnerRun.call, runner.LearnerRun.prefetch = original_call, original_prefetch  # type: ignore[method-assign]
    return plan


def run_floor(klass: Path, rubrics_dir: Path) -> dict[str, Any]:
    import numpy  # noqa: F401  (loaded once, as the fork server does)

    from grader.grading import find_learners, select_rubrics
    from grader.submission import applies, find_submission

    plan = record_plan(rubrics_dir)
    rubrics = [r for r in select_rubrics(rubrics_dir, None) if r.lab in plan]
    learners = find_learners([klass])
    calls = 0
    started = time.perf_counter()
    for number, learner in enumerate(learners):
        for rubric in (r for r in rubrics if applies(r, learner, rubrics)):
            found = find_submission(rubric, learner)
            if found.implementation is None:
                continue
            module = _load(found.implementation, f"floor_{number}_{rubric.lab.replace('/', '_').replace('-', '_')}")
            if module is None:
                continue
            for fn, args in plan[rubric.lab]:
                function = getattr(module, fn, None)
                if function is None:
                    continue
                calls += 1
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        function(*[a.copy() if hasattr(a, "copy") else a for a in args])
                except Exception:  # noqa: BLE001 - a learner's bug costs its call, as in the grader
                    pass
    return {"learners": len(learners), "seconds": round(time.perf_counter() - started, 3), "calls": calls}


def _load(path: Path, name: str) -> Any:
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        with contextlib.redirect_stdout(io.StringIO()):
            spec.loader.exec_module(module)
        return module
    except BaseException:  # noqa: BLE001 - a module that fails to load is skipped (its checks would be errors)
        return None
    finally:
        sys.path.remove(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("klass", type=Path)
    parser.add_argument("--rubrics", type=Path, default=ROOT / "rubrics")
    args = parser.parse_args()
    print(json.dumps(run_floor(args.klass, args.rubrics)))


if __name__ == "__main__":
    main()
