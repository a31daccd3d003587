"""Grade learners against rubrics: find the work, run every check, return plain results."""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import os

import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

from grader import zygote
from grader.errors import GraderError, RubricError, ServerLost, SubmissionError, UsageError
from grader.i18n import Message, detect, map_strings, msg
from grader.model import CheckResult, LabResult, Rubric, Status
from grader.phases import phase
from grader.rubric import discover_rubrics
from grader.sandbox import Limits
from grader.submission import applies, find_submission, phase_folder, phase_number


def bundled_rubrics() -> Path:
    """The shipped rubrics, in a source checkout. An installed grader ships none — their reference modules are answer
    keys, and a learner installs the grader too — so it asks for ``--rubrics`` (the course's rubrics, or a kit)."""
    here = Path(__file__).resolve().parent.parent / "rubrics"
    if not here.is_dir():
        raise RubricError(msg("rubric.none_installed"))
    return here


def default_rubrics_dir() -> Path:
    """``./rubrics`` when it exists, else the bundled ones (the command line also keeps a learner's folder out)."""
    here = Path("rubrics")
    return here if here.is_dir() else bundled_rubrics()


Note = Callable[[Message | str], None]  # a remark for the instructor, said in their language


def is_learner(path: Path) -> bool:
    """A folder with a phase-NN/ folder inside (is_dir is false for a link loop or an unreadable entry)."""
    with os.scandir(path) as entries:  # a DirEntry knows whether it is a folder without another stat
        return any(phase_number(e.name) is not None and e.is_dir() for e in entries)


def _readable_learner(path: Path, note: Note) -> bool:
    """Like ``is_learner``, but a folder that cannot be listed is named and skipped, not fatal to the class."""
    try:
        return is_learner(path)
    except OSError as exc:
        note(msg("note.unreadable", name=path.name, error=exc.strerror or str(exc)))
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A folder (or a link to one); a link loop or an unreadable entry is not."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _holds_learners(path: Path, listing: Sequence[tuple[str, bool, bool]]) -> bool:
    """A folder with phase-NN/ inside is a learner's — unless two or more of its other folders are learners' too:
    then it is a class folder, and a folder named like a phase is a learner's odd name, not the class's phase."""
    count = 0
    for name, is_dir, link in listing:
        if is_dir and not link and phase_number(name) is None and not name.startswith("."):
            try:
                count += is_learner(path / name)
            except OSError:
                continue
            if count >= 2:
                return True
    return False


def find_learners(paths: Sequence[Path], note: Note | None = None) -> list[Path]:
    """A path is a learner folder (it has phase-NN folders) or a folder of learners."""
    try:
        return _find_learners(paths, note or (lambda _: None))
    except OSError as exc:
        raise UsageError(msg("path.unreadable", path=str(exc.filename or paths[0]), error=exc.strerror or str(exc))) from None


def _find_learners(paths: Sequence[Path], note: Note) -> list[Path]:
    learners: list[Path] = []
    for given in paths:
        if str(given) == "":
            raise UsageError(msg("path.empty"))
        if not given.exists():
            raise UsageError(msg("path.missing", path=str(given)))
        if not given.is_dir():
            raise UsageError(msg("path.not_folder", path=str(given)))
        path = given.resolve()
        with os.scandir(path) as scan:
            listing = sorted((e.name, _is_dir(e), e.is_symlink()) for e in scan)
        if is_learner(path) and not _holds_learners(path, listing):
            learners.append(path)
            continue
        for name, is_dir, link in listing:
            if is_dir and not link and phase_number(name) is not None and not name.startswith("."):
                note(msg("note.phase_among_learners", name=name))
        entries = [path / name for name, _, _ in listing]
        for name, is_dir, link in listing:
            if is_dir and link and not name.startswith("."):  # a classmate's folder under another name: never graded twice
                note(msg("note.link", name=name, target=os.path.realpath(path / name)))
        folders = [path / name for name, is_dir, link in listing
                   if is_dir and not link and not name.startswith(".") and phase_number(name) is None]
        for name, is_dir, link in listing:
            if is_dir and not link and name.startswith(".") and name not in (".git", ".ipynb_checkpoints") \
                    and _readable_learner(path / name, note):
                note(msg("note.hidden", name=name))
        inside = [p for p in folders if _readable_learner(p, note)]
        if not inside:
            if phase_number(path.name) is not None:
                raise UsageError(msg("path.phase_folder", path=str(given), parent=str(path.parent)))
            if not entries:
                raise UsageError(msg("path.empty_folder", path=str(given)))
            if not folders:
                raise UsageError(msg("path.neither", path=str(given)))
            shown = ", ".join(p.name + "/" for p in folders[:5]) + (", …" if len(folders) > 5 else "")
            raise UsageError(msg("path.no_learners", path=str(given), n=len(folders), folders=shown))
        chosen = set(inside)
        for skipped in folders:
            if skipped not in chosen and not skipped.name.startswith("__"):
                note(msg("note.no_phase", name=skipped.name))
        learners.extend(inside)
    unique = list(dict.fromkeys(learners))
    names: dict[str, Path] = {}
    for learner in unique:
        _check_name(learner)
        if learner.name in names:
            raise UsageError(msg("path.same_name", name=learner.name, first=str(names[learner.name]), second=str(learner)))
        names[learner.name] = learner
    looks: dict[str, str] = {}
    for name in names:
        seen = unicodedata.normalize("NFKC", name).casefold()
        if seen in looks:
            note(msg("note.look_alike", first=looks[seen], second=name))
        looks.setdefault(seen, name)
    return unique


