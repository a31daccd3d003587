"""A fork server: a fresh interpreter that imported numpy and ``grader.child``, and nothing else.

Workers are forked from it, so a worker starts in milliseconds and its memory never held a rubric,
a reference module or an expected value (the grader's own memory does, so it never forks one).
multiprocessing's forkserver would re-run the parent's ``__main__`` in every worker; this one
takes plain JSON and two file descriptors per request, and reports each worker's exit status.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from grader.errors import SandboxError

_MAX_MESSAGE = 1 << 16


# ----------------------------------------------------------------------------- server side

def _serve(control: socket.socket) -> None:
    from grader import child

    children: set[int] = set()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            control.send(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}).encode())

    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj == wake_r:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                    reap()
                    continue
                data, fds, _, _ = socket.recv_fds(control, _MAX_MESSAGE, 2)
                if not data:
                    raise EOFError
                request = json.loads(data)
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
                    child.main(proto, out, child.ChildConfig(**request["config"]))
                    os._exit(70)
                for fd in fds:
                    os.close(fd)
                children.add(pid)
                control.send(json.dumps({"spawned": pid, "id": request["id"]}).encode())
                reap()
    except (EOFError, ConnectionError, OSError):
        pass
    finally:
        for pid in list(children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)


def main() -> None:
    fd = int(sys.argv[1])
    control = socket.socket(fileno=fd)
    try:
        import grader.child  # noqa: F401 - preload numpy before the first fork

        control.send(b'{"ready": true}')
    except (OSError, KeyboardInterrupt):
        os._exit(0)  # the grader is already gone (or stopped): nothing to serve
    _serve(control)


# ----------------------------------------------------------------------------- client side

class Zygote:
    """The grader's handle on its fork server; thread-safe."""

    def __init__(self) -> None:
        parent, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", "from grader.zygote import main; main()", str(server.fileno())],
                pass_fds=(server.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the worker fork server ({sys.executable}): {exc}") from None
        finally:
            server.close()
        self._sock = parent
        self._lock = threading.Lock()
        self._exits: dict[int, int] = {}
        self._spawned: dict[int, int] = {}
        self._next = 0
        self._ready = False

    def _wait_ready(self) -> None:
        """The server imports numpy while the grader loads rubrics; wait for it only at first use."""
        if self._ready:
            return
        self._sock.settimeout(60)
        try:
            ready = self._sock.recv(_MAX_MESSAGE)
        except OSError:
            ready = b""
        if not ready:
            self._proc.kill()
            raise SandboxError("the worker fork server did not start — is numpy importable by this Python?")
        self._ready = True

    def _pump(self, timeout: float) -> bool:
        """Read one message from the server; False when none came in time."""
        self._sock.settimeout(max(timeout, 0.0001))
        try:
            data = self._sock.recv(_MAX_MESSAGE)
        except TimeoutError:
            return False
        if not data:
            raise SandboxError("the worker fork server died — rerun the grader")
        message = json.loads(data)
        if "exited" in message:
            self._exits[int(message["exited"])] = int(message["code"])
        elif "spawned" in message:
            self._spawned[int(message["id"])] = int(message["spawned"])
        return True

    def spawn(self, config: dict[str, Any], fds: tuple[int, int]) -> int:
        with self._lock:
            self._wait_ready()
            self._next += 1
            request_id = self._next
            try:
                socket.send_fds(self._sock, [json.dumps({"id": request_id, "config": config}).encode()], list(fds))
            except OSError as exc:
                raise SandboxError(f"the worker fork server is gone: {exc} — rerun the grader") from None
            deadline = time.monotonic() + 30
            while request_id not in self._spawned:
                if not self._pump(deadline - time.monotonic()) and time.monotonic() > deadline:
                    raise SandboxError("the worker fork server did not answer within 30 s")
            return self._spawned.pop(request_id)

    def exit_code(self, pid: int, timeout: float) -> int | None:
        """The worker's exit code once the server has reaped it (negative: killed by that signal)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while pid not in self._exits:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._pump(remaining):
                    return None
            return self._exits.pop(pid)

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


_ZYGOTE: Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def get() -> Zygote:
    """The process-wide fork server, started on first use."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is None or _ZYGOTE._proc.poll() is not None:
            _ZYGOTE = Zygote()
            atexit.register(_ZYGOTE.close)
        return _ZYGOTE
