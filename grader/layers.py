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
from grader.i18n import Message, as_message, msg, say, verbatim

LAYERS = ("bwrap", "unshare", "seccomp", "rlimits")
ENV = "GRADER_SANDBOX"
UID_BASE = 1_700_000_000  # root layers: grader process P's learners run as uids UID_BASE + 64 P + 0..63, in turn
UIDS_PER_GRADER = 64
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")

_FAILED: dict[str, Message] = {}  # layers that were available on paper but did not start, and why

WHAT = {  # what each layer does, for grade --doctor
    "bwrap": msg("doctor.what.bwrap"),
    "unshare": msg("doctor.what.unshare"),
    "seccomp": msg("doctor.what.seccomp"),
    "rlimits": msg("doctor.what.rlimits"),
}


@dataclass(frozen=True)
class LayerStatus:
    name: str
    available: bool
    reason: Message | None = None  # why it is not available (None when it is)


@dataclass(frozen=True)
class LayerReport:
    """What this machine offers; ``chosen`` is the layer a grader started now would use."""

    layers: tuple[LayerStatus, ...]
    chosen: str
    forced: bool
    seccomp: Message | None  # None when the filter can be installed, else why not
    landlock: int  # the kernel's Landlock ABI, 0 when none
    error: Message | None = None  # GRADER_SANDBOX names a layer that is not available here

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
        raise SandboxError(msg("layer.unknown", env=ENV, value=value, layers=list(LAYERS)))
    return value


def mark_failed(layer: str, reason: Message | str) -> None:
    """``reason``: why it did not start (a catalogue message, or the server's own last line of error output)."""
    _FAILED[layer] = as_message(reason)


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
        statuses.append(LayerStatus("bwrap", False, msg("layer.no_bwrap")))
    elif not root and _userns_disabled():
        statuses.append(LayerStatus("bwrap", False, msg("layer.no_userns", bwrap=bwrap)))
    elif root and not (confine.uid_is_mapped(uid) and confine.uid_is_mapped(uid + UIDS_PER_GRADER - 1)):
        statuses.append(LayerStatus("bwrap", False, msg("layer.no_uid", uid=uid)))
    else:
        statuses.append(LayerStatus("bwrap", True))
    if not confine.LINUX:
        statuses.append(LayerStatus("unshare", False, msg("layer.linux_only")))
    elif not root:
        statuses.append(LayerStatus("unshare", False, msg("layer.needs_root")))
    elif not _cap(confine.CAP_SYS_ADMIN):
        statuses.append(LayerStatus("unshare", False, msg("layer.no_sys_admin")))
    elif not (confine.uid_is_mapped(uid) and confine.uid_is_mapped(uid + UIDS_PER_GRADER - 1)):
        statuses.append(LayerStatus("unshare", False, msg("layer.no_uid", uid=uid)))
    else:
        statuses.append(LayerStatus("unshare", True))
    seccomp = None if seccomp_ok else as_message(seccomp_why)  # confine's own words
    statuses.append(LayerStatus("seccomp", seccomp_ok, seccomp))
    statuses.append(LayerStatus("rlimits", True))
    statuses = [LayerStatus(s.name, False, msg("layer.did_not_start", reason=_FAILED[s.name]))
                if s.available and s.name in _FAILED else s for s in statuses]
    error: Message | None = None
    try:
        forced = requested()
    except SandboxError as exc:
        forced, error = None, exc.message
    available = [s.name for s in statuses if s.available]
    if forced is not None:
        chosen = forced
        status = next(s for s in statuses if s.name == forced)
        if not status.available:
            error = msg("layer.forced_missing", env=ENV, layer=forced, reason=status.reason)
    else:
        chosen = available[0]
    return LayerReport(tuple(statuses), chosen, forced is not None, seccomp, landlock, error)


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
    if report.error is not None and layer is None:
        raise SandboxError(report.error)
    forced = layer is not None or report.forced
    name = layer or report.chosen
    status = report.status(name)
    if not status.available:
        raise SandboxError(msg("layer.not_available", layer=name, reason=status.reason))
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
                        raise SandboxError(msg("layer.probe_failed", layer=layer, error=run.load.error_said or as_message(run.load.error)))
                    times.append(time.perf_counter() - began)
    finally:
        server.close()
    times.sort()
    return start, times[len(times) // 2]


_DOES_NOT_STOP = {  # what each layer leaves to the learner's code, for grade --doctor
    "bwrap": msg("doctor.gap.bwrap"),
    "unshare": msg("doctor.gap.unshare"),
    "rlimits": msg("doctor.gap.rlimits"),
}


def _gap(report: LayerReport) -> Message:
    if report.chosen == "seccomp":
        return msg("doctor.gap.seccomp", landlock=msg("doctor.gap.landlock" if report.landlock else "doctor.gap.no_landlock"))
    return _DOES_NOT_STOP[report.chosen]


def doctor_text(measure_layers: bool = True, lang: str = "en") -> str:
    """What protects learner code on this machine (``grade --doctor``), in ``lang``: every layer, available or why
    not, the one in use and what it does not stop, and (``measure_layers``) what each available layer costs here."""
    report = detect()
    costs: dict[str, Message] = {}
    if measure_layers:
        for status in report.layers:
            if status.available:
                try:
                    start, fork = measure(status.name)
                except SandboxError as exc:
                    mark_failed(status.name, exc.message)
                else:
                    costs[status.name] = msg("doctor.measured", start_ms=start * 1000, fork_ms=fork * 1000)
        report = detect()

    def words(message: Message) -> str:
        return say(message, lang)

    lines = [words(msg("doctor.head"))]
    for status in report.layers:
        mark = "*" if status.name == report.chosen and report.error is None else "+" if status.available else "-"
        if status.available:
            lines.append(f"  {mark} {status.name:8} {words(WHAT[status.name])}")
            if status.name in costs:
                lines.append(f"    {'':8} {words(costs[status.name])}")
        else:
            lines.append(f"  {mark} {status.name:8} {words(msg('doctor.not_available', reason=status.reason or verbatim('')))}")
    lines.append("")
    if report.error is not None:
        lines.append(words(msg("doctor.refuses", error=report.error)))
    else:
        how = msg("doctor.forced", env=ENV, layer=report.chosen) if report.forced else msg("doctor.strongest")
        lines.append(words(msg("doctor.in_use", layer=report.chosen, how=how)))
        lines.append(words(msg("doctor.does_not_stop", gap=_gap(report))))
    lines.append(words(msg("doctor.seccomp.on") if report.seccomp is None else msg("doctor.seccomp.off", reason=report.seccomp)))
    lines.append(words(msg("doctor.landlock.on", abi=report.landlock) if report.landlock else msg("doctor.landlock.off")))
    lines.append(words(msg("doctor.choose", env=ENV, layers="|".join(LAYERS))))
    return "\n".join(lines) + "\n"
