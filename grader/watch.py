"""``grade --watch``: the learner's loop — grade again when a file of the submission is saved, say what changed.

Polling (a stat of the folder twice a second) rather than an inotify library: a learner's folder is small, it
works the same on every system and file system (network homes, containers), and needs no dependency.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import GraderError, Interrupted
from grader.i18n import msg, plural, say
from grader.model import LabResult, Status

POLL_SECONDS = 0.5
SETTLE_SECONDS = 0.3  # an editor's save is several writes: grade once they stop
MAX_FILES = 20_000


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and modification time, links not followed, hidden folders (``.git``) skipped."""
    seen: dict[str, tuple[int, int]] = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in files:
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            seen[os.path.relpath(path, folder)] = (info.st_mtime_ns, info.st_size)
            if len(seen) >= MAX_FILES:
                return seen
    return seen


@dataclass(frozen=True)
class Change:
    fixed: tuple[str, ...]
    broke: tuple[str, ...]
    failing: tuple[str, ...]


def changes(before: Sequence[LabResult], after: Sequence[LabResult]) -> Change:
    """Check by check, what the new run changed: fixed, newly broken, and what still fails."""
    def earning(results: Sequence[LabResult]) -> dict[str, bool]:
        several = len({r.lab for r in results}) > 1
        return {(f"{r.lab} " if several else "") + c.id: c.status.earns_points
                for r in results for c in r.checks if c.status is not Status.SKIP}
    old, new = earning(before), earning(after)
    fixed = tuple(k for k, ok in new.items() if ok and old.get(k) is False)
    broke = tuple(k for k, ok in new.items() if not ok and old.get(k) is not False)
    failing = tuple(k for k, ok in new.items() if not ok and old.get(k) is False)
    return Change(fixed, broke, failing)


def render_change(change: Change, results: Sequence[LabResult], lang: str) -> str:
    said = (plural("watch.fixed", len(change.fixed), ids=", ".join(change.fixed)) if change.fixed else None,
            plural("watch.broke", len(change.broke), ids=", ".join(change.broke)) if change.broke else None,
            plural("watch.failing", len(change.failing), ids=", ".join(change.failing)) if change.failing else None)
    parts = [say(m, lang) for m in said if m is not None]
    passed = all(r.passed for r in results)
    verdict = say(msg("verdict.passed" if passed else "verdict.not_passed"), lang)
    score = sum(r.score for r in results), sum(r.max_score for r in results)
    line = " · ".join(parts) if parts else say(msg("watch.same"), lang)
    return f"{verdict} {score[0]:g}/{score[1]:g} — {line}\n"


def watch(folder: Path, grade_once: Callable[[bool], list[LabResult]], language: Callable[[Sequence[Any]], str],
          *, poll: float = POLL_SECONDS, settle: float = SETTLE_SECONDS, runs: int | None = None) -> int:
    """Grade now (the whole summary), then after each save (only what changed). Ctrl-C stops with nothing left
    running: every run is a complete ``grade`` run of its own. ``runs`` bounds the loop (for tests)."""
    results = grade_once(False)
    lang = language(results)
    print(say(msg("watch.watching", folder=str(folder)), lang), file=sys.stderr, flush=True)
    state = snapshot(folder)
    done = 1
    try:
        while runs is None or done < runs:
            time.sleep(poll)
            now = snapshot(folder)
            if now == state:
                continue
            while True:  # wait for the save to finish
                time.sleep(settle)
                later = snapshot(folder)
                if later == now:
                    break
                now = later
            state = now
            try:
                fresh = grade_once(True)
            except Interrupted:
                raise KeyboardInterrupt from None
            except GraderError as exc:  # a file saved half-way, a folder renamed: say it, keep watching
                from grader.safety import terminal_safe

                print(f"grade: {terminal_safe(exc.said(lang))}", file=sys.stderr, flush=True)
                continue
            lang = language(fresh)
            sys.stdout.write(render_change(changes(results, fresh), fresh, lang))
            sys.stdout.flush()
            results = fresh
            done += 1
    except KeyboardInterrupt:
        print(say(msg("watch.stopped"), lang), file=sys.stderr, flush=True)
        return Interrupted.exit_code
    return 0 if all(r.passed for r in results) else 1
