"""Installed the way a course's CI, a Gradescope image or an instructor's laptop installs it: a wheel, a fresh venv,
pipx — then ``grade`` run from a folder with no ``rubrics/`` in it. Uses the package registry, as ``pip`` does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
_IGNORED = shutil.ignore_patterns(".git", "__pycache__", "build", "dist", "*.egg-info", "reports", ".pytest_cache",
                                  ".hypothesis", "*.sqlite")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout: building writes build/ and *.egg-info beside the sources, never into the real one."""
    copy = tmp_path_factory.mktemp("source") / "grader"
    shutil.copytree(ROOT, copy, ignore=_IGNORED, symlinks=True)
    return copy


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "!!" not in proc.stdout + proc.stderr, "setuptools warned about the package layout"
    (built,) = out.glob("grader-*.whl")
    return built


def _clean_env() -> dict[str, str]:
    """No trace of this checkout: not on the path, not the working directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _grade_from_elsewhere(tmp_path: Path, grade: Path) -> None:
    """``grade learners/borja`` in a folder that has no rubrics/, with the bundled ones."""
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(ROOT / "learners" / "borja", elsewhere / "borja")
    proc = subprocess.run([str(grade), "borja", "--out", "out"], capture_output=True, text=True, timeout=180,
                          cwd=elsewhere, env=_clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "total: 2 of 2 passed" in proc.stdout
    assert (elsewhere / "out" / "borja" / "phase-04-lab-00.html").is_file()
    spanish = subprocess.run([str(grade), "nowhere", "--lang", "es"], capture_output=True, text=True, timeout=60,
                             cwd=elsewhere, env=_clean_env())
    assert spanish.returncode == 2 and "no existe esa carpeta" in spanish.stderr  # the catalogues are installed


def test_the_wheel_holds_what_grade_needs_at_run_time(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"grader/templates/report.html.j2", "grader/templates/report_parts.md.j2", "grader/locale/en.po",
            "grader/locale/es.po", "grader/rubrics/phase-04/lab-00.yaml", "grader/rubrics/phase-04/lab_00_reference.py",
            "grader/rubrics/phase-05/lab-02.yaml", "grader/maths/syntax.py", "grader/checks/__init__.py"} <= names
    assert not any(n.startswith(("tests/", "learners/", "bench/")) for n in names)


def test_pip_install_of_the_wheel_in_a_fresh_venv_grades_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    proc = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
                          capture_output=True, text=True, timeout=600, env=_clean_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    _grade_from_elsewhere(tmp_path, env_dir / "bin" / "grade")


@pytest.mark.skipif(shutil.which("pipx") is None, reason="pipx is not installed (pip install pipx)")
def test_pipx_install_of_the_source_grades_from_anywhere(source: Path, tmp_path: Path) -> None:
    env = {**_clean_env(), "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin"),
           "PIPX_MAN_DIR": str(tmp_path / "man")}
    proc = subprocess.run(["pipx", "install", str(source)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _grade_from_elsewhere(tmp_path, tmp_path / "bin" / "grade")
