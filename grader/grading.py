"""Grade learners against rubrics: find the work, run every check, return plain results."""

from __future__ import annotations

import difflib
import fnmatch
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from grader import zygote
from grader.checks import Context, run_check
from grader.deliverable import parse_deliverable
from grader.errors import SubmissionError, UsageError
from grader.model import LabResult, Rubric
from grader.rubric import discover_rubrics
from grader.runner import LearnerRun
from grader.sandbox import Limits


def default_rubrics_dir() -> Path:
    """``./rubrics`` when it exists, else the rubrics shipped beside the package."""
    here = Path("rubrics")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "rubrics"


_PHASE = re.compile(r"^(?:phase|fase)[-_ ]?0*(\d+)$", re.IGNORECASE)
Note = Callable[[str], None]


def _phase_number(name: str) -> int | None:
    match = _PHASE.match(name.strip())
    return int(match[1]) if match else None


def _is_learner(path: Path) -> bool:
    return any(p.is_dir() and _phase_number(p.name) is not None for p in path.iterdir())


def phase_folder(learner: Path, phase_dir: str) -> tuple[Path, str]:
    """The learner's folder for a phase, and a note when it is only a near miss (phase-4, Fase-04)."""
    exact = learner / phase_dir
    wanted = _phase_number(phase_dir)
    if exact.is_dir():
        others = [p.name for p in learner.iterdir() if p.is_dir() and p != exact and _phase_number(p.name) == wanted]
        return exact, (f"also found {', '.join(sorted(others))}/, not graded — keep one {phase_dir}/ folder" if others else "")
    if wanted is not None and learner.is_dir():
        for candidate in sorted(learner.iterdir()):
            if candidate.is_dir() and _phase_number(candidate.name) == wanted:
                return candidate, f"found {candidate.name}/ and graded it as {phase_dir}/ — rename it to {phase_dir}/"
    return exact, ""


def find_learners(paths: Sequence[Path], note: Note | None = None) -> list[Path]:
    """A path is a learner folder (it has phase-NN folders) or a folder of learners."""
    try:
        return _find_learners(paths, note or (lambda _: None))
    except OSError as exc:
        raise UsageError(f"{exc.filename}: cannot read it ({exc.strerror}) — check the path and its permissions") from None


def _find_learners(paths: Sequence[Path], note: Note) -> list[Path]:
    learners: list[Path] = []
    for given in paths:
        if str(given) == "":
            raise UsageError("an empty PATH — pass a learner folder (learners/borja) or a folder of learners")
        if not given.exists():
            raise UsageError(f"{given}: no such folder — pass a learner folder (learners/borja) or a folder of learners")
        if not given.is_dir():
            raise UsageError(f"{given}: not a folder — pass a learner folder (learners/borja) or a folder of learners")
        path = given.resolve()
        if _is_learner(path):
            learners.append(path)
            continue
        folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        inside = [p for p in folders if _is_learner(p)]
        if not inside:
            if _phase_number(path.name) is not None:
                raise UsageError(f"{given}: this is a phase folder; pass the learner folder that holds it: grade {path.parent}")
            raise UsageError(f"{given}: neither a learner folder (no phase-NN/ inside) nor a folder of learners")
        for skipped in folders:
            if skipped not in inside and not skipped.name.startswith("__"):
                note(f"{skipped.name}: skipped, it has no phase-NN/ folder")
        learners.extend(inside)
    unique = list(dict.fromkeys(learners))
    names: dict[str, Path] = {}
    for learner in unique:
        if learner.name in names:
            raise UsageError(f"two learners are named {learner.name} ({names[learner.name]} and {learner}): "
                             "their reports would overwrite each other — grade them in separate runs")
        names[learner.name] = learner
    return unique


def select_rubrics(rubrics_dir: Path | None, lab: str | None) -> list[Rubric]:
    rubrics = discover_rubrics(rubrics_dir or default_rubrics_dir())
    if lab is None:
        return rubrics
    chosen = [r for r in rubrics if r.lab == lab]
    if not chosen:
        labs = [r.lab for r in rubrics]
        close = difflib.get_close_matches(lab, labs, n=1)
        hint = f" — did you mean '{close[0]}'?" if close else f" — known labs: {', '.join(labs)}"
        raise UsageError(f"--lab {lab}: no such lab{hint}")
    return chosen


