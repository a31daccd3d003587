"""Questions about the class, answered from the gradebook with the decisions in force (no SQL).

Each answer is a list of plain rows; the command line prints them as a table or as JSON. The same
statuses as every other output: an override's status, not the grader's, once an instructor decided.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from grader.errors import UsageError
from grader.i18n import VERBATIM, msg
from grader.model import Status
from grader.term import ClassState

NOT_PASSED = "not-passed"  # fail, error or skip: the check earned no points
STATUS_WORDS = (*(s.value for s in Status), NOT_PASSED)


@dataclass(frozen=True)
class Row:
    learner: str
    lab: str = ""
    check: str = ""
    status: str = ""
    score: float | None = None
    max_score: float | None = None
    detail: Any = ""  # a Message or text: what the row is about
    extra: dict[str, Any] = field(default_factory=dict)


def _statuses(words: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for word in words:
        if word not in STATUS_WORDS:
            raise UsageError(msg("query.bad_status", status=word, statuses=", ".join(STATUS_WORDS)))
        out |= {"fail", "error", "skip"} if word == NOT_PASSED else {word}
    return out


def _check_known(state: ClassState, check: str, lab: str | None) -> None:
    ids = {c.id for r in state.results if lab is None or r.lab == lab for c in r.checks}
    if check not in ids:
        from grader.overrides import did_you_mean

        raise UsageError(msg("query.no_check", check=check, fix=did_you_mean(check, sorted(ids)), lab=lab or ""))


def with_status(state: ClassState, check: str, statuses: Sequence[str], lab: str | None = None) -> list[Row]:
    """Who has ``check`` in one of ``statuses`` (default: fail and error; ``--status fail`` is what the class page shows when
    that check's bar is clicked)."""
    _check_known(state, check, lab)
    wanted = _statuses(statuses or ("fail", "error"))
    rows = []
    for r in state.results:
        if lab is not None and r.lab != lab:
            continue
        for c in r.checks:
            if c.id == check and c.status.value in wanted:  # an instructor's decision is said by its reason
                detail = msg("query.overridden", reason=c.override.reason) if c.override is not None else c.message
                rows.append(Row(r.learner, r.lab, c.id, c.status.value, c.score, c.max_score, detail,
                                {"overridden": c.override is not None}))
    return rows


def not_passed(state: ClassState, lab: str | None, labs: Sequence[str], learners: Sequence[str]) -> list[Row]:
    """Who has not passed a lab: graded and not passed, or not handed in at all (every learner the gradebook knows).

    Without ``lab``, only labs someone has handed in: a lab not yet set is nobody's failure."""
    by = {(r.learner, r.lab): r for r in state.results}
    handed = {r.lab for r in state.results}
    labs = [name for name in labs if name in handed]
    rows = []
    for learner in learners:
        for name in ([lab] if lab else labs):
            r = by.get((learner, name))
            if r is None:
                rows.append(Row(learner, name, status="missing"))
            elif not r.passed:
                failing = [c.id for c in r.checks if c.acceptance and not c.status.earns_points]
                rows.append(Row(learner, name, status="not-passed", score=r.score, max_score=r.max_score,
                                detail=", ".join(failing)))
    return rows


def needs_review(state: ClassState) -> list[Row]:
    from grader.review import review_queue

    return [Row(i.learner, i.lab, i.check, "review", i.points, i.max_score, i.look_at) for i in review_queue(state)]


def changed(state: ClassState) -> list[Row]:
    """Whose result the last run graded anew (their submission, the rubric or the grader changed)."""
    last = state.last_run["id"] if state.last_run else None
    return [Row(r.learner, r.lab, status="pass" if r.passed else "not-passed", score=r.score, max_score=r.max_score)
            for r in state.results if last is not None and state.attempt_runs.get((r.learner, r.lab)) == last]


def late(state: ClassState) -> list[Row]:
    rows = []
    for r in state.results:
        for a in r.adjustments:
            if a.kind == "late":
                rows.append(Row(r.learner, r.lab, status="late", score=r.score, max_score=r.max_score, detail=a.reason,
                                extra={"change": a.points, "submitted": r.submitted.time if r.submitted else ""}))
    return rows


def causes(state: ClassState, check: str, lab: str | None = None) -> list[Row]:
    """Why ``check`` failed across the class: each finding's cause (else its message) by message id, commonest first."""
    _check_known(state, check, lab)
    counts: Counter[str] = Counter()
    example: dict[str, Any] = {}
    who: dict[str, list[str]] = {}
    for r in state.results:
        if lab is not None and r.lab != lab:
            continue
        for c in r.checks:
            if c.id != check or c.status.earns_points:
                continue
            if c.override is not None:
                said = msg("query.overridden", reason=c.override.reason)
            else:
                said = c.evidence.cause if c.evidence is not None and c.evidence.cause is not None else c.message
            key = said.id if said.id not in (VERBATIM, "query.overridden") else f"{VERBATIM}: {said.params}"
            counts[key] += 1
            example.setdefault(key, said)
            who.setdefault(key, []).append(r.learner)
    return [Row(", ".join(who[key]), check=check, status="" if key.startswith(VERBATIM + ":") else key, detail=example[key],
                extra={"count": n}) for key, n in counts.most_common()]
