"""``grade --watch``: a save grades again and only what changed is said; bad states are told, not fatal."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grader.errors import UsageError
from grader.model import CheckResult, LabResult, Status
from grader.watch import changes, render_change, snapshot, watch

ROOT = Path(__file__).resolve().parent.parent


def lab(**statuses: Status) -> LabResult:
    checks = tuple(CheckResult(name, name, status, 1.0 if status.earns_points else 0.0, 1.0, name == "a", "")
                   for name, status in statuses.items())
    return LabResult("me", "phase-04/lab-00", "t", checks)


P, F, S = Status.PASS, Status.FAIL, Status.SKIP


@pytest.mark.parametrize(
    ("before", "after", "fixed", "broke", "failing"),
    [
        (lab(a=F, b=F), lab(a=P, b=F), ("a",), (), ("b",)),
        (lab(a=P, b=P), lab(a=P, b=F), (), ("b",), ()),
        (lab(a=P, b=S), lab(a=P, b=F), (), ("b",), ()),  # a check that was skipped and now fails is new to the learner
        (lab(a=P), lab(a=P), (), (), ()),
    ],
)
def test_changes_say_fixed_broken_and_still_failing(before: LabResult, after: LabResult, fixed: tuple[str, ...],
                                                    broke: tuple[str, ...], failing: tuple[str, ...]) -> None:
    change = changes([before], [after])
    assert (change.fixed, change.broke, change.failing) == (fixed, broke, failing)


def test_the_change_line_is_in_the_learners_language() -> None:
    change = changes([lab(a=F, b=F)], [lab(a=P, b=F)])
    assert render_change(change, [lab(a=P, b=F)], "en") == "PASSED 1/2 — fixed: a · still failing: b\n"
    assert render_change(change, [lab(a=P, b=F)], "es") == "APROBADO 1/2 — arreglada: a · sigue fallando: b\n"
    assert render_change(changes([lab(a=P)], [lab(a=P)]), [lab(a=P)], "es").endswith("nada ha cambiado\n")


def test_a_save_grades_again_and_a_bad_state_is_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "me"
    (folder / "phase-04").mkdir(parents=True)
    source = folder / "phase-04" / "lab.py"
    source.write_text("x = 1\n", encoding="utf-8")
    outcomes = iter([[lab(a=F)], UsageError("nothing to grade: a half-saved folder"), [lab(a=P)]])
    calls = []

    def grade_once(quiet: bool) -> list[LabResult]:
        calls.append(quiet)
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    def edit() -> None:
        for text in ("x = 2\n", "x = 3\n"):
            time.sleep(0.3)
            source.write_text(text, encoding="utf-8")
            time.sleep(0.4)

    threading.Thread(target=edit, daemon=True).start()
    code = watch(folder, grade_once, lambda results: "en", poll=0.05, settle=0.05, runs=2)
    out, err = capsys.readouterr()
    assert code == 0 and calls == [False, True, True]
    assert out == "PASSED 1/1 — fixed: a\n"
    assert "grade: nothing to grade: a half-saved folder" in err and "watching" in err


def test_snapshot_skips_hidden_folders_and_follows_no_links(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "index").write_text("x", encoding="utf-8")
    (tmp_path / "a.py").write_text("x", encoding="utf-8")
    (tmp_path / "out").symlink_to("/etc", target_is_directory=True)
    assert set(snapshot(tmp_path)) == {"a.py"}  # the link to a folder is not walked into


def test_watch_from_the_command_line_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    learner = tmp_path / "borja"
    shutil.copytree(ROOT / "learners" / "borja", learner)
    proc = subprocess.Popen([sys.executable, "-m", "grader", "--watch", str(learner), "--out", str(tmp_path / "out")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "out" / "borja" / "phase-04-lab-00.md").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    source = next((learner / "phase-04").glob("*.py"))
    source.write_text(source.read_text(encoding="utf-8").replace("- np.outer", "+ np.outer", 1), encoding="utf-8")
    deadline = time.monotonic() + 60
    report = tmp_path / "out" / "borja" / "phase-04-lab-00.md"
    while "NOT PASSED" not in report.read_text(encoding="utf-8") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "NOT PASSED" in out and "now failing:" in out and "Traceback" not in err
    assert "stopped watching" in err


def test_watch_needs_one_learner_folder(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "grader", "--watch", str(ROOT / "learners"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--watch follows one learner's folder" in proc.stderr
