"""The gradebook: every run, attempt and check result in one SQLite file.

It answers two questions: "was this exact submission already graded?" (``lookup``, for incremental
re-grading) and "how did this learner get here?" (``history``). A killed run keeps every attempt that was
committed: each ``record`` is a whole attempt, and the caller commits every few hundred milliseconds.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from grader.errors import GraderError
from grader.i18n import Message, msg, verbatim
from grader.model import Status

SCHEMA_VERSION = 3
RUN_STATUSES = ("running", "done", "interrupted")
BUSY_TIMEOUT_SECONDS = 30.0  # another grader finishing its commit; never minutes

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 0 -> 1
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started TEXT NOT NULL,
            finished TEXT,
            grader_version TEXT NOT NULL,
            argv TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'done', 'interrupted')))""",
        """CREATE TABLE rubrics (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            lab TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (run_id, lab))""",
        """CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            learner TEXT NOT NULL,
            lab TEXT NOT NULL,
            key TEXT NOT NULL,
            reused INTEGER NOT NULL CHECK (reused IN (0, 1)),
            score REAL NOT NULL,
            max_score REAL NOT NULL,
            passed INTEGER NOT NULL CHECK (passed IN (0, 1)),
            seconds REAL NOT NULL,
            result_json TEXT NOT NULL)""",
        "CREATE INDEX attempts_by_key ON attempts (learner, lab, key)",
        "CREATE INDEX attempts_by_run ON attempts (run_id)",
        """CREATE TABLE checks (
            attempt_id INTEGER NOT NULL REFERENCES attempts(id),
            check_id TEXT NOT NULL,
            status TEXT NOT NULL,
            score REAL NOT NULL,
            max_score REAL NOT NULL,
            PRIMARY KEY (attempt_id, check_id)) WITHOUT ROWID""",
        """CREATE TABLE outputs (
            out_dir TEXT NOT NULL,
            learner TEXT NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (out_dir, learner)) WITHOUT ROWID""",
    ),
    (  # 1 -> 2: an unchanged re-run writes nothing per learner but ``seen``, which is updated in place
        "ALTER TABLE runs ADD COLUMN class_dir TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN overrides TEXT NOT NULL DEFAULT ''",
        """CREATE TABLE seen (
            learner TEXT NOT NULL,
            lab TEXT NOT NULL,
            attempt_id INTEGER NOT NULL REFERENCES attempts(id),
            last_run INTEGER NOT NULL REFERENCES runs(id),
            submitted TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (learner, lab)) WITHOUT ROWID""",
        """CREATE TABLE labs (
            lab TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            max_score REAL NOT NULL) WITHOUT ROWID""",
        """INSERT INTO seen (learner, lab, attempt_id, last_run)
            SELECT learner, lab, max(CASE WHEN result_json != '' THEN id END), max(run_id) FROM attempts
            GROUP BY learner, lab HAVING max(CASE WHEN result_json != '' THEN id END) IS NOT NULL""",
    ),
    (  # 2 -> 3: the course and roster files a run used, for the subcommands that read the gradebook
        "ALTER TABLE runs ADD COLUMN course TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN roster TEXT NOT NULL DEFAULT ''",
    ),
)
assert len(MIGRATIONS) == SCHEMA_VERSION


@dataclass(frozen=True)
class HistoryRow:
    """One graded attempt of one lab, and how its checks moved since the learner's previous attempt of it."""

    time: datetime  # when the run started (UTC)
    run_id: int
    lab: str
    score: float
    max_score: float
    passed: bool
    reused: bool  # (gradebooks before schema 2) the submission was unchanged, so the stored result was used again
    changed: tuple[tuple[str, str, str], ...] = ()  # (check id, status before, status now)
    rubric_changed: bool = False  # graded under another rubric than the attempt before: not the learner's doing
    unchanged_since: datetime | None = None  # the latest attempt: later runs found the submission unchanged, the last then
    instructor_score: float | None = None  # the current attempt, with the overrides and adjustments in force
    instructor_passed: bool | None = None
    current: bool = False  # the attempt the learner's latest run stands on (an older one when they went back to it)

    @property
    def fixed(self) -> tuple[str, ...]:
        if self.rubric_changed:
            return ()
        return tuple(c for c, before, now in self.changed if not _earns(before) and _earns(now))

    @property
    def broke(self) -> tuple[str, ...]:
        if self.rubric_changed:
            return ()
        return tuple(c for c, before, now in self.changed if _earns(before) and not _earns(now))


