"""The parent's side of a learner worker: start it, talk to it in frames (``grader.protocol``), time it out, kill it.

Workers are forked by a fork server (``grader.zygote``) that preloaded numpy and ``grader.child``
only: a worker starts in milliseconds and its memory never held a rubric, a reference module or
an expected value. The parent sends plain data, reads plain data (msgpack with every size bounded, arrays as raw
float64), and never unpickles anything a worker produced. The sandbox layer (``grader.layers``) is the fork server's: a worker only applies
what its server was started with, and the checks never know which layer ran.
"""

from __future__ import annotations

import dataclasses
import selectors
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

from grader import child, zygote
from grader.i18n import Message, msg, verbatim
from grader.errors import SandboxError
from grader.protocol import HEADER, FrameTooLarge, ProtocolError, array_data, frame, frame_length, unpack


@dataclass(frozen=True)
class Limits:
    """Per-call and per-learner budgets; generous enough for a slow but correct learner."""

    call_seconds: float = 10.0
    learner_seconds: float = 120.0
    memory_bytes: int = 1 << 30
    file_bytes: int = 64 << 20
    max_processes: int = 64
    output_bytes: int = 64 << 10
    folder_bytes: int = 256 << 20  # what a learner's code may add to its own folder while it runs
    folder_files: int = 10_000


class WorkerDied(Exception):
    """The worker is gone (or was killed); ``said`` says why, for the learner, in their language (``reason``: the
    same in English, for logs)."""

    def __init__(self, said: Message | str, timed_out: bool = False) -> None:
        self.said = said if isinstance(said, Message) else verbatim(said)
        self.reason = self.said.english()
        super().__init__(self.reason)
        self.timed_out = timed_out


def exit_message(code: int | None) -> Message:
    if code is None:
        return msg("died.no_exit")
    if code < 0:
        sig = -code
        if sig == signal.SIGXCPU:
            return msg("died.cpu")
        if sig == signal.SIGXFSZ:
            return msg("died.file_size")
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return msg("died.native" if sig in (signal.SIGSEGV, signal.SIGBUS) else "died.signal", signal=name)
    if code == 70:
        return msg("died.internal")
    return msg("died.exit", code=code)


def describe_exit(code: int | None) -> str:
    return exit_message(code).english()


def _wire(arg: Any) -> Any:
    if hasattr(arg, "tolist") and hasattr(arg, "shape") and getattr(arg, "shape", ()) != ():
        return {"array": array_data(arg)}
    if hasattr(arg, "item") and not isinstance(arg, (int, float)):
        return arg.item()
    return arg


def encode_args(args: tuple[Any, ...]) -> list[Any]:
    return [_wire(a) for a in args]


