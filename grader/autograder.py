"""Inside a Gradescope autograder container: grade ``/autograder/submission``, write ``results/results.json``.

Gradescope unpacks the learner's upload into ``submission/``; it may be a whole learner folder
(``phase-04/…``) or just the lab's files, which are then placed in the lab's phase folder.
Whatever goes wrong, a results.json is written, so the learner sees a message, not a blank page.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from grader.atomicio import atomic_write_text
from grader.errors import GraderError, UsageError
from grader.grading import _is_learner, grade_lab, select_rubrics
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


def run_autograder(root: Path, *, rubrics_dir: Path | None = None, lab: str | None = None,
                   limits: Limits | None = None) -> int:
    """0 when results.json was written with a grade, 2 when it carries an error message instead."""
    from grader.exports import gradescope_results

    started = time.perf_counter()
    target = root / "results" / "results.json"
    submission = root / "submission"
    try:
        if not submission.is_dir():
            raise UsageError(f"{submission}: no submission folder — is this a Gradescope autograder container?")
        rubrics = select_rubrics(rubrics_dir, lab)
        with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as tmp:
            learner = Path(tmp) / "submission"
            if _is_learner(submission):
                shutil.copytree(submission, learner, symlinks=True, ignore=_only_files_and_folders)
                chosen = rubrics if lab else [r for r in rubrics if (learner / r.phase_dir).is_dir()] or rubrics
            else:
                if len(rubrics) != 1:
                    labs = ", ".join(r.lab for r in rubrics)
                    raise UsageError(f"the submission has no phase-NN/ folder and several labs exist ({labs}) — pass --lab")
                shutil.copytree(submission, learner / rubrics[0].phase_dir, symlinks=True, ignore=_only_files_and_folders)
                chosen = rubrics
            results = [grade_lab(r, learner, limits or Limits()) for r in chosen]
        document = gradescope_results(results)
        document["execution_time"] = round(time.perf_counter() - started, 3)
        code = 0
    except (GraderError, OSError) as exc:  # OSError: the upload could not be copied (shutil.Error is one)
        reason = str(exc) if isinstance(exc, GraderError) else f"its files could not be copied ({exc.strerror or exc})"
        document = {"score": 0.0, "execution_time": round(time.perf_counter() - started, 3),
                    "output": f"The autograder could not grade this submission: {reason}", "visibility": "visible",
                    "stdout_visibility": "hidden", "tests": []}
        code = 2
    atomic_write_text(target, json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False) + "\n",
                      hint="check that the results folder is writable")
    return code
