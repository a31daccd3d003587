"""Installed the way a course's CI, a Gradescope image, an instructor's or a learner's laptop installs it: a wheel, a
fresh venv, pipx — then ``grade`` run from a folder with no ``rubrics/`` in it. Uses the package registry, as ``pip`` does."""

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
    """From a folder with no rubrics/: no rubric is bundled (they are answer keys), so ``grade`` asks for one; with
    the course's rubrics (the instructor) or a learner kit (a learner), borja is graded."""
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(ROOT / "learners" / "borja", elsewhere / "borja")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(grade), *args], capture_output=True, text=True, timeout=180, cwd=elsewhere,
                              env=_clean_env())

    bare = run("borja", "--out", "out")
    assert bare.returncode == 2 and "an installed grader ships none" in bare.stderr and "--rubrics KIT" in bare.stderr
    assert len(bare.stderr.splitlines()) == 1
    full = run("borja", "--out", "out", "--rubrics", str(ROOT / "rubrics"))
    assert full.returncode == 0 and "total: 2 of 2 passed" in full.stdout, full.stdout + full.stderr
    assert (elsewhere / "out" / "borja" / "phase-04-lab-00.html").is_file()
    made = run("kit", str(ROOT / "rubrics"), "--out", "kit")
    assert made.returncode == 0, made.stderr
    kit = run("borja", "--out", "out-kit", "--rubrics", "kit", "--lang", "es")
    assert kit.returncode == 0 and "total: 2 de 2 aprobados" in kit.stdout, kit.stdout + kit.stderr  # catalogues installed
    assert "comprobaciones más" in kit.stdout


def test_the_wheel_holds_what_grade_needs_at_run_time(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"grader/templates/report.html.j2", "grader/templates/report_parts.md.j2", "grader/locale/en.po",
            "grader/locale/es.po", "grader/maths/syntax.py", "grader/checks/__init__.py", "grader/kit.py"} <= names
    assert not any(n.startswith(("tests/", "learners/", "bench/", "rubrics/")) for n in names)
    assert not any("_reference" in n or n.endswith(".yaml") for n in names), "an answer key in the wheel"


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
