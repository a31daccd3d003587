"""Instructor overrides: a YAML list of decisions that replace the grader's status or points for one check.

The grader's own verdict is kept beside the decision (``CheckResult.override``), so every report can say
what was changed, by whom and why; a rule that matches nothing is named, never dropped.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from grader.errors import OverridesError
from grader.model import CheckResult, LabResult, Override, Status
from grader.rubric import did_you_mean

KEYS = ("learner", "lab", "check", "status", "points", "reason")
STATUSES = tuple(s.value for s in Status)
_NAMES = ("learner", "lab", "check")
_ALIASES = {
    "student": "learner", "user": "learner", "name": "learner", "id": "check", "check_id": "check",
    "test": "check", "score": "points", "grade": "status", "why": "reason", "comment": "reason", "note": "reason",
}
_LAB = re.compile(r"^phase-\d+/lab-\d+$")
EXAMPLE = "- {learner: borja, lab: phase-04/lab-00, check: some-check-id, status: pass, reason: \"…\"}"

Note = Callable[[str], None]


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


def _suggest(word: str, options: Sequence[str]) -> str:
    alias = _ALIASES.get(word.lower())
    return f" — did you mean '{alias}'?" if alias in options else did_you_mean(word, options)


def load_overrides(path: Path) -> tuple[Rule, ...]:
    """Parse and validate the whole file first, so one bad rule is reported before any result changes."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OverridesError(f"{path}: overrides file not found — check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OverridesError(f"{path}: cannot read the overrides file: {exc} — save it as UTF-8 text") from None
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise OverridesError(f"{where}: YAML error: {exc.problem or 'invalid YAML'} — check the indentation and quoting there") from None
    except yaml.YAMLError as exc:
        raise OverridesError(f"{path}: YAML error: {' '.join(str(exc).split())}") from None
    if node is None:
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise OverridesError(f"{path}:{_line(node)}: the file must be a list of rules, one '- ' item each, e.g. {EXAMPLE}")
    rules: list[Rule] = []
    seen: dict[tuple[str, str, str], int] = {}
    for item in node.value:
        rule = _rule(path, item)
        key = (rule.learner, rule.lab, rule.check)
        if key in seen:
            raise OverridesError(f"{rule.source}: a second rule for {' '.join(key)} (the first is at line {seen[key]}) — keep one")
        seen[key] = _line(item)
        rules.append(rule)
    return tuple(rules)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _rule(path: Path, item: yaml.Node) -> Rule:
    at = f"{path}:{_line(item)}"
    if not isinstance(item, yaml.MappingNode):
        raise OverridesError(f"{at}: each rule is a mapping with learner, lab, check, status and/or points, reason — e.g. {EXAMPLE}")
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    loader = yaml.SafeLoader("")
    for key_node, value_node in item.value:
        key = str(key_node.value)
        here = f"{path}:{_line(key_node)}"
        if not isinstance(key_node, yaml.ScalarNode) or key not in KEYS:
            raise OverridesError(f"{here}: unknown key '{key}'{_suggest(key, KEYS)}")
        if key in values:
            raise OverridesError(f"{here}: duplicate key '{key}' in one rule — keep only one")
        lines[key] = _line(key_node)
        if not isinstance(value_node, yaml.ScalarNode):
            raise OverridesError(f"{here}: '{key}' must be a single value, not a list or mapping")
        if key != "points":
            values[key] = value_node.value.strip()  # as written: learner 0123 or "no" stays a name, not 83 or false
        else:
            try:
                values[key] = loader.construct_object(value_node, deep=True)
            except yaml.YAMLError as exc:
                raise OverridesError(f"{here}: bad value for '{key}': {getattr(exc, 'problem', exc)} — use a plain value") from None

    def fail(key: str | None, text: str) -> OverridesError:
        return OverridesError(f"{path}:{lines.get(key, _line(item)) if key else _line(item)}: {text}")

    for key in _NAMES:
        if not values.get(key):
            raise fail(key, f"missing '{key}' — every rule names learner, lab and check")
    label = f"rule for {values['learner']} {values['lab']} {values['check']}"
    if not _LAB.match(values["lab"]):
        raise fail("lab", f"{label}: lab '{values['lab']}' must look like 'phase-04/lab-00'")
    reason = values.get("reason", "")
    if not reason:
        raise fail("reason", f"{label}: missing 'reason' — say why the grade changes (the learner reads it in the report)")
    status: Status | None = None
    if "status" in values:
        word = values["status"]
        if word not in STATUSES:
            raise fail("status", f"{label}: status '{word}' is not known{did_you_mean(word.lower(), STATUSES)}")
        status = Status(word)
    points: float | None = None
    if "points" in values:
        raw = values["points"]
        if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", raw):
            raw = float(raw)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise fail("points", f"{label}: points must be a number, not {raw!r}")
        if raw < 0:
            raise fail("points", f"{label}: points {raw:g} is negative — give 0 up to what the check is worth")
        points = float(raw)
    if status is None and points is None:
        raise fail(None, f"{label}: give 'status', 'points' or both — otherwise the rule changes nothing")
    return Rule(values["learner"], values["lab"], values["check"], " ".join(reason.split()), status, points, at)


