"""One learner's run: a temporary copy of their folder, a worker, and the policy around faults.

Checks ask for ``call(fn, args)`` and get an :class:`Outcome`; this module decides what a fault
costs. A crash restarts the worker for the next call; a function that timed out once is never
called again in this run; the learner's whole run has a wall-time budget.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader import zygote
from grader.phases import phase
from grader.i18n import Message, map_strings, msg, verbatim
from grader.child import ChildConfig
from grader.learnerfiles import TooLarge, walk
from grader.protocol import array_from
from grader.sandbox import Limits, Worker, WorkerDied, encode_args



def _copy_learner(source: Path, target: Path) -> tuple[tuple[str, ...], str]:
    """Copy a learner's folder for the sandbox (links inside it stay links, made relative; links out are not copied,
    and nothing in the copy leads out), hashing what it copies: returns the links out and the content digest of
    exactly the bytes copied — the same digest the content key is made of when nothing changed meanwhile."""
    hasher = hashlib.sha256()
    outside = walk(source, hasher, copy=target)
    return outside, hasher.hexdigest()


def remove_tree(path: Path | str) -> None:
    """Remove a learner's folder even where their code took away the permissions to (chmod 000) — and never touch
    anything outside it: a link is unlinked, not followed, and only folders inside the tree get their mode back."""
    root = os.path.abspath(path)
    try:
        if os.path.islink(root) or not os.path.isdir(root):
            os.unlink(root)
            return
    except OSError:
        return

    def retry(function: Any, failed: str, _: Any) -> None:
        folder = os.path.dirname(failed)
        if not (folder == root or folder.startswith(root + os.sep)):
            return
        try:
            os.chmod(folder, 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                function(failed)
        except OSError:
            pass

    try:
        shutil.rmtree(root, onerror=retry)
    except RecursionError:  # folders nested deeper than Python recurses: rm walks them without a stack limit
        subprocess.run(["rm", "-rf", "--", root], check=False, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        pass


def _hand_over(private: Path, uid: int | None) -> None:
    """The learner's folder belongs to the worker's uid (when the layer gives workers their own) and to no one else."""
    if uid is not None:
        for folder, dirs, files in os.walk(private):
            os.lchown(folder, uid, uid)
            for name in dirs + files:
                os.lchown(os.path.join(folder, name), uid, uid)
    os.chmod(private, 0o700)


@dataclass(frozen=True)
class Observed:
    """A learner's value as the parent sees it: float64 data plus the dtype the learner used."""

    array: np.ndarray
    dtype: str


@dataclass(frozen=True)
class Outcome:
    """One call's result; ``fault`` is "" on success, else raised/timeout/crashed/missing/bad-return/budget."""

    value: Observed | None = None
    after: tuple[np.ndarray | None, ...] = ()
    fault: str = ""
    message: str = ""  # in English: what the checks' own logic reads
    said: Message | None = None  # the same for the learner, in their language (None: ``message`` as it is)

    @property
    def ok(self) -> bool:
        return not self.fault


@dataclass(frozen=True)
class ScriptRun:
    """What the learner's own script printed when the grader ran it, and how it ended (None: it ran to its end)."""

    printed: str
    cut: bool  # the output cap cut it
    fault: Message | None = None


@dataclass(frozen=True)
class LoadReport:
    ok: bool
    mode: str = ""  # "import" or "ast"
    note: str = ""  # why the module-level code was not used
    functions: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    error: str = ""
    machine_fault: bool = False  # the grading machine failed (a full disk), not the learner: grade again next run
    note_said: Message | None = None  # ``note`` for the learner, in their language
    error_said: Message | None = None  # ``error`` for the learner, in their language
    skipped_said: tuple[Message, ...] = ()  # ``skipped`` for the learner, in their language


COPY_NAME = "learner"
_MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.EROFS, errno.ENOMEM})


