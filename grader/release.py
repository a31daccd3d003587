"""Feedback released per learner: one folder and one zip each, holding that learner's reports and nothing else.

The reports are rendered again from the gradebook with the decisions in force (overrides, late penalties, the
roster's language), not copied from a class run's folder, so what is released is what the instructor decided
now — and a stray file in a reports folder can never travel to another learner.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.atomicio import atomic_write_bytes
from grader.errors import UsageError
from grader.i18n import msg
from grader.model import adjustment_deltas
from grader.results import adjustment_to_dict
from grader.term import ClassState

ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # every entry's time: the same feedback gives the same zip, byte for byte


def release(state: ClassState, out: Path, learners: Sequence[str] = (), lang: str = "auto", roster: Any = None) -> list[Path]:
    """``<out>/<learner>/`` (reports and ``summary.json``) and ``<out>/<learner>.zip`` for each learner (all when none)."""
    from grader.batch import write_learner_outputs

    from grader.term import known_name

    known = sorted({r.learner for r in state.results})
    wanted = [known_name(n, known) for n in learners]
    written = []
    for learner in wanted or known:
        mine = [r for r in state.results if r.learner == learner]
        raw = [state.raw[(r.learner, r.lab)] for r in mine]
        chosen = lang
        if lang == "auto" and roster is not None:
            student = roster.get(learner)
            chosen = student.language if student is not None and student.language else lang
        with tempfile.TemporaryDirectory(prefix="grader-release-") as tmp:
            write_learner_outputs(raw, state.decisions.for_learner(learner), Path(tmp), False, chosen)
            folder = Path(tmp) / learner
            (folder / "summary.json").write_text(json.dumps(_summary(mine, chosen), ensure_ascii=False, indent=2) + "\n",
                                                 encoding="utf-8")
            target = out / learner
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(msg("release.cannot_write", out=str(out), error=exc.strerror or str(exc))) from None
            if target.is_dir():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            data = _zip(folder, learner)
            for path in sorted(folder.iterdir()):
                atomic_write_bytes(target / path.name, path.read_bytes(), durable=False)
            atomic_write_bytes(out / f"{learner}.zip", data)
        written.append(target)
    return written


def _summary(results: Sequence[Any], lang: str) -> dict[str, Any]:
    """What an upload tool needs without the reports: each lab's points and why they moved. No evidence, no inputs."""
    from grader.reports import reader_language

    return {"labs": [{
        "lab": r.lab, "passed": r.passed, "score": r.score, "max_score": r.max_score, "checks_score": r.checks_score,
        "needs_review": len(r.review),
        "adjustments": [adjustment_to_dict(a, d, reader_language(r, lang))
                        for a, d in adjustment_deltas(r.checks_score, r.adjustments)],
        **({"submitted": {"time": r.submitted.time, "source": r.submitted.source}} if r.submitted else {}),
    } for r in results]}


def _zip(folder: Path, learner: str) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(f"{learner}/{path.name}", ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def check_release_target(out: Path, reports: Path | None) -> None:
    """The release folder is sent to learners: it must be a folder of its own — not in a class's reports folder (its
    index.html and gradebook hold everyone), not in a learner's folder (the next run would grade it as their work)."""
    from grader.batch import GRADEBOOK, HISTORY, INDEX
    from grader.term import learner_holding

    if out.exists() and not out.is_dir():
        raise UsageError(msg("release.not_folder", out=str(out)))
    target = out.resolve()
    for folder in (target, *target.parents):
        if any((folder / name).is_file() for name in (INDEX, GRADEBOOK, HISTORY)) or \
                (reports is not None and folder == reports.resolve()):
            raise UsageError(msg("release.into_reports", out=str(out)))
    holder = learner_holding(target)
    if holder is not None:
        raise UsageError(msg("term.output_in_learner", path=str(out), learner=str(holder)))