def _check_name(learner: Path) -> None:
    """A learner's name goes into file names, JSON, SQLite and web pages: it must be text, on one line."""
    name = learner.name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 (a zip made on Windows): Python keeps them as surrogates
        raw = os.fsencode(name)
        guess = raw.decode("cp1252", errors="replace")
        raise UsageError(msg("path.not_utf8", path=str(learner.parent / guess), raw=repr(raw))) from None
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise UsageError(msg("path.control", path=str(learner.parent / name.encode("unicode_escape").decode("ascii"))))


def select_rubrics(rubrics_dir: Path | None, lab: str | None) -> list[Rubric]:
    rubrics = discover_rubrics(rubrics_dir or default_rubrics_dir())
    if lab is None:
        return rubrics
    chosen = [r for r in rubrics if r.lab == lab]
    if not chosen:
        labs = [r.lab for r in rubrics]
        close = difflib.get_close_matches(lab, labs, n=1)
        raise UsageError(msg("cli.lab_close" if close else "cli.lab_unknown", lab=lab, close=close[0] if close else "",
                             labs=", ".join(labs)))
    return chosen


def _as_cp1252(error: UnicodeError) -> tuple[str, int]:
    """Decoding error handler: the bytes that are not UTF-8, read as Windows-1252."""
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start:error.end].decode("cp1252", "replace"), error.end


codecs.register_error("grader-cp1252", _as_cp1252)


