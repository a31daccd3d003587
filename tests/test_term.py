"""The instructor's term: decisions that never vanish, the review queue, roster and LMS exports, deadlines and late
penalties, questions about the class, per-learner release, and a history that stays small."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from grader.batch import Options, grade_class
from grader.cli import main
from grader.errors import CourseError, UsageError
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
BORJA = ROOT / "learners" / "borja"
FIXTURES = ROOT / "tests" / "fixtures"
RUBRICS = ROOT / "rubrics"
LAB = "phase-04/lab-00"


def make_class(folder: Path, members: dict[str, str]) -> Path:
    """``members``: the learner's folder name -> the fixture it is a copy of."""
    for name, source in members.items():
        shutil.copytree(BORJA if source == "borja" else FIXTURES / source, folder / name,
                        ignore=shutil.ignore_patterns("__pycache__", "EXPECTED.yaml"))
    return folder


CLASS = {"ana": "borja", "bob": "sign-flipped", "photo": "deliverable-photo"}


def grade(paths: list[Path], out: Path, lab: str | None = None, **options: Any) -> Any:
    return grade_class(paths, Options(out=out, jobs=1, **options), rubrics_dir=RUBRICS, lab=lab, limits=Limits(call_seconds=1.0))


def gradebook(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["learner"]: row for row in csv.DictReader(handle)}


