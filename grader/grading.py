"""Grade learners against rubrics: find the work, run every check, return plain results."""

from __future__ import annotations

import difflib
import fnmatch
import time
from collections.abc import Iterable, Sequence
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


def _is_learner(path: Path) -> bool:
    return any(p.is_dir() and p.name.startswith("phase-") for p in path.iterdir())


def find_learners(paths: Sequence[Path]) -> list[Path]:
    """A path is a learner folder (it has phase-* folders) or a folder of learners."""
    try:
        return _find_learners(paths)
    except OSError as exc:
        raise UsageError(f"{exc.filename}: cannot read it ({exc.strerror}) — check the path and its permissions") from None


def _find_learners(paths: Sequence[Path]) -> list[Path]:
    learners: list[Path] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such folder — pass a learner folder (learners/borja) or a folder of learners")
        if not path.is_dir():
            raise UsageError(f"{path}: not a folder — pass a learner folder (learners/borja) or a folder of learners")
        if _is_learner(path):
            learners.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and _is_learner(p))
        if not inside:
            raise UsageError(f"{path}: neither a learner folder (no phase-NN/ inside) nor a folder of learners")
        learners.extend(inside)
    seen: set[Path] = set()
    unique = []
    for learner in learners:
        key = learner.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(learner)
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
    phase = learner / rubric.phase_dir
    return bool(_matching(phase, rubric.implementation)) or (phase / rubric.deliverable).is_file()


def grade_lab(rubric: Rubric, learner: Path, limits: Limits) -> LabResult:
    started = time.perf_counter()
    phase = learner / rubric.phase_dir
    files = sorted(p.name for p in phase.iterdir() if p.is_file()) if phase.is_dir() else []
    implementations = _matching(phase, rubric.implementation)
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
        )
        for check in rubric.checks:
            ctx.results[check.id] = run_check(check, ctx)
        output = run.output.decode("utf-8", errors="replace") if run is not None else ""
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
) -> list[LabResult]:
    """Grade every learner under ``paths`` on every lab they handed in (or on ``lab`` only)."""
    zygote.get()  # starts the fork server now, so its start-up overlaps rubric loading
    rubrics = select_rubrics(Path(rubrics_dir) if rubrics_dir else None, lab)
    learners = find_learners([Path(p) for p in paths])
    limits = limits or Limits()
    results = []
    for learner in learners:
        chosen = rubrics if lab else [r for r in rubrics if applies(r, learner)]
        if not chosen:
            chosen = [r for r in rubrics if (learner / r.phase_dir).is_dir()]
        for rubric in chosen:
            results.append(grade_lab(rubric, learner, limits))
    if not results:
        labs = ", ".join(r.lab for r in rubrics)
        raise UsageError(f"nothing to grade: no learner under {', '.join(map(str, paths))} handed in files for {labs}")
    return results