def _machine_errno(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
        return True
    if isinstance(exc, shutil.Error):  # copytree gathers (source, target, reason) triples
        return any(isinstance(item, tuple) and len(item) == 3 and any(
            word in str(item[2]) for word in ("No space left", "Disk quota", "Too many open files", "Read-only file system"))
            for item in (exc.args[0] if exc.args and isinstance(exc.args[0], list) else []))
    return False


def _reason(exc: BaseException) -> Message:
    reason = getattr(exc, "strerror", None)
    return verbatim(reason) if reason else msg("copy.disk_full")


class _Quota:
    """How much a learner's private folder (their copy and tmp/) may grow while their code runs, looked at after
    each batch of calls: a walk that stops as soon as the allowance is passed."""

    def __init__(self, folder: Path, limits: Limits) -> None:
        self.folder = folder
        self.bytes_allowed, self.files_allowed = limits.folder_bytes, limits.folder_files
        self.base_bytes, self.base_files = self._usage(1 << 62, 1 << 62)
        self.checked = 0.0

    def _usage(self, max_bytes: int, max_files: int) -> tuple[int, int]:
        total = files = 0
        stack = [str(self.folder)]
        while stack:
            try:
                with os.scandir(stack.pop()) as entries:
                    for entry in entries:
                        files += 1
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                stack.append(entry.path)
                            else:
                                total += entry.stat(follow_symlinks=False).st_blocks * 512
                        except OSError:
                            continue
                        if total > max_bytes or files > max_files:
                            return total, files
            except OSError:
                continue
        return total, files

    def exceeded(self) -> Message | None:
        now = time.monotonic()
        if now - self.checked < 0.2:
            return None
        self.checked = now
        total, files = self._usage(self.base_bytes + self.bytes_allowed, self.base_files + self.files_allowed)
        if total > self.base_bytes + self.bytes_allowed:
            return msg("quota.bytes", mib=self.bytes_allowed >> 20)
        if files > self.base_files + self.files_allowed:
            return msg("quota.files", n=f"{self.files_allowed:,}")
        return None


@dataclass
class _State:
    timed_out: set[str] = field(default_factory=set)
    fresh_timeouts: dict[str, Outcome] = field(default_factory=dict)
    cache: dict[tuple[str, Any], Outcome] = field(default_factory=dict)


def decode_value(data: Any) -> Observed | str:
    """Validate a worker's value (plain data from a bounded frame); return an Observed or a description of what it
    was."""
    if not isinstance(data, dict):
        return "an unreadable value"
    if "type" in data:
        kind = str(data["type"])[:120]
        if kind == "NoneType":
            return "None (a missing return statement?)"
        if kind == "tuple":
            return "a tuple of values, not one array (return only the array the lab asks for)"
        return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"
    array = array_from(data)
    if array is None:
        return "an unreadable value"
    return Observed(array=array, dtype=str(data.get("dtype"))[:20])


def _listed(value: Any) -> list[Any]:
    """A list the worker reported, or nothing: learner code can write anything where a list belongs."""
    return value[:1000] if isinstance(value, list) else []


class LearnerRun:
    """Use as a context manager: the temporary copy and every process are gone on exit."""

    def __init__(self, learner_root: Path, module_path: Path, functions: tuple[str, ...], limits: Limits,
                 server: zygote.Zygote | None = None, module_source: str | None = None,
                 module_files: tuple[tuple[str, str], ...] = ()) -> None:
        """``module_source``: the module to load instead of ``module_path``'s bytes (a notebook's code cells);
        it is written beside that file in the learner's copy, with ``module_files`` (what its %%writefile cells
        write, by relative name)."""
        self.limits = limits
        self.functions = functions
        self.output = bytearray()
        self._server = server or zygote.get()
        self._tmp = Path(tempfile.mkdtemp(prefix="learner-", dir=self._server.base))
        self._name = learner_root.name
        copy = self._tmp / COPY_NAME  # neutral: no learner's name in a worker's paths or the fork server's memory
        relative = (module_path.parent.resolve() / module_path.name).relative_to(learner_root.resolve())
        if module_source is not None:
            relative = relative.with_name(relative.name + ".py")
        self.module_path = copy / relative
        self._copy_error: Message | None = None
        self._machine_fault = False  # the copy failed for the machine's reasons (disk full): not the learner's fault
        self.outside_links: tuple[str, ...] = ()
        self.uid: int | None = None
        self.copied = ""  # the content digest of the copy: what was graded
        try:
            with phase("worker"):
                self.outside_links, self.copied = _copy_learner(learner_root, copy)
            if module_source is not None:
                self.module_path.write_text(module_source, encoding="utf-8")
                for name, text in module_files:
                    target = (self.module_path.parent / name).resolve()
                    if target.is_relative_to(copy.resolve()) and not target.exists():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(text, encoding="utf-8")
            (self._tmp / "tmp").mkdir()
            self.uid = self._server.next_uid()
            _hand_over(self._tmp, self.uid)
        except TooLarge as exc:
            self._copy_error = exc.message
        except (OSError, shutil.Error) as exc:
            if _machine_errno(exc):
                self._machine_fault = True
                self._copy_error = msg("copy.machine", reason=_reason(exc))
            else:
                self._copy_error = msg("copy.failed", reason=verbatim(str(exc)[:200]))
        except RecursionError:
            self._copy_error = msg("copy.too_deep")
        if not self._copy_error and relative.as_posix() in self.outside_links:
            self._copy_error = msg("copy.link_out", name=relative.as_posix())
        self._mode = "import"
        self._worker: Worker | None = None
        self._state = _State()
        self._deadline = time.monotonic() + limits.learner_seconds
        self.load: LoadReport = LoadReport(ok=False)
        self._quota = _Quota(self._tmp, limits) if not self._copy_error else None
        self._over_quota: Message | None = None

    def __enter__(self) -> LearnerRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def printed(self) -> str:
        """What the learner's code printed, marked where the cap cut it."""
        text = self._scrub(self.output.decode("utf-8", errors="replace"))
        if len(self.output) >= self.limits.output_bytes:
            text += f"\n[… output cut here: only the first {self.limits.output_bytes // 1024} KiB are kept]"
        return text

    def close(self) -> None:
        with phase("worker"):
            self.close_worker()
            remove_tree(self._tmp)

    def _scrub(self, text: str) -> str:
        """The grader's temporary paths, as the learner knows them: ``borja/phase-04/x.py``, the same every run."""
        copy, tmp = str(self._tmp / COPY_NAME), str(self._tmp)
        text = text.replace(copy + os.sep, self._name + os.sep).replace(tmp + os.sep, "")
        return text.replace(copy, self._name).replace(tmp, ".").replace(self._server.base, "…")

    def _config(self, mode: str) -> ChildConfig:
        return ChildConfig(
            module_path=str(self.module_path),
            workdir=str(self.module_path.parent),
            mode=mode,
            functions=self.functions,
            memory_bytes=self.limits.memory_bytes,
            cpu_seconds=int(self.limits.learner_seconds),
            call_cpu_seconds=self.limits.call_seconds,
            file_bytes=self.limits.file_bytes,
            max_processes=self.limits.max_processes,
            private_dir=str(self._tmp),
            outside_links=self.outside_links,
            uid=self.uid,
        )

    @property
    def private_dir(self) -> Path:
        """The learner's own folder for this run (their copy and tmp/): the only place their code may write."""
        return self._tmp

    def _spawn(self, mode: str) -> dict[str, Any]:
        worker = Worker(self._config(mode), self.limits, self.output, self._server)
        deadline = min(time.monotonic() + self.limits.call_seconds, self._deadline)
        ready = worker.start(deadline)
        self._worker = worker
        return ready

    def start(self) -> LoadReport:
        """Load the module: whole, or (if its top-level code fails) its definitions alone."""
        with phase("worker"):
            return self._start()

    def _start(self) -> LoadReport:
        if self._copy_error:
            self.load = LoadReport(ok=False, error=self._copy_error.english(), machine_fault=self._machine_fault,
                                   error_said=self._copy_error)
            return self.load
        note = ""
        note_said: Message | None = None
        try:
            ready = self._spawn("import")
        except WorkerDied as died:
            note_said = msg("load.running", what=died.said)
            note = note_said.english()
            try:
                ready = self._spawn("ast")
            except WorkerDied:
                try:
                    ready = self._spawn("ast-strict")
                except WorkerDied as again:
                    said = msg("load.both_failed", first=died.said, again=again.said)
                    self.load = LoadReport(ok=False, error=said.english(), error_said=said)
                    return self.load
        if not ready.get("ready"):
            self.close_worker()
            syntax = ready.get("syntax")
            error_said = msg("load.syntax", line=syntax["line"], text=self._scrub(syntax["text"])[:300]) \
                if isinstance(syntax, dict) and isinstance(syntax.get("line"), int) and isinstance(syntax.get("text"), str) \
                else None
            self.load = LoadReport(ok=False, error=self._scrub(str(ready.get("error", "the module could not be loaded")))[:500],
                                   error_said=error_said)
            return self.load
        self._mode = str(ready.get("mode", "import"))
        if self._mode not in ("import", "ast", "ast-strict"):
            self._mode = "ast-strict"
        if not note and ready.get("note"):
            raised = raised_message("", ready.get("note_data"))
            note_said = msg("load.running", what=raised) if raised is not None else None
        note = note or str(ready.get("note", ""))
        note_said = None if note_said is None else map_strings(note_said, self._scrub)
        functions = tuple(str(f)[:200] for f in _listed(ready.get("functions")) if isinstance(f, str))
        said = tuple(map_strings(m, self._scrub) for m in map(statement_message, _listed(ready.get("skipped"))[:10]) if m)
        self.load = LoadReport(ok=True, mode=self._mode, note=self._scrub(note)[:500], functions=functions,
                               skipped=tuple(m.english() for m in said), note_said=note_said, skipped_said=said)
        return self.load

    def run_script(self) -> ScriptRun | None:
        """The learner's file run as ``python file.py`` would (its ``__main__`` block too), in a fresh worker with the
        same sandbox and limits and one call's time; None when there is nothing to run (no copy, no loaded module)."""
        if self._copy_error or not self.load.ok or self._over_quota:
            return None
        printed = bytearray()
        fault: Message | None = None
        with phase("worker"):
            worker = Worker(self._config("script"), self.limits, printed, self._server)
            deadline = min(time.monotonic() + self.limits.call_seconds, self._deadline)
            try:
                ended = worker.start(deadline)
                worker.drain_output()
            except WorkerDied as died:
                fault = died.said
                ended = {}
            finally:
                worker.close()
        if ended and not ended.get("ok"):
            raised = raised_message(self.module_path.name, ended.get("raised"))
            fault = raised if raised is not None else msg("died.protocol")
        text = self._scrub(printed.decode("utf-8", errors="replace"))
        self._watch_quota()
        return ScriptRun(printed=text, cut=len(printed) >= self.limits.output_bytes,
                         fault=None if fault is None else map_strings(fault, self._scrub))

    def close_worker(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def call(self, fn: str, args: tuple[Any, ...]) -> Outcome:
        """Call a learner function positionally; results are cached per (function, arguments)."""
        key = (fn, key_of(args))
        if key not in self._state.cache:
            self._fetch(fn, {key[1]: encode_args(args)})
        outcome = self._state.cache.get(key)
        if outcome is None:  # never cached: a timeout (told in full once) or an exhausted budget
            outcome = self._state.fresh_timeouts.pop(fn, None) or self._refusal(fn) or \
                _said("timeout", msg("outcome.timed_out_before", fn=fn))
        return outcome

    def prefetch(self, fn: str, calls: list[tuple[Any, ...]]) -> None:
        """Run every uncached call of ``fn`` in one pipelined batch, filling the cache in order."""
        pending: dict[Any, list[Any]] = {}
        for args in calls:
            key = key_of(args)
            if (fn, key) not in self._state.cache and key not in pending:
                pending[key] = encode_args(args)
        self._fetch(fn, pending)

    def _fetch(self, fn: str, pending: dict[Any, list[Any]]) -> None:
        todo = list(pending.items())
        while todo:
            refusal = self._refusal(fn)
            if refusal is not None:
                if refusal.fault != "budget" and refusal.fault != "timeout":
                    for key, _ in todo:
                        self._state.cache[(fn, key)] = refusal
                return
            batch, todo = todo[:_BATCH], todo[_BATCH:]
            done = self._run_batch(fn, batch)
            todo = batch[done:] + todo

    def _refusal(self, fn: str) -> Outcome | None:
        """Why ``fn`` cannot be called now, if it cannot."""
        if not self.load.ok:
            return _said("missing", msg("outcome.not_loaded"))
        if fn not in self.load.functions:
            return _said("missing", msg("outcome.no_function", fn=fn))
        if fn in self._state.timed_out:
            return _said("timeout", msg("outcome.timed_out_before", fn=fn))
        if self._over_quota:
            return _said("budget", msg("outcome.not_called", why=self._over_quota))
        if time.monotonic() >= self._deadline:
            return _said("budget", msg("outcome.budget_used", seconds=f"{self.limits.learner_seconds:g}"))
        return None

    def _run_batch(self, fn: str, batch: list[tuple[Any, list[Any]]]) -> int:
        """Send the batch, read replies one by one (each with its own time limit); return how many were answered."""
        with phase("calls"):
            return self._run_batch_timed(fn, batch)

    def _run_batch_timed(self, fn: str, batch: list[tuple[Any, list[Any]]]) -> int:
        answered = 0
        try:
            if self._worker is None:
                with phase("worker"):
                    self._spawn(self._mode)
            assert self._worker is not None
            self._worker.send([(fn, wire) for _, wire in batch])
            for key, _ in batch:
                deadline = min(time.monotonic() + self.limits.call_seconds, self._deadline)
                reply = self._worker.receive(deadline)
                outcome = _outcome(fn, reply)
                if outcome.message:
                    said = None if outcome.said is None else map_strings(outcome.said, self._scrub)
                    outcome = dataclasses.replace(outcome, message=self._scrub(outcome.message), said=said)
                self._state.cache[(fn, key)] = outcome
                answered += 1
        except WorkerDied as died:
            self._worker = None
            if died.timed_out and time.monotonic() >= self._deadline - 0.01:
                self._state.fresh_timeouts[fn] = _said(
                    "budget", msg("outcome.budget_ran_out", fn=fn, seconds=f"{self.limits.learner_seconds:g}"))
            elif died.timed_out:
                self._state.timed_out.add(fn)
                self._state.fresh_timeouts[fn] = _said("timeout", msg("outcome.died", fn=fn, why=died.said))
            elif answered < len(batch):
                self._state.cache[(fn, batch[answered][0])] = _said("crashed", msg("outcome.crashed", fn=fn, why=died.said))
            answered += 1
        self._watch_quota()
        return answered

    def _watch_quota(self) -> None:
        """A learner's code may not fill the disk its classmates are copied to: past its folder's quota, its worker
        is stopped and nothing more of it runs."""
        if self._quota is None or self._over_quota:
            return
        problem = self._quota.exceeded()
        if problem:
            self._over_quota = problem
            self.close_worker()


_BATCH = 64


def key_of(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Arguments as a cache key without encoding them: arrays by dtype, shape and bytes."""
    return tuple((a.dtype.str, a.shape, a.tobytes()) if isinstance(a, np.ndarray) else (type(a).__name__, repr(a))
                 for a in args)


_HINT_IDS = ("link", "outside", "relative", "memory", "sandbox", "file_size", "processes")


def statement_message(data: Any) -> Message | None:
    """A top-level statement the worker could not run, from the plain data it sends (bounded, checked here)."""
    if not isinstance(data, dict) or not isinstance(data.get("line"), int) or isinstance(data.get("line"), bool):
        return None
    line = data["line"]
    if data.get("not_run") is True:
        return msg("load.statement.not_run", line=line)
    texts = [data.get(k) for k in ("def", "type", "text")]
    if not all(isinstance(t, str) for t in texts):
        return None
    named, kind, text = (str(t)[:most] for t, most in zip(texts, (100, 100, 300)))
    return msg("load.statement.def" if named else "load.statement", line=line, name=named, type=kind, text=text)


def raised_message(fn: str, data: Any) -> Message | None:
    """What the worker said of an exception, as a message — only when it is the plain data the worker sends (short
    strings and numbers); anything else is said as the worker's English text."""
    if not isinstance(data, dict):
        return None

    def text(key: str, most: int = 300) -> str | None:
        value = data.get(key, "")
        return value[:most] if isinstance(value, str) else None

    if "exit" in data:
        code = text("exit", 100)
        return None if code is None else msg("raised.exit", fn=fn, code=code)
    kind, said = text("type", 100), text("text")
    if not kind or said is None:
        return None
    line = data.get("line")
    place: Message | str = ""
    if isinstance(line, int) and not isinstance(line, bool) and text("function", 100) is not None and text("file", 200) is not None:
        place = msg("raised.place", line=line, function=text("function", 100), file=text("file", 200))
    hint_id = data.get("hint")
    hint: Message | str = ""
    if hint_id in _HINT_IDS:
        mib = data.get("mib") if isinstance(data.get("mib"), int) else 0
        hint = msg(f"raised.hint.{hint_id}", link=text("link", 200) or "", mib=mib)
    if not fn:  # the module's own top-level code, said after "running the module"
        return msg("raised.module.text" if said else "raised.module", type=kind, text=said, place=place, hint=hint)
    return msg("raised.text" if said else "raised", fn=fn, type=kind, text=said, place=place, hint=hint)


def _said(fault: str, said: Message) -> Outcome:
    return Outcome(fault=fault, message=said.english(), said=said)


def _outcome(fn: str, reply: dict[str, Any]) -> Outcome:
    """A worker's reply, validated as plain data."""
    if not reply.get("ok"):
        message = f"{fn} {str(reply.get('error', 'failed'))[:400]}"
        return Outcome(fault="raised", message=message, said=raised_message(fn, reply.get("raised")))
    value = decode_value(reply.get("value"))
    if isinstance(value, str):
        return Outcome(fault="bad-return", message=f"{fn} returned {value}" + ("" if "(" in value else ", not numbers"))
    after = []
    raw_after = reply.get("after")
    for item in raw_after if isinstance(raw_after, list) else []:
        decoded = decode_value(item) if item is not None else None
        after.append(decoded.array if isinstance(decoded, Observed) else None)
    return Outcome(value=value, after=tuple(after))
