"""``grade gradescope-zip``: the autograder zip Gradescope asks for, from one rubric, never assembled by hand.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` there once to build the image, then
``run_autograder`` for each submission. The zip holds the grader as plain files (``lib/grader``, the package
this command runs from, with its templates and catalogues), the chosen rubrics with their reference modules
(the answer key stays on Gradescope's machine, out of the learners' sight), and the two scripts. ``setup.sh``
installs only the grader's dependencies, read from this installation's own metadata.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

from grader.atomicio import atomic_write_bytes
from grader.errors import UsageError
from grader.i18n import msg
from grader.model import Rubric

PYTHON = "/opt/grader/bin/python"
_EXTRA = re.compile(r";\s*extra\s*==")

SETUP = """#!/usr/bin/env bash
# Built by `grade gradescope-zip`: the image's Python, bubblewrap for the sandbox, the grader's dependencies.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-pip python3-venv bubblewrap
python3 -m venv /opt/grader
/opt/grader/bin/pip install --quiet {requirements}
"""

RUN = """#!/usr/bin/env bash
# Built by `grade gradescope-zip` for {labs}: grade /autograder/submission, write /autograder/results/results.json.
set -uo pipefail
ROOT="${{GRADER_AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{GRADER_PYTHON:-{python}}}"
export PYTHONPATH="$ROOT/source/lib${{PYTHONPATH:+:$PYTHONPATH}}"
cd "$ROOT/source" && exec "$PYTHON" -m grader --gradescope-autograder "$ROOT" --rubrics "$ROOT/source/rubrics" {lab}
"""


def requirements() -> list[str]:
    """The grader's own run-time dependencies (no test or cluster extras), as this installation declares them."""
    try:
        declared = metadata.requires("grader") or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        declared = ["numpy>=1.24", "pyyaml>=6.0", "jinja2>=3.1", "markdown-it-py>=3.0", "mdit-py-plugins>=0.4",
                    "tqdm>=4.66", "nbformat>=5.9", "babel>=2.12"]
    return [r for r in declared if not _EXTRA.search(r)]


def _package_files() -> Iterator[tuple[str, bytes]]:
    """The grader package as it runs here: its modules and catalogues, and its templates as ``grader/templates``."""
    from grader.reports import template_root

    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix in (".py", ".po"):
            yield f"lib/grader/{relative.as_posix()}", path.read_bytes()
    templates = template_root()
    yield "lib/grader/templates/__init__.py", b'"""The report templates (package data)."""\n'
    for entry in sorted(templates.iterdir(), key=lambda t: t.name):
        if entry.name.endswith(".j2"):
            yield f"lib/grader/templates/{entry.name}", entry.read_bytes()


def _rubric_files(rubrics: Sequence[Rubric]) -> Iterator[tuple[str, bytes]]:
    for rubric in rubrics:
        folder = f"rubrics/{rubric.phase_dir}"
        yield f"{folder}/{rubric.path.name}", rubric.path.read_bytes()
        for module in (rubric.reference, rubric.helpers):
            if module is not None:
                file = Path(module.__file__ or "")
                yield f"{folder}/{file.name}", file.read_bytes()
        for given in rubric.given:  # the lab page's code, which grade similar leaves out
            yield f"{folder}/{given.name}", given.read_bytes()


def build_zip(rubrics: Sequence[Rubric], out: Path, course: Path | None = None) -> list[str]:
    """Write the zip (temporary file, then rename); its entries, for the terminal. ``course``: the course file, checked
    now and shipped as ``rubrics/course.yaml``, so late penalties follow Gradescope's own upload time."""
    if not rubrics:
        raise UsageError(msg("zip.no_rubric"))
    extra: list[tuple[str, bytes]] = []
    if course is not None:
        from grader.course import load_course
        from grader.term import lab_maxima

        load_course(course, lab_maxima(rubrics))
        extra.append(("rubrics/course.yaml", course.read_bytes()))
    if out.suffix.lower() != ".zip":
        raise UsageError(msg("zip.not_zip", out=str(out)))
    labs = ", ".join(r.lab for r in rubrics)
    lab = f"--lab {rubrics[0].lab}" if len(rubrics) == 1 else ""
    scripts = {
        "setup.sh": SETUP.format(requirements=" ".join(f"'{r}'" for r in requirements())),
        "run_autograder": RUN.format(labs=labs, python=PYTHON, lab=lab),
    }
    buffer = io.BytesIO()
    names = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in scripts.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
            names.append(name)
        for name, data in (*_package_files(), *_rubric_files(rubrics), *extra):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # the same rubric gives the same zip
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            names.append(name)
    atomic_write_bytes(out, buffer.getvalue(), hint=msg("write.hint.zip"))
    return names
