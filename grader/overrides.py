"""Instructor overrides: a YAML list of decisions that replace the grader's status or points for one check.

The grader's own verdict is kept beside the decision (``CheckResult.override``), so every report can say
what was changed, by whom and why; a rule that matches nothing is named, never dropped.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from grader.errors import OverridesError
from grader.i18n import Message, msg, verbatim
from grader.model import LAB_NAME, Adjustment, CheckResult, LabResult, Override, Status, nfc

LAB_CHANGES = ("bonus", "penalty", "cap")  # a rule without ``check``: the whole lab's points
KEYS = ("learner", "lab", "check", "status", "points", *LAB_CHANGES, "reason", "by", "at")
STATUSES = tuple(s.value for s in Status)
_NAMES = ("learner", "lab", "check")
_ALIASES = {
    "student": "learner", "user": "learner", "name": "learner", "id": "check", "check_id": "check",
    "test": "check", "score": "points", "weight": "points", "grade": "status", "why": "reason", "comment": "reason",
    "note": "reason",
}
EXAMPLE = "- {learner: borja, lab: phase-04/lab-00, check: some-check-id, status: pass, reason: \"…\"}"

Note = Callable[[Message | str], None]


@dataclass(frozen=True)
class Rule:
    """One instructor decision; at least one of ``status`` and ``points`` is set."""

    learner: str
    lab: str
    check: str
    reason: str
    status: Status | None = None
    points: float | None = None
    source: str = ""  # "overrides.yaml:12"
    change: str = ""  # a lab-level rule (no ``check``): "bonus", "penalty" or "cap", of ``points``
    points_at: str = field(default="", compare=False)  # where ``points`` is written: a points error names that line
    by: str = ""  # who decided (``grade review`` writes it), and when: the file's own record, shown to the instructor
    at: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.learner, self.lab, self.check or f"[{self.change}]")

    @property
    def named(self) -> str:
        return f"{self.learner} {self.lab} {self.check or self.change}"


def _suggest(word: str, options: Sequence[str]) -> Message | str:
    """What the user may have meant (an alias, else the closest option), else the options; ``""`` when none."""
    alias = _ALIASES.get(word.lower())
    if alias in options:
        return msg("overrides.did_you_mean", word=alias)
    return did_you_mean(word, options) or (msg("overrides.one_of", options=list(options)) if options else "")


def load_overrides(path: Path) -> tuple[Rule, ...]:
    """Parse and validate the whole file first, so one bad rule is reported before any result changes."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OverridesError(msg("overrides.not_found", path=str(path))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OverridesError(msg("overrides.unreadable", path=str(path), error=verbatim(str(exc)))) from None
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = verbatim(exc.problem) if exc.problem else msg("overrides.invalid_yaml")
        raise OverridesError(msg("overrides.yaml_error", at=where, problem=problem)) from None
    except yaml.YAMLError as exc:
        raise OverridesError(msg("overrides.yaml_error.plain", at=str(path), problem=verbatim(" ".join(str(exc).split())))) from None
    if node is None:
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise OverridesError(msg("overrides.not_a_list", at=f"{path}:{_line(node)}", example=EXAMPLE))
    rules: list[Rule] = []
    seen: dict[tuple[str, str, str], int] = {}
    for item in node.value:
        rule = _rule(path, item)
        key = rule.key
        if key in seen:
            raise OverridesError(msg("overrides.second_rule", at=rule.source, rule=rule.named, first=seen[key]))
        seen[key] = _line(item)
        rules.append(rule)
    return tuple(rules)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _rule(path: Path, item: yaml.Node) -> Rule:
    at = f"{path}:{_line(item)}"
    if not isinstance(item, yaml.MappingNode):
        raise OverridesError(msg("overrides.not_a_mapping", at=at, example=EXAMPLE))
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    loader = yaml.SafeLoader("")
    for key_node, value_node in item.value:
        key = str(key_node.value)
        here = f"{path}:{_line(key_node)}"
        if not isinstance(key_node, yaml.ScalarNode) or key not in KEYS:
            raise OverridesError(msg("overrides.unknown_key", at=here, key=key, fix=_suggest(key, KEYS)))
        if key in values:
            raise OverridesError(msg("overrides.duplicate_key", at=here, key=key))
        lines[key] = _line(key_node)
        if not isinstance(value_node, yaml.ScalarNode):
            raise OverridesError(msg("overrides.not_scalar", at=here, key=key))
        if key not in ("points", *LAB_CHANGES):
            values[key] = value_node.value.strip()  # as written: learner 0123 or "no" stays a name, not 83 or false
        else:
            try:
                values[key] = loader.construct_object(value_node, deep=True)
            except yaml.YAMLError as exc:
                problem = verbatim(str(getattr(exc, "problem", None) or exc))
                raise OverridesError(msg("overrides.bad_value", at=here, key=key, problem=problem)) from None

    def where(key: str | None) -> str:
        return f"{path}:{lines.get(key, _line(item)) if key else _line(item)}"

    changes = [k for k in LAB_CHANGES if k in values]
    for key in _NAMES:
        if not values.get(key) and not (key == "check" and changes and "check" not in values):
            raise OverridesError(msg("overrides.missing_name", at=where(key), key=key))
    if changes:
        return _lab_rule(path, values, changes, where)
    label = msg("overrides.rule", learner=values["learner"], lab=values["lab"], check=values["check"])
    if not LAB_NAME.match(values["lab"]):
        raise OverridesError(msg("overrides.bad_lab", at=where("lab"), rule=label, lab=values["lab"]))
    reason = values.get("reason", "")
    if not reason:
        raise OverridesError(msg("overrides.missing_reason", at=where("reason"), rule=label))
    status: Status | None = None
    if "status" in values:
        word = values["status"]
        if word not in STATUSES:
            raise OverridesError(msg("overrides.unknown_status", at=where("status"), rule=label, status=word,
                                     fix=_suggest(word.lower(), STATUSES)))
        status = Status(word)
    points: float | None = None
    if "points" in values:
        points = _number(values["points"], where("points"), label)
    if status is None and points is None:
        raise OverridesError(msg("overrides.changes_nothing", at=where(None), rule=label))
    return Rule(values["learner"], values["lab"], values["check"], " ".join(reason.split()), status, points, at,
                points_at=where("points") if points is not None else "", by=values.get("by", ""), at=values.get("at", ""))