def _text(value: str) -> str:
    """Text that can go anywhere (a report, the JSON, the gradebook). A file name that is not UTF-8 reaches a
    message as lone surrogates; its bytes are shown as Windows-1252, the usual origin ("versi\\xf3n" -> "versión")."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape") if _only_escapes(value) else value.encode("utf-8", "replace")
        return raw.decode("utf-8", "grader-cp1252")


def _only_escapes(value: str) -> bool:
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in value)


def grade_lab(rubric: Rubric, learner: Path, limits: Limits, note: Note | None = None, content: str = "") -> LabResult:
    """One learner's lab. A grader bug that this submission triggers costs this lab only, never the class.
    ``content``: the submission's digest when the run was planned; a copy that differs was changed meanwhile, and
    its result is not reused (what was graded is not what the key names)."""
    try:
        return _grade_lab(rubric, learner, limits, note, content)
    except ServerLost as exc:
        message = msg("machine.server_lost", error=exc.message)
        return LabResult(learner=learner.name, lab=rubric.lab, title=rubric.title, retry=True, checks=tuple(
            CheckResult(id=c.id, title=c.title, status=Status.ERROR, score=0.0, max_score=float(c.points),
                        acceptance=c.acceptance, message=message, hidden=c.hidden) for c in rubric.checks))
    except GraderError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything else is the grader's fault, shown on this lab's checks
        message = msg("machine.grader_failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return LabResult(learner=learner.name, lab=rubric.lab, title=rubric.title, retry=True, checks=tuple(
            CheckResult(id=c.id, title=c.title, status=Status.ERROR, score=0.0, max_score=float(c.points),
                        acceptance=c.acceptance, message=message, hidden=c.hidden) for c in rubric.checks))


def _grade_lab(rubric: Rubric, learner: Path, limits: Limits, note: Note | None = None, content: str = "") -> LabResult:
    from grader.checks import Context, run_check  # the checks' machinery is loaded only when something is graded
    from grader.deliverable import parse_deliverable, parse_text
    from grader.runner import LearnerRun

    started = time.perf_counter()
    found = find_submission(rubric, learner)
    if found.phase_note and note is not None:
        note(msg("note.learner", learner=learner.name, note=found.phase_note))
    if not found.files and found.phase.is_dir() and not os.access(found.phase, os.R_OK | os.X_OK) and note is not None:
        note(msg("note.phase_unreadable", learner=learner.name, phase=found.phase.name))
    document = None
    document_error: Message | str = ""
    if found.deliverable is not None:
        try:
            with phase("deliverable"):
                if found.markdown is not None:
                    document = parse_text(found.markdown, found.deliverable, learner, cells=found.cells)
                else:
                    document = parse_deliverable(found.deliverable, learner)
        except SubmissionError as exc:
            document_error = exc.message
    run = None
    try:
        if found.implementation is not None:
            run = LearnerRun(learner, found.implementation, tuple(f.name for f in rubric.functions), limits,
                             module_source=found.module_source, module_files=found.module_files)
            run.start()
        ctx = Context(
            rubric=rubric,
            learner=learner.name,
            root=learner,
            implementation=found.implementation,
            phase_files=found.files,
            other_implementations=found.others,
            run=run,
            deliverable=found.deliverable,
            markdown_files=tuple(f for f in found.files if f.endswith(".md")),
            document=document,
            document_error=document_error,
            phase_note=found.phase_note,
            phase_refused=found.refused,
            implementation_note=found.implementation_note,
            implementation_error=found.implementation_error,
            deliverable_note=found.deliverable_note,
        )
        for check in rubric.checks:
            with phase("checks"):
                ctx.results[check.id] = run_check(check, ctx)
        output = run.printed if run is not None else ""
        retry = run is not None and run.load.machine_fault or ctx.grader_fault
        if content and run is not None and run.copied and run.copied != content:
            retry = True
            if note is not None:
                note(msg("note.changed", learner=learner.name))
    finally:
        if run is not None:
            run.close()
    checks = tuple(ctx.results[c.id] for c in rubric.checks)
    return LabResult(
        learner=learner.name,
        lab=rubric.lab,
        title=rubric.title,
        checks=tuple(dataclasses.replace(c, message=map_strings(c.message, _text)) for c in checks),
        output=_text(output),
        seconds=round(time.perf_counter() - started, 4),
        retry=retry,
        language=detect([document.prose]) if document is not None else "",
        held_back=rubric.held_back,
        narrowed=rubric.narrowed,
        review_held=rubric.review_points == "held",
    )


def grade(
    paths: Sequence[Path | str],
    *,
    rubrics_dir: Path | str | None = None,
    lab: str | None = None,
    limits: Limits | None = None,
    note: Note | None = None,
) -> list[LabResult]:
    """Grade every learner under ``paths`` on every lab they handed in (or on ``lab`` only).

    ``note`` receives one-line remarks about what was not graded and why (a folder with no phase).
    """
    zygote.get()  # starts the fork server now, so its start-up overlaps rubric loading
    rubrics = select_rubrics(Path(rubrics_dir) if rubrics_dir else None, lab)
    learners = find_learners([Path(p) for p in paths], note)
    limits = limits or Limits()
    results = []
    for learner in learners:
        chosen = rubrics if lab else [r for r in rubrics if applies(r, learner, rubrics)]
        if not chosen:
            chosen = [r for r in rubrics if phase_folder(learner, r.phase_dir)[0].is_dir()]
        if not chosen and note is not None:
            folders = ", ".join(sorted(p.name + "/" for p in learner.iterdir() if p.is_dir()))
            note(msg("note.nothing", learner=learner.name, labs=", ".join(r.lab for r in rubrics), folders=folders))
        for rubric in chosen:
            results.append(grade_lab(rubric, learner, limits, note))
    if not results:
        labs = ", ".join(r.lab for r in rubrics)
        raise UsageError(msg("path.nothing", paths=", ".join(map(str, paths)), labs=labs))
    return results
