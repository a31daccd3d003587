"""Class runs: parallel equals serial, faults stay local, unchanged work is reused, killed runs resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from grader.batch import ClassRun, Options, grade_class
from grader.results import lab_to_dict
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
BORJA = ROOT / "learners" / "borja"
FIXTURES = ROOT / "tests" / "fixtures"
RUBRICS = ROOT / "rubrics"
MEMBERS = ["borja", "sign-flipped", "infinite-loop", "segfault", "p05-good", "raises", "deliverable-spanish", "exit-at-import"]


def make_class(folder: Path, members: list[str] = MEMBERS) -> Path:
    for name in members:
        shutil.copytree(BORJA if name == "borja" else FIXTURES / name, folder / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def comparable(run: ClassRun) -> list[dict[str, Any]]:
    """Everything but the wall time."""
    out = []
    for result in run.results:
        data = lab_to_dict(result)
        data.pop("seconds")
        out.append(data)
    return out


def run_class(klass: Path, out: Path, **options: Any) -> ClassRun:
    return grade_class([klass], Options(out=out, **options), rubrics_dir=RUBRICS, limits=Limits(call_seconds=1.0))


@pytest.fixture(scope="module")
def klass(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_class(tmp_path_factory.mktemp("class") / "class")


@pytest.fixture(scope="module")
def serial(klass: Path, tmp_path_factory: pytest.TempPathFactory) -> ClassRun:
    return run_class(klass, tmp_path_factory.mktemp("serial"), jobs=1)


def test_parallel_results_equal_serial_ones(klass: Path, serial: ClassRun, tmp_path: Path) -> None:
    parallel = run_class(klass, tmp_path, jobs=2)
    assert comparable(parallel) == comparable(serial)
    assert parallel.graded == len(MEMBERS) and parallel.reused == 0


def test_a_hanging_or_crashing_learner_costs_only_their_own_checks(serial: ClassRun) -> None:
    by = {(r.learner, r.lab): r for r in serial.results}
    assert by[("borja", "phase-04/lab-00")].passed and by[("borja", "phase-05/lab-02")].passed
    hanging = by[("infinite-loop", "phase-04/lab-00")]
    assert any(c.status.value == "error" and "timed out" in c.message.english() for c in hanging.checks)
    crashing = by[("segfault", "phase-04/lab-00")]
    assert any("SIGSEGV" in c.message.english() for c in crashing.checks)
    assert by[("p05-good", "phase-05/lab-02")].passed


def test_class_outputs_are_written(serial: ClassRun) -> None:
    names = {p.name for p in serial.outputs}
    assert {"index.html", "gradebook.csv"} <= names
    out = serial.outputs[0].parent
    assert (out / "gradebook.sqlite").is_file()
    for path in serial.report_paths.values():
        assert path.is_file()


def test_unchanged_learners_are_reused_and_force_grades_again(tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", ["borja", "sign-flipped", "p05-good"])
    out = tmp_path / "out"
    first = run_class(klass, out, jobs=1)
    assert (first.graded, first.reused) == (3, 0)
    again = run_class(klass, out, jobs=1)
    assert (again.graded, again.reused) == (0, 3)
    assert comparable(again) == comparable(first)
    source = klass / "sign-flipped" / "phase-04" / "lab-00-softmax-gradient.py"
    source.write_text(source.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    changed = run_class(klass, out, jobs=1)
    assert (changed.graded, changed.reused) == (1, 2)
    forced = run_class(klass, out, jobs=2, force=True)
    assert (forced.graded, forced.reused) == (3, 0)
    assert comparable(forced) == comparable(changed)
    db = sqlite3.connect(out / "gradebook.sqlite")
    history = db.execute("select count(*), sum(reused) from attempts where learner = 'borja'").fetchone()
    assert history == (4, 0)  # two labs in four runs, reused in two of them: a reused result adds no attempt …
    assert db.execute("select count(*), min(last_run) from seen where learner = 'borja'").fetchone() == (2, 4)  # … it moves
    db.close()


def test_another_phase_changing_grades_every_lab_again(tmp_path: Path) -> None:
    """borja's phase-04 imports its phase-05 log-sum-exp: a change there can change phase-04's result."""
    klass = make_class(tmp_path / "class", ["borja"])
    out = tmp_path / "out"
    run_class(klass, out, jobs=1)
    md = klass / "borja" / "phase-05" / "lab-02-logsumexp.md"
    md.write_text(md.read_text(encoding="utf-8") + "\nOne more sentence.\n", encoding="utf-8")
    db = out / "gradebook.sqlite"
    run_class(klass, out, jobs=1)
    rows = sqlite3.connect(db).execute("select lab, reused from attempts order by id desc limit 2").fetchall()
    assert sorted(rows) == [("phase-04/lab-00", 0), ("phase-05/lab-02", 0)]


def test_overrides_change_every_output_without_regrading(tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", ["borja", "sign-flipped"])
    out = tmp_path / "out"
    run_class(klass, out, jobs=1)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "- learner: sign-flipped\n  lab: phase-04/lab-00\n  check: ce-grad-analytic\n  status: pass\n"
        "  reason: sign convention agreed in office hours\n", encoding="utf-8")
    run = run_class(klass, out, jobs=1, overrides=overrides, junit=tmp_path / "junit.xml", gradescope=True)
    assert run.graded == 0
    check = next(c for r in run.results if r.learner == "sign-flipped" for c in r.checks if c.id == "ce-grad-analytic")
    assert check.status.value == "pass" and check.override is not None and check.override.status.value == "fail"
    report = (out / "sign-flipped" / "phase-04-lab-00.html").read_text(encoding="utf-8")
    assert "overridden by instructor" in report and "office hours" in report
    gradescope = json.loads((out / "sign-flipped" / "results.json").read_text(encoding="utf-8"))
    assert any("Overridden by instructor" in t["output"] for t in gradescope["tests"])
    assert "overridden" in (out / "index.html").read_text(encoding="utf-8")
    stored = sqlite3.connect(out / "gradebook.sqlite").execute(
        "select status from checks join attempts on attempts.id = checks.attempt_id "
        "where learner = 'sign-flipped' and check_id = 'ce-grad-analytic' order by attempts.id desc limit 1").fetchone()
    assert stored == ("fail",)  # the history keeps what the grader said; overrides are applied on top


# ----------------------------------------------------------------------------- whole processes

def _grade_cmd(klass: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grader", str(klass), "--out", str(out), "--rubrics", str(RUBRICS), "-q", *extra]


def _tagged_processes(tag: str) -> list[int]:
    """Processes (any descendant of a tagged grader) still alive: the tag is in their environment."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if f"GRADER_TEST_TAG={tag}".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait_for_attempts(db: Path, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        try:
            count = sqlite3.connect(db, timeout=1).execute("select count(*) from attempts").fetchone()[0]
        except sqlite3.Error:
            count = 0
        if count >= at_least:
            return count
        time.sleep(0.05)
    return count


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "interrupt"])
def test_a_stopped_run_resumes_and_leaves_nothing_behind(how: str, tmp_path: Path) -> None:
    members = [f"learner-{i:02d}" for i in range(24)]
    klass = tmp_path / "class"
    for i, name in enumerate(members):
        source = FIXTURES / "infinite-loop" if i % 6 == 5 else BORJA
        shutil.copytree(source, klass / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "out"
    tag = uuid.uuid4().hex
    env = {**os.environ, "GRADER_TEST_TAG": tag}
    proc = subprocess.Popen(_grade_cmd(klass, out, "--jobs", "2", "--timeout", "0.5"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    before = _wait_for_attempts(out / "gradebook.sqlite", 4, 60)
    assert before >= 4, proc.communicate(timeout=60)
    if how == "kill":
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    else:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert b"interrupted" in err and b"Traceback" not in err
    deadline = time.monotonic() + 10
    while _tagged_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _tagged_processes(tag) == []
    assert not list(out.rglob("*.tmp")) or how == "kill"
    for html in out.rglob("*.html"):
        assert html.read_text(encoding="utf-8").rstrip().endswith("</html>")
    db = sqlite3.connect(out / "gradebook.sqlite")
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    saved = db.execute("select count(distinct learner) from attempts").fetchone()[0]
    db.close()
    resumed = subprocess.run([*_grade_cmd(klass, out, "--jobs", "2", "--timeout", "0.5"), "--json", str(tmp_path / "r.json")],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 1, resumed.stderr  # the infinite loops do not pass
    last = sqlite3.connect(out / "gradebook.sqlite").execute(
        "select count(distinct case when a.run_id = s.last_run then s.learner end),"
        " count(distinct case when a.run_id < s.last_run then s.learner end) "
        "from seen s join attempts a on a.id = s.attempt_id where s.last_run = (select max(id) from runs)").fetchone()
    assert last == (len(members) - saved, saved)  # graded now, and reused (seen again, no new attempt)
    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert len(document["results"]) == 2 * len(members) - len(members) // 6  # infinite-loop hands in phase-04 only


@pytest.mark.slow
def test_a_dask_cluster_grades_like_this_machine(klass: Path, serial: ClassRun, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        run = run_class(klass, tmp_path, executor="dask", scheduler=cluster.scheduler_address)
    assert comparable(run) == comparable(serial)
    for path in run.report_paths.values():
        assert path.is_file()


def test_gradescope_container_mode(tmp_path: Path) -> None:
    root = tmp_path / "autograder"
    shutil.copytree(FIXTURES / "sign-flipped" / "phase-04", root / "submission")
    proc = subprocess.run([sys.executable, "-m", "grader", "--gradescope-autograder", str(root), "--rubrics", str(RUBRICS),
                           "--lab", "phase-04/lab-00"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    document = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert 0 < document["score"] < 30
    failed = [t for t in document["tests"] if t["status"] == "failed"]
    assert any("ce-grad-analytic" in t["name"] for t in failed)


def test_gradescope_container_mode_always_writes_results(tmp_path: Path) -> None:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "grader", "--gradescope-autograder", str(root), "--rubrics", str(RUBRICS)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    document = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert document["score"] == 0 and "do not say which lab" in document["output"]


def test_history_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from grader.cli import main

    klass = make_class(tmp_path / "class", ["borja", "sign-flipped"])
    out = tmp_path / "out"
    for _ in range(2):
        assert main([str(klass), "-q", "--out", str(out), "--rubrics", str(RUBRICS), "--jobs", "1"]) == 1
    capsys.readouterr()
    assert main(["history", str(klass / "sign-flipped"), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if "phase-04/lab-00" in line]) == 1  # the unchanged re-run adds no attempt …
    assert "unchanged since, checked again until" in lines[-1] and "NOT PASSED" in lines[-1]  # … it is said once
    assert main(["history", "nobody", "--out", str(tmp_path / "elsewhere")]) == 2
    assert "no gradebook history yet" in capsys.readouterr().err


def test_grading_part_of_a_class_keeps_everyone_in_the_class_files(tmp_path: Path) -> None:
    import csv

    klass = make_class(tmp_path / "class", ["borja", "sign-flipped", "p05-good"])
    out = tmp_path / "out"
    run_class(klass, out, jobs=1)

    def rows() -> dict[str, dict[str, str]]:
        with (out / "gradebook.csv").open(encoding="utf-8-sig", newline="") as handle:
            return {row["learner"]: row for row in csv.DictReader(handle)}

    before = rows()
    assert set(before) == {"borja", "sign-flipped", "p05-good"}
    grade_class([klass / "sign-flipped"], Options(out=out, jobs=1), rubrics_dir=RUBRICS, limits=Limits(call_seconds=1.0))
    assert rows() == before
    grade_class([klass], Options(out=out, jobs=1), rubrics_dir=RUBRICS, lab="phase-04/lab-00", limits=Limits(call_seconds=1.0))
    assert rows()["borja"]["phase-05/lab-02 score"] == before["borja"]["phase-05/lab-02 score"]
    assert "p05-good" in (out / "index.html").read_text(encoding="utf-8")


def test_override_points_a_check_cannot_be_worth_stop_the_run_before_grading(tmp_path: Path) -> None:
    from grader.errors import OverridesError

    klass = make_class(tmp_path / "class", ["borja"])
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("- {learner: borja, lab: phase-04/lab-00, check: jacobian-fd, points: 50, reason: generous}\n",
                         encoding="utf-8")
    with pytest.raises(OverridesError, match=r"overrides.yaml:1: .*points 50 is more than the check is worth"):
        run_class(klass, tmp_path / "out", jobs=1, overrides=overrides)
    assert not (tmp_path / "out" / "borja").exists()


@pytest.mark.parametrize("layout", ["wrapped-learner-folder", "loose-files"])
def test_gradescope_container_mode_finds_the_lab_in_common_uploads(layout: str, tmp_path: Path) -> None:
    root = tmp_path / "autograder"
    if layout == "wrapped-learner-folder":  # a zip of the whole folder
        shutil.copytree(FIXTURES / "sign-flipped", root / "submission" / "sign-flipped")
    else:
        shutil.copytree(FIXTURES / "sign-flipped" / "phase-04", root / "submission")
    proc = subprocess.run([sys.executable, "-m", "grader", "--gradescope-autograder", str(root), "--rubrics", str(RUBRICS)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    document = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert any("ce-grad-analytic" in t["name"] and t["status"] == "failed" for t in document["tests"])


def _dies_on_sign_flipped(learner: str, *args: Any) -> Any:
    """A pool process killed mid-learner (the OOM killer, say); the test sets ``__wrapped__`` to the real one."""
    if learner.endswith("sign-flipped"):
        os._exit(9)
    return _dies_on_sign_flipped.__wrapped__(learner, *args)  # type: ignore[attr-defined]


def test_a_grading_process_that_dies_is_one_line_and_the_rest_is_kept(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import grader.batch as batch
    from grader.errors import SandboxError

    klass = make_class(tmp_path / "class", ["borja", "sign-flipped", "p05-good"])
    _dies_on_sign_flipped.__wrapped__ = batch.grade_learner  # type: ignore[attr-defined]
    monkeypatch.setattr(batch, "grade_learner", _dies_on_sign_flipped)
    with pytest.raises(SandboxError, match="a grading process died"):
        run_class(klass, tmp_path / "out", jobs=2)
    status = sqlite3.connect(tmp_path / "out" / "gradebook.sqlite").execute("select status from runs").fetchone()
    assert status == ("interrupted",)


def test_two_runs_into_one_out_at_once_are_refused(tmp_path: Path) -> None:
    import fcntl

    from grader.errors import UsageError

    klass = make_class(tmp_path / "class", ["borja"])
    out = tmp_path / "out"
    run_class(klass, out, jobs=1)
    with open(out / "gradebook.sqlite", "rb") as other_run:
        fcntl.flock(other_run.fileno(), fcntl.LOCK_EX)
        with pytest.raises(UsageError, match="another grade run is writing there right now"):
            run_class(klass, out, jobs=1)
    assert run_class(klass, out, jobs=1).reused == 1  # free again once the other run is over


@pytest.mark.parametrize("change", ["templates", "lang"])
def test_new_wording_rewrites_the_reports_without_grading_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 change: str) -> None:
    """A grader upgrade that only rewords a template, or another --lang, must not leave yesterday's words on disk."""
    from grader import batch

    klass = make_class(tmp_path / "class", ["borja", "deliverable-spanish"])
    out = tmp_path / "out"
    run_class(klass, out, jobs=1)
    report = out / "borja" / "phase-04-lab-00.md"
    before = report.read_text(encoding="utf-8")
    if change == "templates":
        monkeypatch.setattr(batch, "templates_digest", lambda: "reworded")
        monkeypatch.setattr("grader.reports.render_markdown", lambda result, lang="auto": "reworded\n")
        again = run_class(klass, out, jobs=1)
        assert report.read_text(encoding="utf-8") == "reworded\n"
    else:
        again = run_class(klass, out, jobs=1, lang="es")
        assert "| Estado | Comprobación |" in report.read_text(encoding="utf-8") != before
    assert (again.graded, again.reused) == (0, 2)
