"""Hostile and careless input, through the real command line: one clear line or a clear check message,
never a traceback, and nothing already in --out is lost.

Every case runs ``python -m grader`` in a subprocess (cwd: a temporary folder) over an --out that already
holds a previous run's files (sentinels). An error case must exit 2 with exactly one line,
``grade: <file or flag>[:line]: what — what to do``, and leave every sentinel byte-identical. A graded case
must finish, name the problem in the check that it concerns, and leave the other learners' reports alone.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BORJA = ROOT / "learners" / "borja"
RUBRICS = ROOT / "rubrics"
FIXTURES_ROOT = ROOT / "tests" / "fixtures"
LAB = "phase-04/lab-00"
MD = "lab-00-softmax-gradient.md"
PY = "lab-00-softmax-gradient.py"


_MEASURE = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
            "print(f'peak-rss-kb {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); "
            "sys.exit(code)")
PEAK_KB: list[int] = []  # the largest process of the last measured run


def grade(cwd: Path, *argv: str | Path, timeout: float = 240, measure: bool = False) -> subprocess.CompletedProcess[str]:
    """The real CLI, importing the grader of this checkout whatever is installed. ``measure`` records in
    PEAK_KB the peak resident memory of the largest process of the run (the grader, a pool process or a worker)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    wrapper = [sys.executable, "-c", _MEASURE] if measure else []
    proc = subprocess.run([*wrapper, sys.executable, "-m", "grader", *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)
    if measure:
        *lines, last = proc.stderr.splitlines(keepends=True)
        PEAK_KB[:] = [int(last.split()[1])]
        proc.stderr = "".join(lines)
    return proc


# ----------------------------------------------------------------------------- what a previous run left

SENTINELS = {
    "index.html": "<!doctype html>\n<html><body><p>the previous class page</p></body></html>\n",
    "gradebook.csv": "\ufefflearner,phase-04/lab-00 score,phase-04/lab-00 max,phase-04/lab-00 passed,total score,total max\n"
                     "zed,30,30,1,30,30\n",
    "zed/phase-04-lab-00.html": "<!doctype html>\n<html><body><p>zed's previous report</p></body></html>\n",
    "zed/phase-04-lab-00.md": "# zed · phase-04/lab-00\n\nThe previous report.\n",
}


def plant(out: Path) -> dict[str, bytes]:
    for name, text in SENTINELS.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text, encoding="utf-8")
    return {name: (out / name).read_bytes() for name in SENTINELS}


def complete(path: Path) -> bool:
    """A whole file of its kind (a replaced sentinel must be one)."""
    data = path.read_bytes()
    if path.suffix == ".html":
        return data.rstrip().endswith(b"</html>")
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        return bool(rows) and rows[0][0] == "learner" and all(len(r) == len(rows[0]) for r in rows)
    return bool(data.strip())


def nothing_lost(out: Path, before: dict[str, bytes], *, graded: bool) -> None:
    for name, data in before.items():
        now = (out / name).read_bytes()
        if now != data:
            assert graded and complete(out / name), f"{name} was changed by a run that graded nothing"
    for name in ("zed/phase-04-lab-00.html", "zed/phase-04-lab-00.md"):  # zed was not graded: never touched
        assert (out / name).read_bytes() == before[name]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], "a temporary file was left behind"


# ----------------------------------------------------------------------------- helpers for the cases

def edited_rubrics(tmp: Path, file: str, old: str, new: str) -> Path:
    """A copy of the bundled rubrics with one edit in phase-04/<file>; returns the edited file."""
    rubrics = tmp / "rubrics"
    if not rubrics.exists():
        shutil.copytree(RUBRICS, rubrics)
    path = rubrics / "phase-04" / file
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def learner(tmp: Path, name: str = "borja", *, parent: Path | None = None) -> Path:
    """A copy of borja's phase-04 work (the phase-05 folder too: phase-04 imports from it)."""
    folder = (parent or tmp) / name
    shutil.copytree(BORJA, folder)
    return folder


