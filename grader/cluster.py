"""Beyond one machine: each learner's grading as a task on an existing Dask distributed cluster.

The submission's bytes and the rubrics travel with the task, so the cluster needs no shared file
system; on the Dask worker the same isolated runner (fork server, sandboxed workers) grades it.
Reports are written by the grader that submitted the tasks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.i18n import Message, msg, verbatim
from grader.learnerfiles import left_out, read_bytes
from grader.model import Rubric
from grader.sandbox import Limits

MAX_SUBMISSION_BYTES = 64 << 20


def read_tree(root: Path) -> dict[str, bytes]:
    """Regular files only (a link is never followed out of the folder), clutter skipped."""
    files: dict[str, bytes] = {}
    total = 0
    for folder, dirs, names in os.walk(root):
        skipped = left_out(folder, dirs + names)
        dirs[:] = sorted(d for d in dirs if d not in skipped and not os.path.islink(os.path.join(folder, d)))
        for name in sorted(names):
            path = Path(folder) / name
            if name in skipped or path.is_symlink():
                continue
            data = read_bytes(path, root, MAX_SUBMISSION_BYTES)
            total += len(data)
            if total > MAX_SUBMISSION_BYTES:
                raise UsageError(msg("cluster.too_large", path=str(root), mib=MAX_SUBMISSION_BYTES >> 20))
            files[path.relative_to(root).as_posix()] = data
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        target = (root / relative).resolve()
        if root.resolve() not in target.parents:
            continue  # a crafted name such as ../x never writes outside
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def rubric_bundle(rubrics: Sequence[Rubric]) -> dict[str, bytes]:
    """Each rubric's YAML and the modules beside it, under the rubric's folder relative to a common root."""
    folders = sorted({r.path.parent.resolve() for r in rubrics})
    common = Path(os.path.commonpath([str(f) for f in folders])) if folders else Path(".")
    bundle: dict[str, bytes] = {}
    for rubric in rubrics:
        folder = rubric.path.parent.resolve()
        for path in [rubric.path.resolve(), *sorted(folder.glob("*.py"))]:
            bundle[path.relative_to(common).as_posix()] = path.read_bytes()
    return bundle


_LOADED: dict[str, dict[str, Rubric]] = {}
_LOADED_LOCK = threading.Lock()


def _rubrics_from(bundle: dict[str, bytes]) -> dict[str, Rubric]:
    """Materialise the bundle once per Dask worker process and load it like any rubrics folder."""
    from grader.rubric import discover_rubrics

    digest = hashlib.sha256(b"".join(k.encode() + b"\0" + v for k, v in sorted(bundle.items()))).hexdigest()
    with _LOADED_LOCK:
        if digest not in _LOADED:
            folder = Path(tempfile.mkdtemp(prefix="grader-rubrics-"))
            write_tree(folder, bundle)
            _LOADED[digest] = {r.lab: r for r in discover_rubrics(folder)}
        return _LOADED[digest]


def grade_remote(learner: str, files: dict[str, bytes], labs: Sequence[str], skip: Sequence[str],
                 bundle: dict[str, bytes], limits: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Runs on a Dask worker: the learner's folder rebuilt in a temp dir, graded like a local learner."""
    from grader.grading import grade_lab
    from grader.results import lab_to_dict

    rubrics = _rubrics_from(bundle)
    notes: list[str] = []
    fresh: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="grader-learner-") as tmp:
        root = Path(tmp) / learner
        root.mkdir()
        write_tree(root, files)
        for lab in labs:
            if lab not in skip:
                result = grade_lab(rubrics[lab], root, Limits(**limits), notes.append)
                fresh[lab] = {**lab_to_dict(result), "output": result.output}
    return fresh, notes


def check_scheduler(address: str | None, timeout: float = 3.0) -> None:
    """Fail in seconds with one line, before any grading, when the scheduler cannot be there (a tcp:// address
    that refuses connections or does not resolve), rather than after the client's own 10 s connect timeout."""
    if not address:
        raise UsageError(msg("cluster.no_scheduler"))
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return  # tls://, ucx://, inproc://: left to Dask
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(msg("cluster.not_an_address", address=address))
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__  # the system's words: data
        raise UsageError(msg("cluster.unreachable", address=address, reason=verbatim(reason))) from None


CONNECT_SECONDS = 15.0


class _NoHandshake(TimeoutError):
    """Nothing answered the handshake in time; ``said`` is what the user reads of it."""

    def __init__(self, seconds: float) -> None:
        self.said = msg("cluster.no_handshake", seconds=seconds)
        super().__init__(self.said.english())


def _connect(client_class: Any, address: str, seconds: float) -> Any:
    """Dask's client, or an error within ``seconds``: a listener that is not a scheduler (an HTTP server) would
    otherwise keep the handshake waiting for ever."""
    outcome: dict[str, Any] = {}

    def connect() -> None:
        try:
            outcome["client"] = client_class(address, timeout=f"{seconds:g}s")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=connect, name="dask-connect", daemon=True)
    thread.start()
    thread.join(seconds + 1)
    if "client" in outcome:
        return outcome["client"]
    raise outcome.get("error") or _NoHandshake(seconds)


class DaskExecutor:
    """Submits one task per learner to the scheduler at ``address``; results come back as plain dicts."""

    def __init__(self, address: str | None, rubrics: Sequence[Rubric], limits: Limits) -> None:
        if not address:
            raise UsageError(msg("cluster.no_scheduler"))
        try:
            from distributed import Client
        except ImportError:
            raise UsageError(msg("cluster.no_dask")) from None
        try:
            self._client = _connect(Client, address, CONNECT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - whatever answered there, it is not a usable scheduler
            said: Message = exc.said if isinstance(exc, _NoHandshake) else verbatim(" ".join(str(exc).split())[:200])
            raise UsageError(msg("cluster.no_answer", address=address, reason=said)) from None
        self._bundle = rubric_bundle(rubrics)
        self._limits = dataclasses.asdict(limits)
        self._futures: list[Any] = []

    def run(self, work: Sequence[Any]) -> Iterator[tuple[Any, dict[str, dict[str, Any]], list[str]]]:
        from distributed import as_completed

        [bundle] = self._client.scatter([self._bundle], broadcast=True, hash=True)
        owner = {}
        for plan, stored, _decisions, _render, _lang in work:
            future = self._client.submit(grade_remote, plan.learner.name, read_tree(plan.learner), plan.labs,
                                         tuple(stored), bundle, self._limits, pure=False, key=f"grade-{plan.learner.name}-{id(plan)}")
            owner[future.key] = plan
            self._futures.append(future)
        for future in as_completed(self._futures):
            fresh, notes = future.result()
            yield owner[future.key], fresh, notes
        self._futures = []
        self._client.close()

    def stop(self) -> None:
        if self._futures:
            self._client.cancel(self._futures)
        self._client.close()
