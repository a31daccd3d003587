"""The data model: small frozen records; totals are derived, never stored twice."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from grader.i18n import Message, Texts, verbatim

LAB_NAME = re.compile(r"^phase-\d+/lab-\d+$")  # "phase-04/lab-00": how rubrics, rules, course files and flags name a lab


def nfc(text: str) -> str:
    """A name as compared: composed Unicode. macOS saves "lucía" decomposed, a keyboard types it composed."""
    return unicodedata.normalize("NFC", text)


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # learner code raised, crashed, exited or timed out
    SKIP = "skip"  # a prerequisite is missing
    REVIEW = "review"  # a human must look; points provisionally given

    def __str__(self) -> str:
        return self.value

    @property
    def earns_points(self) -> bool:
        return self in (Status.PASS, Status.REVIEW)


@dataclass(frozen=True)
class Cause:
    """A recognisable mistake: a built-in detector or a reference-module predicate, and what to say."""

    when: str
    say: str | Texts | None = None


@dataclass(frozen=True)
class FunctionSpec:
    """A function the learner must write, and how the reference stands in for it."""

    name: str
    reference: str  # name in the reference module computing the true value
    step_arg: int | None = None  # positional index of the step h, for finite-difference functions
    default_step: float | None = None
    causes: tuple[Cause, ...] = ()  # recognisable mistakes, tried by every check that calls it
    differences: str | None = None  # a finite difference: the lab function it differences
    wrt: int = 0  # … with respect to this argument of that function
    uses: tuple[tuple[str, str], ...] = ()  # lab functions it builds on, each with the reference function that rebuilds
    # this one from that one's value ("" when none does): when one is wrong, that is said first


@dataclass(frozen=True)
class InputSet:
    """Named argument tuples; hidden sets are not on the lab page."""

    name: str
    cases: tuple[tuple[Any, ...], ...]
    hidden: bool = False
    arg_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    id: str
    kind: str
    title: str | Texts
    points: float
    acceptance: bool
    spec: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    causes: tuple[Cause, ...] = ()
    hidden: bool = False
    line: int = 0


@dataclass(frozen=True)
class Rubric:
    lab: str  # "phase-04/lab-00"
    title: str | Texts
    path: Path
    phase_dir: str  # "phase-04"
    implementation: tuple[str, ...]  # glob patterns
    deliverable: str
    functions: tuple[FunctionSpec, ...]
    inputs: dict[str, InputSet] = field(compare=False, hash=False)
    checks: tuple[Check, ...]
    reference: ModuleType = field(compare=False, hash=False, repr=False)
    notation: Any = field(default=None, compare=False, hash=False, repr=False)  # grader.maths.match.Notation
    helpers: ModuleType | None = field(default=None, compare=False, hash=False, repr=False)  # what a kit may ship
    notation_data: Any = field(default=None, compare=False, hash=False, repr=False)  # ``notation:`` as written
    digest: str = ""  # sha256 of the rubric, its reference and helpers: a kit built from it names it
    held_back: int = 0  # a learner kit: the checks only the instructor's rubric runs
    narrowed: int = 0  # … and the checks it runs on public inputs only
    review_points: str = "given"  # "held": exports leave a check in review out until an instructor decides
    given: tuple[Path, ...] = ()  # what every learner is given (the page's snippets): never evidence of copying

    def function(self, name: str) -> FunctionSpec:
        for spec in self.functions:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass(frozen=True)
class Evidence:
    """What a failing code check saw: plain data the templates render."""

    input_label: Message | str = ""
    input_value: Any = None
    expected: Any = None
    observed: Any = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    where: tuple[int, ...] | None = None
    cause: Message | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cause, str):  # a rubric's or a test's own sentence
            object.__setattr__(self, "cause", verbatim(self.cause))


@dataclass(frozen=True)
class Override:
    """An instructor's decision replacing the grader's for one check; keeps what the grader said."""

    reason: str
    status: Status  # the grader's own status, before the override
    score: float  # the grader's own score, before the override
    source: str = ""  # "overrides.yaml:12", so a reader can find the rule


ADJUSTMENT_ORDER = ("late", "bonus", "penalty", "cap")  # how a lab's points are adjusted, whatever the files' order


@dataclass(frozen=True)
class Adjustment:
    """A lab-level change to the points, after the checks: a late penalty, an instructor's bonus, penalty or cap.

    ``points`` is signed for late/bonus/penalty (a penalty is negative) and the ceiling for a cap."""

    kind: str  # one of ADJUSTMENT_ORDER
    points: float
    reason: Message
    source: str = ""  # "course.yaml:7", "overrides.yaml:12"

    def __post_init__(self) -> None:
        if isinstance(self.reason, str):
            object.__setattr__(self, "reason", verbatim(self.reason))


def adjusted(points: float, adjustments: tuple[Adjustment, ...]) -> float:
    for kind in ADJUSTMENT_ORDER:
        for a in adjustments:
            if a.kind == kind:
                points = min(points, a.points) if kind == "cap" else points + a.points
    return round(max(0.0, points), 6)


def adjustment_deltas(points: float, adjustments: tuple[Adjustment, ...]) -> list[tuple[Adjustment, float]]:
    """Each adjustment with the change it made, in the order applied: what a report shows line by line."""
    out = []
    for kind in ADJUSTMENT_ORDER:
        for a in adjustments:
            if a.kind == kind:
                after = max(0.0, min(points, a.points) if kind == "cap" else points + a.points)
                out.append((a, round(after - points, 6)))
                points = after
    return out


@dataclass(frozen=True)
class Submitted:
    """When the lab was handed in, and how that is known (which decides how much it can be trusted)."""

    time: str  # ISO 8601 with its offset
    source: str  # "git", "manifest" or "mtime"


@dataclass(frozen=True)
class CheckResult:
    id: str
    title: str | Texts
    status: Status
    score: float
    max_score: float
    acceptance: bool
    message: Message  # words only when rendered, in the reader's language
    evidence: Evidence | None = None
    hidden: bool = False
    override: Override | None = None  # set when an instructor's rule replaced status/score

    def __post_init__(self) -> None:
        if isinstance(self.message, str):
            object.__setattr__(self, "message", verbatim(self.message))


@dataclass(frozen=True)
class LabResult:
    learner: str
    lab: str
    title: str | Texts
    checks: tuple[CheckResult, ...]
    output: str = ""  # what the learner's code printed (capped)
    seconds: float = 0.0
    retry: bool = False  # the grading machine failed, not the learner: never reused, graded again next run
    language: str = ""  # the language the deliverable is written in ("en", "es"; "" when it does not say)
    held_back: int = 0  # graded with a learner kit: checks only the instructor's rubric runs
    narrowed: int = 0  # … and checks run here on public inputs only
    adjustments: tuple[Adjustment, ...] = ()  # lab-level: applied after the checks, in ADJUSTMENT_ORDER
    submitted: Submitted | None = None  # known when the course gives this lab a due date
    review_held: bool = False  # the rubric's ``review_points: held``: exports leave review points out until decided

    @property
    def passed(self) -> bool:
        return all(c.status.earns_points for c in self.checks if c.acceptance)

    @property
    def checks_score(self) -> float:
        return round(sum(c.score for c in self.checks), 6)

    @property
    def score(self) -> float:
        """The checks' points, then each adjustment in ADJUSTMENT_ORDER; never below 0."""
        return adjusted(self.checks_score, self.adjustments)

    @property
    def export_score(self) -> float:
        """What an LMS receives: with ``review_points: held``, points of checks still in review are left out."""
        if not self.review_held:
            return self.score
        held = sum(c.score for c in self.checks if c.status is Status.REVIEW)
        return adjusted(round(self.checks_score - held, 6), self.adjustments)

    @property
    def review(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status is Status.REVIEW)

    @property
    def max_score(self) -> float:
        return round(sum(c.max_score for c in self.checks), 6)

    @property
    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for c in self.checks:
            out[c.status.value] += 1
        return out
