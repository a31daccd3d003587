"""Inside a Gradescope autograder container: grade ``/autograder/submission``, write ``results/results.json``.

Gradescope unpacks the learner's upload into ``submission/``; it may be a whole learner folder
(``phase-04/…``) or just the lab's files, which are then placed in the lab's phase folder.
Whatever goes wrong, a results.json is written, so the learner sees a message, not a blank page.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import sys
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from grader.atomicio import atomic_write_text
from grader.errors import GraderError, UsageError
from grader.i18n import class_language, msg, say
from grader.grading import grade_lab, is_learner, select_rubrics
from grader.submission import applies
from grader.sandbox import Limits


def _only_files_and_folders(folder: str, names: list[str]) -> set[str]:
    """A FIFO, socket or device in the upload would block the copy (or read a device): leave those out."""
    keep = (stat.S_ISREG, stat.S_ISDIR, stat.S_ISLNK)
    skipped = set()
    for name in names:
        try:
            mode = os.lstat(os.path.join(folder, name)).st_mode
        except OSError:
            skipped.add(name)
            continue
        if not any(test(mode) for test in keep):
            skipped.add(name)
    return skipped


MAX_WRAPPING = 20  # folders inside folders before the upload's files: a real zip has one or two


def _unwrapped(submission: Path) -> Path:
    """A zip of the learner's whole folder arrives as one folder holding everything: grade what is inside it
    (a loop, not recursion: 1,100 nested folders are refused in one line, never a RecursionError)."""
    current = submission
    for _ in range(MAX_WRAPPING):
        if is_learner(current):
            return current
        entries = [p for p in current.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(entries) != 1 or not entries[0].is_dir() or entries[0].is_symlink() or not any(entries[0].iterdir()):
            return current
        current = entries[0]
    if is_learner(current):
        return current
    raise UsageError(msg("gradescope.too_wrapped", n=MAX_WRAPPING))


def _labs_of_files(folder: Path, rubrics: list[Any]) -> list[Any]:
    """Loose files: the labs whose implementation or deliverable names match them (all labs when none do)."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    matching = [r for r in rubrics if any(fnmatch.fnmatch(n, pat) for n in names for pat in r.implementation)
                or r.deliverable in names]
    return matching or rubrics


def run_autograder(root: Path, *, rubrics_dir: Path | None = None, lab: str | None = None,
                   limits: Limits | None = None, lang: str = "auto") -> int:
    """0 when results.json was written with a grade, 2 when it carries an error message instead (in ``lang``; with
    ``auto``, the locale's: no deliverable was read to tell the learner's)."""
    from grader.exports import gradescope_results

    started = time.perf_counter()
    target = root / "results" / "results.json"
    submission = root / "submission"
    try:
        if not submission.is_dir():
            raise UsageError(msg("gradescope.no_submission", path=str(submission)))
        rubrics = select_rubrics(rubrics_dir, lab)
        submission = _unwrapped(submission)
        with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as tmp:
            learner = Path(tmp) / "submission"
            if is_learner(submission):
                shutil.copytree(submission, learner, symlinks=True, ignore=_only_files_and_folders)
                chosen = rubrics if lab else [r for r in rubrics if applies(r, learner, rubrics)] or \
                    [r for r in rubrics if (learner / r.phase_dir).is_dir()] or rubrics  # as the command line chooses
            else:
                rubrics = _labs_of_files(submission, rubrics)
                if len(rubrics) != 1:
                    raise UsageError(msg("gradescope.which_lab", labs=", ".join(r.lab for r in rubrics)))
                shutil.copytree(submission, learner / rubrics[0].phase_dir, symlinks=True, ignore=_only_files_and_folders)
                chosen = rubrics
            results = _late([grade_lab(r, learner, limits or Limits()) for r in chosen], root, rubrics_dir, learner, chosen)
        document = gradescope_results(results, lang)
        document["execution_time"] = round(time.perf_counter() - started, 3)
        code = 0
    except Exception as exc:  # noqa: BLE001 - whatever happens, Gradescope gets a results.json that says it
        if isinstance(exc, GraderError):
            reason = exc.message
        elif isinstance(exc, OSError):  # the upload could not be copied (shutil.Error is one)
            reason = msg("gradescope.not_copied", error=exc.strerror or str(exc))
        elif isinstance(exc, RecursionError):
            reason = msg("gradescope.too_deep")
        else:
            reason = msg("gradescope.grader_failed", error=type(exc).__name__)
        words = class_language(lang)
        document = {"score": 0.0, "execution_time": round(time.perf_counter() - started, 3),
                    "output": say(msg("gradescope.output", reason=reason), words), "visibility": "visible",
                    "stdout_visibility": "hidden", "tests": []}
        code = 2
        print(f"grade: {' '.join(say(msg('gradescope.said', reason=reason, target=str(target)), words).split())}",
              file=sys.stderr)
    atomic_write_text(target, json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False) + "\n",
                      hint=msg("gradescope.write_hint"))
    return code


def _late(results: list[Any], root: Path, rubrics_dir: Path | None, learner: Path, rubrics: list[Any]) -> list[Any]:
    """With ``course.yaml`` beside the rubrics (``grade gradescope-zip --course``), a late penalty from the upload's time:
    Gradescope's ``submission_metadata.json`` first here — the platform's record — then git, then modification times."""
    from grader.course import load_course
    from grader.grading import bundled_rubrics
    from grader.submission import phase_folder
    from grader.submitted import submission_time
    from grader.term import Decisions, finalize, lab_maxima

    path = Path(rubrics_dir or bundled_rubrics()) / "course.yaml"
    if not path.is_file():
        return results
    course = load_course(path, lab_maxima(rubrics))
    manifest = root / "submission_metadata.json"
    order = tuple(s for s in ("manifest", "git", "mtime") if s in course.sources)
    stamps = []
    for rubric in rubrics:
        if course.due_for(learner.name, rubric.lab) is None:
            continue
        stamp = None
        for source in order:
            stamp = submission_time(learner, phase_folder(learner, rubric.phase_dir)[0], manifest, sources=(source,))
            if stamp is not None:
                break
        if stamp is not None:
            stamps.append((learner.name, rubric.lab, stamp))
    return finalize(results, Decisions((), course, tuple(stamps)))
