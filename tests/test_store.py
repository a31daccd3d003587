"""The SQLite gradebook: schema, record and lookup, history, a killed writer, files that are not gradebooks."""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from grader.errors import GraderError
from grader.history import render_history
from grader.model import CheckResult, LabResult, Status
from grader.overrides import Rule, apply_overrides
from grader.results import lab_from_dict, lab_to_dict
from grader.store import SCHEMA_VERSION, HistoryRow, Store

LAB = "phase-04/lab-00"


def result(learner: str = "borja", lab: str = LAB, **statuses: Status) -> dict[str, Any]:
    """A lab_to_dict dict; keyword arguments change check statuses (points follow the status)."""
    names = ("implementation-found", "softmax-correct", "jacobian-analytic", "derivation")
    checks = []
    for name in names:
        status = statuses.get(name.replace("-", "_"), Status.PASS)
        checks.append(CheckResult(name, name.title(), status, 2.0 if status.earns_points else 0.0, 2.0, name != "derivation", "m"))
    return lab_to_dict(LabResult(learner, lab, "Softmax", tuple(checks), seconds=0.25))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state" / "gradebook.sqlite")
    yield s
    s.close()


def sql(path: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """A second, independent reader: what any SQL tool would see."""
    db = sqlite3.connect(path)
    try:
        return db.execute(query, params).fetchall()
    finally:
        db.close()


def test_open_creates_the_folder_and_the_schema(store: Store) -> None:
    assert store.path.is_file()
    columns = {t: [row[1] for row in sql(store.path, f"PRAGMA table_info({t})")] for t in ("runs", "rubrics", "attempts", "checks")}
    assert columns == {
        "runs": ["id", "started", "finished", "grader_version", "argv", "status", "class_dir", "overrides", "course",
                 "roster"],
        "rubrics": ["run_id", "lab", "hash"],
        "attempts": ["id", "run_id", "learner", "lab", "key", "reused", "score", "max_score", "passed", "seconds", "result_json"],
        "checks": ["attempt_id", "check_id", "status", "score", "max_score"],
    }
    assert [row[1] for row in sql(store.path, "PRAGMA table_info(outputs)")] == ["out_dir", "learner", "digest"]
    assert [row[1] for row in sql(store.path, "PRAGMA table_info(seen)")] == ["learner", "lab", "attempt_id", "last_run",
                                                                               "submitted"]
    assert sql(store.path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert sql(store.path, "PRAGMA journal_mode") == [("wal",)]
    assert [r[2] for r in sql(store.path, "PRAGMA index_info(attempts_by_key)")] == ["learner", "lab", "key"]
    plan = " ".join(str(r) for r in sql(store.path, "EXPLAIN QUERY PLAN SELECT result_json FROM attempts "
                                                    "WHERE learner = 'a' AND lab = 'b' AND key = 'c' ORDER BY id DESC LIMIT 1"))
    assert "attempts_by_key" in plan and "TEMP B-TREE" not in plan


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "gb.sqlite"
    with Store.open(path) as s:
        run = s.begin_run("0.1.0", ["grade", "learners"], {LAB: "h1"})
        s.record(run, "borja", LAB, "k1", result(), reused=False)
    with Store.open(path) as s:
        assert s.lookup("borja", LAB, "k1") == result()


def test_runs_and_rubrics(store: Store) -> None:
    run = store.begin_run("0.1.0", ["grade", "learners", "--lab", LAB], {LAB: "abc", "phase-05/lab-02": "def"})
    assert sql(store.path, "SELECT id, finished, grader_version, argv, status FROM runs") == [
        (run, None, "0.1.0", '["grade", "learners", "--lab", "phase-04/lab-00"]', "running"),
    ]
    assert sql(store.path, "SELECT lab, hash FROM rubrics WHERE run_id = ? ORDER BY lab", run) == [(LAB, "abc"), ("phase-05/lab-02", "def")]
    started = datetime.fromisoformat(sql(store.path, "SELECT started FROM runs")[0][0])
    assert abs((datetime.now(timezone.utc) - started).total_seconds()) < 60
    store.finish_run(run, "done")
    assert sql(store.path, "SELECT status, finished IS NOT NULL FROM runs") == [("done", 1)]
    with pytest.raises(ValueError, match="'done' or 'interrupted'"):
        store.finish_run(run, "running")


def test_record_lookup_and_every_check_is_queryable(store: Store) -> None:
    run = store.begin_run("0.1.0", [], {LAB: "h"})
    first, second = result(), result(jacobian_analytic=Status.FAIL)
    store.record(run, "borja", LAB, "k1", first, reused=False)
    store.record(run, "ana", LAB, "k1", second, reused=False)
    store.record(run, "borja", LAB, "k1", second, reused=False)
    assert store.lookup("borja", LAB, "k1") == second  # the latest with that key
    store.record(run, "borja", LAB, "k1", second, reused=True)
    assert store.lookup("borja", LAB, "k1") == second  # a reused result adds no attempt: only ``seen`` moves
    assert store.lookup("borja", LAB, "k2") is None
    assert store.lookup("borja", "phase-05/lab-02", "k1") is None
    assert sql(store.path, "SELECT count(*) FROM attempts") == [(0,)]
    store.commit()
    assert sql(store.path, "SELECT learner, reused, score, max_score, passed, seconds FROM attempts ORDER BY id") == [
        ("borja", 0, 8.0, 8.0, 1, 0.25), ("ana", 0, 6.0, 8.0, 0, 0.25), ("borja", 0, 6.0, 8.0, 0, 0.25),
    ]
    assert sql(store.path, "SELECT learner, lab, attempt_id, last_run FROM seen ORDER BY learner") == [
        ("ana", LAB, 2, run), ("borja", LAB, 3, run)]
    failing = sql(store.path, "SELECT a.learner, c.check_id, c.score, c.max_score FROM checks c JOIN attempts a ON a.id = c.attempt_id "
                              "WHERE c.status = 'fail' ORDER BY a.id")
    assert failing == [("ana", "jacobian-analytic", 0.0, 2.0), ("borja", "jacobian-analytic", 0.0, 2.0)]
    assert sql(store.path, "SELECT count(*) FROM checks") == [(12,)]
    assert lab_to_dict(lab_from_dict(store.lookup("borja", LAB, "k1") or {})) == second


def test_record_refuses_results_with_overrides(store: Store) -> None:
    run = store.begin_run("0.1.0", [], {})
    raw = lab_from_dict(result(jacobian_analytic=Status.FAIL))
    decided = apply_overrides([raw], [Rule("borja", LAB, "jacobian-analytic", "ok", Status.PASS, None, "o.yaml:1")])[0]
    with pytest.raises(ValueError, match="overrides are applied after the gradebook"):
        store.record(run, "borja", LAB, "k", lab_to_dict(decided), reused=False)
    store.commit()
    assert sql(store.path, "SELECT count(*) FROM attempts") == [(0,)]


def test_a_failed_record_leaves_no_half_attempt(store: Store) -> None:
    run = store.begin_run("0.1.0", [], {})
    broken = result()
    broken["checks"].append(copy.deepcopy(broken["checks"][0]))  # the same check id twice
    with pytest.raises(GraderError, match="cannot record in the gradebook: UNIQUE constraint failed"):
        store.record(run, "borja", LAB, "k", broken, reused=False)
    store.record(run, "borja", LAB, "k2", result(), reused=False)
    store.commit()
    assert sql(store.path, "SELECT key FROM attempts") == [("k2",)]
    assert sql(store.path, "SELECT count(*) FROM checks") == [(4,)]


def test_history_says_what_changed_since_the_previous_attempt(store: Store) -> None:
    first = store.begin_run("0.1.0", [], {})
    store.record(first, "borja", LAB, "k1", result(jacobian_analytic=Status.FAIL, derivation=Status.SKIP), reused=False)
    store.record(first, "borja", "phase-05/lab-02", "p1", result(lab="phase-05/lab-02"), reused=False)
    store.record(first, "ana", LAB, "a1", result("ana"), reused=False)
    store.finish_run(first, "done")
    second = store.begin_run("0.1.0", [], {})
    store.record(second, "borja", LAB, "k2", result(softmax_correct=Status.ERROR, derivation=Status.FAIL), reused=False)
    store.record(second, "borja", "phase-05/lab-02", "p1", result(lab="phase-05/lab-02"), reused=True)
    store.finish_run(second, "interrupted")
    third = store.begin_run("0.1.0", [], {})
    store.record(third, "borja", LAB, "k3", result(), reused=False)
    store.commit()

    rows = store.history("borja")
    assert [(r.run_id, r.lab, r.score, r.passed, r.reused) for r in rows] == [
        (first, LAB, 4.0, False, False),
        (first, "phase-05/lab-02", 8.0, True, False),
        (second, LAB, 4.0, False, False),
        (third, LAB, 8.0, True, False),
    ]
    assert rows[0].changed == () and rows[1].unchanged_since is not None  # the unchanged lab-02: seen again in run 2
    assert set(rows[2].changed) == {("softmax-correct", "pass", "error"), ("jacobian-analytic", "fail", "pass"), ("derivation", "skip", "fail")}
    assert (rows[2].fixed, rows[2].broke) == (("jacobian-analytic",), ("softmax-correct",))
    assert (set(rows[3].fixed), rows[3].broke) == ({"softmax-correct", "derivation"}, ())
    assert [r.run_id for r in store.history("borja", LAB)] == [first, second, third]
    assert store.history("nobody") == []
    assert all(r.time.tzinfo is not None for r in rows)


def at(hour: int) -> datetime:
    return datetime(2026, 11, 27, hour, 5, tzinfo=timezone.utc)


def local(t: datetime) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def test_render_history() -> None:
    rows = [
        HistoryRow(at(9), 1, LAB, 4.0, 8.0, False, False),
        HistoryRow(at(10), 2, LAB, 6.0, 8.0, False, False, (("a", "fail", "pass"), ("b", "error", "pass"), ("c", "pass", "fail"))),
        HistoryRow(at(11), 3, LAB, 6.0, 8.0, False, True),
        HistoryRow(at(12), 4, "phase-05/lab-02", 21.33333, 30.0, True, False, (("d", "fail", "review"),)),
        HistoryRow(at(13), 5, LAB, 2.0, 8.0, False, False, (("c", "pass", "skip"), ("e", "fail", "error"))),
    ]
    assert render_history(rows, "borja").splitlines() == [
        "history of borja: 5 attempts, oldest first (local time)",
        f"{local(at(9))}  phase-04/lab-00     4.0/8.0  NOT PASSED",
        f"{local(at(10))}  phase-04/lab-00     6.0/8.0  NOT PASSED  +fixed: a, b / -now failing: c",
        f"{local(at(11))}  phase-04/lab-00     6.0/8.0  NOT PASSED  reused",
        f"{local(at(12))}  phase-05/lab-02  21.33/30.0  PASSED      +fixed: d",
        f"{local(at(13))}  phase-04/lab-00     2.0/8.0  NOT PASSED  -now failing: c",
    ]
    assert "\x1b" not in render_history(rows, "borja")


def test_render_history_when_there_is_none(tmp_path: Path) -> None:
    db = tmp_path / "gradebook.sqlite"
    assert render_history([], "zoe", db=db) == (
        f"no grading history for zoe in the gradebook {db} — grade their folder first (e.g. grade learners/zoe); "
        "every run adds to the history\n"
    )
    assert render_history([], "zoe", lab=LAB).startswith(f"no grading history for zoe in {LAB} — ")


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys, json
    from grader.store import Store
    store = Store.open(sys.argv[1])
    result = json.loads(sys.argv[2])
    run = store.begin_run("0.1.0", ["grade"], {})
    for i in range(3):
        store.record(run, f"learner-{i}", "phase-04/lab-00", f"k{i}", result, reused=False)
    store.commit()
    for i in range(3, 5):
        store.record(run, f"learner-{i}", "phase-04/lab-00", f"k{i}", result, reused=False)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_killed_writer_keeps_what_it_committed(tmp_path: Path) -> None:
    path = tmp_path / "gradebook.sqlite"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), json.dumps(result())],
                          check=False, capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    with Store.open(path) as s:
        assert sql(path, "SELECT status, finished FROM runs") == [("running", None)]
        assert sql(path, "SELECT learner FROM attempts ORDER BY id") == [("learner-0",), ("learner-1",), ("learner-2",)]
        assert sql(path, "SELECT count(*) FROM checks") == [(12,)]
        assert s.lookup("learner-2", LAB, "k2") == result()
        assert s.lookup("learner-3", LAB, "k3") is None
        run = s.begin_run("0.1.0", ["grade"], {})
        assert run == 2