def read_only_folder(tmp: Path) -> Path:
    """A folder nobody can create files in: chmod 555 for a normal user; root ignores modes, so /sys there."""
    if os.geteuid() != 0:
        folder = tmp / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    for candidate in (Path("/sys"), Path("/proc/sys")):
        try:
            (candidate / ".grade-test-probe").write_bytes(b"")
        except OSError:
            return candidate
        (candidate / ".grade-test-probe").unlink()
    pytest.skip("running as root with no read-only folder to write into")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Bad:
    argv: list[str | Path]
    words: tuple[str, ...]  # what the line must say
    where: str  # what the line names first: the file (or the flag)
    line: int | None = None  # the line in that file, where one applies
    keep: tuple[Path, ...] = ()  # further files that must keep their bytes
    seconds: float = 60.0  # an error is found before any grading


def yaml_syntax(tmp: Path, out: Path) -> Bad:
    path = edited_rubrics(tmp, "lab-00.yaml", "    acceptance: true\n", "    acceptance: true: yes\n")
    return Bad([BORJA, "--rubrics", tmp / "rubrics", "--out", out], ("YAML error", "mapping values are not allowed"),
               str(path), line_of(path, "acceptance: true: yes"))


def yaml_not_utf8(tmp: Path, out: Path) -> Bad:
    path = edited_rubrics(tmp, "lab-00.yaml", "title:", "title:")
    path.write_bytes(path.read_bytes().replace("∂softmax".encode(), b"\xb6softmax", 1))
    return Bad([BORJA, "--rubrics", tmp / "rubrics", "--out", out], ("not UTF-8 text", "save the rubric as UTF-8"), str(path))


def unknown_kind(tmp: Path, out: Path) -> Bad:
    path = edited_rubrics(tmp, "lab-00.yaml", "    kind: compare\n", "    kind: compair\n")
    return Bad([BORJA, "--rubrics", tmp / "rubrics", "--out", out],
               ("unknown check kind 'compair'", "did you mean 'compare'?"), str(path), line_of(path, "kind: compair"))


def wrong_type(tmp: Path, out: Path) -> Bad:
    path = edited_rubrics(tmp, "lab-00.yaml", "    points: 2\n", '    points: "many"\n')
    return Bad([BORJA, "--rubrics", tmp / "rubrics", "--out", out],
               ("'points' must be a number, not 'many'", "write a plain number"), str(path), line_of(path, 'points: "many"'))


def reference_function_missing(tmp: Path, out: Path) -> Bad:
    edited_rubrics(tmp, "lab_00_reference.py", "def softmax_jacobian(", "def softmax_jacobian_v2(")
    path = tmp / "rubrics" / "phase-04" / "lab-00.yaml"
    return Bad([BORJA, "--rubrics", tmp / "rubrics", "--out", out],
               ("'softmax_jacobian' is not a function in the reference module lab_00_reference.py", "did you mean"),
               str(path), line_of(path, "  softmax_jacobian:"))


def reference_raises(tmp: Path, out: Path) -> Bad:
    path = edited_rubrics(tmp, "lab_00_reference.py", "import numpy as np\n",
                          "import numpy as np\n\nraise RuntimeError('hidden inputs file is missing')\n")
    return Bad([BORJA, "--rubrics", tmp / "rubrics", "--out", out],
               ("the reference module raised RuntimeError: hidden inputs file is missing", "fix the reference module"),
               str(path.resolve()), line_of(path, "raise RuntimeError"))


def empty_class(tmp: Path, out: Path) -> Bad:
    (tmp / "class").mkdir()
    return Bad(["class", "--out", out], ("the folder is empty", "pass a learner folder"), "class")


def class_without_learners(tmp: Path, out: Path) -> Bad:
    for folder in ("ana/notes", "ben/lab-00", "carla"):
        (tmp / "class" / folder).mkdir(parents=True)
    (tmp / "class" / "carla" / "lab-00.py").write_text("x = 1\n", encoding="utf-8")
    return Bad(["class", "--out", out], ("none of the folders in it (ana/, ben/, carla/) has a phase-NN/ folder",), "class")


def out_inside_learner(tmp: Path, out: Path) -> Bad:
    folder = learner(tmp)
    return Bad([folder, "--out", folder / "reports"], ("is inside the learner folder", "the next run would grade",
                                                       "e.g. --out reports"), f"--out {folder / 'reports'}",
               keep=(folder / "phase-04" / PY,))


