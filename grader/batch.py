"""Grade a class: every learner across all cores (or a Dask cluster), reusing what has not changed.

The parent plans (which labs, which content keys, what the store already has), hands the rest to an
executor, records each finished learner in the store as it arrives (so a killed run resumes), and
writes the class outputs last. Per-learner reports are written where the learner was graded, so
rendering runs on every core too.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import dataclasses
import fcntl
import hashlib
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import __version__, phases
from grader.errors import GraderError, Interrupted, SandboxError, UsageError
from grader.i18n import Message, class_language, msg
from grader.grading import Note, find_learners, grade_lab, is_learner, select_rubrics
from grader.learnerfiles import walk
from grader.submission import applies, handed_in, phase_folder
from grader.model import LabResult, Rubric, Submitted
from grader.phases import phase
from grader.progress import Progress, Silent
from grader.sandbox import Limits
from grader.term import Decisions, finalize

_COMMIT_EVERY = 0.5  # seconds: what a killed run loses at most


@dataclass(frozen=True)
class Options:
    """What the instructor asked for, beyond which learners and labs."""

    out: Path
    jobs: int = 0  # 0: every core
    force: bool = False
    executor: str = "local"  # or "dask"
    scheduler: str | None = None
    db: Path | None = None  # default <out>/gradebook.sqlite
    overrides: Path | None = None  # else the class folder's overrides.yaml
    course: Path | None = None  # else the class folder's course.yaml
    roster: Path | None = None  # else the class folder's roster.csv
    gradescope: bool = False
    junit: Path | None = None
    lang: str = "auto"  # the reports' language: "en", "es", or each learner's own ("auto")
    argv: tuple[str, ...] = ()
    also_writes: tuple[Path, ...] = ()  # other files of the run (--json): no learner's reports may take their place
    similar: float | None = 0.6  # a whole-class run's similar-pair threshold (grader.similarity); None: not compared
    history: bool = True  # read each learner's git history for "paper before code" (grader.provenance)


@dataclass(frozen=True)
class ClassRun:
    """The run's results (overrides applied), where the reports are, and what was reused."""

    results: tuple[LabResult, ...]
    report_paths: dict[tuple[str, str], Path]
    graded: int  # learners graded in this run
    reused: int  # learners whose every lab was unchanged
    outputs: tuple[Path, ...] = ()  # class-level files written
    run_id: int = 0
    rerendered: int = 0  # learners whose reports were only written again (a decision or a template changed)
    class_results: tuple[LabResult, ...] = ()  # the whole class as the class files show it (this run's and the rest)
    files: Any = None  # grader.term.ClassFiles: where the class's own files were found


@dataclass(frozen=True)
class Plan:
    """One learner's work: every lab to report, its content key, and the stored result when unchanged."""

    learner: Path
    labs: tuple[str, ...]
    keys: tuple[str, ...]
    reusable: tuple[bool, ...]  # the history holds this lab's result for exactly this key
    content: str = ""  # the submission's digest when planned: a copy that differs was changed while grading

    @property
    def to_grade(self) -> tuple[str, ...]:
        return tuple(lab for lab, reuse in zip(self.labs, self.reusable) if not reuse)


@dataclass
class _Done:
    plan: Plan
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # lab -> lab_to_dict, without overrides
    results: dict[str, LabResult] = field(default_factory=dict)
    rendered: bool = False
    digest: str = ""  # what the learner's files were rendered from

    def settle(self) -> None:
        """Keep the learner's results compactly (without what their code printed, which their reports hold):
        the grader's memory stays nearly flat with the class size."""
        from grader.results import lab_from_dict

        for lab, raw in self.raw.items():
            self.results[lab] = dataclasses.replace(lab_from_dict(raw), output="")
        self.raw = {}


# ----------------------------------------------------------------------------- content keys

