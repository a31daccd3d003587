"""Which sandbox layer protects learner workers on this machine, and why not a stronger one.

Strongest first; the first available one is used, unless ``GRADER_SANDBOX`` names one:

* ``bwrap``: the fork server runs inside bubblewrap: a root file system holding only the system, Python and
  the grader package (read-only) plus this run's folder of learner copies; empty read-only ``/tmp`` and
  ``/dev/shm``; no network; its own PID, IPC and UTS namespaces; killed with the grader. As root, each learner's
  worker then runs as its own unprivileged uid (``uid_block``); as an ordinary user it runs as that user.
* ``unshare`` (root, no bwrap): the same namespaces and root file system, built by the fork server itself
  (``unshare``, ``mount``, ``pivot_root``; it is PID 1 of its namespace), and the same uid per learner.
* ``seccomp`` (neither): no namespaces; the seccomp filter and Landlock below, as the grader's own uid.
* ``rlimits``: only what every layer has: resource limits, capped output, the process group killed, a scrubbed
  environment, links out of the submission never copied, every answer checked in the grader's process.

On every layer but ``rlimits`` each worker also gets a seccomp filter (no new processes, sockets, exec,
tracing, or signals to other processes; x86_64) and, when the kernel has it, Landlock (read the system, Python
and the grader; write only in the learner's own folder; no TCP). Choosing a layer costs a few system calls;
``grade --doctor`` (:func:`doctor_text`) also starts each available layer to time it.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import confine
from grader.errors import SandboxError

LAYERS = ("bwrap", "unshare", "seccomp", "rlimits")
ENV = "GRADER_SANDBOX"
UID_BASE = 1_700_000_000  # root layers: grader process P's learners run as uids UID_BASE + 64 P + 0..63, in turn
UIDS_PER_GRADER = 64
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")

_FAILED: dict[str, str] = {}  # layers that were available on paper but did not start, and why

WHAT = {
    "bwrap": "bubblewrap: only system, Python and grader visible (read-only), no network, own PIDs, a uid per learner "
             "(as root), seccomp, Landlock",
    "unshare": "the same namespaces and file system built by the grader itself (root only), a uid per learner, "
               "seccomp, Landlock",
    "seccomp": "no namespaces: seccomp filter (no processes, sockets, exec, signals) and Landlock (files), as your uid",
    "rlimits": "resource limits only: learner code can read and write whatever you can",
}


@dataclass(frozen=True)
class LayerStatus:
    name: str
    available: bool
    reason: str = ""  # why it is not available ("" when it is)


@dataclass(frozen=True)
class LayerReport:
    """What this machine offers; ``chosen`` is the layer a grader started now would use."""

    layers: tuple[LayerStatus, ...]
    chosen: str
    forced: bool
    seccomp: str  # "" when the filter can be installed, else why not
    landlock: int  # the kernel's Landlock ABI, 0 when none
    error: str = ""  # GRADER_SANDBOX names a layer that is not available here

    def status(self, name: str) -> LayerStatus:
        return next(s for s in self.layers if s.name == name)


@dataclass(frozen=True)
class Plan:
    """How to start one fork server: the command in front of Python, and what the server applies."""

    layer: str
    forced: bool
    command: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def uid(self) -> int | None:
        """The first uid of the block learners run as (None: they run as the grader's own uid)."""
        return self.config.get("uid")


def uid_block() -> int:
    """The first of this grader process's uids for learners (a block of ``UIDS_PER_GRADER``; pids are unique, so
    are blocks); no account has them."""
    return UID_BASE + (os.getpid() % 4_194_304) * UIDS_PER_GRADER


def requested() -> str | None:
    """The layer ``GRADER_SANDBOX`` forces, or None (the strongest available)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in LAYERS:
        raise SandboxError(f"{ENV}={value}: no such sandbox layer — use one of {', '.join(LAYERS)}, or unset it")
    return value


def mark_failed(layer: str, reason: str) -> None:
    _FAILED[layer] = reason


def _cap(bit: int) -> bool:
    return bool(confine.effective_caps() >> bit & 1)


def detect() -> LayerReport:
    """Which layers this machine offers and why the others are not; cheap (no process is started)."""
    root = os.geteuid() == 0
    seccomp_ok, seccomp_why = confine.seccomp_available()
    landlock = confine.landlock_abi()
    uid = uid_block()
    statuses = []
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        statuses.append(LayerStatus("bwrap", False, "bwrap not found on PATH (Debian/Ubuntu: apt install bubblewrap)"))
    elif not root and _userns_disabled():
        statuses.append(LayerStatus("bwrap", False, f"{bwrap} needs unprivileged user namespaces, which are disabled here"))
    elif root and not (confine.uid_is_mapped(uid) and confine.uid_is_mapped(uid + UIDS_PER_GRADER - 1)):
        statuses.append(LayerStatus("bwrap", False, f"uid {uid} does not exist in this user namespace (a container?)"))
    else:
        statuses.append(LayerStatus("bwrap", True))
    if not confine.LINUX:
        statuses.append(LayerStatus("unshare", False, "Linux only"))
    elif not root:
        statuses.append(LayerStatus("unshare", False, "needs root (the grader runs as an ordinary user)"))
    elif not _cap(confine.CAP_SYS_ADMIN):
        statuses.append(LayerStatus("unshare", False, "root without CAP_SYS_ADMIN (a container?) cannot create namespaces"))
    elif not (confine.uid_is_mapped(uid) and confine.uid_is_mapped(uid + UIDS_PER_GRADER - 1)):
        statuses.append(LayerStatus("unshare", False, f"uid {uid} does not exist in this user namespace (a container?)"))
    else:
        statuses.append(LayerStatus("unshare", True))
    statuses.append(LayerStatus("seccomp", seccomp_ok, seccomp_why))
    statuses.append(LayerStatus("rlimits", True))
    statuses = [LayerStatus(s.name, False, f"did not start: {_FAILED[s.name]}") if s.available and s.name in _FAILED else s
                for s in statuses]
    error = ""
    try:
        forced = requested()
    except SandboxError as exc:
        forced, error = None, str(exc)
    available = [s.name for s in statuses if s.available]
    if forced is not None:
        chosen = forced
        status = next(s for s in statuses if s.name == forced)
        if not status.available:
            error = f"{ENV}={forced}, but that layer is not available here: {status.reason}"
    else:
        chosen = available[0]
    return LayerReport(tuple(statuses), chosen, forced is not None, "" if seccomp_ok else seccomp_why, landlock, error)


def _userns_disabled() -> bool:
    for path, off in (("/proc/sys/kernel/unprivileged_userns_clone", "0"), ("/proc/sys/user/max_user_namespaces", "0")):
        try:
            if Path(path).read_text(encoding="ascii").strip() == off:
                return True
        except OSError:
            pass
    return False


# ----------------------------------------------------------------------------- what a worker may see

def _ancestor_links(path: str) -> list[tuple[str, str]]:
    """Symbolic links among the folders leading to ``path`` (e.g. /home -> var/home): recreated inside."""
    links = []
    current = "/"
    for part in Path(path).parts[1:]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            links.append((os.readlink(current), current))
            current = os.path.realpath(current)
    return links


def _nested(path: str, others: list[str]) -> bool:
    return any(path != o and (path + "/").startswith(o.rstrip("/") + "/") for o in others)


def visible_paths() -> dict[str, Any]:
    """What a worker may read: the system, this Python and its packages, the grader package (not its rubrics);
    ``links`` are symbolic links to recreate (merged /usr, a symlinked home)."""
    import importlib.util

    numpy = importlib.util.find_spec("numpy")  # where it is, without importing it (the server imports it, in parallel)
    links: list[tuple[str, str]] = []
    wanted: list[str] = []
    for path in _SYSTEM:
        if os.path.islink(path):
            links.append((os.readlink(path), path))
        elif os.path.isdir(path):
            wanted.append(path)
    python = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
              os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
              *site.getsitepackages(), sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"],
              str(Path(__file__).resolve().parent)]
    if numpy is not None and numpy.origin:
        python.append(os.path.dirname(os.path.dirname(numpy.origin)))
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        python.append(site.getusersitepackages())
    for path in python:
        if os.path.isdir(path):
            links.extend(link for link in _ancestor_links(os.path.abspath(path)) if link not in links)
            wanted.append(os.path.realpath(path))
    unique = list(dict.fromkeys(wanted))
    read = [p for p in unique if not _nested(p, unique)]
    return {"ro": read, "links": [list(link) for link in dict.fromkeys(links)]}


def _bwrap_command(paths: dict[str, Any], base: str, root: bool) -> tuple[str, ...]:
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "localhost"]
    if root:  # the fork server keeps what it needs to hand each worker its own uid, then the worker drops all
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    else:
        args += ["--unshare-user"]
    args += ["--dev", "/dev", "--remount-ro", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]  # first: a grader under /tmp stays visible
    folders: list[str] = []  # bwrap would create the folders above each bind 0700, closed to the worker's uid
    for path in [*paths["ro"], base]:
        for parent in reversed(Path(path).parents[:-1]):
            if str(parent) not in folders and str(parent) not in ("/tmp", "/dev", "/proc"):
                folders.append(str(parent))
    for folder in folders:
        args += ["--perms", "0755", "--dir", folder]
    for path in paths["ro"]:
        args += ["--ro-bind", path, path]
    for target, path in paths["links"]:
        args += ["--symlink", target, path]
    args += ["--bind", base, base, "--remount-ro", "/tmp", "--remount-ro", "/", "--chdir", "/"]
    return (*args, "--")


def plan(base: str, layer: str | None = None) -> Plan:
    """The layer to start a fork server with (``layer``, else ``GRADER_SANDBOX``, else the strongest available)
    and how; ``base`` is the run's folder of learner copies, the only place workers may write."""
    report = detect()
    if report.error and layer is None:
        raise SandboxError(report.error)
    forced = layer is not None or report.forced
    name = layer or report.chosen
    status = report.status(name)
    if not status.available:
        raise SandboxError(f"the {name} sandbox layer is not available here: {status.reason}")
    root = os.geteuid() == 0
    config: dict[str, Any] = {"layer": name, "base": base, "uid": None, "gid": None,
                              "seccomp": name != "rlimits" and not report.seccomp, "landlock": None, "drop_caps": False}
    command: tuple[str, ...] = ()
    paths = visible_paths() if name != "rlimits" else {"ro": [], "links": []}
    if name in ("bwrap", "unshare") and root:
        config["uid"] = config["gid"] = uid_block()
    if name == "bwrap":
        command = _bwrap_command(paths, base, root)
    elif name == "unshare":
        config["mounts"] = {"ro": paths["ro"], "links": paths["links"], "rw": [base]}
    elif name == "seccomp":
        config["drop_caps"] = root  # only when forced: as root, the stronger layers apply
    if report.landlock and name != "rlimits":  # the only file isolation seccomp has; elsewhere, between learners
        config["landlock"] = {"read": paths["ro"]}
    return Plan(name, forced, command, config)


# ----------------------------------------------------------------------------- grade --doctor

def measure(layer: str, workers: int = 5) -> tuple[float, float]:
    """Seconds to start a fork server with ``layer`` until it is ready, and the median seconds from asking for
    a worker to its load report (a tiny module)."""
    import tempfile

    from grader import zygote
    from grader.runner import LearnerRun
    from grader.sandbox import Limits

    started = time.perf_counter()
    server = zygote.Zygote(layer=layer)
    try:
        server.wait_ready()
        start = time.perf_counter() - started
        times = []
        with tempfile.TemporaryDirectory(prefix="grader-doctor-") as folder:
            learner = Path(folder) / "doctor"
            (learner / "phase-00").mkdir(parents=True)
            module = learner / "phase-00" / "probe.py"
            module.write_text("def probe(x):\n    return 1.0\n", encoding="utf-8")
            for _ in range(workers):
                with LearnerRun(learner, module, ("probe",), Limits(), server=server) as run:
                    began = time.perf_counter()
                    if not run.start().ok:
                        raise SandboxError(f"the {layer} layer started, but a worker could not load a module: {run.load.error}")
                    times.append(time.perf_counter() - began)
    finally:
        server.close()
    times.sort()
    return start, times[len(times) // 2]


_DOES_NOT_STOP = {
    "bwrap": "filling the disk with many files each under the size cap (set TMPDIR to a size-limited file system), "
             "reading world-readable system files (/etc), using its CPU and memory limits to the full",
    "unshare": "the same as bwrap; the namespaces and root are built by the grader's own code rather than bubblewrap",
    "seccomp": "learner code runs as your uid{landlock}; it shares your PID namespace (it cannot signal or trace "
               "your processes, but can tell they exist)",
    "rlimits": "reading and changing any file you can, the network, starting processes (unbounded as root), signals "
               "to any of your processes (as root: to every process)",
}


def doctor_text(measure_layers: bool = True) -> str:
    """What protects learner code on this machine (``grade --doctor``): every layer, available or why not, the one
    in use and what it does not stop, and (``measure_layers``) what each available layer costs here."""
    report = detect()
    costs: dict[str, str] = {}
    if measure_layers:
        for status in report.layers:
            if status.available:
                try:
                    start, fork = measure(status.name)
                except SandboxError as exc:
                    mark_failed(status.name, str(exc))
                else:
                    costs[status.name] = f"start {start * 1000:.0f} ms, then {fork * 1000:.1f} ms per worker"
        report = detect()
    lines = ["Sandbox layers for learner code, strongest first (* in use, + available, - not available):"]
    for status in report.layers:
        mark = "*" if status.name == report.chosen and not report.error else "+" if status.available else "-"
        if status.available:
            lines.append(f"  {mark} {status.name:8} {WHAT[status.name]}")
            if status.name in costs:
                lines.append(f"    {'':8} measured here: {costs[status.name]}")
        else:
            lines.append(f"  {mark} {status.name:8} not available: {status.reason}")
    lines.append("")
    if report.error:
        lines.append(f"grade will refuse to start: {report.error}")
    else:
        how = f"forced by {ENV}={report.chosen}" if report.forced else "the strongest available"
        lines.append(f"In use: {report.chosen} ({how}).")
        gap = _DOES_NOT_STOP[report.chosen].format(
            landlock=", but Landlock keeps it to its own folder (files) and away from TCP" if report.landlock
            else ", and this kernel has no Landlock: it can read and change any file you can")
        lines.append(f"It does not stop: {gap}.")
    lines.append("seccomp filter: " + ("applied on top of bwrap, unshare and seccomp" if not report.seccomp
                                        else f"not available: {report.seccomp}"))
    lines.append("Landlock: " + (f"ABI {report.landlock}, applied on top of bwrap, unshare and seccomp" if report.landlock
                                  else "not in this kernel"))
    lines.append(f"Choose a layer with {ENV}={'|'.join(LAYERS)} (unset: the strongest available).")
    return "\n".join(lines) + "\n"