def cli(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- 1. decisions never vanish

def test_grading_one_learner_keeps_every_override_in_every_output(tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", CLASS)
    (klass / "overrides.yaml").write_text(
        "- {learner: bob, lab: phase-04/lab-00, check: ce-grad-analytic, status: pass, reason: sign convention agreed in class}\n"
        "- {learner: ana, lab: phase-04/lab-00, bonus: 2, reason: helped in the lab session}\n", encoding="utf-8")
    out = tmp_path / "out"
    notes: list[Any] = []
    first = grade_class([klass], Options(out=out, jobs=1, gradescope=True, junit=out / "junit.xml"), rubrics_dir=RUBRICS,
                        limits=Limits(call_seconds=1.0), note=notes.append)
    assert any("overrides from" in str(n) for n in notes)  # the terminal says which file is used
    before = gradebook(out)
    assert before["ana"][f"{LAB} score"] == "32" and before["ana"][f"{LAB} adjustments"] == "2"

    # a late learner handed in: only they are graded, into the same --out
    make_class(klass, {"late": "sign-flipped"})
    again = grade([klass / "late"], out, gradescope=True, junit=out / "junit.xml")
    assert (again.graded, again.reused) == (1, 0)
    after = gradebook(out)
    unchanged = {k: {c: v for c, v in row.items() if c != "similar to"} for k, row in before.items()}
    assert {k: {c: v for c, v in after[k].items() if c != "similar to"} for k in before} == unchanged  # intact
    assert "late phase-04/lab-00" in after["bob"]["similar to"]  # late is a copy of the same fixture as bob
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "sign convention agreed in class" in page and "helped in the lab session" in page
    assert "sign convention agreed in class" in (out / "junit.xml").read_text(encoding="utf-8")
    document = json.loads((out / "bob" / "results.json").read_text(encoding="utf-8"))
    assert any(t["extra_data"]["check"] == "ce-grad-analytic" and t["status"] == "passed" for t in document["tests"])
    assert "sign convention agreed in class" in (out / "bob" / "phase-04-lab-00.md").read_text(encoding="utf-8")

    # regrading one learner with a rule keeps that learner's own override note
    again = grade([klass / "bob"], out, force=True, gradescope=True)
    assert "sign convention agreed in class" in (out / "bob" / "phase-04-lab-00.md").read_text(encoding="utf-8")
    assert {c: v for c, v in gradebook(out)["ana"].items() if c != "similar to"} == unchanged["ana"]
    assert first.files.overrides == klass / "overrides.yaml"


def test_a_changed_decision_rewrites_the_reports_of_learners_not_graded_now(tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", CLASS)
    out = tmp_path / "out"
    grade([klass], out)
    (klass / "overrides.yaml").write_text(
        "- {learner: bob, lab: phase-04/lab-00, check: ce-grad-analytic, points: 1, reason: half the sign argument}\n",
        encoding="utf-8")
    run = grade([klass / "ana"], out)  # a run of someone else
    assert (run.graded, run.reused, run.rerendered) == (0, 1, 1)
    assert "half the sign argument" in (out / "bob" / "phase-04-lab-00.html").read_text(encoding="utf-8")


def test_a_run_that_drops_the_overrides_it_used_says_so(tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", {"bob": "sign-flipped"})  # one learner: its folder's files would not be used
    rules = tmp_path / "decisions.yaml"
    rules.write_text("- {learner: bob, lab: phase-04/lab-00, check: ce-grad-analytic, status: pass, reason: agreed}\n",
                     encoding="utf-8")
    out = tmp_path / "out"
    grade([klass], out, overrides=rules)
    notes: list[Any] = []
    grade_class([klass], Options(out=out, jobs=1), rubrics_dir=RUBRICS, limits=Limits(call_seconds=1.0), note=notes.append)
    assert any(f"the last run with this gradebook applied {rules.resolve()}" in str(n) for n in notes)


def test_overrides_in_a_learners_own_folder_are_never_the_class_files(tmp_path: Path) -> None:
    """The class folder is the folder of learners (or a learner's parent); an unzipped hand-in's wrapper is the learner's."""
    klass = tmp_path / "class"
    make_class(klass, {"ana": "borja"})
    make_class(klass / "mallory", {"mallory-main": "sign-flipped"})
    (klass / "mallory" / "overrides.yaml").write_text(
        "- {learner: mallory-main, lab: phase-04/lab-00, check: ce-grad-analytic, status: pass, reason: me}\n", encoding="utf-8")
    run = grade([klass / "mallory"], tmp_path / "out")
    assert run.files.overrides is None and not run.results[0].passed
    inside = klass / "mallory" / "mallory-main" / "overrides.yaml"
    shutil.copy(klass / "mallory" / "overrides.yaml", inside)
    with pytest.raises(UsageError, match="inside the learner folder"):
        grade([klass], tmp_path / "out2", overrides=inside)


# ----------------------------------------------------------------------------- 2. the review queue

def test_a_photo_derivation_needs_review_everywhere_until_decided(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    klass = make_class(tmp_path / "class", CLASS)
    out = tmp_path / "out"
    code, stdout, _ = cli(capsys, klass, "--out", out, "--rubrics", RUBRICS, "--jobs", "1")
    assert "4 checks to review (grade review lists them)" in stdout
    row = gradebook(out)["photo"]
    assert row[f"{LAB} needs review"] == "4" and row["needs review"] == "4"
    assert float(row[f"{LAB} score"]) == 30 - 4 * 2  # review_points: held — the photo's points wait for a decision

    code, stdout, _ = cli(capsys, "review", "--out", out)
    assert code == 0 and stdout.count("photo  phase-04/lab-00  derivation-") == 4 and "derivation.jpg" in stdout
    code, stdout, _ = cli(capsys, "review", "photo", LAB, "derivation-softmax", "--pass", "--reason", "read the photo: right",
                          "--by", "prof", "--out", out)
    assert code == 0 and f"{klass / 'overrides.yaml'}:1" in stdout
    written = (klass / "overrides.yaml").read_text(encoding="utf-8")
    assert "check: derivation-softmax" in written and "by: prof" in written and "at: '20" in written
    code, stdout, _ = cli(capsys, "review", "--out", out)
    assert stdout.count("photo  phase-04/lab-00  derivation-") == 3  # the queue reads the file at once

    code, stdout, _ = cli(capsys, klass, "--out", out, "--rubrics", RUBRICS, "--jobs", "1")
    assert "3 checks to review" in stdout
    assert float(gradebook(out)["photo"][f"{LAB} score"]) == 30 - 3 * 2


@pytest.mark.parametrize(("argv", "said"), [
    (["photo", LAB, "derivation-softmax", "--pass"], "a decision needs --reason"),
    (["photo", LAB, "no-such-check", "--pass", "--reason", "x"], "has no check no-such-check"),
    (["photo", "phase-09/lab-00", "derivation-softmax", "--fail", "--reason", "x"], "has no result for phase-09/lab-00"),
    (["nobody", LAB, "derivation-softmax", "--fail", "--reason", "x"], "nobody: not in the gradebook"),
    (["photo", LAB, "derivation-softmax", "--points", "9", "--reason", "x"], "is worth 0 to 2"),
    (["photo", LAB, "--pass", "--reason", "x"], "a decision names LEARNER LAB CHECK"),
])
def test_a_bad_review_decision_is_one_line_and_writes_nothing(argv: list[str], said: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    klass = make_class(tmp_path / "class", {"photo": "deliverable-photo", "bob": "sign-flipped"})
    out = tmp_path / "out"
    grade([klass], out)
    code, _, err = cli(capsys, "review", *argv, "--out", out)
    assert code == 2 and said in err and len(err.splitlines()) == 1
    assert not (klass / "overrides.yaml").exists()


def test_a_second_decision_about_the_same_check_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    klass = make_class(tmp_path / "class", {"photo": "deliverable-photo", "bob": "sign-flipped"})
    out = tmp_path / "out"
    grade([klass], out)
    assert cli(capsys, "review", "photo", LAB, "derivation-ce", "--fail", "--reason", "wrong sign", "--out", out)[0] == 0
    code, _, err = cli(capsys, "review", "photo", LAB, "derivation-ce", "--pass", "--reason", "changed my mind", "--out", out)
    assert code == 2 and "already decided at" in err and "overrides.yaml:1" in err


# ----------------------------------------------------------------------------- 3. roster and LMS exports

ROSTER = ("folder,student id,email,name,section,language\n"
          "ana,S001,ana@uni.es,Ana Núñez,A,es\nbob,S002,bob@uni.es,Bob Ray,B,en\nzoe,S003,zoe@uni.es,Zoe Li,B,\n")


def test_exports_are_consistent_whatever_subset_a_run_graded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    klass = make_class(tmp_path / "class", {"ana": "borja", "bob": "sign-flipped"})
    (klass / "roster.csv").write_text(ROSTER, encoding="utf-8")
    out = tmp_path / "out"
    notes: list[Any] = []
    grade_class([klass], Options(out=out, jobs=1), rubrics_dir=RUBRICS, limits=Limits(call_seconds=1.0), note=notes.append)
    assert any("zoe" in str(n) for n in notes)  # a roster row with no folder is named
    exports = {}
    for form in ("canvas", "moodle", "csv"):
        assert cli(capsys, "export", form, "--out", out)[0] == 0
        exports[form] = (out / f"{form}.csv").read_text(encoding="utf-8-sig")
    grade([klass / "bob"], out, force=True)
    grade([klass], out, lab=LAB)
    for form in ("canvas", "moodle", "csv"):
        assert cli(capsys, "export", form, "--out", out)[0] == 0
        assert (out / f"{form}.csv").read_text(encoding="utf-8-sig") == exports[form]

    canvas = list(csv.reader(io.StringIO(exports["canvas"])))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][0] == "Points Possible" and canvas[1][5:] == ["30", "16", "15"]  # every lab of the rubrics
    rows = {row[2]: row for row in canvas[2:]}
    assert rows["S001"][0] == "Ana Núñez" and rows["S001"][5:] == ["30", "0", "15"]  # lab-01 not handed in: 0 of 16
    assert rows["S003"][5:] == ["0", "0", "0"]  # on the roster, no folder: still in the LMS's gradebook, with 0
    moodle = list(csv.reader(io.StringIO(exports["moodle"])))
    assert moodle[0][:2] == ["ID number", "Email address"] and ["S002", "bob@uni.es", "26", "0", "0"] in moodle
    plain = list(csv.DictReader(io.StringIO(exports["csv"])))
    assert {row["total max"] for row in plain} == {"61"} and plain[0]["student id"] == "S001"


@pytest.mark.parametrize(("text", "said"), [
    ("learner,email\nana,a@x\nana,b@x\n", "roster.csv:3"),
    ("name,email\nAna,a@x\n", "roster.csv:1"),
])
def test_a_bad_roster_stops_the_run_naming_the_line(text: str, said: str, tmp_path: Path) -> None:
    from grader.errors import RosterError

    klass = make_class(tmp_path / "class", {"ana": "borja", "bob": "sign-flipped"})
    (klass / "roster.csv").write_text(text, encoding="utf-8")
    with pytest.raises(RosterError, match=said):
        grade([klass], tmp_path / "out")


# ----------------------------------------------------------------------------- 4. deadlines and late penalties

COURSE = """\
timezone: Europe/Madrid
late: {per_day: 10%, cap: 50%, grace_days: 0.25}
sources: [git]
labs:
  phase-04/lab-00: {due: 2026-10-12 23:59}
extensions:
  - {learner: ext, lab: phase-04/lab-00, days: 3, reason: medical note}
"""


def commit(folder: Path, when: str) -> None:
    """A fixture repository: the learner's folder, committed at ``when`` (author and committer time)."""
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "GIT_CONFIG_GLOBAL": os.devnull}
    for argv in (["init", "-q"], ["add", "-A"], ["-c", "user.name=L", "-c", "user.email=l@x", "commit", "-qm", "hand in"]):
        subprocess.run(["git", "-C", str(folder), *argv], check=True, env=env, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_late_commit_gets_the_course_penalty_in_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    klass = make_class(tmp_path / "class", {"ontime": "borja", "late": "borja", "ext": "borja", "nogit": "borja"})
    commit(klass / "ontime", "2026-10-12T23:00:00+02:00")
    commit(klass / "late", "2026-10-14T10:00:00+02:00")  # 1 day 10 h late: 2 days, 20 %
    commit(klass / "ext", "2026-10-14T10:00:00+02:00")  # within its 3-day extension
    (klass / "course.yaml").write_text(COURSE, encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, _ = cli(capsys, klass, "--out", out, "--rubrics", RUBRICS, "--jobs", "1", "--gradescope",
                          "--junit", out / "junit.xml")
    assert "late penalty -6.0: handed in 2 days late" in stdout
    book = gradebook(out)
    assert book["late"][f"{LAB} score"] == "24" and book["late"][f"{LAB} adjustments"] == "-6"
    assert book["ontime"][f"{LAB} score"] == book["ext"][f"{LAB} score"] == book["nogit"][f"{LAB} score"] == "30"
    for report in ("phase-04-lab-00.md", "phase-04-lab-00.html"):
        text = (out / "late" / report).read_text(encoding="utf-8")
        assert "handed in 2 days late" in text and "last commit 2026-10-14 10:00" in text
    results = json.loads((out / "late" / "results.json").read_text(encoding="utf-8"))
    assert results["score"] == 24 + 15 and results["extra_data"]["labs"][0]["adjustments"][0]["change"] == -6
    junit = (out / "junit.xml").read_text(encoding="utf-8")
    assert 'name="adjustment:late"' in junit and "handed in 2 days late" in junit
    assert "late penalty" in (out / "index.html").read_text(encoding="utf-8")
    code, stdout, _ = cli(capsys, "query", "--late", "--out", out)
    assert stdout.splitlines()[0].startswith("late  phase-04/lab-00  late  24.0/30.0")
    # an extension given later changes every output at the next run, nothing graded again
    (klass / "course.yaml").write_text(COURSE + "  - {learner: late, lab: phase-04/lab-00, days: 2}\n", encoding="utf-8")
    cli(capsys, klass, "--out", out, "--rubrics", RUBRICS, "--jobs", "1", "--gradescope")
    assert gradebook(out)["late"][f"{LAB} score"] == "30"


@pytest.mark.parametrize(("text", "said"), [
    ("labs:\n  phase-04/lab-00: {due: tomorrow}\n", "course.yaml:2: 'tomorrow' is not a date and time"),
    ("labs:\n  phase-04/lab-09: {due: 2026-10-12}\n", "course.yaml:2: no rubric is for lab phase-04/lab-09"),
    ("late: {per_dya: 10%}\n", "course.yaml:1: unknown key 'per_dya' in a late policy — did you mean 'per_day'?"),
    ("late: {per_day: ten}\n", "course.yaml:1: per_day: 'ten' is not an amount"),
    ("timezone: Mars/Olympus\n", "course.yaml:1: unknown time zone 'Mars/Olympus'"),
    ("labs:\n  phase-04/lab-00: {late: {per_day: 1}}\n", "course.yaml:2: lab phase-04/lab-00 has no 'due' date"),
    ("labs:\n  phase-04/lab-00: {due: 2026-10-12}\nextensions:\n  - {learner: a, lab: phase-04/lab-00}\n",
     "course.yaml:4: an extension gives either 'due' (a new date) or 'days'"),
    ("sources: [git, clock]\n", "course.yaml:1: sources is a list"),
])
def test_a_bad_course_file_stops_the_run_naming_the_line(text: str, said: str, tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", {"ana": "borja", "bob": "sign-flipped"})
    (klass / "course.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(CourseError) as caught:
        grade([klass], tmp_path / "out")
    assert said in str(caught.value)
    assert not (tmp_path / "out" / "ana").exists()


def test_modification_times_are_the_last_resort_and_said_so(tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", {"ana": "borja", "bob": "sign-flipped"})
    for path in klass.rglob("*"):
        os.utime(path, (1_760_400_000, 1_760_400_000))  # 2025-10-14, a year before this course's due date
    (klass / "course.yaml").write_text("labs:\n  phase-04/lab-00: {due: 2026-10-12 23:59}\n", encoding="utf-8")
    run = grade([klass], tmp_path / "out")
    lab = next(r for r in run.results if r.lab == LAB)
    assert lab.submitted is not None and lab.submitted.source == "mtime" and not lab.adjustments
    assert "modification times" in (tmp_path / "out" / "ana" / "phase-04-lab-00.md").read_text(encoding="utf-8")


def test_lab_level_rules_bonus_penalty_and_cap_apply_in_order(tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", {"ana": "borja", "bob": "sign-flipped"})
    (klass / "overrides.yaml").write_text(
        "- {learner: ana, lab: phase-04/lab-00, penalty: 5, reason: reflection copied from the page}\n"
        "- {learner: ana, lab: phase-04/lab-00, cap: 20, reason: academic integrity cap}\n"
        "- {learner: bob, lab: phase-04/lab-00, bonus: 3, reason: found a typo in the lab page}\n", encoding="utf-8")
    run = grade([klass], tmp_path / "out")
    by = {r.learner: r for r in run.results if r.lab == LAB}
    assert (by["ana"].checks_score, by["ana"].score) == (30, 20) and (by["bob"].checks_score, by["bob"].score) == (26, 29)
    text = (tmp_path / "out" / "ana" / "phase-04-lab-00.md").read_text(encoding="utf-8")
    assert "penalty -5.0: reflection copied from the page" in text and "points capped at 20.0 (-5.0)" in text


# ----------------------------------------------------------------------------- 5. questions about the class

def test_query_answers_the_usual_questions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    klass = make_class(tmp_path / "class", {**CLASS, "bob2": "sign-flipped", "crash": "raises"})
    out = tmp_path / "out"
    run = grade([klass], out)
    failing = sorted(r.learner for r in run.results for c in r.checks if c.id == "ce-grad-analytic" and c.status.value == "fail")
    code, stdout, _ = cli(capsys, "query", "--check", "ce-grad-analytic", "--status", "fail", "--out", out, "--json")
    assert code == 0 and sorted(row["learner"] for row in json.loads(stdout)) == failing == ["bob", "bob2"]
    code, stdout, _ = cli(capsys, "query", "--causes", "ce-grad-analytic", "--out", out, "--json")
    top = json.loads(stdout)[0]
    assert top["count"] == 2 and "sign is flipped" in top["detail"]
    code, stdout, _ = cli(capsys, "query", "--not-passed", "--lab", LAB, "--out", out, "--json")
    assert {row["learner"] for row in json.loads(stdout)} >= {"bob", "bob2", "crash"}
    code, stdout, _ = cli(capsys, "query", "--review", "--out", out, "--json")
    # the photo's derivation, and crash's script, which now stops before the output it pasted (output-rerun)
    assert {row["learner"] for row in json.loads(stdout)} == {"photo", "crash"}
    (klass / "bob" / "phase-04" / "lab-00-softmax-gradient.py").write_text(
        (klass / "ana" / "phase-04" / "lab-00-softmax-gradient.py").read_text(encoding="utf-8"), encoding="utf-8")
    grade([klass], out)
    code, stdout, _ = cli(capsys, "query", "--changed", "--out", out, "--json")
    assert [row["learner"] for row in json.loads(stdout)] == ["bob"]
    code, _, err = cli(capsys, "query", "--check", "ce-grad-analitic", "--out", out)
    assert code == 2 and "did you mean 'ce-grad-analytic'" in err


# ----------------------------------------------------------------------------- 6. release per learner

def test_release_holds_only_each_learners_own_feedback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    members = {"learner-ka1": "borja", "learner-kb2": "sign-flipped", "learner-kc3": "deliverable-photo"}
    klass = make_class(tmp_path / "class", members)
    (klass / "overrides.yaml").write_text(
        "- {learner: learner-kb2, lab: phase-04/lab-00, check: ce-grad-analytic, status: pass, reason: agreed in class}\n",
        encoding="utf-8")
    out = tmp_path / "out"
    grade([klass], out)
    released = tmp_path / "release"
    code, stdout, _ = cli(capsys, "release", "--out", released, "--reports", out)
    assert code == 0 and "3 learners" in stdout
    names = set(members)
    for learner in names:
        folder = released / learner
        files = sorted(p.name for p in folder.iterdir())
        labs = ["phase-04-lab-00", *(["phase-05-lab-02"] if members[learner] == "borja" else [])]
        assert files == sorted([*(f"{lab}.{kind}" for lab in labs for kind in ("html", "md")), "summary.json"])
        with zipfile.ZipFile(released / f"{learner}.zip") as archive:
            assert sorted(archive.namelist()) == [f"{learner}/{f}" for f in files]
            blobs = [archive.read(n).decode("utf-8") for n in archive.namelist()]
        for other in names - {learner}:
            assert all(other not in blob for blob in blobs), (learner, other)
    assert "agreed in class" in (released / "learner-kb2" / "phase-04-lab-00.md").read_text(encoding="utf-8")
    code, _, err = cli(capsys, "release", "--out", out, "--reports", out)
    assert code == 2 and "class's reports folder" in err


# ----------------------------------------------------------------------------- 7. the history stays small

def test_unchanged_reruns_of_300_learners_grow_the_gradebook_by_under_50_kb(tmp_path: Path) -> None:
    klass = tmp_path / "class"
    for i in range(300):  # a deliverable only: every check runs, no learner code is needed to measure the history
        shutil.copytree(FIXTURES / "no-implementation", klass / f"learner-{i:03d}", ignore=shutil.ignore_patterns("EXPECTED.yaml"))
    out = tmp_path / "out"
    grade_class([klass], Options(out=out, jobs=2), rubrics_dir=RUBRICS, lab=LAB)
    db = out / "gradebook.sqlite"
    size = db.stat().st_size
    for _ in range(10):
        run = grade_class([klass], Options(out=out, jobs=2), rubrics_dir=RUBRICS, lab=LAB)
        assert (run.graded, run.reused) == (0, 300)
    grown = db.stat().st_size - size
    assert grown < 50_000, grown
    with sqlite3.connect(db) as connection:
        assert connection.execute("select count(*) from attempts").fetchone() == (300,)
        assert connection.execute("select count(*) from runs").fetchone() == (11,)


def test_history_shows_the_instructors_score_and_never_credits_a_rubric_change(tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from grader.store import Store

    db = tmp_path / "gradebook.sqlite"
    check = {"id": "c1", "title": "C", "status": "fail", "score": 0.0, "max_score": 2.0, "acceptance": True,
             "message": "m", "hidden": False, "evidence": None, "override": None}
    result = {"learner": "ana", "lab": LAB, "title": "T", "passed": False, "score": 0.0, "max_score": 2.0, "seconds": 0.1,
              "checks": [check]}
    with Store.open(db) as store:
        first = store.begin_run("0", [], {LAB: "rubric-1"})
        store.record(first, "ana", LAB, "k1", result, reused=False)
        store.finish_run(first, "done")
        second = store.begin_run("0", [], {LAB: "rubric-2"})  # the rubric was loosened: c1 passes now
        passing = {**result, "passed": True, "score": 2.0, "checks": [{**check, "status": "pass", "score": 2.0}]}
        store.record(second, "ana", LAB, "k2", passing, reused=False)
        store.finish_run(second, "done")
        rows = store.history("ana")
    assert rows[1].rubric_changed and rows[1].fixed == ()
    code, stdout, _ = cli(capsys, "history", "ana", "--db", db)
    assert "rubric changed" in stdout and "+fixed" not in stdout
    code, _, err = cli(capsys, "history", "ana", "--db", db, "--lab", "lab-00")
    assert code == 2 and "not a lab name" in err
    code, _, err = cli(capsys, "history", "ana", "--db", tmp_path / "nope.sqlite")
    assert code == 2 and "no such gradebook" in err


def test_subcommands_without_a_gradebook_say_how_to_make_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["review"], ["query", "--review"], ["export", "canvas"], ["release", "--out", tmp_path / "r"]):
        extra = ["--reports", tmp_path / "none"] if argv[0] == "release" else ["--out", tmp_path / "none"]
        code, _, err = cli(capsys, *argv, *extra)
        assert code == 2 and "run grade first" in err and len(err.splitlines()) == 1, (argv, err)


def test_the_subcommands_speak_spanish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    klass = make_class(tmp_path / "class", {"photo": "deliverable-photo", "bob": "sign-flipped"})
    out = tmp_path / "out"
    grade([klass], out)
    code, stdout, _ = cli(capsys, "review", "--out", out, "--lang", "es")
    assert "por revisar" in stdout and "decide una" in stdout
    code, stdout, _ = cli(capsys, "query", "--review", "--out", out, "--lang", "es")
    assert "filas" in stdout
    assert sys.version_info >= (3, 10)


def test_inside_gradescope_the_upload_time_decides_lateness(tmp_path: Path) -> None:
    """``grade gradescope-zip --course`` ships course.yaml beside the rubrics; Gradescope's own upload record comes first."""
    rubrics = tmp_path / "rubrics"
    shutil.copytree(RUBRICS, rubrics, ignore=shutil.ignore_patterns("__pycache__"))
    (rubrics / "course.yaml").write_text("labs:\n  phase-04/lab-00: {due: 2026-10-12T23:59+02:00}\n"
                                         "late: {per_day: 5, cap: 10}\n", encoding="utf-8")
    root = tmp_path / "autograder"
    shutil.copytree(BORJA, root / "submission", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "submission_metadata.json").write_text(json.dumps({"created_at": "2026-10-13T09:00:00.123456+02:00"}),
                                                   encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "grader", "--gradescope-autograder", str(root), "--rubrics", str(rubrics),
                           "--lab", LAB], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    document = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert document["score"] == 25  # 1 day late: 5 points
    assert "handed in 1 day late" in document["output"] and "uploaded 2026-10-13 09:00" in document["output"]


def test_gradescope_zip_ships_a_checked_course_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    course = tmp_path / "course.yaml"
    course.write_text("labs:\n  phase-04/lab-00: {due: 2026-10-12}\n", encoding="utf-8")
    code, _, _ = cli(capsys, "gradescope-zip", RUBRICS / "phase-04" / "lab-00.yaml", "--out", tmp_path / "a.zip",
                     "--course", course)
    assert code == 0
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert archive.read("rubrics/course.yaml") == course.read_bytes()
    course.write_text("labs:\n  phase-04/lab-07: {due: 2026-10-12}\n", encoding="utf-8")
    code, _, err = cli(capsys, "gradescope-zip", RUBRICS / "phase-04" / "lab-00.yaml", "--out", tmp_path / "b.zip",
                       "--course", course)
    assert code == 2 and "no rubric is for lab phase-04/lab-07" in err


def test_the_rosters_language_chooses_a_learners_reports_with_lang_auto(tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", {"ana": "borja", "bob": "sign-flipped"})  # both deliverables are in English
    (klass / "roster.csv").write_text("carpeta;idioma\nana;es\nbob;\n", encoding="utf-8")
    grade([klass], tmp_path / "out")
    assert '<html lang="es">' in (tmp_path / "out" / "ana" / "phase-04-lab-00.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in (tmp_path / "out" / "bob" / "phase-04-lab-00.html").read_text(encoding="utf-8")
    grade([klass], tmp_path / "out2", lang="en")
    assert '<html lang="en">' in (tmp_path / "out2" / "ana" / "phase-04-lab-00.html").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- found by an instructor's QA pass

def test_a_decomposed_folder_name_is_the_rosters_and_the_rules_learner(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """macOS saves "lucía" decomposed (NFD); the roster, the rules and the command line type it composed (NFC)."""
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "lucía")
    klass = make_class(tmp_path / "class", {decomposed: "sign-flipped", "bob": "borja"})
    (klass / "roster.csv").write_text("folder,student id,email\nlucía,S1,l@x\nbob,S2,b@x\n", encoding="utf-8")
    (klass / "overrides.yaml").write_text(
        "- {learner: lucía, lab: phase-04/lab-00, check: ce-grad-analytic, status: pass, reason: sign convention}\n",
        encoding="utf-8")
    out = tmp_path / "out"
    run = grade([klass], out)
    mine = next(r for r in run.results if r.lab == LAB and unicodedata.normalize("NFC", r.learner) == "lucía")
    assert any(c.override is not None for c in mine.checks)
    assert cli(capsys, "export", "canvas", "--out", out)[0] == 0
    rows = list(csv.reader(io.StringIO((out / "canvas.csv").read_text(encoding="utf-8"))))
    assert [row[2] for row in rows[2:]].count("S1") == 1
    code, stdout, _ = cli(capsys, "history", "lucía", "--out", out)
    assert code == 0 and "phase-04/lab-00" in stdout
    code, _, err = cli(capsys, "review", "lucia", LAB, "reflection", "--pass", "--reason", "x", "--out", out)
    assert code == 2 and "did you mean 'lucía'" in err


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_work_changed_after_the_last_commit_is_dated_by_its_files(tmp_path: Path) -> None:
    klass = make_class(tmp_path / "class", {"ana": "borja", "bob": "borja"})
    commit(klass / "ana", "2026-10-01T10:00:00+02:00")
    source = klass / "ana" / "phase-04" / "lab-00-softmax-gradient.py"
    source.write_text(source.read_text(encoding="utf-8") + "\n# fixed after the deadline\n", encoding="utf-8")
    (klass / "course.yaml").write_text("labs:\n  phase-04/lab-00: {due: 2026-10-12 23:59}\n", encoding="utf-8")
    run = grade([klass], tmp_path / "out")
    ana = next(r for r in run.results if r.learner == "ana" and r.lab == LAB)
    assert ana.submitted is not None and ana.submitted.source == "mtime" and ana.adjustments  # today: late


def test_outputs_for_the_class_never_land_in_a_learners_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    klass = make_class(tmp_path / "class", {"ana": "borja", "bob": "sign-flipped"})
    out = tmp_path / "out"
    grade([klass], out)
    for argv in (["release", "--out", klass / "ana" / "fb", "--reports", out],
                 ["export", "csv", "--file", klass / "ana" / "grades.csv", "--out", out],
                 ["release", "--out", out / "sub", "--reports", out]):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and len(err.splitlines()) == 1, (argv, err)
    assert not (klass / "ana" / "fb").exists() and not (klass / "ana" / "grades.csv").exists()
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    code, _, err = cli(capsys, "release", "--out", tmp_path / "afile", "--reports", out)
    assert code == 2 and "a file, not a folder" in err


def test_an_extension_for_no_learner_is_said_and_the_runs_own_files_are_what_exports_use(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    klass = make_class(tmp_path / "class", {"ana": "borja", "bob": "sign-flipped"})
    course = tmp_path / "elsewhere.yaml"
    course.write_text("late: {per_day: 10%}\nlabs:\n  phase-04/lab-00: {due: 2020-01-01}\n"
                      "extensions:\n  - {learner: anna, lab: phase-04/lab-00, days: 9000}\n", encoding="utf-8")
    notes: list[Any] = []
    out = tmp_path / "out"
    grade_class([klass], Options(out=out, jobs=1, course=course), rubrics_dir=RUBRICS, limits=Limits(call_seconds=1.0),
                note=notes.append)
    assert any("the extension for anna matches no learner folder" in str(n) and "did you mean 'ana'" in str(n)
               for n in notes)
    book = gradebook(out)
    assert cli(capsys, "export", "csv", "--out", out, "--file", tmp_path / "e.csv")[0] == 0
    exported = {row["learner"]: row for row in csv.DictReader(io.StringIO((tmp_path / "e.csv").read_text(encoding="utf-8-sig")))}
    assert exported["ana"][f"{LAB} score"] == book["ana"][f"{LAB} score"] == "0"  # the run's --course, not none


@pytest.mark.parametrize(("text", "said"), [
    ("late: {per_day: 150%}\n", "more than the whole lab"),
    ("late: {grace_days: abc}\n", "'abc' is not a number of days"),
    ("labs:\n  phase-04/lab-00: {due: 2026-10-12}\nextensions:\n  - {learner: a, lab: phase-04/lab-00, days: -2}\n",
     "'-2' is not a number of days"),
    ("late: {cap: -3}\n", "a number of 0 or more"),
])
def test_a_course_amount_error_says_what_the_key_takes(text: str, said: str, tmp_path: Path) -> None:
    from grader.course import load_course

    path = tmp_path / "course.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CourseError, match=said):
        load_course(path)


def test_a_plain_number_due_date_is_the_end_of_that_day(tmp_path: Path) -> None:
    from grader.course import load_course

    path = tmp_path / "course.yaml"
    path.write_text("timezone: UTC\nlabs:\n  phase-04/lab-00: {due: 20261115}\n", encoding="utf-8")
    due = load_course(path).due[LAB][0]
    assert (due.day, due.hour, due.minute) == (15, 23, 59)