def apply_overrides(results: Iterable[LabResult], rules: Sequence[Rule], note: Note | None = None) -> list[LabResult]:
    """New results with the rules applied; results no rule matches are returned as they are (same objects).

    Idempotent: a check already overridden keeps the grader's original verdict in its ``override``.
    ``note`` receives one line per rule that matched no graded learner, lab or check.
    """
    results = list(results)
    by_lab: dict[tuple[str, str], list[Rule]] = {}
    for each in rules:
        by_lab.setdefault((each.learner, each.lab), []).append(each)
    used: set[Rule] = set()
    out = []
    for result in results:
        lab_rules = {r.check: r for r in by_lab.get((result.learner, result.lab), ())}
        if not lab_rules:
            out.append(result)
            continue
        checks = []
        for check in result.checks:
            match = lab_rules.get(check.id)
            if match is not None:
                used.add(match)
                check = _apply(check, match)
            checks.append(check)
        out.append(replace(result, checks=tuple(checks)))
    if note is not None:
        for rule in rules:
            if rule not in used:
                note(_unmatched(rule, results))
    return out


def _apply(check: CheckResult, rule: Rule) -> CheckResult:
    """Points alone: pass when they are full marks, else fail. Status alone: full points if it earns them, else 0."""
    if rule.points is not None and rule.points > check.max_score:
        raise OverridesError(f"{rule.source}: {rule.learner} {rule.lab} {rule.check}: points {rule.points:g} is more than "
                             f"the check is worth ({check.max_score:g}) — give 0 up to {check.max_score:g}")
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


def _unmatched(rule: Rule, results: Sequence[LabResult]) -> str:
    head = f"{rule.source}: override for {rule.learner} {rule.lab} {rule.check} not applied"
    learners = sorted({r.learner for r in results})
    if rule.learner not in learners:
        return f"{head}: learner '{rule.learner}' was not graded in this run{_close(rule.learner, learners)}"
    labs = sorted(r.lab for r in results if r.learner == rule.learner)
    if rule.lab not in labs:
        return f"{head}: lab '{rule.lab}' was not graded for {rule.learner}{_close(rule.lab, labs)}"
    result = next(r for r in results if r.learner == rule.learner and r.lab == rule.lab)
    ids = [c.id for c in result.checks]
    return f"{head}: {rule.lab} has no check '{rule.check}'{did_you_mean(rule.check, ids)}"


def _close(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def _shown(source: str) -> str:
    """``overrides.yaml:12``: what learners see names the rule, not the instructor's folders."""
    path, _, line = source.rpartition(":")
    return f"{Path(path).name}:{line}" if path else source


def check_rules(rules: Sequence[Rule], rubrics: Sequence[Any]) -> None:
    """Before any grading: points a check cannot be worth are the instructor's mistake, said now, not mid-run."""
    maxima = {(r.lab, c.id): float(c.points) for r in rubrics for c in r.checks}
    for rule in rules:
        most = maxima.get((rule.lab, rule.check))
        if rule.points is not None and most is not None and rule.points > most + 1e-9:
            raise OverridesError(f"{rule.source}: {rule.learner} {rule.lab} {rule.check}: points {rule.points:g} is more "
                                 f"than the check is worth ({most:g}) — give 0 up to {most:g}")