def _digest_files(hasher: Any, root: Path) -> None:
    """Names and bytes of every file the copy for the sandbox would hold (one walk shared with the copy)."""
    try:
        walk(root, hasher)
    except RecursionError:  # folders nested deeper than os.fwalk can recurse: the learner's run says so
        hasher.update(b"E-too-deep")
    except OSError as exc:
        hasher.update(f"E{exc.errno}".encode())


def grader_digest() -> str:
    """The grader's version and its own source: an edited checkout never reuses a stale result."""
    hasher = hashlib.sha256(__version__.encode())
    _digest_files(hasher, Path(__file__).resolve().parent)
    return hasher.hexdigest()


def templates_digest() -> str:
    """The report templates: a changed wording rewrites every report, though no result needs grading again."""
    from grader.reports import template_root

    hasher = hashlib.sha256()
    for entry in sorted(template_root().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".j2"):
            hasher.update(entry.name.encode() + b"\0" + entry.read_bytes())
    return hasher.hexdigest()


def rubric_digest(rubric: Rubric) -> str:
    """The YAML file and every module beside it (the reference, and anything it imports from there)."""
    hasher = hashlib.sha256(rubric.path.read_bytes())
    folder = rubric.path.parent
    for path in sorted(folder.glob("*.py")):
        hasher.update(path.name.encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()


def submission_digest(learner: Path) -> str:
    """The learner's whole folder: a lab's code may import from another phase's folder (borja's phase-04
    imports its own phase-05 log-sum-exp), so any change anywhere grades every lab again."""
    hasher = hashlib.sha256()
    _digest_files(hasher, learner)
    return hasher.hexdigest()


def lab_key(learner: Path, rubric: Rubric, rubric_hash: str, grader_hash: str, limits: Limits, submission: str) -> str:
    parts = [grader_hash, rubric.lab, rubric_hash, repr(limits), learner.name, submission]
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


# ----------------------------------------------------------------------------- the work of one learner

_RUBRICS: dict[str, Rubric] = {}
_LIMITS = Limits()
_OUT: Path = Path("reports")
_GRADESCOPE = False
_LANG = "auto"


def grade_learner(learner: str, labs: Sequence[str], stored: dict[str, dict[str, Any]],
                  decisions: Decisions, render: bool, content: str = "", lang: str = "") -> tuple[dict[str, dict[str, Any]], list[Message | str]]:
    """Grade the labs not in ``stored``, then write the learner's reports from all of them.

    Returns the freshly graded labs (raw, as plain dicts) and the notes about the learner's folder.
    """
    from grader.results import lab_to_dict

    notes: list[Message | str] = []
    fresh: dict[str, dict[str, Any]] = {}
    for lab in labs:
        if lab not in stored:
            result = grade_lab(_RUBRICS[lab], Path(learner), _LIMITS, notes.append, content)
            fresh[lab] = {**lab_to_dict(result), "output": result.output}
    if render:
        with phase("reports"):
            write_learner_outputs([stored.get(lab) or fresh[lab] for lab in labs], decisions, _OUT, _GRADESCOPE,
                                  lang or _LANG)
    phases.flush()
    return fresh, notes


def write_learner_outputs(raw: Sequence[dict[str, Any]], decisions: Decisions, out: Path, gradescope: bool,
                          lang: str = "auto") -> None:
    from grader.exports import write_gradescope
    from grader.reports import write_reports
    from grader.results import lab_from_dict

    results = finalize([lab_from_dict(r) for r in raw], decisions)
    write_reports(results, out, durable=False, lang=lang)  # the class run syncs once at its end
    if gradescope:
        write_gradescope(out, results, durable=False, lang=lang)


def _pool_initializer(lock: int, parent: int) -> None:
    """Pool processes leave Ctrl-C to the parent, turn SIGTERM into a clean exit (temp files removed), die with the
    parent (a ``kill -9`` of ``grade`` leaves none behind), and never hold the gradebook's lock: an inherited copy
    of its descriptor would keep it locked for ever after the parent died."""
    from grader import confine, zygote

    try:
        os.close(lock)
    except OSError:
        pass
    if confine.LINUX:
        try:
            confine.prctl(confine.PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass
    if os.getppid() != parent:  # the parent died before the line above: nobody is waiting for this process
        os._exit(0)
    zygote.forget_inherited()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def stop(*_: Any) -> None:
        """The pool's worker loop catches every exception of a task (SystemExit too) and waits for the next one:
        leave for good instead, after the fork server and its copies' folder are gone."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            zygote.close_current()
        finally:
            os._exit(143)

    signal.signal(signal.SIGTERM, stop)


# ----------------------------------------------------------------------------- executors

Submit = tuple[Plan, dict[str, dict[str, Any]], Decisions, bool, str]


def _run_inline(work: Sequence[Submit]) -> Iterator[tuple[Plan, dict[str, dict[str, Any]], list[Message | str]]]:
    for plan, stored, decisions, render, lang in work:
        fresh, notes = grade_learner(str(plan.learner), plan.labs, stored, decisions, render, plan.content, lang)
        yield plan, fresh, notes


class _LocalPool:
    """Every core: a process pool forked from this process (the grader's own, trusted code), each process
    with its own fork server for learner workers. Results come back as plain dicts."""

    def __init__(self, jobs: int, lock: int = -1) -> None:
        self.jobs = jobs
        self.lock = lock
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def run(self, work: Sequence[Submit]) -> Iterator[tuple[Plan, dict[str, dict[str, Any]], list[Message | str]]]:
        context = multiprocessing.get_context("fork")
        self._pool = concurrent.futures.ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_pool_initializer,
                                                            initargs=(self.lock, os.getpid()))
        pending = {
            self._pool.submit(grade_learner, str(plan.learner), plan.labs, stored, decisions, render, plan.content,
                              lang): plan
            for plan, stored, decisions, render, lang in work
        }
        while pending:  # each finished future is dropped as soon as it is read: its results are not kept twice
            finished, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                plan = pending.pop(future)
                try:
                    fresh, notes = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    raise SandboxError(msg("machine.process_died")) from None
                yield plan, fresh, notes
        self._pool.shutdown()
        self._pool = None

    def stop(self) -> None:
        """Ctrl-C: drop what has not started, stop what has; each process's fork server then kills its workers."""
        if self._pool is None:
            return
        children = multiprocessing.active_children()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for child in children:
            child.terminate()
        for child in children:
            child.join(5)
            if child.is_alive():
                child.kill()
                child.join()
        self._pool = None


# ----------------------------------------------------------------------------- the class run

def default_jobs() -> int:
    """Twice the cores: a learner's grading alternates between this side and the learner's worker."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return 2 * max(1, cores)


def grade_class(
    paths: Sequence[Path | str],
    options: Options,
    *,
    rubrics_dir: Path | str | None = None,
    lab: str | None = None,
    limits: Limits | None = None,
    note: Note | None = None,
    progress: Progress | None = None,
) -> ClassRun:
    """Grade every learner under ``paths``; write reports, class outputs and the gradebook history."""
    from grader.store import Store
    from grader.term import class_folder, find_class_files, lab_maxima, load_decisions, say_files

    global _RUBRICS, _LIMITS, _OUT, _GRADESCOPE, _LANG
    say = note or (lambda _: None)
    progress = progress or Silent()
    limits = limits or Limits()
    rubrics = select_rubrics(Path(rubrics_dir) if rubrics_dir else None, lab)
    every_lab = select_rubrics(Path(rubrics_dir) if rubrics_dir else None, None) if lab else rubrics
    learners = _not_taking_outputs(find_learners([Path(p) for p in paths], note), options, say)
    files = find_class_files(class_folder([Path(p) for p in paths], say),
                             {"overrides": options.overrides, "course": options.course, "roster": options.roster})
    decisions = load_decisions(files, every_lab)
    whole_class = any(not is_learner(Path(p)) for p in paths)
    roster = _roster(files, learners if whole_class else None, say)
    say_files(files, say)
    if whole_class:
        for text in _unknown_extensions(decisions, learners):
            say(text)
    out = Path(options.out)
    db_path = options.db or out / HISTORY

    grader_hash = grader_digest()
    looks = templates_digest()
    rubric_hashes = {r.lab: rubric_digest(r) for r in rubrics}
    by_lab = {r.lab: r for r in rubrics}
    _RUBRICS, _LIMITS, _OUT, _GRADESCOPE, _LANG = by_lab, limits, out, options.gradescope, options.lang

    dask = None
    if options.executor == "dask":  # connected before anything is recorded: a wrong address costs nothing
        from grader.cluster import DaskExecutor

        dask = DaskExecutor(options.scheduler, rubrics, limits)
    store = Store.open(db_path)
    lock = _exclusive(db_path, out, store)
    try:  # until the run's own try below: whatever goes wrong, the gradebook and its lock are let go
        previous = store.last_run()
        _warn_overrides_dropped(previous, files, say)
        run_id = store.begin_run(__version__, list(options.argv), rubric_hashes,
                                 class_dir=str(files.folder or ""), overrides=_absolute(files.overrides),
                                 course=_absolute(files.course), roster=_absolute(files.roster))
        from grader.i18n import LANGUAGES, say as said

        store.set_labs({r.lab: ({code: said(r.title, code) for code in LANGUAGES}, sum(float(c.points) for c in r.checks))
                        for r in every_lab})
        plans = []
        stored_for: dict[str, dict[str, dict[str, Any]]] = {}
        stamps: list[tuple[str, str, Any]] = []
        planned = []
        for learner in learners:
            chosen = _labs_for(learner, rubrics, lab, say)
            submission = submission_digest(learner)
            keys = tuple(lab_key(learner, by_lab[name], rubric_hashes[name], grader_hash, limits, submission) for name in chosen)
            planned.append((learner, chosen, keys, submission))
        with phase("history"):
            found = {} if options.force else store.lookup_many(
                [(learner.name, name, key) for learner, chosen, keys, _ in planned for name, key in zip(chosen, keys)])
        for learner, chosen, keys, submission in planned:
            stored = {name: raw for name in chosen if (raw := found.get((learner.name, name))) is not None}
            if chosen:
                plans.append(Plan(learner, chosen, keys, tuple(name in stored for name in chosen), submission))
                stored_for[learner.name] = stored
                stamps.extend(_submission_times(learner, [by_lab[name] for name in chosen], decisions))
        if not plans:
            store.finish_run(run_id, "done")
            labs = ", ".join(r.lab for r in rubrics)
            raise UsageError(msg("path.nothing", paths=", ".join(map(str, paths)), labs=labs))
        decisions = dataclasses.replace(decisions, submitted=tuple(stamps))
        stamp_of = {(learner, lab_name): stamp for learner, lab_name, stamp in stamps}

        digests = store.output_digests(str(out.resolve()))
        work: list[Submit] = []
        done: dict[str, _Done] = {}
        for plan in plans:
            stored = stored_for.pop(plan.learner.name)
            entry = done[plan.learner.name] = _Done(plan, dict(stored))
            mine = decisions.for_learner(plan.learner.name)
            lang = _learner_language(roster, plan.learner.name, options.lang)
            entry.digest = _output_digest(plan.keys, mine, (options.gradescope, lang, looks), grader_hash)
            if plan.to_grade or digests.get(plan.learner.name) != entry.digest \
                    or not _reports_exist(out, plan.learner.name, plan.labs, options.gradescope):
                work.append((plan, stored, mine, True, lang))
            else:
                entry.rendered = True
    except BaseException:
        store.close()
        os.close(lock)
        raise

    fresh_count = sum(1 for plan, *_ in work if plan.to_grade)
    progress.start(len(work), len(plans) - len(work), fresh_count)  # the rate and the time left count only what is done now
    jobs = min(options.jobs or default_jobs(), max(1, len(work)))
    pool: Any = None
    if dask is not None:
        pool = dask
        runner = pool.run(work)
    elif jobs > 1:
        pool = _LocalPool(jobs, lock)
        runner = pool.run(work)
    else:
        runner = _run_inline(work)

    status = "interrupted"
    last_commit = time.monotonic()
    notes: list[Message | str] = []
    try:
        for plan, fresh, learner_notes in runner:
            entry = done[plan.learner.name]
            entry.raw.update(fresh)
            notes.extend(learner_notes)
            with phase("history"):
                for lab_name, key in zip(plan.labs, plan.keys):
                    raw = entry.raw[lab_name]  # a machine's failure is kept in the history, under a key no lookup matches
                    store.record(run_id, plan.learner.name, lab_name, f"retry:{key}" if raw.get("retry") else key, raw,
                                 reused=lab_name not in fresh,
                                 submitted=_stamp(stamp_of.get((plan.learner.name, lab_name))))
            if options.executor == "dask":
                write_learner_outputs([entry.raw[name] for name in plan.labs], decisions.for_learner(plan.learner.name),
                                      out, options.gradescope, _learner_language(roster, plan.learner.name, options.lang))
            entry.rendered = True
            store.set_output_digest(str(out.resolve()), plan.learner.name, entry.digest)
            entry.settle()
            progress.advance()
            if time.monotonic() - last_commit >= _COMMIT_EVERY:
                with phase("history"):
                    store.commit()
                last_commit = time.monotonic()
        for entry in done.values():
            if all(entry.plan.reusable) and entry.raw:
                with phase("history"):
                    for lab_name, key in zip(entry.plan.labs, entry.plan.keys):
                        store.record(run_id, entry.plan.learner.name, lab_name, key, entry.raw[lab_name], reused=True,
                                     submitted=_stamp(stamp_of.get((entry.plan.learner.name, lab_name))))
                    entry.settle()
        status = "done"
    except KeyboardInterrupt:
        finished = sum(1 for entry in done.values() if entry.rendered)
        raise Interrupted(msg("batch.interrupted", done=finished, total=len(plans), db=str(db_path))) from None
    finally:
        if status != "done" and pool is not None:
            pool.stop()
        progress.close()
        if work:
            os.sync()  # the per-learner files were written without an fsync each: make them durable at once
        with phase("history"):
            store.finish_run(run_id, status)
            store.commit()
        store.close()
        os.close(lock)
    for text in dict.fromkeys(notes):
        say(text)

    raw_results = [done[p.learner.name].results[name] for p in plans for name in p.labs]
    rerendered = sum(1 for plan, *_ in work if not plan.to_grade)
    if lab is not None or not whole_class:  # a part of the class: the class files keep everyone else's latest results
        others, again = _the_others(db_path, out, {(r.learner, r.lab) for r in raw_results}, decisions, roster,
                                    options, looks, grader_hash)
        rerendered += again
        everyone = finalize([*raw_results, *others], decisions)
        graded_names = {p.learner.name for p in plans}
        for text in _unmatched_notes(decisions, everyone, graded_names):
            say(text)
    else:
        everyone = finalize(raw_results, decisions, say)
    class_results = sorted(everyone, key=lambda r: (r.learner, r.lab))
    mine = {(r.learner, r.lab) for r in raw_results}
    results = [r for r in class_results if (r.learner, r.lab) in mine]
    from grader.reports import report_paths

    paths_out = {(r.learner, r.lab): report_paths(out, r)[0] for r in results}
    maxima = lab_maxima(every_lab)
    class_digest = hashlib.sha256(json.dumps(
        [grader_hash, sorted((name, entry.digest) for name, entry in done.items()), decisions.fingerprint(),
         str(options.junit), options.lang, looks, whole_class, lab, len(class_results), sorted(maxima.items()),
         _roster_fingerprint(roster), options.similar, options.history,
         [(r.learner, r.lab, r.score, r.export_score, r.passed, [c.status.value for c in r.checks]) for r in class_results]],
        default=str).encode()).hexdigest()  # the results too: a regrade under an unchanged key may change them
    outputs = class_output_paths(options)
    if digests.get(_CLASS_KEY) != class_digest or not all(path.is_file() for path in outputs):
        with phase("reports"):
            handed = handed_in(class_members(paths, learners, options), rubrics) \
                if options.similar is not None or options.history else []
            similar = _similar_pairs(handed, rubrics, options)
            history = _provenance(handed, rubrics) if options.history else None
            outputs = write_class_outputs(class_results, options, maxima, roster, similar, history)
        with Store.open(db_path) as again_store:
            again_store.set_output_digest(str(out.resolve()), _CLASS_KEY, class_digest)
            again_store.commit()
    phases.flush()
    return ClassRun(tuple(results), paths_out, graded=fresh_count, reused=len(plans) - fresh_count,
                    outputs=tuple(outputs), run_id=run_id, rerendered=rerendered, class_results=tuple(class_results),
                    files=files)


def _absolute(path: Path | None) -> str:
    return str(path.resolve()) if path is not None else ""


def _stamp(submitted: Any) -> dict[str, str] | None:
    return None if submitted is None else {"time": submitted.time, "source": submitted.source}


def _submission_times(learner: Path, rubrics: Sequence[Rubric], decisions: Decisions) -> list[tuple[str, str, Any]]:
    """Only for labs the course gives a due date: a class without ``course.yaml`` runs no git at all."""
    from grader.submitted import submission_time

    if decisions.course is None:
        return []
    out = []
    for rubric in rubrics:
        if decisions.course.due_for(learner.name, rubric.lab) is None:
            continue
        stamp = submission_time(learner, phase_folder(learner, rubric.phase_dir)[0], sources=decisions.course.sources)
        if stamp is not None:
            out.append((learner.name, rubric.lab, stamp))
    return out


def _warn_overrides_dropped(previous: dict[str, Any] | None, files: Any, say: Note) -> None:
    """The last run with this gradebook applied an overrides file this one does not (or another one): said, never
    silent — its decisions are not in this run's outputs."""
    before = previous.get("overrides") if previous else ""
    if not before or not Path(before).is_file():
        return
    if files.overrides is None:
        say(msg("note.overrides_dropped", path=before))
    elif Path(files.overrides).resolve() != Path(before):
        say(msg("note.overrides_switched", path=before, now=str(files.overrides)))


def _roster(files: Any, learners: Sequence[Path] | None, say: Note) -> Any:
    """``learners``: the whole class (its folders and the roster's rows are compared); None for a part of it."""
    if files.roster is None:
        return None
    from grader.roster import load_roster, roster_notes

    roster = load_roster(files.roster)
    for text in roster_notes(roster, [p.name for p in learners]) if learners is not None else ():
        say(text)
    return roster


def _unknown_extensions(decisions: Decisions, learners: Sequence[Path]) -> list[Message]:
    """An extension for a name no folder has (a typo) would leave the learner it meant penalised: said."""
    from grader.model import nfc
    from grader.overrides import did_you_mean

    if decisions.course is None:
        return []
    names = [nfc(p.name) for p in learners]
    return [msg("note.extension_unknown", at=Path(ext.source).name if ext.source else "course.yaml", learner=ext.learner,
                fix=did_you_mean(nfc(ext.learner), names))
            for ext in decisions.course.extensions if nfc(ext.learner) not in names]


def _roster_fingerprint(roster: Any) -> str:
    return "" if roster is None else repr(roster.students)


def _learner_language(roster: Any, learner: str, lang: str) -> str:
    """``--lang auto``: the roster's language for the learner when it gives one, else their deliverable's."""
    if lang != "auto" or roster is None:
        return lang
    student = roster.get(learner)
    return student.language if student is not None and student.language else lang


def _the_others(db_path: Path, out: Path, graded: set[tuple[str, str]], decisions: Decisions, roster: Any,
                options: Options, looks: str, grader_hash: str) -> tuple[list[LabResult], int]:
    """Everyone this run did not grade, from the history; their reports are written again when a decision about them
    changed (an override, a course date): every output agrees with the decisions in force."""
    from grader.results import lab_from_dict
    from grader.store import Store

    with Store.open(db_path) as history:
        latest = [item for item in history.latest() if (item.result.get("learner"), item.result.get("lab")) not in graded]
        digests = history.output_digests(str(out.resolve()))
        by_learner: dict[str, list[Any]] = {}
        for item in latest:
            by_learner.setdefault(str(item.result["learner"]), []).append(item)
        stamps = tuple((str(i.result["learner"]), str(i.result["lab"]), Submitted(**i.submitted))
                       for i in latest if i.submitted)
        decisions = dataclasses.replace(decisions, submitted=decisions.submitted + stamps)
        again = 0
        for learner, items in by_learner.items():
            if learner not in digests or any(name == learner for name, _ in graded):
                continue  # never rendered into this folder, or partly graded now (its reports were written)
            mine = decisions.for_learner(learner)
            lang = _learner_language(roster, learner, options.lang)
            digest = _output_digest(tuple(i.key for i in items), mine, (options.gradescope, lang, looks), grader_hash)
            if digests[learner] != digest:
                write_learner_outputs([i.result for i in items], mine, out, options.gradescope, lang)
                history.set_output_digest(str(out.resolve()), learner, digest)
                again += 1
        history.commit()
    others = [dataclasses.replace(lab_from_dict(i.result), output="",
                                  submitted=Submitted(**i.submitted) if i.submitted else None) for i in latest]
    return others, again


def _unmatched_notes(decisions: Decisions, everyone: Sequence[LabResult], graded: set[str]) -> list[Message]:
    """A run of part of the class names only the unmatched rules about the learners it graded."""
    from grader.overrides import apply_overrides

    notes: list[Message] = []
    apply_overrides(everyone, [r for r in decisions.rules if r.learner in graded], notes.append)
    return notes


def _not_taking_outputs(learners: list[Path], options: Options, say: Note) -> list[Path]:
    """A learner's reports go to ``<out>/<learner>/``: a learner folder named like a class output there (``index.html``,
    ``junit.xml`` when ``--junit out/junit.xml``) would take its place and break the run's last step. Skipped, named."""
    out = Path(options.out).resolve()
    taken = {INDEX, GRADEBOOK, *CLASS_FILES}
    for path in (options.junit, *options.also_writes):
        if path is not None:
            try:
                taken.add(Path(path).resolve().relative_to(out).parts[0])
            except (ValueError, IndexError, OSError):
                continue
    kept = []
    for learner in learners:
        if learner.name in taken:
            say(msg("note.named_like_output", learner=learner.name, out=str(options.out)))
        else:
            kept.append(learner)
    if learners and not kept:
        raise UsageError(msg("batch.all_named_like_output", out=str(options.out)))
    return kept


_CLASS_KEY = "\0class"  # the outputs table's row for the class files (no learner folder name holds a NUL)


INDEX, GRADEBOOK, HISTORY = "index.html", "gradebook.csv", "gradebook.sqlite"  # what a class run writes in --out
CLASS_FILES = (INDEX, GRADEBOOK, HISTORY, f"{HISTORY}-journal", f"{HISTORY}-wal", f"{HISTORY}-shm")


def class_output_paths(options: Options) -> list[Path]:
    out = Path(options.out)
    return [out / INDEX, out / GRADEBOOK, *([options.junit] if options.junit is not None else [])]


def _exclusive(db_path: Path, out: Path, store: Any) -> int:
    """One class run per gradebook at a time: a second one would grade the same learners twice and race on the
    class files. The lock goes with the process, so a killed run never leaves it behind."""
    fd = os.open(db_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        store.close()
        raise UsageError(msg("batch.locked", out=str(out), db=str(db_path))) from None
    return fd


def class_members(paths: Sequence[Path | str], graded: list[Path], options: Options | None = None) -> list[Path]:
    """Every learner of the class folder (a run of some of them compares them with all), else those graded."""
    from grader.term import class_folder

    folder = class_folder([Path(p) for p in paths])
    if folder is None:
        return graded
    try:
        found = find_learners([folder])
        return found if options is None else _not_taking_outputs(found, options, lambda _: None)
    except GraderError:
        return graded


def _similar_pairs(handed: Sequence[Any], rubrics: Sequence[Rubric], options: Options) -> list[Any] | None:
    """The class's similar submissions (information for the instructor): read from the learners' folders."""
    if options.similar is None:
        return None
    if len({learner for learner, _, _ in handed}) < 2:  # one learner's own run: nobody to compare with
        return []
    from grader.similarity import read_class, similar_pairs

    return similar_pairs(read_class([], rubrics, handed=handed), threshold=options.similar)


def _provenance(handed: Sequence[Any], rubrics: Sequence[Rubric]) -> list[Any]:
    from grader.provenance import class_provenance

    return class_provenance([], rubrics, handed=handed)


def write_class_outputs(results: Sequence[LabResult], options: Options, maxima: dict[str, float] | None = None,
                        roster: Any = None, similar: Sequence[Any] | None = None,
                        history: Sequence[Any] | None = None) -> list[Path]:
    """Rewritten only when something in them changed: a rerun with nothing new leaves them as they are.
    ``similar``: a whole-class run's similar pairs (None: not compared, and the page and CSV say nothing of it)."""
    from grader.exports import write_gradebook, write_junit
    from grader.reports import write_index

    out = Path(options.out)
    written = [write_index(out, results, class_language(options.lang), maxima, similar or (),
                           options.similar if similar is not None else None, history)]
    write_gradebook(out / GRADEBOOK, results, maxima, roster, similar if similar is not None else [],
                    history if history is not None else [])  # the same columns whatever was switched off
    written.append(out / GRADEBOOK)
    if options.junit is not None:
        write_junit(options.junit, results, class_language(options.lang))
        written.append(options.junit)
    return written


def _labs_for(learner: Path, rubrics: Sequence[Rubric], lab: str | None, say: Note) -> tuple[str, ...]:
    chosen = list(rubrics) if lab else [r for r in rubrics if applies(r, learner, rubrics)]
    if not chosen:
        chosen = [r for r in rubrics if phase_folder(learner, r.phase_dir)[0].is_dir()]
    if not chosen:
        folders = ", ".join(sorted(p.name + "/" for p in learner.iterdir() if p.is_dir()))
        say(msg("note.nothing", learner=learner.name, labs=", ".join(r.lab for r in rubrics), folders=folders))
    return tuple(r.lab for r in chosen)


def _output_digest(keys: Sequence[str], decisions: Decisions, flags: Any, grader_hash: str) -> str:
    """What the learner's files were rendered from: the results (named by their content keys, which include the
    grader's own hash), the decisions about them (overrides, lateness) and the flags."""
    material = [grader_hash, flags, list(keys), decisions.fingerprint()]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _reports_exist(out: Path, learner: str, labs: Sequence[str], gradescope: bool) -> bool:
    """Each of the learner's files is there and not empty (an empty one is what a power cut before the final sync
    can leave; a deleted one is written again)."""
    stem = out / learner
    names = [f"{lab.replace('/', '-')}{suffix}" for lab in labs for suffix in (".html", ".md")]
    for name in names + (["results.json"] if gradescope else []):
        try:
            if (stem / name).stat().st_size == 0:
                return False
        except OSError:
            return False
    return True
