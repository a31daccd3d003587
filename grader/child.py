"""What runs inside a learner's worker process (never in the grader's).

The worker loads the learner's module, then answers call requests on a socket: a frame of calls
in, one frame per answer out (``grader.protocol``). It imports numpy, msgpack and the standard
library only: the fork server preloads it, so a new worker is a fork, not a new interpreter, and
nothing from the rubric or reference is in memory.
"""

from __future__ import annotations

import ast
import errno
import importlib.util
import inspect
import numbers
import os
import resource
import signal
import socket
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader.protocol import HEADER, MAX_ELEMENTS, array_data, frame, unpack


@dataclass(frozen=True)
class ChildConfig:
    """Plain data the parent hands to a new worker."""

    module_path: str
    workdir: str
    mode: str  # "import" runs the whole module; "ast" only imports, defs and constants; "script" runs it as __main__
    functions: tuple[str, ...]
    memory_bytes: int
    cpu_seconds: int  # the whole worker (per learner)
    call_cpu_seconds: float  # one call
    file_bytes: int
    max_processes: int
    private_dir: str = ""  # the learner's own folder: their copy, and tmp/ (TMPDIR, HOME); the only writable place
    outside_links: tuple[str, ...] = ()  # links in the submission that point out of it: not copied, named when missed
    uid: int | None = None  # the learner's own uid, when the server's layer drops privileges


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    try:
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):
        pass


def _vm_size() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _apply_limits(config: ChildConfig) -> None:
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_CPU, config.cpu_seconds, config.cpu_seconds + 1)
    _limit(resource.RLIMIT_FSIZE, config.file_bytes)
    _limit(resource.RLIMIT_AS, _vm_size() + config.memory_bytes)
    _limit(resource.RLIMIT_NPROC, config.max_processes)  # binds once the worker is not root


