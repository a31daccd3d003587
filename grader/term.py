"""The instructor's term around grading: the class's own files, and the decisions they apply to results.

A class folder (the folder of learners, never a learner's own folder) may hold ``overrides.yaml``,
``course.yaml`` and ``roster.csv``; a flag names another file instead. The gradebook records where a run
found them, so ``grade review``, ``query``, ``export`` and ``release`` apply the same decisions as the run did.
Decisions are applied after grading, to stored results too: an override or a late penalty never changes what is
in the history, so it can never be lost by re-grading some of the class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.i18n import Message, msg
from grader.model import LabResult, Submitted

OVERRIDES, COURSE, ROSTER = "overrides.yaml", "course.yaml", "roster.csv"
FLAGS = {OVERRIDES: "overrides", COURSE: "course", ROSTER: "roster"}

Note = Callable[[Message | str], None]


@dataclass(frozen=True)
class ClassFiles:
    """Where each of the class's files is (None: there is none); ``folder`` is the class folder they were looked for in."""

    folder: Path | None = None
    overrides: Path | None = None
    course: Path | None = None
    roster: Path | None = None


def class_folder(paths: Sequence[Path], note: Note | None = None) -> Path | None:
    """The folder of learners a run grades: the folder given, or a learner folder's parent; None when the paths
    name more than one class, or when that folder holds a single learner — then it may be that learner's own
    (``class/mallory/mallory-main/phase-04``, an unzipped hand-in), and files in it are named, never used."""
    from grader.grading import is_learner

    folders = set()
    for path in paths:
        try:
            path = Path(path).resolve()
            if not path.is_dir():
                continue
            folders.add(path.parent if is_learner(path) else path)
        except OSError:
            continue
    if len(folders) != 1:
        return None
    folder = folders.pop()
    try:
        if _wraps_one_learner(folder):
            for name in (OVERRIDES, COURSE, ROSTER):
                if (folder / name).is_file() and note is not None:
                    note(msg("note.class_file_unused", path=str(folder / name), folder=str(folder), flag=FLAGS[name]))
            return None
    except OSError:
        return None
    return folder


def _wraps_one_learner(path: Path) -> bool:
    """``class/mallory/mallory-main/phase-04``: an unzipped hand-in, the learner's own folder around their work — its
    files are the learner's, so the class folder is the one above it."""
    from grader.grading import is_learner

    inside = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return len(inside) == 1 and is_learner(inside[0])


def learner_holding(path: Path) -> Path | None:
    """The learner folder ``path`` is inside (or is), if any: an instructor file there could be the learner's own."""
    from grader.grading import is_learner

    try:
        target = Path(path).resolve()
    except OSError:
        return None
    for ancestor in (target if target.is_dir() else target.parent, *target.parents):
        try:
            if ancestor.is_dir() and is_learner(ancestor):
                return ancestor
        except OSError:
            continue
    return None


def find_class_files(folder: Path | None, given: Mapping[str, Path | None]) -> ClassFiles:
    """Each file as a flag gives it, else the class folder's own (``say_files`` tells the terminal which).

    ``given`` maps ``overrides``/``course``/``roster`` to a flag's path (or None)."""
    found: dict[str, Path | None] = {}
    for kind, name in (("overrides", OVERRIDES), ("course", COURSE), ("roster", ROSTER)):
        path = given.get(kind)
        if path is not None:
            if not Path(path).is_file():
                raise UsageError(msg("term.missing", flag=f"--{kind}", path=str(path), name=name))
        elif folder is not None and (Path(folder) / name).is_file():
            path = Path(folder) / name
        if path is not None:
            holder = learner_holding(Path(path))
            if holder is not None:
                raise UsageError(msg("term.inside_learner", path=str(path), learner=str(holder), name=name))
        found[kind] = Path(path) if path is not None else None
    return ClassFiles(folder, found["overrides"], found["course"], found["roster"])


def say_files(files: ClassFiles, note: Note) -> None:
    """Which file of the class is used: said once it has loaded (a broken file is the one line about it)."""
    if files.overrides is not None:
        note(msg("note.using_overrides", path=str(files.overrides)))
    if files.course is not None:
        note(msg("note.using_course", path=str(files.course)))
    if files.roster is not None:
        note(msg("note.using_roster", path=str(files.roster)))


def recorded_files(last_run: Mapping[str, Any] | None, given: Mapping[str, Path | None]) -> ClassFiles:
    """For the subcommands that read the gradebook: the flags, else the files the last run used (or would find)."""
    folder = Path(last_run["class_dir"]) if last_run and last_run.get("class_dir") else None
    chosen = dict(given)
    for kind in ("overrides", "course", "roster"):  # the files the run used, wherever they were: flags included
        if chosen.get(kind) is None and last_run and last_run.get(kind) and Path(last_run[kind]).is_file():
            chosen[kind] = Path(last_run[kind])
    return find_class_files(folder, chosen)