class Worker:
    """One learner process. Not thread-safe; one call at a time."""

    def __init__(self, config: child.ChildConfig, limits: Limits, output: bytearray,
                 server: zygote.Zygote | None = None) -> None:
        self.config = config
        self._server = server
        self.limits = limits
        self._output = output
        self._buffer = bytearray()
        self._pid: int | None = None
        self._proto: socket.socket | None = None
        self._out: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None

    def start(self, deadline: float) -> dict[str, Any]:
        """Fork the worker and wait for its load report; raises WorkerDied if it never reports."""
        proto_parent, proto_child = socket.socketpair()
        out_parent, out_child = socket.socketpair()
        try:
            pid = self.server.spawn(dataclasses.asdict(self.config), (proto_child.fileno(), out_child.fileno()))
        except SandboxError:
            proto_parent.close()
            out_parent.close()
            raise
        finally:
            proto_child.close()
            out_child.close()
        self._pid, self._proto, self._out = pid, proto_parent, out_parent
        self._selector = selectors.DefaultSelector()
        self._selector.register(proto_parent, selectors.EVENT_READ)
        self._selector.register(out_parent, selectors.EVENT_READ)
        confined = self.receive(deadline)  # written before any learner code runs: only it may speak of the sandbox
        if "sandbox_error" in confined:
            self._kill()
            raise SandboxError(msg("sandbox.not_confined", layer=self.server.layer, error=verbatim(str(confined["sandbox_error"]))))
        if confined.get("confined") is not True:
            self._kill()
            raise WorkerDied(msg("died.protocol"))
        ready = self.receive(deadline, violation=msg("died.channel"))
        if "ready" not in ready or "sandbox_error" in ready:  # learner code wrote on the grader's channel
            self._kill()
            raise WorkerDied(msg("died.channel"))
        return ready

    @property
    def server(self) -> zygote.Zygote:
        if self._server is None:
            self._server = zygote.get()
        return self._server

    def send(self, calls: list[tuple[str, list[Any]]]) -> None:
        """Queue calls, in one frame; the worker answers them in order, one frame each."""
        assert self._proto is not None
        payload = frame({"calls": [[fn, args] for fn, args in calls]})
        try:
            self._proto.sendall(payload)
        except OSError:
            raise WorkerDied(self._bury()) from None

    def receive(self, deadline: float, violation: Message | None = None) -> dict[str, Any]:
        """The next reply; raises WorkerDied (timed_out set) if it does not come by the deadline. ``violation``: what
        a frame that is not a reply means here (the load report's place: learner code wrote on the channel)."""
        try:
            body = self._read_frame(deadline)
            message = None if body is None else unpack(body)
        except ProtocolError as exc:
            self._kill()
            raise WorkerDied(violation or msg("died.too_large" if isinstance(exc, FrameTooLarge) else "died.protocol")) from None
        if body is None:
            seconds = self.limits.call_seconds
            self._kill()
            raise WorkerDied(msg("died.timeout", seconds=f"{seconds:g}"), timed_out=True)
        if not isinstance(message, dict):
            self._kill()
            raise WorkerDied(violation or msg("died.protocol"))
        return message

    def _read_frame(self, deadline: float) -> bytes | None:
        """The next whole frame's body (None: not by the deadline); a header claiming more than the cap is refused
        before anything more is read."""
        assert self._selector is not None
        while (length := frame_length(self._buffer)) is None or len(self._buffer) < HEADER.size + length:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            for key, _ in self._selector.select(remaining):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(1 << 16)
                except OSError:
                    data = b""
                if sock is self._out:
                    if not data:
                        self._selector.unregister(sock)
                    self._keep_output(data)
                    continue
                if not data:
                    raise WorkerDied(self._bury())
                self._buffer += data
        body = bytes(self._buffer[HEADER.size:HEADER.size + length])
        del self._buffer[:HEADER.size + length]
        return body

    def _keep_output(self, data: bytes) -> None:
        room = self.limits.output_bytes - len(self._output)
        if room > 0:
            self._output += data[:room]

    def drain_output(self) -> None:
        """Read what is left on the output socket (a worker that has sent its last frame)."""
        if self._out is None:
            return
        self._out.setblocking(False)
        try:
            while data := self._out.recv(1 << 16):
                self._keep_output(data)
        except OSError:
            pass

    def _bury(self) -> Message:
        """The worker closed its end: wait for its exit status and say what happened."""
        code = self.server.exit_code(self._pid, 2.0) if self._pid is not None else None
        self.drain_output()
        self._kill(reaped=code is not None)
        return exit_message(code)

    def _kill(self, reaped: bool = False) -> None:
        """Kill the worker's whole process group and wait until the fork server has reaped it (the server does the
        killing: the pid is one of its PID namespace, and it also kills whatever the worker left behind)."""
        pid = self._pid
        if pid is not None and not reaped:
            try:
                self.server.kill(pid)
            except SandboxError:
                pass
            else:
                self.server.exit_code(pid, 5.0)
        if self._selector is not None:
            self._selector.close()
        for sock in (self._proto, self._out):
            if sock is not None:
                sock.close()
        self._pid = None
        self._proto = self._out = None
        self._selector = None
        self._buffer = bytearray()

    def close(self) -> None:
        self._kill()