def _number(value: Any, at: str, label: Message) -> float:
    """Points, or a lab rule's bonus/penalty/cap: a finite number of 0 or more ("2", 2 and 2.0 alike)."""
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OverridesError(msg("overrides.points_not_number", at=at, rule=label, value=repr(value)))
    if value < 0:
        raise OverridesError(msg("overrides.points_negative", at=at, rule=label, points=value))
    return float(value)


def _lab_rule(path: Path, values: dict[str, Any], changes: list[str], where: Callable[[str | None], str]) -> Rule:
    """``bonus``/``penalty``/``cap`` of a whole lab: one per rule, never with ``check``, ``status`` or ``points``."""
    label = msg("overrides.lab_rule", learner=values["learner"], lab=values["lab"])
    if len(changes) > 1 or any(k in values for k in ("check", "status", "points")):
        extra = next(k for k in ("check", "status", "points", *changes[1:]) if k in values)
        raise OverridesError(msg("overrides.lab_rule_mixed", at=where(extra), rule=label, key=changes[0], extra=extra))
    if not LAB_NAME.match(values["lab"]):
        raise OverridesError(msg("overrides.bad_lab", at=where("lab"), rule=label, lab=values["lab"]))
    reason = values.get("reason", "")
    if not reason:
        raise OverridesError(msg("overrides.missing_reason", at=where("reason"), rule=label))
    kind = changes[0]
    points = _number(values[kind], where(kind), label)
    return Rule(values["learner"], values["lab"], "", " ".join(reason.split()), None, points, where(None), change=kind,
                by=values.get("by", ""), at=values.get("at", ""))