def out_is_learner(tmp: Path, out: Path) -> Bad:
    folder = learner(tmp)
    return Bad([folder, "--out", folder], ("is the learner folder",), f"--out {folder}")


def out_holds_the_learners(tmp: Path, out: Path) -> Bad:
    learner(tmp, parent=tmp / "class")
    return Bad(["class", "--out", "class"], ("the reports for borja would go into", "choose an --out outside"), "--out class")


def json_read_only(tmp: Path, out: Path) -> Bad:
    target = read_only_folder(tmp) / "results.json"
    return Bad([BORJA, "--out", out, "--json", target], ("cannot write in", "choose another --json"), f"--json {target}")


def json_under_a_file(tmp: Path, out: Path) -> Bad:
    (tmp / "notes.txt").write_text("a file\n", encoding="utf-8")
    return Bad([BORJA, "--out", out, "--json", "notes.txt/results.json"], ("is a file, not a folder",),
               "--json notes.txt/results.json", keep=(tmp / "notes.txt",))


def db_not_sqlite(tmp: Path, out: Path) -> Bad:
    db = tmp / "grades.sqlite"
    db.write_text("name,grade\nana,10\n" * 200, encoding="utf-8")
    return Bad([BORJA, "--out", out, "--db", db], ("not a usable gradebook", "move the file away"), str(db), keep=(db,))


def overrides_malformed(tmp: Path, out: Path) -> Bad:
    path = tmp / "overrides.yaml"
    path.write_text("- learner: borja\n  lab: phase-04/lab-00\n  check: [reflection\n", encoding="utf-8")
    return Bad([BORJA, "--out", out, "--overrides", path], ("YAML error",), str(path), 4, keep=(path,))


def jobs_negative(tmp: Path, out: Path) -> Bad:
    return Bad([BORJA, "--out", out, "--jobs", "-1"], ("not a number of processes", "give 1 or more"), "--jobs -1")


def dask_without_scheduler(tmp: Path, out: Path) -> Bad:
    return Bad([BORJA, "--out", out, "--executor", "dask"], ("no --scheduler given", "add --scheduler ADDRESS"),
               "--executor dask")


def scheduler_unreachable(tmp: Path, out: Path) -> Bad:
    address = f"tcp://127.0.0.1:{free_port()}"
    return Bad([BORJA, "--out", out, "--executor", "dask", "--scheduler", address],
               ("cannot reach the Dask scheduler", "--executor local"), f"--scheduler {address}", seconds=8.0)


def scheduler_without_dask(tmp: Path, out: Path) -> Bad:
    return Bad([BORJA, "--out", out, "--scheduler", "tcp://x:8786"], ("only used with --executor dask",),
               "--scheduler tcp://x:8786")


def learner_named_like_a_class_output(tmp: Path, out: Path) -> Bad:
    learner(tmp, "index.html", parent=tmp / "class")
    return Bad(["class", "--out", out], ("would collide with the class's index.html", "rename the folder"),
               str((tmp / "class" / "index.html").resolve()))


def learner_name_not_utf8(tmp: Path, out: Path) -> Bad:
    """A zip made on Windows unpacks "Begoña" as the byte 0xf1: not text, so not a name for reports or JSON."""
    learner(tmp, "ana", parent=tmp / "class")
    os.rename(os.fsencode(tmp / "class" / "ana"), os.fsencode(tmp / "class") + b"/Bego\xf1a")
    return Bad(["class", "--out", out], ("the folder name is not UTF-8 (bytes b'Bego\\xf1a')", "rename it", "convmv"),
               str((tmp / "class" / "Begoña").resolve()))


def learner_name_with_a_line_break(tmp: Path, out: Path) -> Bad:
    learner(tmp, "ana\nbob", parent=tmp / "class")
    return Bad(["class", "--out", out], ("holds a line break", "rename it"), str((tmp / "class").resolve() / "ana\\nbob"))


