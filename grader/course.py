"""The course file (``course.yaml``): each lab's due date, the late policy, and per-learner extensions.

A late penalty is a lab-level adjustment computed from the submission's time, never a change to any check:
the report keeps what the learner's work earned and shows the penalty beside it, with its reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any

import yaml

from grader.errors import CourseError
from grader.i18n import Message, msg, plural, verbatim
from grader.model import LAB_NAME, Adjustment, Submitted, nfc
from grader.overrides import did_you_mean

MAX_BYTES = 1_000_000
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")
TOP_KEYS = ("timezone", "late", "labs", "extensions", "sources")
SOURCE_NAMES = ("git", "manifest", "mtime")  # where a submission's time may come from, in this order
LATE_KEYS = ("per_day", "cap", "grace_days")
LAB_KEYS = ("due", "late")
EXTENSION_KEYS = ("learner", "lab", "due", "days", "reason")
DAY = timedelta(days=1)
SOURCES = {"git": msg("late.source.git"), "manifest": msg("late.source.manifest"), "mtime": msg("late.source.mtime")}


@dataclass(frozen=True)
class Amount:
    """Points, or a percentage of the lab's maximum ("10%")."""

    value: float
    percent: bool = False

    def points(self, max_score: float) -> float:
        return self.value * max_score / 100 if self.percent else self.value

    def __str__(self) -> str:
        text = f"{self.value:g}"
        return f"{text}%" if self.percent else text


@dataclass(frozen=True)
class LatePolicy:
    per_day: Amount = Amount(0.0)
    cap: Amount | None = None  # the most a late penalty takes; None: no limit but the lab's points
    grace_days: float = 0.0  # a submission this much after the due time is on time


@dataclass(frozen=True)
class Extension:
    learner: str
    lab: str
    due: datetime | None = None  # a new due time …
    days: float = 0.0  # … or days added to the lab's
    reason: str = ""
    source: str = ""


@dataclass(frozen=True)
class Course:
    path: Path
    due: Mapping[str, tuple[datetime, str]] = field(default_factory=dict)  # lab -> (due, "course.yaml:12")
    late: Mapping[str, LatePolicy] = field(default_factory=dict)  # lab -> its policy (the default one folded in)
    extensions: tuple[Extension, ...] = ()
    sources: tuple[str, ...] = SOURCE_NAMES  # ``sources: [git, manifest]``: modification times are not trusted

    def due_for(self, learner: str, lab: str) -> tuple[datetime, Extension | None] | None:
        if lab not in self.due:
            return None
        due = self.due[lab][0]
        for ext in self.extensions:
            if nfc(ext.learner) == nfc(learner) and ext.lab == lab:
                return (ext.due if ext.due is not None else due + timedelta(days=ext.days)), ext
        return due, None

    def late_adjustment(self, learner: str, lab: str, submitted: Submitted | None, max_score: float) -> Adjustment | None:
        """The penalty for ``submitted`` (None when on time, or when the lab has no due date or no time is known)."""
        found = self.due_for(learner, lab)
        if found is None or submitted is None:
            return None
        due, ext = found
        policy = self.late.get(lab, LatePolicy())
        when = datetime.fromisoformat(submitted.time)
        late = when - due
        if late <= timedelta(days=policy.grace_days) or late <= timedelta(0):
            return None
        days = math.ceil(late / DAY)
        uncapped = days * policy.per_day.points(max_score)
        points = uncapped
        if policy.cap is not None:
            points = min(points, policy.cap.points(max_score))
        points = round(min(points, max_score), 6)
        capped = msg("late.capped", cap=str(policy.cap)) if policy.cap is not None and points < uncapped - 1e-9 else ""
        reason = plural("late.reason", days, due=_shown(due), submitted=_shown(when.astimezone(due.tzinfo)),
                        source=SOURCES.get(submitted.source, SOURCES["mtime"]), per_day=str(policy.per_day),
                        extension=msg("late.extended", reason=ext.reason) if ext is not None and ext.reason else "",
                        capped=capped)
        return Adjustment("late", -points, reason, self.due[lab][1].rpartition("/")[2])


