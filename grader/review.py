"""The review queue: checks a human must decide (a derivation handed in as a photo), and recording the decisions.

A decision is an override rule appended to the class's overrides file — the one file every output already
applies — with who decided and when, so it is versioned with the rest of the instructor's decisions and never
lost by re-grading. The file is rewritten whole through a temporary file, and only if it still parses.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from grader.atomicio import atomic_write_text
from grader.errors import UsageError
from grader.i18n import Message, Texts, msg
from grader.model import Status
from grader.term import OVERRIDES, ClassState


@dataclass(frozen=True)
class ReviewItem:
    learner: str
    lab: str
    check: str
    title: str | Texts
    points: float  # given provisionally (held out of exports with ``review_points: held``)
    max_score: float
    look_at: Message  # the check's own finding: which images, which section
    held: bool


def review_queue(state: ClassState, learners: Sequence[str] = ()) -> list[ReviewItem]:
    """Every check still in review (an override decides it), for the learners named (every learner when none)."""
    from grader.term import known_name

    wanted = {known_name(name, [r.learner for r in state.results]) for name in learners}
    items = []
    for r in state.results:
        if wanted and r.learner not in wanted:
            continue
        for c in r.checks:
            if c.status is Status.REVIEW and c.override is None:
                items.append(ReviewItem(r.learner, r.lab, c.id, c.title, c.score, c.max_score, c.message, r.review_held))
    return items


def decision_target(state: ClassState, given: Path | None) -> Path:
    """``--overrides``, else the file the class's runs use, else a new ``overrides.yaml`` in the class folder."""
    if given is not None:
        return given
    if state.files.overrides is not None:
        return state.files.overrides
    if state.files.folder is not None:
        return state.files.folder / OVERRIDES
    raise UsageError(msg("review.no_file"))


def record_decision(state: ClassState, target: Path, learner: str, lab: str, check: str, *, status: Status | None,
                    points: float | None, reason: str, by: str = "") -> tuple[int, bool]:
    """Append the rule; returns the line it starts at and whether the check was waiting for review."""
    from grader.overrides import load_overrides

    from grader.term import known_name

    learner = known_name(learner, [r.learner for r in state.results])
    result = next((r for r in state.results if r.learner == learner and r.lab == lab), None)
    if result is None:
        labs = sorted(r.lab for r in state.results if r.learner == learner)
        raise UsageError(msg("review.no_lab", learner=learner, lab=lab, labs=", ".join(labs)))
    found = next((c for c in result.checks if c.id == check), None)
    if found is None:
        raise UsageError(msg("review.no_check", learner=learner, lab=lab, check=check,
                             checks=", ".join(c.id for c in result.checks)))
    if points is not None and not 0 <= points <= found.max_score:
        raise UsageError(msg("review.points_range", points=points, most=found.max_score, check=check))
    if not reason.strip():
        raise UsageError(msg("review.no_reason"))
    existing = load_overrides(target) if target.is_file() else ()
    for rule in existing:
        if rule.key == (learner, lab, check):
            raise UsageError(msg("review.decided", at=rule.source, learner=learner, lab=lab, check=check))
    rule: dict[str, object] = {"learner": learner, "lab": lab, "check": check}
    if status is not None:
        rule["status"] = status.value
    if points is not None:
        rule["points"] = points
    rule["reason"] = " ".join(reason.split())
    rule["by"] = by or _who()
    rule["at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    text = target.read_text(encoding="utf-8") if target.is_file() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    line = text.count("\n") + 1
    text += yaml.safe_dump([rule], allow_unicode=True, sort_keys=False, width=1000)
    _check_parses(target, text)
    atomic_write_text(target, text, hint=msg("review.write_hint"))
    return line, found.status is Status.REVIEW


def _check_parses(target: Path, text: str) -> None:
    """The whole new file must load (a flow-style list, say, cannot take a rule appended): else nothing is written."""
    import tempfile

    from grader.errors import OverridesError
    from grader.overrides import load_overrides

    folder = target.parent if str(target.parent) else Path(".")
    handle, name = tempfile.mkstemp(prefix=".grade-review-", suffix=".yaml", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        try:
            load_overrides(Path(name))
        except OverridesError:
            raise UsageError(msg("review.cannot_append", path=str(target))) from None
    finally:
        os.unlink(name)


def _who() -> str:
    try:
        return os.environ.get("GRADER_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):
        return ""