@dataclass(frozen=True)
class Decisions:
    """Everything decided outside grading, for the results it applies to (plain data: it travels to pool processes)."""

    rules: tuple[Any, ...] = ()  # grader.overrides.Rule
    course: Any = None  # grader.course.Course
    submitted: tuple[tuple[str, str, Submitted], ...] = ()  # (learner, lab, when)

    def for_learner(self, learner: str) -> Decisions:
        from grader.model import nfc

        return Decisions(tuple(r for r in self.rules if nfc(r.learner) == nfc(learner)), self.course,
                         tuple(s for s in self.submitted if s[0] == learner))

    def fingerprint(self) -> str:
        """What a learner's rendered files depend on besides the results: a change re-renders them."""
        import hashlib

        due = sorted((lab, str(d)) for lab, d in (self.course.due.items() if self.course else ()))
        policy = sorted((lab, repr(p)) for lab, p in (self.course.late.items() if self.course else ()))
        ext = [repr(e) for e in (self.course.extensions if self.course else ())]
        text = repr(([repr(r) for r in self.rules], due, policy, ext, sorted(map(repr, self.submitted))))
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def finalize(results: Iterable[LabResult], decisions: Decisions, note: Note | None = None) -> list[LabResult]:
    """The results as the instructor decided them: submission times and late penalties, then the overrides.

    The same function for a fresh run, a stored result and every export, so all of them agree."""
    from grader.overrides import apply_overrides

    when = {(learner, lab): stamp for learner, lab, stamp in decisions.submitted}
    timed = []
    for r in results:
        stamp = when.get((r.learner, r.lab), r.submitted)
        kept = tuple(a for a in r.adjustments if a.kind != "late")
        late = decisions.course.late_adjustment(r.learner, r.lab, stamp, r.max_score) if decisions.course else None
        adjustments = kept + ((late,) if late is not None else ())
        if stamp is not r.submitted or adjustments != r.adjustments:
            r = replace(r, submitted=stamp, adjustments=adjustments)
        timed.append(r)
    return apply_overrides(timed, decisions.rules, note)


def load_decisions(files: ClassFiles, rubrics: Sequence[Any], note: Note | None = None) -> Decisions:
    """The rules and the course file, each checked against the rubrics before anything is graded."""
    from grader.course import load_course
    from grader.overrides import check_rules, load_overrides

    rules = load_overrides(files.overrides) if files.overrides is not None else ()
    check_rules(rules, rubrics)
    labs = {r.lab: sum(c.points for c in r.checks) for r in rubrics} or None  # none: a subcommand, no rubric at hand
    course = load_course(files.course, labs) if files.course is not None else None
    return Decisions(tuple(rules), course)


def lab_maxima(rubrics: Sequence[Any]) -> dict[str, float]:
    """Each lab's maximum: a lab not handed in counts as 0 out of it in every total."""
    return {r.lab: round(sum(float(c.points) for c in r.checks), 6) for r in rubrics}


@dataclass(frozen=True)
class ClassState:
    """The class as the gradebook holds it, with the decisions in force applied: what every subcommand reads."""

    results: tuple[LabResult, ...]  # finalized, sorted by learner and lab
    raw: Mapping[tuple[str, str], Mapping[str, Any]]  # the grader's own, by (learner, lab)
    files: ClassFiles
    decisions: Decisions
    last_run: Mapping[str, Any] | None
    attempt_runs: Mapping[tuple[str, str], int]  # the run that graded each result


def class_state(store: Any, given: Mapping[str, Path | None] | None = None, note: Note | None = None) -> ClassState:
    """Every learner × lab's latest result, finalized with the files the last run used (or the flags in ``given``)."""
    from grader.results import lab_from_dict

    last = store.last_run()
    files = recorded_files(last, given or {})
    decisions = load_decisions(files, [])
    latest = store.latest()
    stamps = tuple((str(i.result["learner"]), str(i.result["lab"]), Submitted(**i.submitted)) for i in latest if i.submitted)
    decisions = replace(decisions, submitted=stamps)
    results = finalize([replace(lab_from_dict(i.result), output="") for i in latest], decisions, note)
    raw = {(str(i.result["learner"]), str(i.result["lab"])): i.result for i in latest}
    runs = {(str(i.result["learner"]), str(i.result["lab"])): i.attempt_run for i in latest}
    return ClassState(tuple(sorted(results, key=lambda r: (r.learner, r.lab))), raw, files, decisions, last, runs)


def known_name(typed: str, names: Iterable[str]) -> str:
    """The gradebook's spelling of a learner typed on the command line (a path, or the name composed differently:
    macOS folders are decomposed); a name it does not know is one line, with the closest one."""
    from grader.model import nfc
    from grader.overrides import did_you_mean

    wanted = nfc(Path(typed).name or Path(typed).resolve().name)
    names = sorted(set(names))
    for name in names:
        if nfc(name) == wanted:
            return name
    raise UsageError(msg("term.unknown_learner", learner=wanted, fix=did_you_mean(wanted, [nfc(n) for n in names])))