def _shown(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="minutes")


def load_course(path: Path, labs: Mapping[str, float] | None = None) -> Course:
    """Parse and check the whole file (``labs``: the rubrics' labs, so a typo in a lab's name is said now)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise CourseError(msg("course.too_big", path=str(path), most=MAX_BYTES))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CourseError(msg("course.not_found", path=str(path))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseError(msg("course.unreadable", path=str(path), error=verbatim(str(exc)))) from None
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise CourseError(msg("course.yaml_error", at=f"{path}:{mark.line + 1}" if mark else str(path),
                              problem=verbatim(exc.problem or ""))) from None
    except yaml.YAMLError as exc:
        raise CourseError(msg("course.yaml_error", at=str(path), problem=verbatim(" ".join(str(exc).split())))) from None
    return _Reader(path, labs).course(node)


class _Reader:
    def __init__(self, path: Path, labs: Mapping[str, float] | None) -> None:
        self.path = path
        self.labs = labs

    def at(self, node: yaml.Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def mapping(self, node: yaml.Node, keys: tuple[str, ...], what: Message) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise CourseError(msg("course.not_a_mapping", at=self.at(node), what=what))
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = str(key.value)
            if keys and name not in keys:
                raise CourseError(msg("course.unknown_key", at=self.at(key), key=name, what=what,
                                      keys=", ".join(keys), fix=did_you_mean(name, keys)))
            if name in out:
                raise CourseError(msg("course.duplicate_key", at=self.at(key), key=name))
            out[name] = (key, value)
        return out

    def scalar(self, node: yaml.Node, key: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise CourseError(msg("course.not_scalar", at=self.at(node), key=key))
        return str(node.value).strip()

    def course(self, node: yaml.Node | None) -> Course:
        if node is None:
            return Course(self.path)
        top = self.mapping(node, TOP_KEYS, msg("course.what.top"))
        zone: tzinfo | None = None
        if "timezone" in top:
            zone = self.zone(top["timezone"][1])
        default = self.policy(top["late"][1], LatePolicy()) if "late" in top else LatePolicy()
        due: dict[str, tuple[datetime, str]] = {}
        late: dict[str, LatePolicy] = {}
        if "labs" in top:
            for name, (key, value) in self.mapping(top["labs"][1], (), msg("course.what.labs")).items():
                self.lab_name(name, key)
                fields = self.mapping(value, LAB_KEYS, msg("course.what.lab", lab=name))
                if "due" not in fields:
                    raise CourseError(msg("course.no_due", at=self.at(key), lab=name))
                due[name] = (self.moment(fields["due"][1], zone), self.at(fields["due"][1]).rpartition("/")[2])
                late[name] = self.policy(fields["late"][1], default) if "late" in fields else default
        extensions = []
        if "extensions" in top:
            items = top["extensions"][1]
            if not isinstance(items, yaml.SequenceNode):
                raise CourseError(msg("course.not_a_list", at=self.at(items)))
            seen: dict[tuple[str, str], str] = {}
            for item in items.value:
                ext = self.extension(item, zone, due)
                if (ext.learner, ext.lab) in seen:
                    raise CourseError(msg("course.second_extension", at=self.at(item), learner=ext.learner, lab=ext.lab,
                                          first=seen[ext.learner, ext.lab]))
                seen[ext.learner, ext.lab] = self.at(item)
                extensions.append(ext)
        sources = SOURCE_NAMES
        if "sources" in top:
            node = top["sources"][1]
            if not isinstance(node, yaml.SequenceNode) or not node.value:
                raise CourseError(msg("course.bad_sources", at=self.at(node), sources=", ".join(SOURCE_NAMES)))
            names = [self.scalar(item, "sources") for item in node.value]
            if any(name not in SOURCE_NAMES for name in names) or len(set(names)) != len(names):
                raise CourseError(msg("course.bad_sources", at=self.at(node), sources=", ".join(SOURCE_NAMES)))
            sources = tuple(name for name in SOURCE_NAMES if name in names)
        return Course(self.path, due, late, tuple(extensions), sources)

    def lab_name(self, name: str, node: yaml.Node) -> None:
        if not LAB_NAME.match(name):
            raise CourseError(msg("course.bad_lab", at=self.at(node), lab=name))
        if self.labs is not None and name not in self.labs:
            raise CourseError(msg("course.unknown_lab", at=self.at(node), lab=name, labs=", ".join(sorted(self.labs)),
                                  fix=did_you_mean(name, self.labs)))

    def zone(self, node: yaml.Node) -> tzinfo:
        name = self.scalar(node, "timezone")
        try:
            from zoneinfo import ZoneInfo

            return ZoneInfo(name)
        except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
            raise CourseError(msg("course.bad_timezone", at=self.at(node), zone=name)) from None

    def moment(self, node: yaml.Node, zone: tzinfo | None) -> datetime:
        """ISO 8601 ("2026-10-12 23:59", with or without an offset); a date alone is the end of that day. A time
        without an offset is in ``timezone:``, else the machine's own."""
        text = self.scalar(node, "due")
        try:
            if re.fullmatch(r"\d{4}-?\d{2}-?\d{2}", text):  # 2026-10-12 or 20261012: a day, so its end
                moment = datetime.combine(date.fromisoformat(text), time(23, 59, 59))
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            raise CourseError(msg("course.bad_time", at=self.at(node), value=text)) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone) if zone is not None else moment.astimezone()
        return moment

    def amount(self, node: yaml.Node, key: str) -> Amount:
        text = self.scalar(node, key)
        match = _AMOUNT.match(text)
        if match is None:
            raise CourseError(msg("course.bad_amount", at=self.at(node), key=key, value=text))
        value = float(match.group(1))
        if match.group(2) and value > 100:
            raise CourseError(msg("course.percent_over", at=self.at(node), key=key, value=text))
        return Amount(value, bool(match.group(2)))

    def days(self, node: yaml.Node, key: str) -> float:
        text = self.scalar(node, key)
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not math.isfinite(value) or value < 0:
            raise CourseError(msg("course.bad_days", at=self.at(node), key=key, value=text))
        return value

    def policy(self, node: yaml.Node, base: LatePolicy) -> LatePolicy:
        fields = self.mapping(node, LATE_KEYS, msg("course.what.late"))
        per_day = self.amount(fields["per_day"][1], "per_day") if "per_day" in fields else base.per_day
        cap = self.amount(fields["cap"][1], "cap") if "cap" in fields else base.cap
        grace = base.grace_days
        if "grace_days" in fields:
            grace = self.days(fields["grace_days"][1], "grace_days")
        return LatePolicy(per_day, cap, grace)

    def extension(self, node: yaml.Node, zone: tzinfo | None, due: Mapping[str, Any]) -> Extension:
        fields = self.mapping(node, EXTENSION_KEYS, msg("course.what.extension"))
        for key in ("learner", "lab"):
            if key not in fields:
                raise CourseError(msg("course.extension_missing", at=self.at(node), key=key))
        learner = self.scalar(fields["learner"][1], "learner")
        lab = self.scalar(fields["lab"][1], "lab")
        self.lab_name(lab, fields["lab"][1])
        if lab not in due:
            raise CourseError(msg("course.extension_no_due", at=self.at(fields["lab"][1]), lab=lab))
        if ("due" in fields) == ("days" in fields):
            raise CourseError(msg("course.extension_how", at=self.at(node)))
        reason = self.scalar(fields["reason"][1], "reason") if "reason" in fields else ""
        if "due" in fields:
            return Extension(learner, lab, due=self.moment(fields["due"][1], zone), reason=reason, source=self.at(node))
        return Extension(learner, lab, days=self.days(fields["days"][1], "days"), reason=reason, source=self.at(node))

