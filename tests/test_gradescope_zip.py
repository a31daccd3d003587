"""``grade gradescope-zip``: the zip unpacked into a fake ``/autograder`` tree grades a submission from its own files."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "rubrics" / "phase-04" / "lab-00.yaml"


def _zip(tmp_path: Path, *rubrics: Path) -> Path:
    out = tmp_path / "autograder.zip"
    proc = subprocess.run([sys.executable, "-m", "grader", "gradescope-zip", *map(str, rubrics), "--out", str(out)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    return out


def _unpack_as_gradescope_does(archive: Path, root: Path) -> None:
    """Gradescope unzips into /autograder/source and copies run_autograder to /autograder/run_autograder."""
    with zipfile.ZipFile(archive) as z:
        z.extractall(root / "source")
        for info in z.infolist():
            os.chmod(root / "source" / info.filename, (info.external_attr >> 16) & 0o777)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "results").mkdir()


def test_the_zip_holds_the_scripts_the_grader_and_the_rubric(tmp_path: Path) -> None:
    with zipfile.ZipFile(_zip(tmp_path, RUBRIC)) as z:
        names = set(z.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
        setup = z.read("setup.sh").decode()
    assert {"setup.sh", "run_autograder", "lib/grader/__main__.py", "lib/grader/locale/es.po",
            "lib/grader/templates/report.md.j2", "rubrics/phase-04/lab-00.yaml",
            "rubrics/phase-04/lab_00_reference.py", "rubrics/phase-04/lab_00_helpers.py"} <= names
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR
    assert not any("__pycache__" in n or n.startswith("rubrics/phase-05") for n in names)
    assert "'numpy>=1.24'" in setup and "pytest" not in setup and "dask" not in setup  # run-time needs only
    assert subprocess.run(["bash", "-n", "-c", setup]).returncode == 0


def test_the_same_rubric_gives_the_same_zip(tmp_path: Path) -> None:
    first = _zip(tmp_path, RUBRIC).read_bytes()
    assert _zip(tmp_path, RUBRIC).read_bytes() == first


@pytest.mark.slow
def test_run_autograder_grades_a_submission_in_a_fake_autograder_tree(tmp_path: Path) -> None:
    root = tmp_path / "autograder"
    _unpack_as_gradescope_does(_zip(tmp_path, ROOT / "rubrics"), root)  # every lab: only those handed in are graded
    shutil.copytree(ROOT / "learners" / "borja", root / "submission")  # his phase-04 imports his phase-05 module
    env = {**os.environ, "GRADER_AUTOGRADER_ROOT": str(root), "GRADER_PYTHON": sys.executable, "PYTHONSAFEPATH": "1"}
    which = subprocess.run(["bash", "-c", 'PYTHONPATH="$GRADER_AUTOGRADER_ROOT/source/lib" "$GRADER_PYTHON" -c '
                            '"import grader; print(grader.__file__)"'], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert which.stdout.startswith(str(root / "source" / "lib")), which  # the zip's grader, not this checkout's
    proc = subprocess.run([str(root / "run_autograder")], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert [lab["lab"] for lab in results["extra_data"]["labs"]] == ["phase-04/lab-00", "phase-05/lab-02"]
    assert results["score"] == 45.0 and all(lab["passed"] for lab in results["extra_data"]["labs"])
    assert results["output"].startswith("## ✅ PASSED")


@pytest.mark.parametrize(("args", "words"), [
    (["--out", "autograder.tar"], "the autograder is a .zip file"),
    (["--out", "autograder.zip", "--lang", "es"], None),
])
def test_bad_output_names_get_one_line(tmp_path: Path, args: list[str], words: str | None) -> None:
    proc = subprocess.run([sys.executable, "-m", "grader", "gradescope-zip", str(RUBRIC), *args],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    if words is None:
        assert proc.returncode == 0 and proc.stdout.startswith("escrito autograder.zip")
    else:
        assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_a_kit_or_a_file_that_is_no_rubric_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text("{}", encoding="utf-8")
    made = subprocess.run([sys.executable, "-m", "grader", "kit", str(RUBRIC), "--out", "kit"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    for given, words in (("kit", "pass the rubric, not a learner kit"), ("notes.json", "neither a rubric (.yaml) nor a learner kit")):
        proc = subprocess.run([sys.executable, "-m", "grader", "gradescope-zip", given], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
        assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