def apply_overrides(results: Iterable[LabResult], rules: Sequence[Rule], note: Note | None = None) -> list[LabResult]:
    """New results with the rules applied; results no rule matches are returned as they are (same objects).

    Idempotent: a check already overridden keeps the grader's original verdict in its ``override``.
    ``note`` receives one line per rule that matched no graded learner, lab or check.
    """
    results = list(results)
    by_lab: dict[tuple[str, str], list[Rule]] = {}
    for each in rules:  # names compared composed (NFC): macOS saves "lucía" decomposed, a keyboard types it composed
        by_lab.setdefault((nfc(each.learner), each.lab), []).append(each)
    used: set[Rule] = set()
    out = []
    for result in results:
        mine = by_lab.get((nfc(result.learner), result.lab), ())
        lab_rules = {r.check: r for r in mine if not r.change}
        changes = [r for r in mine if r.change]
        if not mine:
            out.append(result)
            continue
        checks = []
        for check in result.checks:
            match = lab_rules.get(check.id)
            if match is not None:
                used.add(match)
                check = _apply(check, match)
            checks.append(check)
        used.update(changes)
        kept = tuple(a for a in result.adjustments if a.kind == "late")  # idempotent: the rules' own are made again
        made = tuple(Adjustment(r.change, -r.points if r.change == "penalty" else r.points, verbatim(r.reason),
                                _shown(r.source)) for r in changes)  # type: ignore[operator]
        out.append(replace(result, checks=tuple(checks), adjustments=kept + made))
    if note is not None:
        for rule in rules:
            if rule not in used:
                note(_unmatched(rule, results))
    return out


def _apply(check: CheckResult, rule: Rule) -> CheckResult:
    """Points alone: pass when they are full marks, else fail. Status alone: full points if it earns them, else 0."""
    if rule.points is not None and rule.points > check.max_score:
        raise _too_many(rule, check.max_score)
    original = check.override or Override(reason="", status=check.status, score=check.score)
    if rule.status is not None:
        status = rule.status
    else:
        status = Status.PASS if rule.points == check.max_score else Status.FAIL
    if rule.points is not None:
        score = rule.points
    else:
        score = check.max_score if status.earns_points else 0.0
    override = Override(reason=rule.reason, status=original.status, score=original.score, source=_shown(rule.source))
    return replace(check, status=status, score=score, override=override)


def _too_many(rule: Rule, most: float) -> OverridesError:
    return OverridesError(msg("overrides.points_too_many", at=rule.points_at or rule.source, rule=rule.named,
                              points=rule.points, most=most))


def _unmatched(rule: Rule, results: Sequence[LabResult]) -> Message:
    at, named = rule.source, rule.named
    learners = sorted({r.learner for r in results})
    if nfc(rule.learner) not in {nfc(name) for name in learners}:
        return msg("overrides.unmatched.learner", at=at, rule=named, learner=rule.learner, fix=did_you_mean(rule.learner, learners))
    labs = sorted(r.lab for r in results if nfc(r.learner) == nfc(rule.learner))
    if rule.lab not in labs:
        return msg("overrides.unmatched.lab", at=at, rule=named, lab=rule.lab, learner=rule.learner, fix=did_you_mean(rule.lab, labs))
    result = next(r for r in results if nfc(r.learner) == nfc(rule.learner) and r.lab == rule.lab)
    ids = [c.id for c in result.checks]
    return msg("overrides.unmatched.check", at=at, rule=named, lab=rule.lab, check=rule.check, fix=_suggest(rule.check, ids))


def did_you_mean(word: str, options: Iterable[str], cutoff: float = 0.6) -> Message | str:
    """" — did you mean 'x'?" for the closest option, or nothing: every "unknown name" error of the instructor's files."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=cutoff)
    return msg("overrides.did_you_mean", word=close[0]) if close else ""


def _shown(source: str) -> str:
    """``overrides.yaml:12``: what learners see names the rule, not the instructor's folders."""
    path, _, line = source.rpartition(":")
    return f"{Path(path).name}:{line}" if path else source


def check_rules(rules: Sequence[Rule], rubrics: Sequence[Any]) -> None:
    """Before any grading: points a check cannot be worth are the instructor's mistake, said now, not mid-run."""
    maxima = {(r.lab, c.id): float(c.points) for r in rubrics for c in r.checks}
    for rule in rules:
        most = maxima.get((rule.lab, rule.check))
        if not rule.change and rule.points is not None and most is not None and rule.points > most + 1e-9:
            raise _too_many(rule, most)