def _confine(config: ChildConfig, sandbox: dict[str, Any]) -> None:
    """Apply the server's layer to this worker, for good: its own uid, then Landlock, then the seccomp filter."""
    from grader import confine

    if sandbox.get("uid") is not None:
        uid = config.uid if config.uid is not None else int(sandbox["uid"])
        confine.drop_to(uid, uid)
    if confine.LINUX:
        confine.prctl(confine.PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
    if sandbox.get("server") and os.getppid() != sandbox["server"]:
        os._exit(70)  # the server died before that: nobody would ever kill this worker
    if config.private_dir:
        tmp = os.path.join(config.private_dir, "tmp")
        os.environ.update(TMPDIR=tmp, TEMP=tmp, TMP=tmp, HOME=config.private_dir)
        tempfile.tempdir = None
    if sandbox.get("landlock"):
        own = [f"/proc/{os.getpid()}/{entry}" for entry in confine.PROC_SELF]  # not net/, task/*/net/, mountinfo
        confine.landlock(read=[*sandbox["landlock"]["read"], *own], write=[config.private_dir])
    if sandbox.get("drop_caps") and os.geteuid() == 0:
        confine.keep_only_caps([])
    if sandbox.get("seccomp"):
        confine.install_seccomp()


def _isolate_fds(proto: socket.socket, out: socket.socket) -> None:
    """Learner prints go to the output socket; nothing else the parent holds stays open."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    keep = proto.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115


def _calls_local(node: ast.AST, local: set[str]) -> bool:
    return any(
        isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in local for sub in ast.walk(node)
    )


def _is_sys_path_call(stmt: ast.stmt) -> bool:
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return False
    return "sys.path" in ast.unparse(stmt.value.func)


def _keep(stmt: ast.stmt, local: set[str], strict: bool) -> bool:
    """Imports, definitions and constants: what the functions need, not the script around them.

    ``strict`` also leaves out constants computed by the module's own functions (``result = f(x)``),
    for when running them hung or crashed the worker."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        return stmt.value is not None and not (strict and _calls_local(stmt.value, local))
    if isinstance(stmt, ast.Try):
        return all(_keep(s, local, strict) for s in stmt.body)
    return _is_sys_path_call(stmt)


def _load_ast(path: Path, name: str, strict: bool = False) -> tuple[Any, list[str]]:
    source = path.read_text(encoding="utf-8", errors="replace")
    tree = ast.parse(source, filename=str(path))
    local = {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    skipped: list[dict[str, Any]] = []  # as plain data: the grader says them in the learner's language
    for stmt in tree.body:
        if not _keep(stmt, local, strict):
            if strict and _keep(stmt, local, False):
                skipped.append({"line": stmt.lineno, "not_run": True})
            continue
        code = compile(ast.Module(body=[stmt], type_ignores=[]), str(path), "exec")
        try:
            exec(code, module.__dict__)  # noqa: S102 - this is the learner's sandboxed worker
        except BaseException as exc:  # noqa: BLE001 - a failing statement must not stop the rest
            named = stmt.name[:100] if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else ""
            text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            entry = {"line": stmt.lineno, "def": named, "type": type(exc).__name__[:100], "text": text}
            if entry not in skipped:
                skipped.append(entry)
    return module, skipped


def _load_import(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_LEARNER_ROOT = ""
_WORKER_PID = 0
_OUTSIDE_LINKS: tuple[str, ...] = ()
_FILE_BYTES = 0


def _described(exc: BaseException) -> dict[str, Any]:
    """The exception as plain data — its type, first line, the learner's own line that led to it (not numpy's) and
    which hint applies — for the grader to say in the learner's language."""
    if isinstance(exc, SystemExit):
        return {"exit": repr(exc.code)[:100]}
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.endswith("child.py")]
    own = [f for f in frames if _LEARNER_ROOT and f.filename.startswith(_LEARNER_ROOT)]
    chosen = own or frames
    frame = chosen[-1] if chosen else None
    data: dict[str, Any] = {"type": type(exc).__name__[:100], "text": text}
    if frame:
        data.update(line=int(frame.lineno or 0), function=str(frame.name)[:100], file=os.path.basename(frame.filename)[:200])
    missing = str(getattr(exc, "filename", "") or "")
    link = next((name for name in _OUTSIDE_LINKS if missing and os.path.abspath(missing) == _LEARNER_ROOT + name), None)
    if isinstance(exc, FileNotFoundError) and link:
        data.update(hint="link", link=link[:200])
    elif isinstance(exc, FileNotFoundError) and os.path.isabs(missing) and not missing.startswith(_LEARNER_ROOT):
        data["hint"] = "outside"
    elif isinstance(exc, FileNotFoundError):
        data["hint"] = "relative"
    elif isinstance(exc, MemoryError):
        data["hint"] = "memory"
    elif isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno == errno.EROFS):
        data["hint"] = "sandbox"
    elif isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        data.update(hint="file_size", mib=_FILE_BYTES >> 20)
    elif isinstance(exc, BlockingIOError) and exc.errno == errno.EAGAIN:
        data["hint"] = "processes"
    return data


_HINTS = {
    "link": "; {link} is a link to a file outside your folder, which the grader does not follow — hand in the file itself",
    "outside": "; learner code sees only its own folder, the system and Python, not other files of the grader's machine",
    "relative": "; files are opened relative to the working directory, your phase folder — use Path(__file__).parent / name",
    "memory": "; the worker's memory is limited",
    "sandbox": "; the grader's sandbox does not let learner code start processes, use the network, or touch files "
               "outside its own folder",
    "file_size": "; a file written by learner code may hold at most {mib} MiB",
    "processes": "; the grader's sandbox limits how many processes learner code may start",
}


def _describe(exc: BaseException) -> str:
    """The same in English, for the notes of a module that could not load."""
    data = _described(exc)
    if "exit" in data:
        return f"called sys.exit({data['exit']})"
    text = data["text"]
    place = f" (line {data['line']} in {data['function']}, {data['file']})" if "line" in data else ""
    hint = _HINTS[data["hint"]].format(**data) if "hint" in data else ""
    return f"raised {data['type']}{': ' + text if text else ''}{place}{hint}"


def _scalar(dtype: str, number: float) -> dict[str, Any]:
    return {"dtype": dtype, **array_data(np.float64(number))}


def encode(value: Any) -> dict[str, Any]:
    """A learner's return value as plain numbers (raw float64); anything else is described, never sent."""
    if isinstance(value, (bool, np.bool_)):
        return _scalar("bool", float(value))
    if isinstance(value, numbers.Number) and not isinstance(value, (np.ndarray, complex, np.complexfloating)):
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return {"type": type(value).__name__}
        dtype = value.dtype.name if isinstance(value, np.generic) else type(value).__name__
        return _scalar(dtype, number)
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            array = np.array(value, subok=False)
        except Exception:  # noqa: BLE001 - ragged or exotic: say what it was
            return {"type": type(value).__name__}
        if array.dtype.kind not in "biuf":
            return {"type": f"{type(value).__name__} of {array.dtype.name}"}
        if array.size > MAX_ELEMENTS:
            return {"type": f"array of shape {array.shape} ({array.size:,} entries, more than the {MAX_ELEMENTS:,} accepted)"}
        return {"dtype": array.dtype.name, **array_data(array)}
    return {"type": type(value).__name__}


def _decode(arg: Any) -> Any:
    if isinstance(arg, dict) and "array" in arg:
        shape, data = arg["array"]["shape"], arg["array"]["data"]
        return np.frombuffer(data, dtype="<f8").reshape(shape).astype(np.float64)  # the learner's own writable copy
    return arg


def _changed(after: np.ndarray, before: np.ndarray | None) -> bool:
    """Only an argument the call changed travels back (the grader tells the learner about it)."""
    try:
        return before is None or after.shape != before.shape or not np.array_equal(after, before, equal_nan=True)
    except Exception:  # noqa: BLE001 - a learner-made oddity: let the grader look at it
        return True


def _send(proto: socket.socket, message: dict[str, Any]) -> None:
    proto.sendall(frame(message))


def _requests(reader: Any) -> Any:
    """The parent's frames, one list of calls each, until it closes the channel."""
    while len(header := reader.read(HEADER.size)) == HEADER.size:
        (length,) = HEADER.unpack(header)
        body = reader.read(length)
        if len(body) != length:
            return
        yield from unpack(body)["calls"]


def _cpu_budget_for_one_call(config: ChildConfig) -> None:
    """The CPU a call may use from now, within the worker's own limit (the kernel stops it with SIGXCPU)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = min(int(used + config.call_cpu_seconds) + 1, config.cpu_seconds)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))
    except (ValueError, OSError):
        pass


def _forked_copy_leaves() -> None:
    """A process the learner's code forked never answers for the worker: it leaves here, silently."""
    if _WORKER_PID and os.getpid() != _WORKER_PID:
        os._exit(0)


def _serve(proto: socket.socket, module: Any, config: ChildConfig) -> None:
    for name, wire in _requests(proto.makefile("rb")):
        fn = getattr(module, name, None)
        if not callable(fn):
            _send(proto, {"ok": False, "error": f"no function {name}"})
            continue
        args = [_decode(a) for a in wire]
        before = [a.copy() if isinstance(a, np.ndarray) else None for a in args]
        _cpu_budget_for_one_call(config)
        try:
            value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - every learner failure is reported as data
            _forked_copy_leaves()
            _send(proto, {"ok": False, "error": _describe(exc), "raised": _described(exc)})
            continue
        _forked_copy_leaves()
        after = [encode(a) if isinstance(a, np.ndarray) and _changed(a, b) else None for a, b in zip(args, before)]
        try:
            reply = frame({"ok": True, "value": encode(value), "after": after})
        except BaseException as exc:  # noqa: BLE001
            _send(proto, {"ok": False, "error": f"returned a value that cannot be read: {_describe(exc)}"})
            continue
        proto.sendall(reply)


def _run_script(path: Path) -> dict[str, Any]:
    """The file as ``python file.py`` runs it (its ``__main__`` block too): what it printed went to the output
    socket; how it ended is the reply."""
    import runpy

    ended: dict[str, Any] = {"ready": True, "script": True, "ok": True}
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            ended.update(ok=False, raised=_described(exc))
    except BaseException as exc:  # noqa: BLE001 - the script's own failure is reported as data
        ended.update(ok=False, raised=_described(exc))
    _forked_copy_leaves()
    return ended


def main(proto: socket.socket, out: socket.socket, config: ChildConfig, sandbox: dict[str, Any] | None = None) -> None:
    """Worker entry point: isolate, limit, confine, load, serve; always leave by ``os._exit``."""
    code = 0
    try:
        os.setsid()
        _isolate_fds(proto, out)
        global _LEARNER_ROOT, _WORKER_PID, _OUTSIDE_LINKS, _FILE_BYTES
        _FILE_BYTES = config.file_bytes
        _LEARNER_ROOT = str(Path(config.workdir).parent) + os.sep
        _WORKER_PID = os.getpid()
        _OUTSIDE_LINKS = tuple(config.outside_links)
        _apply_limits(config)
        try:
            _confine(config, sandbox or {})
        except Exception as exc:  # fail closed: no learner code runs unconfined
            _send(proto, {"ready": False, "sandbox_error": f"{type(exc).__name__}: {exc}"})
            raise
        _send(proto, {"confined": True})
        os.chdir(config.workdir)
        sys.dont_write_bytecode = True
        path = Path(config.module_path)
        sys.path.insert(0, str(path.parent))
        sys.argv = [str(path)]
        name = "".join(c if c.isalnum() else "_" for c in path.stem)
        if name[:1].isdigit():
            name = "_" + name
        note = ""
        note_data: dict[str, Any] | None = None
        skipped: list[dict[str, Any]] = []
        if config.mode == "script":
            ended = _run_script(path)
            sys.stdout.flush()
            sys.stderr.flush()
            _send(proto, ended)
            return
        if config.mode == "import":
            try:
                module = _load_import(path, name)
            except SyntaxError as exc:
                _send(proto, {"ready": False, "error": f"SyntaxError at line {exc.lineno}: {exc.msg}",
                              "syntax": {"line": int(exc.lineno or 0), "text": str(exc.msg)[:300]}})
                raise
            except BaseException as exc:  # noqa: BLE001 - fall back to the definitions alone
                note = f"running the module {_describe(exc)}"
                note_data = _described(exc)
                module, skipped = _load_ast(path, name)
        else:
            module, skipped = _load_ast(path, name, strict=config.mode == "ast-strict")
        names = vars(module)
        lab = [n for n in config.functions if callable(names.get(n))]  # a def, or a bound method, partial, object
        found = lab + sorted(n for n, v in names.items() if inspect.isfunction(v) and not n.startswith("_") and n not in lab)
        # the lab's first: the parent reads at most the first 1,000 names
        _forked_copy_leaves()
        sys.stdout.flush()
        _send(proto, {"ready": True, "mode": "ast" if note else config.mode, "note": note, "note_data": note_data,
                      "skipped": skipped[:10], "functions": found})
        _serve(proto, module, config)
    except BaseException:  # noqa: BLE001
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        os._exit(code)

