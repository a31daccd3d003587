"""A learner's grading history as terminal text: what changed between attempts, not just the last score."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from grader.reports import environment
from grader.store import HistoryRow


def render_history(rows: Sequence[HistoryRow], learner: str, *, db: Path | None = None, lab: str | None = None,
                   lang: str = "en") -> str:
    """Plain text, one line per attempt, oldest first; ``db`` and ``lab`` only shape the empty-history message."""
    return environment(lang).get_template("history.txt.j2").render(rows=list(rows), learner=learner, db=db, lab=lab)