@dataclass(frozen=True)
class Latest:
    """A learner × lab's most recent result as the history holds it (the grader's own, before overrides)."""

    result: dict[str, Any]
    attempt_run: int  # the run that graded it
    last_run: int  # the last run that saw it (unchanged since the attempt when later)
    submitted: dict[str, str] | None
    key: str = ""


_LOOKUP_CHUNK = 300  # three parameters each: well within SQLite's limit on one statement's parameters


def _earns(status: str) -> bool:
    return status in (Status.PASS.value, Status.REVIEW.value)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """One connection per process, opened by ``Store.open``; not to be shared across ``fork``."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._pid = os.getpid()

    @classmethod
    def open(cls, path: Path) -> Store:
        """Create or upgrade the file; refuse one that is not a gradebook or is newer than this grader."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise GraderError(msg("store.cannot_open", path=str(path), error=verbatim(str(exc)))) from None
        store = cls(path, db)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # with WAL: a killed process loses nothing committed
            db.execute("PRAGMA foreign_keys = ON")
            store._migrate()
        except sqlite3.DatabaseError as exc:
            db.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise GraderError(msg("store.locked", path=str(path))) from None
            raise GraderError(msg("store.unusable", path=str(path), error=verbatim(str(exc)))) from None
        except BaseException:
            db.close()
            raise
        return store

    def _migrate(self) -> None:
        """Upgrades run in one immediate transaction, re-checked inside it, so two graders never both migrate.

        An up-to-date file takes no write lock here: ``grade history`` must not wait for a running batch.
        """
        db = self._db
        if self._version() == SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = self._version()
            if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise GraderError(msg("store.not_a_gradebook", path=str(self.path)))
            for step in MIGRATIONS[version:]:
                for statement in step:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _version(self) -> int:
        version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise GraderError(msg("store.too_new", path=str(self.path), version=version, known=SCHEMA_VERSION))
        return version

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            raise GraderError(msg("store.forked", path=str(self.path)))
        return self._db

    def _fail(self, exc: sqlite3.Error, doing: Message) -> GraderError:
        """``doing``: what could not be done (``store.doing.*``); SQLite's own words are data."""
        return GraderError(msg("store.failed", path=str(self.path), doing=doing, error=verbatim(str(exc))))

    def _begin(self, db: sqlite3.Connection) -> None:
        if not db.in_transaction:
            db.execute("BEGIN")

    def begin_run(self, version: str, argv: Sequence[str], rubric_hashes: Mapping[str, str], *,
                  class_dir: str = "", overrides: str = "", course: str = "", roster: str = "") -> int:
        """Committed at once, so a run that is killed still shows up (as 'running'). ``class_dir`` and ``overrides``:
        where the class's own files were looked up, so ``grade review``, ``query`` and ``export`` find them again."""
        db = self._conn()
        try:
            self._begin(db)
            run_id = db.execute(
                "INSERT INTO runs (started, grader_version, argv, status, class_dir, overrides, course, roster)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                (_now(), version, json.dumps(list(argv), ensure_ascii=False), class_dir, overrides, course, roster),
            ).lastrowid
            db.executemany("INSERT INTO rubrics (run_id, lab, hash) VALUES (?, ?, ?)",
                           [(run_id, lab, digest) for lab, digest in sorted(rubric_hashes.items())])
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.start")) from None
        assert run_id is not None
        return run_id

    def set_labs(self, labs: Mapping[str, tuple[Mapping[str, str], float]]) -> None:
        """Every lab the rubrics define (title per language, maximum), updated in place: an export gives a column, and a
        0 out of its maximum, to a lab nobody has handed in yet."""
        db = self._conn()
        try:
            self._begin(db)
            db.executemany("INSERT INTO labs (lab, title, max_score) VALUES (?, ?, ?) ON CONFLICT (lab) DO UPDATE SET"
                           " title = excluded.title, max_score = excluded.max_score",
                           [(lab, json.dumps(dict(title), ensure_ascii=False), float(most))
                            for lab, (title, most) in sorted(labs.items())])
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.record")) from None

    def labs(self) -> dict[str, tuple[dict[str, str], float]]:
        try:
            rows = self._conn().execute("SELECT lab, title, max_score FROM labs ORDER BY lab").fetchall()
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.read")) from None
        return {lab: (json.loads(title), most) for lab, title, most in rows}

    def lookup(self, learner: str, lab: str, key: str) -> dict[str, Any] | None:
        """The latest stored result for exactly this submission key, or None."""
        return self.lookup_many([(learner, lab, key)]).get((learner, lab))

    def lookup_many(self, wanted: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """``lookup`` for a whole class at once: (learner, lab) -> the latest result stored under exactly that key."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        try:
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                chunk = wanted[start:start + _LOOKUP_CHUNK]
                rows = self._conn().execute(  # the wanted rows drive the join: each one an index search
                    f"SELECT a.learner, a.lab, a.result_json FROM (VALUES {', '.join(['(?, ?, ?)'] * len(chunk))}) AS v"
                    " JOIN attempts AS a ON a.learner = v.column1 AND a.lab = v.column2 AND a.key = v.column3"
                    " WHERE a.result_json != '' ORDER BY a.id",
                    [part for triple in chunk for part in triple]).fetchall()
                found.update({(learner, lab): text for learner, lab, text in rows})  # the latest id last: it wins
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.read")) from None
        return {pair: json.loads(text) for pair, text in found.items()}

    def record(self, run_id: int, learner: str, lab: str, key: str, result: Mapping[str, Any], reused: bool,
               submitted: Mapping[str, str] | None = None) -> None:
        """Store one attempt (``lab_to_dict`` output, before overrides); visible to others after ``commit``.

        A reused result adds no row: only ``seen`` (one row per learner and lab, updated in place) moves, so an
        unchanged re-run of the class grows the file by its ``runs`` row alone."""
        checks = result["checks"]
        if any(c.get("override") for c in checks):
            raise ValueError("record the grader's own result: overrides are applied after the gradebook, not stored in it")
        stamp = json.dumps(dict(submitted), sort_keys=True) if submitted else ""
        db = self._conn()
        if reused:
            try:
                self._begin(db)
                updated = db.execute(
                    "UPDATE seen SET last_run = ?, submitted = ?, attempt_id = coalesce((SELECT id FROM attempts WHERE"
                    " learner = ? AND lab = ? AND key = ? AND result_json != '' ORDER BY id DESC LIMIT 1), attempt_id)"
                    " WHERE learner = ? AND lab = ?", (run_id, stamp, learner, lab, key, learner, lab)).rowcount
            except sqlite3.Error as exc:
                raise self._fail(exc, msg("store.doing.record")) from None
            if updated:
                return
        text = json.dumps(result, allow_nan=False, separators=(",", ":"))  # ASCII parses ~1.5x faster in lookup
        try:
            self._begin(db)
            db.execute("SAVEPOINT attempt")
            try:
                attempt_id = db.execute(
                    "INSERT INTO attempts (run_id, learner, lab, key, reused, score, max_score, passed, seconds, result_json)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, learner, lab, key, int(bool(reused)), float(result["score"]), float(result["max_score"]),
                     int(bool(result["passed"])), float(result.get("seconds") or 0.0), text),
                ).lastrowid
                db.executemany(
                    "INSERT INTO checks (attempt_id, check_id, status, score, max_score) VALUES (?, ?, ?, ?, ?)",
                    [(attempt_id, c["id"], c["status"], float(c["score"]), float(c["max_score"])) for c in checks],
                )
                db.execute("INSERT INTO seen (learner, lab, attempt_id, last_run, submitted) VALUES (?, ?, ?, ?, ?)"
                           " ON CONFLICT (learner, lab) DO UPDATE SET attempt_id = excluded.attempt_id,"
                           " last_run = excluded.last_run, submitted = excluded.submitted",
                           (learner, lab, attempt_id, run_id, stamp))
            except BaseException:
                db.execute("ROLLBACK TO attempt")
                raise
            finally:
                db.execute("RELEASE attempt")
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.record")) from None

    def latest_results(self) -> list[dict[str, Any]]:
        """Every learner × lab's most recent result (the grader's own), for class files that must cover the whole
        class when a run grades only some of it."""
        return [latest.result for latest in self.latest()]

    def latest(self) -> list[Latest]:
        """Every learner × lab's most recent result, with when it was graded, last seen and handed in."""
        try:
            rows = self._conn().execute(
                "SELECT a.result_json, a.run_id, s.last_run, s.submitted, a.key FROM seen s"
                " JOIN attempts a ON a.id = s.attempt_id ORDER BY s.learner, s.lab").fetchall()
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.read")) from None
        return [Latest(json.loads(text), run, last, json.loads(stamp) if stamp else None, key)
                for text, run, last, stamp, key in rows if text]

    def last_run(self) -> dict[str, Any] | None:
        """The latest finished run: its id, start, class folder and overrides file (as it looked them up)."""
        try:
            row = self._conn().execute(
                "SELECT id, started, class_dir, overrides, course, roster FROM runs WHERE status = 'done'"
                " ORDER BY id DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.read")) from None
        if row is None:
            return None
        return {"id": row[0], "started": datetime.fromisoformat(row[1]), "class_dir": row[2], "overrides": row[3],
                "course": row[4], "roster": row[5]}

    def run_started(self, run_id: int) -> datetime | None:
        try:
            row = self._conn().execute("SELECT started FROM runs WHERE id = ?", (run_id,)).fetchone()
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.read")) from None
        return datetime.fromisoformat(row[0]) if row else None

    def output_digests(self, out_dir: str) -> dict[str, str]:
        """learner -> digest of what their report files in ``out_dir`` were last rendered from."""
        try:
            rows = self._conn().execute("SELECT learner, digest FROM outputs WHERE out_dir = ?", (out_dir,)).fetchall()
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.read")) from None
        return dict(rows)

    def set_output_digest(self, out_dir: str, learner: str, digest: str) -> None:
        """Part of the pending transaction, like ``record``: durable at the next ``commit``."""
        db = self._conn()
        try:
            self._begin(db)
            db.execute("INSERT INTO outputs (out_dir, learner, digest) VALUES (?, ?, ?)"
                       " ON CONFLICT (out_dir, learner) DO UPDATE SET digest = excluded.digest", (out_dir, learner, digest))
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.record")) from None

    def commit(self) -> None:
        """Make every attempt recorded so far durable; cheap enough to call a few times a second."""
        db = self._conn()
        try:
            if db.in_transaction:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.commit")) from None

    def finish_run(self, run_id: int, status: str) -> None:
        """Commits pending attempts too; ``status`` is 'done' or 'interrupted'."""
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"run status must be 'done' or 'interrupted', not {status!r}")
        db = self._conn()
        try:
            self._begin(db)
            db.execute("UPDATE runs SET finished = ?, status = ? WHERE id = ?", (_now(), status, run_id))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.finish")) from None

    def history(self, learner: str, lab: str | None = None) -> list[HistoryRow]:
        """Every attempt of the learner (one lab, or all), oldest first."""
        where, params = ("a.learner = ?", [learner]) if lab is None else ("a.learner = ? AND a.lab = ?", [learner, lab])
        db = self._conn()
        try:
            attempts = db.execute(
                "SELECT a.id, r.started, a.run_id, a.lab, a.score, a.max_score, a.passed, a.reused,"
                " (SELECT h.hash FROM rubrics h WHERE h.run_id = a.run_id AND h.lab = a.lab)"
                f" FROM attempts a JOIN runs r ON r.id = a.run_id WHERE {where} ORDER BY a.id", params,
            ).fetchall()
            seen = {row[0]: (row[1], datetime.fromisoformat(row[2]), row[3]) for row in db.execute(
                "SELECT s.lab, s.attempt_id, r.started, s.last_run FROM seen s JOIN runs r ON r.id = s.last_run"
                f" WHERE s.learner = ?{' AND s.lab = ?' if lab is not None else ''}", params)}
            statuses: dict[int, dict[str, str]] = {}
            for attempt_id, check_id, status in db.execute(
                f"SELECT c.attempt_id, c.check_id, c.status FROM checks c JOIN attempts a ON a.id = c.attempt_id WHERE {where}",
                params,
            ):
                statuses.setdefault(attempt_id, {})[check_id] = status
        except sqlite3.Error as exc:
            raise self._fail(exc, msg("store.doing.read")) from None
        previous: dict[str, dict[str, str]] = {}
        rubric_of: dict[str, str | None] = {}
        rows = []
        for attempt_id, started, run_id, lab_id, score, max_score, passed, reused, rubric_hash in attempts:
            now = statuses.get(attempt_id, {})
            before = previous.get(lab_id)
            changed = () if before is None else tuple(
                (c, before[c], s) for c, s in now.items() if c in before and before[c] != s
            )
            rubric_changed = before is not None and not reused and rubric_of.get(lab_id) != rubric_hash
            previous[lab_id] = now
            if not reused:
                rubric_of[lab_id] = rubric_hash
            when = datetime.fromisoformat(started)
            last = seen.get(lab_id)
            since = last[1] if last is not None and last[0] == attempt_id and last[2] != run_id else None  # ids: two runs
            # may start in the same millisecond
            rows.append(HistoryRow(when, run_id, lab_id, score, max_score, bool(passed), bool(reused), changed,
                                   rubric_changed, since, current=last is not None and last[0] == attempt_id))
        return rows

    def close(self) -> None:
        """Commits what was recorded: every recorded attempt is whole, so keeping it is always safe."""
        if os.getpid() != self._pid:
            return
        try:
            self.commit()
        finally:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
