"""A fork server: a fresh interpreter that imported numpy and ``grader.child``, and nothing else.

Workers are forked from it, so a worker starts in milliseconds and its memory never held a rubric,
a reference module or an expected value (the grader's own memory does, so it never forks one).
multiprocessing's forkserver would re-run the parent's ``__main__`` in every worker; this one
takes plain JSON and two file descriptors per request, and reports each worker's exit status.

The server starts inside the sandbox layer ``grader.layers`` chose (bubblewrap, namespaces it builds
itself as root, or none), with a scrubbed environment, and owns every process below it: it is their
child subreaper, kills a worker on request (its pids may be those of a PID namespace, which the grader
cannot signal) and, whenever a worker ends, every process that worker left behind.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from grader import layers
from grader.errors import SandboxError, ServerLost
from grader.i18n import Message, locale_language, msg, say, verbatim

_MAX_MESSAGE = 1 << 16
_KEEP_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONHOME", "PYTHONHASHSEED", "PYTHONIOENCODING",
             "PYTHONUTF8", "LD_LIBRARY_PATH", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ----------------------------------------------------------------------------- server side

def _children_of(pid: int) -> set[int]:
    """Direct children of ``pid`` (``/proc/PID/task/*/children``, else a scan of ``/proc``)."""
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
                found.update(int(c) for c in f.read().split())
        return found
    except OSError:
        pass
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = _children_of(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def _serve(control: socket.socket, sandbox: dict[str, Any]) -> None:
    from grader import child

    workers: set[int] = set()
    me = os.getpid()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)

    ended: dict[int, int] = {}

    def reap() -> None:
        """Collect every exited child (orphans included); remember the workers' exit codes."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in workers:
                workers.discard(pid)
                ended[pid] = os.waitstatus_to_exitcode(status)

    def sweep() -> None:
        """Kill whatever ended workers left behind (as their subreaper, this server inherits every orphan),
        then report the workers' exits: when the grader hears of one, nothing of it runs any more."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            reap()
            strays = _children_of(me) - workers
            if not strays:
                break
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.0005)
        for pid, code in list(ended.items()):
            control.send(json.dumps({"exited": pid, "code": code}).encode())
            del ended[pid]

    def kill(pid: int) -> None:
        if pid in workers:
            for send in (os.killpg, os.kill):
                try:
                    send(pid, signal.SIGKILL)
                except OSError:
                    pass

    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj == wake_r:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                    reap()
                    if ended:
                        sweep()
                    continue
                data, fds, _, _ = socket.recv_fds(control, _MAX_MESSAGE, 2)
                if not data:
                    raise EOFError
                request = json.loads(data)
                if "kill" in request:
                    kill(int(request["kill"]))
                    continue
                if "census" in request:
                    pids = [p for p in _descendants(me) if p != me]
                    control.send(json.dumps({"census": pids, "id": request["census"]}).encode())
                    continue
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    selector.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    control.close()
                    proto = socket.socket(fileno=fds[0])
                    out = socket.socket(fileno=fds[1])
                    child.main(proto, out, child.ChildConfig(**request["config"]), {**sandbox, "server": me})
                    os._exit(70)
                for fd in fds:
                    os.close(fd)
                workers.add(pid)
                control.send(json.dumps({"spawned": pid, "id": request["id"]}).encode())
                reap()
                if ended:
                    sweep()
    except (EOFError, ConnectionError, OSError):
        pass
    finally:
        for pid in list(workers):
            kill(pid)
        workers.clear()
        ended.clear()
        try:
            sweep()
        except OSError:
            pass
        os._exit(0)


def main() -> None:
    """``python -c 'from grader.zygote import main; main()' FD [SANDBOX-JSON]``"""
    fd = int(sys.argv[1])
    sandbox: dict[str, Any] = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    from grader import confine

    if sandbox.get("layer") == "unshare":
        confine.enter_namespaces(sandbox["mounts"], fd)
        confine.keep_only_caps([confine.CAP_SETUID, confine.CAP_SETGID, confine.CAP_KILL])
    for option, value in ((confine.PR_SET_CHILD_SUBREAPER, 1), (confine.PR_SET_DUMPABLE, 0)):
        try:
            confine.prctl(option, value)
        except (OSError, AttributeError):  # AttributeError: not Linux
            pass
    control = socket.socket(fileno=fd)
    try:
        import grader.child  # noqa: F401 - preload numpy before the first fork
        import gc

        gc.collect()
        gc.freeze()  # what every worker shares stays shared: a collection in a worker never writes to its pages

        control.send(json.dumps({"ready": True, "pid": os.getpid(), "layer": sandbox.get("layer", "rlimits")}).encode())
    except (OSError, KeyboardInterrupt):
        os._exit(0)  # the grader is already gone (or stopped): nothing to serve
    _serve(control, sandbox)


# ----------------------------------------------------------------------------- client side

def _environment() -> dict[str, str]:
    """What the server and every worker inherit: no tokens or passwords from the grader's environment, no marker
    of a grading run, and no HOME of the instructor's (each worker's HOME is its own folder)."""
    env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV or k.startswith("LC_")}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


_RUN_FOLDER = re.compile(r"^run-(\d+)-")


def private_parent(strict: bool = True) -> str:
    """``$TMPDIR/grader-<uid>``: this user's folder of grader runs, made by us and checked to be ours (a real
    folder, not a link, owned by this uid, writable by no one else). Nothing else in TMPDIR is ever touched.
    When another user planted something there (``strict=False``), a fresh folder of our own is used instead, so a
    local account cannot stop the instructor's grading."""
    top = tempfile.gettempdir()
    parent = os.path.join(top, f"grader-{os.geteuid()}")
    try:
        os.mkdir(parent, 0o711)
    except FileExistsError:
        pass
    info = os.lstat(parent)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        if strict:
            raise SandboxError(msg("zygote.planted", path=parent))
        fallback = tempfile.mkdtemp(prefix=f"grader-{os.geteuid()}-")
        os.chmod(fallback, 0o711)
        return fallback
    return parent


def _remove_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass


def sweep_stale_runs() -> None:
    """Remove the learner copies of graders that were killed (their ``run-<pid>-*`` folder outlived them): only
    real folders, only in this user's own ``grader-<uid>`` folder."""
    from grader.atomicio import process_alive
    from grader.runner import remove_tree

    try:
        parent = private_parent()
        names = os.listdir(parent)
    except (OSError, SandboxError):
        return
    for name in names:
        match = _RUN_FOLDER.match(name)
        path = os.path.join(parent, name)
        try:
            real = stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            continue
        if match is not None and real and not process_alive(int(match[1])):
            remove_tree(path)


class Zygote:
    """The grader's handle on its fork server; thread-safe.

    ``base`` is this server's folder of learner copies (the only place its workers may write); ``next_uid()``
    the unprivileged uid a learner's workers run as (None: the grader's own); ``layer`` the layer in use."""

    def __init__(self, layer: str | None = None) -> None:
        self.owner = os.getpid()
        self.requested = layer or layers.requested()
        sweep_stale_runs()
        self.base = tempfile.mkdtemp(prefix=f"run-{self.owner}-", dir=private_parent(strict=False))
        os.chmod(self.base, 0o711)
        self._lock = threading.Lock()
        self._exits: dict[int, int] = {}
        self._spawned: dict[int, int] = {}
        self._census: dict[int, list[int]] = {}
        self._next = 0
        self._uids = -1
        self.server_pid = 0  # in the server's own PID namespace
        self.started = time.perf_counter()
        try:
            self._start(layers.plan(self.base, layer))
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    @property
    def layer(self) -> str:
        return self.plan.layer

    @property
    def uid(self) -> int | None:
        return self.plan.uid

    def next_uid(self) -> int | None:
        """A uid for the next learner, different from the previous 63 learners' (None: the grader's own uid)."""
        if self.plan.uid is None:
            return None
        with self._lock:
            self._uids += 1
            return self.plan.uid + self._uids % layers.UIDS_PER_GRADER

    def _start(self, plan: layers.Plan) -> None:
        self.plan = plan
        self._ready = False
        parent, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - read when the server fails to start
        command = [*plan.command, sys.executable, "-c", "from grader.zygote import main; main()",
                   str(server.fileno()), json.dumps(plan.config)]
        try:
            self._proc = subprocess.Popen(
                command,
                pass_fds=(server.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                env=_environment(),
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            parent.close()
            raise SandboxError(msg("zygote.cannot_start", command=command[0], error=verbatim(str(exc)))) from None
        finally:
            server.close()
        self._sock = parent

    def _failure(self) -> Message:
        """The server's last line of error output (its own words, shown as they are), or that it said nothing."""
        self._stderr.seek(0)
        lines = [line.strip() for line in self._stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return verbatim(lines[-1][:300]) if lines else msg("zygote.silent")

    def wait_ready(self) -> None:
        """The server imports numpy while the grader loads rubrics; wait for it only at first use. A layer that
        was chosen (not forced) and fails to start gives way to the next one, and says so on stderr."""
        while not self._ready:
            self._sock.settimeout(60)
            try:
                ready = self._sock.recv(_MAX_MESSAGE)
            except OSError:
                ready = b""
            if ready:
                message = json.loads(ready)
                self.server_pid = int(message.get("pid", 0))
                self._ready = True
                try:
                    os.rmdir(os.path.join(self.base, ".root"))  # the unshare layer's mount point, in its namespace only
                except OSError:
                    pass
                return
            self._proc.kill()
            self._proc.wait()
            self._sock.close()
            reason = self._failure()
            self._stderr.close()
            text = str(reason.params.get("text", ""))
            if "No module named 'numpy'" in text or "No module named numpy" in text:
                raise SandboxError(msg("zygote.no_numpy", python=sys.executable))
            if self.plan.forced or self.plan.layer == "rlimits":
                raise SandboxError(msg("zygote.did_not_start", layer=self.plan.layer, reason=reason))
            layers.mark_failed(self.plan.layer, reason)
            failed = self.plan.layer
            self._start(layers.plan(self.base))
            note = msg("zygote.fell_back", failed=failed, reason=reason, layer=self.plan.layer)
            # the instructor's terminal, in their locale's language (the server knows no --lang)
            print(f"grade: {say(msg('cli.note', note=note), locale_language())}", file=sys.stderr)

    def _pump(self, timeout: float) -> bool:
        """Read one message from the server; False when none came in time."""
        self._sock.settimeout(max(timeout, 0.0001))
        try:
            data = self._sock.recv(_MAX_MESSAGE)
        except TimeoutError:
            return False
        except OSError as exc:
            raise ServerLost(msg("zygote.gone", error=verbatim(str(exc)))) from None
        if not data:
            raise ServerLost(msg("zygote.died"))
        message = json.loads(data)
        if "exited" in message:
            self._exits[int(message["exited"])] = int(message["code"])
        elif "spawned" in message:
            self._spawned[int(message["id"])] = int(message["spawned"])
        elif "census" in message:
            self._census[int(message["id"])] = [int(p) for p in message["census"]]
        return True

    def _send(self, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
        try:
            socket.send_fds(self._sock, [json.dumps(message).encode()], list(fds))
        except OSError as exc:
            raise ServerLost(msg("zygote.gone", error=verbatim(str(exc)))) from None

    def _await(self, box: dict[int, Any], key: int, what: Message) -> Any:
        deadline = time.monotonic() + 30
        while key not in box:
            if not self._pump(deadline - time.monotonic()) and time.monotonic() > deadline:
                raise ServerLost(msg("zygote.no_answer", what=what, seconds=30))
        return box.pop(key)

    def spawn(self, config: dict[str, Any], fds: tuple[int, int]) -> int:
        with self._lock:
            self.wait_ready()
            self._next += 1
            self._send({"id": self._next, "config": config}, fds)
            return int(self._await(self._spawned, self._next, msg("zygote.asked.worker")))

    def kill(self, pid: int) -> None:
        """Kill a worker's process group (the server does: the pid may be one of its PID namespace)."""
        with self._lock:
            self._send({"kill": pid})

    def census(self) -> list[int]:
        """Every process below the server, in its own PID namespace: after a learner, this is empty."""
        with self._lock:
            self.wait_ready()
            self._next += 1
            self._send({"census": self._next})
            return list(self._await(self._census, self._next, msg("zygote.asked.census")))

    def exit_code(self, pid: int, timeout: float) -> int | None:
        """The worker's exit code once the server has reaped it (negative: killed by that signal)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while pid not in self._exits:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._pump(remaining):
                    return None
            return self._exits.pop(pid)

    def alive(self) -> bool:
        return self.owner == os.getpid() and self._proc.poll() is None

    def close(self) -> None:
        if self.owner != os.getpid():
            return  # a forked copy: the server belongs to the process that started it
        try:
            self._sock.close()
        finally:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if not self._stderr.closed:
                self._stderr.close()
            shutil.rmtree(self.base, ignore_errors=True)
            parent = os.path.dirname(self.base)
            if os.path.basename(parent).startswith(f"grader-{os.geteuid()}-"):
                _remove_empty(parent)  # the fallback folder of a run whose usual one was planted


_ZYGOTE: Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def close_current() -> None:
    """Stop this process's fork server (its workers die with it) and remove its folder."""
    if _ZYGOTE is not None:
        _ZYGOTE.close()


atexit.register(close_current)


def get() -> Zygote:
    """The process-wide fork server, started on first use (again if ``GRADER_SANDBOX`` changed since)."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        wanted = layers.requested()
        current = _ZYGOTE
        if current is None or not current.alive() or current.requested != wanted:
            if current is not None:
                current.close()
            current = _ZYGOTE = Zygote()
            pool = sys.modules.get("multiprocessing.util")
            if pool is not None:  # a pool process leaves by os._exit: atexit would not remove the copies' folder
                pool.Finalize(current, current.close, exitpriority=0)
        return current


def forget_inherited() -> None:
    """In a process forked from the grader: the parent's fork server is not ours to use or close."""
    global _ZYGOTE
    _ZYGOTE = None