def test_an_abandoned_connection_loses_only_what_was_not_committed(tmp_path: Path) -> None:
    path = tmp_path / "gradebook.sqlite"
    s = Store.open(path)
    run = s.begin_run("0.1.0", [], {})
    s.record(run, "borja", LAB, "k1", result(), reused=False)
    s.commit()
    s.record(run, "ana", LAB, "k1", result("ana"), reused=False)
    s._db.rollback()  # what SQLite does with an open transaction when the process dies
    s._db.close()
    with Store.open(path) as again:
        assert [r.lab for r in again.history("borja")] == [LAB] and again.history("ana") == []
        assert sql(path, "SELECT status FROM runs") == [("running",)]


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "gradebook.sqlite"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(GraderError) as caught:
        Store.open(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a usable gradebook (SQLite: file is not a database) — move the file away")
    assert f"mv {path} {path}.broken" in message and "\n" not in message
    assert path.read_bytes().startswith(b"these are my notes")


def test_another_programs_database_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    sql(path, "CREATE TABLE notes (x)")
    with pytest.raises(GraderError, match=r"other\.sqlite: an SQLite database, but not a grader gradebook — choose another file"):
        Store.open(path)
    assert sql(path, "SELECT name FROM sqlite_master") == [("notes",)]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gradebook.sqlite"
    Store.open(path).close()
    sql(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(GraderError) as caught:
        Store.open(path)
    assert str(caught.value) == (f"{path}: this gradebook has schema version {SCHEMA_VERSION + 1}, newer than this grader "
                                 f"understands ({SCHEMA_VERSION}) — upgrade the grader, or use another gradebook file")


def test_gradebook_errors_are_said_in_the_instructors_language(tmp_path: Path) -> None:
    """SQLite's own words stay as they are; ours are the catalogue's."""
    path = tmp_path / "gradebook.sqlite"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(GraderError) as caught:
        Store.open(path)
    assert caught.value.message.id == "store.unusable"
    assert str(caught.value).startswith(f"{path}: not a usable gradebook (SQLite: file is not a database)")
    assert caught.value.said("es") == (f"{path}: no es un registro de notas utilizable (SQLite: file is not a database) — "
                                       f"aparta el archivo (p. ej. mv {path} {path}.broken) y vuelve a ejecutar para "
                                       "empezar uno nuevo")


def test_a_failed_write_says_what_could_not_be_done_in_spanish(store: Store) -> None:
    run = store.begin_run("0.1.0", [], {})
    store.record(run, "borja", LAB, "k", result(), reused=False)
    broken = result()
    broken["checks"] = broken["checks"] + broken["checks"][:1]  # the same check twice
    with pytest.raises(GraderError) as caught:
        store.record(run, "borja", LAB, "k2", broken, reused=False)
    assert str(caught.value).endswith(": cannot record in the gradebook: UNIQUE constraint failed: checks.attempt_id, "
                                      "checks.check_id — check the disk and that no other program holds the file")
    assert ": no se puede guardar en el registro de notas: UNIQUE constraint failed" in caught.value.said("es")


def test_a_folder_in_the_way(tmp_path: Path) -> None:
    with pytest.raises(GraderError, match=r": cannot open the gradebook: unable to open database file — choose another file$"):
        Store.open(tmp_path)


def test_a_second_reader_sees_only_committed_work(tmp_path: Path) -> None:
    path = tmp_path / "gradebook.sqlite"
    with Store.open(path) as writer, Store.open(path) as reader:
        run = writer.begin_run("0.1.0", [], {})
        writer.record(run, "borja", LAB, "k", result(), reused=False)
        assert reader.lookup("borja", LAB, "k") is None
        writer.commit()
        assert reader.lookup("borja", LAB, "k") == result()


def test_output_digests(store: Store) -> None:
    assert store.output_digests("/r") == {}
    store.set_output_digest("/r", "borja", "d1")
    store.set_output_digest("/r", "ana", "d2")
    store.set_output_digest("/other", "borja", "d3")
    store.set_output_digest("/r", "borja", "d4")
    assert store.output_digests("/r") == {"borja": "d4", "ana": "d2"}
    store.commit()
    assert sql(store.path, "SELECT out_dir, learner, digest FROM outputs ORDER BY out_dir, learner") == [
        ("/other", "borja", "d3"), ("/r", "ana", "d2"), ("/r", "borja", "d4"),
    ]


def test_opening_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "gradebook.sqlite"
    with Store.open(path) as writer:
        run = writer.begin_run("0.1.0", [], {})
        writer.record(run, "borja", LAB, "k", result(), reused=False)  # holds the write lock until commit
        with Store.open(path) as reader:
            assert reader.history("borja") == []
        writer.commit()


def test_a_schema_1_gradebook_is_upgraded_in_place_keeping_its_history(tmp_path: Path) -> None:
    """Gradebooks written before ``seen`` existed: every learner × lab's latest stored result becomes its ``seen`` row."""
    from grader.store import MIGRATIONS

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO runs VALUES (1, '2026-11-01T10:00:00+00:00', NULL, '0.1', '[]', 'done')")
    db.execute("INSERT INTO runs VALUES (2, '2026-11-02T10:00:00+00:00', NULL, '0.1', '[]', 'done')")
    text = json.dumps(result())
    db.execute("INSERT INTO attempts VALUES (1, 1, 'borja', ?, 'k1', 0, 8, 8, 1, 0.2, ?)", (LAB, text))
    db.execute("INSERT INTO attempts VALUES (2, 2, 'borja', ?, 'k1', 1, 8, 8, 1, 0.2, '')", (LAB,))  # reused then
    db.commit()
    db.close()
    with Store.open(path) as store:
        [latest] = store.latest()
        assert (latest.attempt_run, latest.last_run, latest.key) == (1, 2, "k1") and latest.result["learner"] == "borja"
        assert [r.reused for r in store.history("borja")] == [False, True]
    assert sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