BAD: dict[str, Callable[[Path, Path], Bad]] = {case.__name__.replace("_", "-"): case for case in (
    yaml_syntax, yaml_not_utf8, unknown_kind, wrong_type, reference_function_missing, reference_raises, empty_class,
    class_without_learners, out_inside_learner, out_is_learner, out_holds_the_learners, json_read_only,
    json_under_a_file, db_not_sqlite, overrides_malformed, jobs_negative, dask_without_scheduler,
    scheduler_unreachable, scheduler_without_dask, learner_named_like_a_class_output, learner_name_not_utf8,
    learner_name_with_a_line_break,
)}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_loses_nothing(case: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = plant(out)
    bad = BAD[case](tmp_path, out)
    kept = {path: path.read_bytes() for path in bad.keep}
    started = time.perf_counter()
    proc = grade(tmp_path, *bad.argv)
    seconds = time.perf_counter() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    (line,) = lines
    where = f"grade: {bad.where}:{bad.line}: " if bad.line else f"grade: {bad.where}: "
    assert line.startswith(where), f"{line!r} does not start with {where!r}"
    assert " — " in line, f"no 'what to do' in {line!r}"
    for words in bad.words:
        assert words in line, f"{words!r} not in {line!r}"
    assert seconds < bad.seconds, f"took {seconds:.1f} s"
    nothing_lost(out, before, graded=False)
    for path, data in kept.items():
        assert path.read_bytes() == data, f"{path} was changed"


# ----------------------------------------------------------------------------- graded despite awkward files

def graded(tmp: Path, *paths: Path | str, extra: tuple[str, ...] = (), timeout: float = 240, measure: bool = False
           ) -> tuple[subprocess.CompletedProcess[str], dict[tuple[str, str], dict[str, Any]], Path, dict[str, bytes]]:
    """Grade ``paths`` on phase-04/lab-00 over planted sentinels; return the process, the checks by
    (learner, check id), --out and the sentinels."""
    out = tmp / "out"
    before = plant(out)
    proc = grade(tmp, *paths, "--lab", LAB, "--out", out, "--json", tmp / "results.json", "--rubrics", RUBRICS, *extra,
                 timeout=timeout, measure=measure)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    document = json.loads((tmp / "results.json").read_text(encoding="utf-8"))
    checks = {(r["learner"], c["id"]): c for r in document["results"] for c in r["checks"]}
    nothing_lost(out, before, graded=True)
    return proc, checks, out, before


def rewrite_md(folder: Path, edit: Callable[[str], str | bytes]) -> Path:
    path = folder / "phase-04" / MD
    new = edit(path.read_text(encoding="utf-8"))
    path.write_bytes(new.encode("utf-8") if isinstance(new, str) else new)
    return path


def test_a_deliverable_not_in_utf8_is_graded_and_the_line_is_named(tmp_path: Path) -> None:
    folder = learner(tmp_path, "latin")
    sentence = "Reflexión añadida en Windows: el paso h se eligió con cuidado, según la teoría.\n"

    def edit(text: str) -> bytes:
        head, tail = text.split("## Reflection\n", 1)
        return (head + "## Reflection\n").encode() + sentence.encode("cp1252") + tail.encode()

    path = rewrite_md(folder, edit)
    number = line_of(path, "Reflexi")
    proc, checks, _, _ = graded(tmp_path, folder)
    found = checks[("latin", "deliverable-found")]
    assert found["status"] == "pass"
    assert f"phase-04/{MD} is not saved as UTF-8 (line {number}): those lines were read as Windows-1252" in found["message"]
    assert "re-save the file as UTF-8" in found["message"]
    assert checks[("latin", "reflection")]["status"] == "pass"
    assert proc.returncode == 0, proc.stdout


def test_a_png_renamed_md_fails_the_deliverable_check_only(tmp_path: Path) -> None:
    folder = learner(tmp_path, "png")
    rewrite_md(folder, lambda _: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 64)
    proc, checks, _, _ = graded(tmp_path, folder)
    found = checks[("png", "deliverable-found")]
    assert found["status"] == "fail" and found["message"].startswith(f"phase-04/{MD}: this is a PNG image, not Markdown")
    assert checks[("png", "reflection")]["status"] == "skip"
    assert checks[("png", "jacobian-analytic")]["status"] == "pass"
    assert proc.returncode == 1


def test_a_50_mb_deliverable_is_cut_fast_and_said(tmp_path: Path) -> None:
    folder = learner(tmp_path, "huge")
    row = "step 000123  max_err = 1.234e-11  h = 1e-05  OK  (pasted verification output, far too long)\n"
    padding = row * (50 * 1024 * 1024 // len(row))
    rewrite_md(folder, lambda text: text.replace("## Reflection", "```\n" + padding + "```\n\n## Reflection"))
    assert (folder / "phase-04" / MD).stat().st_size > 50 * 1024 * 1024
    started = time.perf_counter()
    proc, checks, _, _ = graded(tmp_path, folder, measure=True)
    seconds = time.perf_counter() - started
    print(f"\n50 MB deliverable: graded in {seconds:.2f} s, largest process {PEAK_KB[0] / 1024:.0f} MB")
    found = checks[("huge", "deliverable-found")]
    assert found["status"] == "pass" and "is 52.4 MB; only its first 256 KB" in found["message"]
    reflection = checks[("huge", "reflection")]
    assert reflection["status"] == "fail" and "only its first 256 KB" in reflection["message"]
    assert checks[("huge", "derivation-softmax")]["status"] == "pass"
    assert proc.returncode == 1
    assert seconds < 30, f"{seconds:.1f} s"
    assert PEAK_KB[0] < 200 * 1024, f"{PEAK_KB[0] / 1024:.0f} MB"  # about 50 MB for borja alone; never the file twice


def test_ten_thousand_files_are_graded_in_seconds(tmp_path: Path) -> None:
    folder = learner(tmp_path, "hoarder")
    data = folder / "phase-04" / "runs"
    data.mkdir()
    for i in range(10_000):
        (data / f"run-{i:05d}.txt").write_text(f"max_err = {i}e-12\n", encoding="utf-8")
    started = time.perf_counter()
    proc, checks, _, _ = graded(tmp_path, folder, measure=True)
    seconds = time.perf_counter() - started
    print(f"\n10,000 files: graded in {seconds:.2f} s, largest process {PEAK_KB[0] / 1024:.0f} MB")
    assert proc.returncode == 0, proc.stdout
    assert all(c["status"] == "pass" for (name, _), c in checks.items() if name == "hoarder")
    assert seconds < 30, f"{seconds:.1f} s"


def test_names_with_spaces_and_accents(tmp_path: Path) -> None:
    klass = tmp_path / "clase 2026"
    for name in ("Begoña Núñez", "José María"):
        learner(tmp_path, name, parent=klass)
    renamed = klass / "José María" / "phase-04" / "lab-00 versión final.py"
    (klass / "José María" / "phase-04" / PY).rename(renamed)
    proc, checks, out, _ = graded(tmp_path, "clase 2026")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("Begoña Núñez", "José María"):
        assert checks[(name, "implementation-found")]["status"] == "pass"
        assert (out / name / "phase-04-lab-00.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
        assert re.search(rf"{name}\s+phase-04/lab-00\s+PASSED", proc.stdout)
    assert "lab-00 versión final.py" in checks[("José María", "implementation-found")]["message"]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "Begoña Núñez" in index and "Jos%C3%A9%20Mar%C3%ADa/phase-04-lab-00.html" in index


def test_file_names_that_are_not_utf8_are_shown_as_windows_1252(tmp_path: Path) -> None:
    folder = learner(tmp_path, "ana")
    phase = os.fsencode(folder / "phase-04")
    os.rename(phase + b"/" + PY.encode(), phase + b"/lab-00-versi\xf3n.py")
    with open(phase + b"/lab-00 (copia \xf1).py", "wb") as handle:
        handle.write(b"def softmax(z):\n    return z\n")
    proc, checks, out, _ = graded(tmp_path, folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    message = checks[("ana", "implementation-found")]["message"]
    assert message.startswith("lab-00-versión.py loaded; also found lab-00 (copia ñ).py, not graded")
    assert "lab-00-versión.py" in (out / "ana" / "phase-04-lab-00.html").read_text(encoding="utf-8")


def test_a_symlink_loop_and_links_out_are_harmless(tmp_path: Path) -> None:
    folder = learner(tmp_path, "loops")
    phase = folder / "phase-04"
    (phase / "loop-a").symlink_to("loop-b")
    (phase / "loop-b").symlink_to("loop-a")
    (phase / "self").symlink_to(".")
    (phase / "up").symlink_to("..")
    (phase / "etc").symlink_to("/etc")
    (folder / "phase-06").symlink_to("phase-06")  # a phase folder that is a loop itself
    started = time.perf_counter()
    proc, checks, _, _ = graded(tmp_path, folder)
    assert time.perf_counter() - started < 30
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert checks[("loops", "implementation-found")]["status"] == "pass"


def test_folders_nested_1500_deep_are_a_message_not_a_crash(tmp_path: Path) -> None:
    folder = learner(tmp_path, "nested")
    deep = os.fsencode(folder / "phase-04")
    fd = os.open(deep, os.O_RDONLY)
    try:
        for _ in range(1500):  # 3,000 bytes of path: under PATH_MAX, over Python's recursion limit
            os.mkdir("a", dir_fd=fd)
            inner = os.open("a", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    try:
        _, checks, _, _ = graded(tmp_path, folder)
        assert checks[("nested", "deliverable-found")]["status"] == "pass"
    finally:
        for depth in range(1500, 0, -1):  # rmtree would recurse too deep as well
            os.rmdir(deep + b"/a" * depth)


def test_a_fifo_in_the_folder_does_not_block(tmp_path: Path) -> None:
    folder = learner(tmp_path, "piper")
    os.mkfifo(folder / "phase-04" / "pipe")
    os.mkfifo(folder / "phase-04" / "lab-00-extra.py")  # matches the implementation pattern
    os.mkfifo(folder / "notes.md")
    proc, checks, _, _ = graded(tmp_path, folder, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert checks[("piper", "implementation-found")]["status"] == "pass"


def test_a_deliverable_that_is_a_fifo_is_a_clear_failure(tmp_path: Path) -> None:
    folder = learner(tmp_path, "piper")
    (folder / "phase-04" / MD).unlink()
    os.mkfifo(folder / "phase-04" / MD)
    proc, checks, _, _ = graded(tmp_path, folder, timeout=120)
    assert checks[("piper", "deliverable-found")]["status"] == "fail"
    assert proc.returncode == 1


def test_a_deliverable_linked_to_another_learner_is_not_read(tmp_path: Path) -> None:
    alice = learner(tmp_path, "alice", parent=tmp_path / "class")
    bob = learner(tmp_path, "bob", parent=tmp_path / "class")
    (bob / "phase-04" / MD).unlink()
    (bob / "phase-04" / MD).symlink_to(alice / "phase-04" / MD)
    _, checks, _, _ = graded(tmp_path, "class")
    assert checks[("bob", "deliverable-found")]["status"] == "fail"
    assert "a link to a file outside your folder" in checks[("bob", "deliverable-found")]["message"]
    assert checks[("alice", "deliverable-found")]["status"] == "pass"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_files_are_named_not_fatal(tmp_path: Path) -> None:
    klass = tmp_path / "class"
    locked = learner(tmp_path, "locked", parent=klass)
    learner(tmp_path, "fine", parent=klass)
    (locked / "phase-04" / MD).chmod(0)
    try:
        proc, checks, _, _ = graded(tmp_path, "class")
    finally:
        (locked / "phase-04" / MD).chmod(0o644)
    assert "cannot be read" in checks[("locked", "deliverable-found")]["message"]
    assert checks[("fine", "deliverable-found")]["status"] == "pass"
    assert proc.returncode == 1


def test_a_gradescope_upload_with_a_fifo_is_graded(tmp_path: Path) -> None:
    root = tmp_path / "autograder"
    shutil.copytree(FIXTURES_ROOT / "deliverable-ascii" / "phase-04", root / "submission")
    os.mkfifo(root / "submission" / "pipe")
    proc = grade(tmp_path, "--gradescope-autograder", root, "--rubrics", RUBRICS, "--lab", LAB, timeout=120)
    assert proc.returncode == 0, proc.stderr
    document = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert document["score"] == 30


# ----------------------------------------------------------------------------- the one line, in the reader's language

_LOCALE = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def grade_with_locale(cwd: Path, locale: str | None, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    """The real CLI with ``LANG`` set to ``locale`` (``None``: no locale variable at all)."""
    env = {k: v for k, v in os.environ.items() if k not in _LOCALE}
    env["PYTHONPATH"] = str(ROOT)
    if locale is not None:
        env["LANG"] = locale
    return subprocess.run([sys.executable, "-m", "grader", *map(str, argv)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env, check=False)


SPANISH_ASKED = [  # (LANG, --lang flags): the command line's words are Spanish
    ("C.UTF-8", ("--lang", "es")),
    (None, ("--lang", "es")),
    ("es_ES.UTF-8", ("--lang", "auto")),
    ("es_ES.UTF-8", ()),
]
ENGLISH_ASKED = [
    ("es_ES.UTF-8", ("--lang", "en")),
    (None, ()),
    ("C.UTF-8", ("--lang", "auto")),
]
ONE_LINE = [  # argv, its line in English, in Spanish
    (("nowhere/",),
     "grade: nowhere: no such folder — pass a learner folder (learners/borja) or a folder of learners",
     "grade: nowhere: no existe esa carpeta; pasa una carpeta de estudiante (learners/borja) o una carpeta de estudiantes"),
    ((BORJA, "--timeout", "0"),
     "grade: --timeout 0: give a number of seconds between 0.05 and 3600",
     "grade: --timeout 0: da un número de segundos entre 0.05 y 3600"),
]


@pytest.mark.parametrize(("locale", "flags", "spanish"), [(*a, True) for a in SPANISH_ASKED] + [(*a, False) for a in ENGLISH_ASKED])
@pytest.mark.parametrize(("argv", "english", "castellano"), ONE_LINE, ids=["bad-path", "bad-timeout"])
def test_a_bad_path_or_flag_is_one_line_in_the_language_asked(locale: str | None, flags: tuple[str, ...], spanish: bool,
                                                             argv: tuple[str | Path, ...], english: str, castellano: str,
                                                             tmp_path: Path) -> None:
    proc = grade_with_locale(tmp_path, locale, *argv, *flags, "--out", tmp_path / "out")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines() == [castellano if spanish else english]


@pytest.mark.parametrize(("locale", "flags", "spanish"), [(*a, True) for a in SPANISH_ASKED] + [(*a, False) for a in ENGLISH_ASKED])
def test_a_notebook_that_is_not_json_is_one_line_in_the_language_asked(locale: str | None, flags: tuple[str, ...],
                                                                      spanish: bool, tmp_path: Path) -> None:
    (tmp_path / "ana" / "phase-04").mkdir(parents=True)
    (tmp_path / "ana" / "phase-04" / "lab.ipynb").write_text('{"cells": [', encoding="utf-8")
    proc = grade_with_locale(tmp_path, locale, "ana", *flags, "--lab", LAB, "--rubrics", RUBRICS, "--out", tmp_path / "out")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    said = " ".join(proc.stdout.split())  # the summary wraps long lines
    if spanish:
        line = ("✗ implementation-found [aceptación]: phase-04/lab.ipynb: no es un notebook válido: no es JSON (línea 1); "
                "ábrelo en Jupyter y vuelve a guardarlo, o entrega un archivo .py.")
        assert line in said and "NO APROBADO" in said, proc.stdout
    else:
        line = ("✗ implementation-found [acceptance]: phase-04/lab.ipynb: not a valid notebook — it is not JSON (line 1); "
                "open it in Jupyter and save it again, or hand in a .py file.")
        assert line in said and "NOT PASSED" in said, proc.stdout


def test_a_notebook_error_is_a_message_in_the_json_with_its_id(tmp_path: Path) -> None:
    (tmp_path / "ana" / "phase-04").mkdir(parents=True)
    (tmp_path / "ana" / "phase-04" / "lab.ipynb").write_text("not json", encoding="utf-8")
    proc = grade(tmp_path, "ana", "--lab", LAB, "--rubrics", RUBRICS, "--out", tmp_path / "out", "--lang", "es",
                 "--json", tmp_path / "r.json")
    assert proc.returncode == 1, proc.stderr
    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    check = next(c for c in document["results"][0]["checks"] if c["id"] == "implementation-found")
    assert check["message"].startswith("phase-04/lab.ipynb: no es un notebook válido: no es JSON (línea 1)")
    assert "notebook.not_json.line" in json.dumps(check["params"])  # the reason travels as a message, not as English
