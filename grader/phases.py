"""Where a grading process spends its time, by phase: measured only when the benchmark asks (``GRADER_PHASES``).

Phases nest (a check waits on learner calls; a section check reads the formulas): each phase is charged its own
time, its inner phases' time going to them. Wall time and this process's CPU time are kept apart: a phase that
waits on a learner's worker (``calls``, ``worker``) costs wall time the worker's CPU fills. With the variable
unset, ``phase`` is one dictionary lookup and nothing is recorded.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_FOLDER = os.environ.get("GRADER_PHASES", "")
_TOTALS: dict[str, list[float]] = {}  # phase -> [wall, cpu, count]
_STACK: list[list[float]] = []  # [wall at entry, cpu at entry, inner wall, inner cpu]
PHASES = ("worker", "calls", "checks", "deliverable", "reports", "history")


@contextmanager
def phase(name: str) -> Iterator[None]:
    if not _FOLDER:
        yield
        return
    entry = [time.perf_counter(), time.process_time(), 0.0, 0.0]
    _STACK.append(entry)
    try:
        yield
    finally:
        _STACK.pop()
        wall, cpu = time.perf_counter() - entry[0], time.process_time() - entry[1]
        total = _TOTALS.setdefault(name, [0.0, 0.0, 0])
        total[0] += wall - entry[2]
        total[1] += cpu - entry[3]
        total[2] += 1
        if _STACK:
            _STACK[-1][2] += wall
            _STACK[-1][3] += cpu


def flush() -> None:
    """Write this process's totals so far (one file per process: a pool's processes never share one)."""
    if not _FOLDER:
        return
    target = Path(_FOLDER) / f"{os.getpid()}.json"
    temporary = target.with_suffix(".tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(_TOTALS), encoding="utf-8")
        temporary.replace(target)
    except OSError:  # a measurement never stops a grading run
        pass


def gather(folder: Path) -> dict[str, list[float]]:
    """Every process's totals, added up (for the benchmark)."""
    totals: dict[str, list[float]] = {}
    for path in folder.glob("*.json"):
        for name, (wall, cpu, count) in json.loads(path.read_text(encoding="utf-8")).items():
            total = totals.setdefault(name, [0.0, 0.0, 0])
            total[0] += wall
            total[1] += cpu
            total[2] += count
    return totals
