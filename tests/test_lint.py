"""``grade lint``: every rubric problem at once, missing languages included; the shipped rubrics are clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grader", "lint", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_the_shipped_rubrics_have_no_problem_in_either_language(tmp_path: Path) -> None:
    proc = _lint(cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "2 rubric files: no problem\n"


def test_every_problem_of_every_rubric_is_listed_at_once(tmp_path: Path) -> None:
    rubrics = tmp_path / "rubrics"
    shutil.copytree(ROOT / "rubrics", rubrics)
    lab00 = rubrics / "phase-04" / "lab-00.yaml"
    text = lab00.read_text(encoding="utf-8")
    text = text.replace('title: {en: "The analytic Jacobian is symmetric", es: "La jacobiana analítica es simétrica"}',
                        'title: "The analytic Jacobian is symmetric"', 1)
    text = text.replace(', es: "Ninguna función modifica el array que recibe"}', "}", 1)
    lab00.write_text(text, encoding="utf-8")
    lab02 = rubrics / "phase-05" / "lab-02.yaml"
    lab02.write_text(lab02.read_text(encoding="utf-8").replace("    points:", "    pionts:", 1), encoding="utf-8")
    proc = _lint(str(rubrics), cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert any("lab-00.yaml:" in line and "'title' has one text for every language" in line for line in lines)
    assert any("lab-00.yaml:" in line and "'title' has no 'es' text" in line for line in lines)
    assert any("lab-02.yaml:" in line and "unknown key 'pionts'" in line for line in lines)
    assert lines[-1] == "2 rubric files: 1 that do not load, 2 texts missing a language"
    assert "Traceback" not in proc.stderr


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    proc = _lint("nowhere", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("grade: nowhere: no such rubric file or folder")
