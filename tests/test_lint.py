"""``grade lint``: every rubric problem at once, missing languages included; the shipped rubrics are clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from grader.lint import lint, render

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "rubrics").glob("*/*.yaml"))  # every lab found, none listed
LAB00 = ROOT / "rubrics" / "phase-04" / "lab-00.yaml"


def _lint(*args: str, cwd: Path, lang: str = "en") -> subprocess.CompletedProcess[str]:
    """``grade lint`` in the instructor's language (``LANGUAGE``, as gettext reads it)."""
    env = {**os.environ, "LANGUAGE": lang}
    return subprocess.run([sys.executable, "-m", "grader", "lint", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env=env, check=False)


def _line_of(path: Path, needle: str) -> int:
    lines = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


# one problem in each independent part of the rubric: (old text, new text, words of its line)
PROBLEMS = [
    ("phase_dir: phase-04", "phase_dir: phase-05", "phase_dir 'phase-05' does not match lab 'phase-04/lab-00'"),  # top level
    ("  ce_grad_fd: {reference: ce_grad,", "  ce_grad_fd: {reference: ce_gard,",  # a function
     "reference function 'ce_gard' is not a function in the reference module lab_00_reference.py — did you mean 'ce_grad'?"),
    ("      - when: scalar_outer", "      - when: scaler_outer",  # a cause
     ("function 'softmax_jacobian': cause 'scaler_outer' is neither built in nor a reference function — did you mean "
      "'scalar_outer'?")),
    ("    generate: hidden_logits\n", "    generate: hidden_logitz\n",  # an input set
     "generator 'hidden_logitz' is not a function in the reference module lab_00_reference.py"),
    ("      sample: class\n", "      sample: klass\n",  # the notation
     "notation: quantity 'y': sample must be 'vector' or 'class', not 'klass'"),
    ("    atol: 1.0e-12\n    rtol: 1.0e-9\n    sums_to", "    tolerance: 1.0e-12\n    rtol: 1.0e-9\n    sums_to",  # a check
     "check 'softmax-correct': unknown key 'tolerance' — did you mean 'atol'?"),
    ('    kind: compare\n    title: {en: "softmax is finite', '    kind: compair\n    title: {en: "softmax is finite',  # another
     "unknown check kind 'compair' — did you mean 'compare'?"),
]


def _broken(tmp_path: Path) -> Path:
    """The phase-04 rubric with one problem in each of its parts."""
    folder = tmp_path / "rubrics" / "phase-04"
    folder.mkdir(parents=True)
    shutil.copy(LAB00.parent / "lab_00_reference.py", folder)
    shutil.copy(LAB00.parent / "lab_00_helpers.py", folder)
    shutil.copy(LAB00.parent / "lab_00_given.py", folder)
    text = LAB00.read_text(encoding="utf-8")
    for old, new, _ in PROBLEMS:
        assert text.count(old) >= 1, old
        text = text.replace(old, new, 1)
    path = folder / "lab-00.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_rubrics_have_no_problem_in_either_language(tmp_path: Path) -> None:
    proc = _lint(cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == f"{len(SHIPPED)} rubric files: no problem\n"


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
    assert lines[-1] == f"{len(SHIPPED)} rubric files: 1 that does not load, 2 texts missing a language"
    assert "Traceback" not in proc.stderr


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    proc = _lint("nowhere", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("grade: nowhere: no such rubric file or folder")


def test_every_problem_of_one_rubric_is_listed_with_its_line_sorted_by_line(tmp_path: Path) -> None:
    """Problems in the top level, a function, a cause, an input set, the notation and two checks: all of them, not the
    first only, each once at its own line; loading for grading still stops with one line, the first of them."""
    path = _broken(tmp_path)
    proc = _lint(str(path.parent.parent), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    wanted = [f"{path}:{_line_of(path, new.splitlines()[0].strip())}: {words}" for _, new, words in PROBLEMS]
    assert len(lines) == len(PROBLEMS) + 1, proc.stdout
    for want in wanted:
        assert sum(line.startswith(want) for line in lines) == 1, (want, proc.stdout)
    numbers = [int(line[len(str(path)) + 1:].split(":")[0]) for line in lines[:-1]]
    assert numbers == sorted(numbers)
    assert lines[-1] == "1 rubric file: 1 that does not load, 0 texts missing a language"

    graded = subprocess.run([sys.executable, "-m", "grader", str(ROOT / "learners" / "borja"), "--rubrics",
                             str(path.parent.parent), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env={**os.environ, "LANGUAGE": "en"}, check=False)
    assert graded.returncode == 2 and graded.stdout == ""
    assert graded.stderr.splitlines() == [f"grade: {lines[0]}"]


def test_lint_is_said_in_the_instructors_language(tmp_path: Path) -> None:
    path = _broken(tmp_path)
    problems = lint([path])
    said = render(problems, 1, lang="es").splitlines()
    where = f"{path}:{_line_of(path, 'tolerance: 1.0e-12')}"
    assert f"{where}: comprobación 'softmax-correct': clave desconocida 'tolerance' — ¿querías decir 'atol'?" in said
    assert said[-1] == "1 archivo de rúbrica: 1 que no carga, 0 textos a los que les falta un idioma"
    assert render(problems, 1, lang="en").splitlines()[-1] == "1 rubric file: 1 that does not load, 0 texts missing a language"
    assert render([], 2, lang="es") == "2 archivos de rúbrica: ningún problema\n"
    proc = _lint(str(path), cwd=tmp_path, lang="es")  # the command follows the locale
    assert proc.returncode == 2 and proc.stdout.splitlines()[-1] == said[-1]
    assert "notation: magnitud 'y': sample tiene que ser 'vector' o 'class', no 'klass' — corrige 'sample'" in proc.stdout


def test_a_missing_language_is_said_in_spanish_too(tmp_path: Path) -> None:
    folder = tmp_path / "phase-04"
    shutil.copytree(LAB00.parent, folder)
    path = folder / "lab-00.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(', es: "Ninguna función modifica el array que recibe"}', "}", 1),
                    encoding="utf-8")
    said = render(lint([path]), 1, lang="es").splitlines()
    assert said[0].endswith(": 'title' no tiene texto en 'es' — añade 'es: \"…\"' (mientras tanto se muestra el otro idioma)")
    assert said[-1] == "1 archivo de rúbrica: 0 que no cargan, 1 texto al que le falta un idioma"