def _matching(folder: Path, patterns: Iterable[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in patterns))


def applies(rubric: Rubric, learner: Path) -> bool:
    """A lab is graded for a learner who handed in any file of it."""
    phase, _ = phase_folder(learner, rubric.phase_dir)
    return bool(_matching(phase, rubric.implementation)) or (phase / rubric.deliverable).is_file()


_STALE = re.compile(r"old|copy|copia|backup|bak|draft|borrador|stub|tmp|~|\(\d+\)", re.IGNORECASE)
_DEF = re.compile(rb"^\s*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


def _best_implementation(candidates: list[Path], functions: Iterable[str]) -> list[Path]:
    """The file defining most of the lab's functions first; among equals, not an old copy or a draft, and the
    fuller one (a stub of the same names must not win by name order)."""
    wanted = set(functions)

    def defined(path: Path) -> int:
        try:
            with path.open("rb") as handle:
                head = handle.read(2 << 20)
        except OSError:
            return -1
        return len(wanted & {m.decode("ascii", "replace") for m in _DEF.findall(head)})

    def stale(path: Path) -> bool:
        return bool(_STALE.search(path.stem))

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    return sorted(candidates, key=lambda p: (-defined(p), stale(p), -size(p), p.name))


def grade_lab(rubric: Rubric, learner: Path, limits: Limits, note: Note | None = None) -> LabResult:
    started = time.perf_counter()
    phase, phase_note = phase_folder(learner, rubric.phase_dir)
    if phase_note and note is not None:
        note(f"{learner.name}: {phase_note}")
    files = sorted(p.name for p in phase.iterdir() if p.is_file()) if phase.is_dir() else []
    implementations = _best_implementation(_matching(phase, rubric.implementation), (f.name for f in rubric.functions))
    implementation = implementations[0] if implementations else None
    deliverable = phase / rubric.deliverable
    document, document_error = None, ""
    if deliverable.is_file():
        try:
            document = parse_deliverable(deliverable, learner)
        except SubmissionError as exc:
            document_error = str(exc)
    run = None
    try:
        if implementation is not None:
            run = LearnerRun(learner, implementation, tuple(f.name for f in rubric.functions), limits)
            run.start()
        ctx = Context(
            rubric=rubric,
            learner=learner.name,
            root=learner,
            implementation=implementation,
            phase_files=tuple(files),
            other_implementations=tuple(p.name for p in implementations[1:]),
            run=run,
            deliverable=deliverable if deliverable.is_file() else None,
            markdown_files=tuple(f for f in files if f.endswith(".md")),
            document=document,
            document_error=document_error,
            phase_note=phase_note,
        )
        for check in rubric.checks:
            ctx.results[check.id] = run_check(check, ctx)
        output = run.printed if run is not None else ""
    finally:
        if run is not None:
            run.close()
    return LabResult(
        learner=learner.name,
        lab=rubric.lab,
        title=rubric.title,
        checks=tuple(ctx.results[c.id] for c in rubric.checks),
        output=output,
        seconds=round(time.perf_counter() - started, 4),
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
        chosen = rubrics if lab else [r for r in rubrics if applies(r, learner)]
        if not chosen:
            chosen = [r for r in rubrics if phase_folder(learner, r.phase_dir)[0].is_dir()]
        if not chosen and note is not None:
            folders = ", ".join(sorted(p.name + "/" for p in learner.iterdir() if p.is_dir()))
            note(f"{learner.name}: nothing to grade — no files for {', '.join(r.lab for r in rubrics)} (folders: {folders})")
        for rubric in chosen:
            results.append(grade_lab(rubric, learner, limits, note))
    if not results:
        labs = ", ".join(r.lab for r in rubrics)
        raise UsageError(f"nothing to grade: no learner under {', '.join(map(str, paths))} handed in files for {labs}")
    return results
