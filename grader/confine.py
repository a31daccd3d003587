"""The kernel mechanisms behind the sandbox layers, through ctypes: namespaces and mounts, credentials,
a seccomp filter and Landlock. Standard library only: the fork server and every worker import it.

Which layer uses what is decided in ``grader.layers``; this module only knows how to do each thing,
and every function fails with ``OSError`` (never half-applies silently).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct
import sys
from collections.abc import Iterable, Sequence
from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)

MACHINE = os.uname().machine
LINUX = sys.platform.startswith("linux")
_SYSCALLS: dict[str, dict[str, int]] = {
    # name: number, for the architectures the seccomp filter is written for
    "x86_64": {
        "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "accept4": 288,
        "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone3": 435,
        "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
        "pidfd_send_signal": 424, "pidfd_open": 434, "pidfd_getfd": 438,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "bpf": 321, "userfaultfd": 323, "perf_event_open": 298,
        "keyctl": 250, "add_key": 248, "request_key": 249,
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "mknod": 133, "mknodat": 259, "open_by_handle_at": 304, "name_to_handle_at": 303,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "settimeofday": 164, "clock_settime": 227,
        "clock_adjtime": 305, "adjtimex": 159, "sethostname": 170, "setdomainname": 171, "iopl": 172,
        "ioperm": 173, "quotactl": 179, "syslog": 103, "vhangup": 153, "personality": 135,
        "process_madvise": 440, "setpriority": 141,
        "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66, "semtimedop": 220,
        "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "mq_open": 240, "mq_unlink": 241,
        "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
        "memfd_create": 319, "memfd_secret": 447, "fcntl": 72, "ioctl": 16,
    },
}
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_AUDIT_ARCH = {"x86_64": 0xC000003E}

# the syscalls a worker never needs: processes, network, tracing, privileged kernel interfaces
_DENIED = (
    "socket", "connect", "accept", "bind", "listen", "accept4", "fork", "vfork", "execve", "execveat",
    "tkill", "pidfd_send_signal", "pidfd_open", "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev",
    "kcmp", "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "userfaultfd", "perf_event_open",
    "keyctl", "add_key", "request_key", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "mknod", "mknodat",
    "open_by_handle_at", "name_to_handle_at", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "reboot", "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "sethostname", "setdomainname", "iopl", "ioperm", "quotactl", "syslog", "vhangup", "personality",
    "process_madvise", "setpriority",
    # memory outside the address-space limit that can outlive the worker (SysV IPC, POSIX queues, memfd)
    "shmget", "shmat", "shmctl", "semget", "semop", "semctl", "semtimedop", "msgget", "msgsnd", "msgrcv", "msgctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    "memfd_create", "memfd_secret",
)
# fcntl/ioctl commands that would make the kernel signal another process for the worker (SIGIO to an owner)
_F_SETOWN, _F_SETSIG, _F_SETOWN_EX = 8, 10, 15
_FIOSETOWN, _SIOCSPGRP = 0x8901, 0x8902

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2

CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN = 5, 6, 7, 21
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return _check(_libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)),
                  f"prctl({option})")


# ----------------------------------------------------------------------------- namespaces and mounts

def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _bind(source: str, target: str, *, writable: bool, device: bool = False) -> None:
    _mount(source, target, None, MS_BIND)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (0 if device else MS_NODEV) | (0 if writable else MS_RDONLY)
    _mount(None, target, None, flags)


def build_root(plan: dict[str, Any], scratch: str) -> None:
    """Make ``scratch`` a tmpfs holding only what ``plan`` names, then pivot into it (needs root, a new mount
    namespace, and to be PID 1 of a new PID namespace for /proc). The host's root is detached."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    os.umask(0o022)  # the folders made above each bind must be open to the workers' uid

    def inside(path: str) -> str:
        return scratch + path

    for path in plan["ro"]:
        os.makedirs(inside(path), exist_ok=True)
        _bind(path, inside(path), writable=False)
    for target, path in plan["links"]:
        os.makedirs(os.path.dirname(inside(path)), exist_ok=True)
        os.symlink(target, inside(path))
    for path in plan["rw"]:
        os.makedirs(inside(path), exist_ok=True)
        _bind(path, inside(path), writable=True)
    os.makedirs(inside("/dev"), exist_ok=True)
    _mount("tmpfs", inside("/dev"), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755")
    for device in DEVICES:
        if os.path.exists(device):
            open(inside(device), "w").close()  # an empty file to mount the device on
            _bind(device, inside(device), writable=True, device=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, inside(f"/dev/{name}"))
    os.makedirs(inside("/tmp"), mode=0o755, exist_ok=True)
    os.makedirs(inside("/proc"), exist_ok=True)
    _mount("proc", inside("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(scratch)
    nr = _PIVOT_ROOT.get(MACHINE)
    if nr is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown for {MACHINE}")
    _check(_libc.syscall(nr, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")
    for path in ("/dev", "/"):
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def enter_namespaces(plan: dict[str, Any], keep_fd: int) -> None:
    """New mount, network, IPC, UTS and PID namespaces. The calling process stays outside as a waiter (like
    bwrap's): it returns only in the child, which is PID 1 inside, with the root of ``plan``."""
    unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID)
    pid = os.fork()
    if pid:
        os.close(keep_fd)  # only the inner process may hold the control socket
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _, status = os.waitpid(pid, 0)
        os._exit(max(os.waitstatus_to_exitcode(status), 0))
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    scratch = os.path.join(plan["rw"][0], ".root")
    os.mkdir(scratch, 0o700)
    build_root(plan, scratch)
    try:
        _libc.sethostname(b"localhost", 9)
    except OSError:
        pass


# ----------------------------------------------------------------------------- credentials

class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def keep_only_caps(caps: Iterable[int]) -> None:
    """Drop every capability but ``caps`` from the bounding, permitted and effective sets."""
    keep = set(caps)
    last = 40
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            last = int(f.read())
    except OSError:
        pass
    for cap in range(last + 1):
        if cap not in keep:
            try:
                prctl(PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
    mask = sum(1 << c for c in keep)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)(_CapData(mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0), _CapData(mask >> 32, mask >> 32, 0))
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def effective_caps() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def drop_to(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` for good (real, effective and saved; no groups); capabilities go with root."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or effective_caps():
        raise OSError(errno.EPERM, f"could not drop to uid {uid}")


def uid_is_mapped(uid: int) -> bool:
    """Whether ``uid`` exists in this user namespace (a container may map only a few)."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            for line in f:
                inside, _, count = (int(x) for x in line.split())
                if inside <= uid < inside + count:
                    return True
    except (OSError, ValueError):
        return True
    return False


# ----------------------------------------------------------------------------- seccomp

_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_KILL, _RET_ALLOW, _RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000


def seccomp_available() -> tuple[bool, str]:
    if not LINUX:
        return False, f"seccomp is Linux only (this system: {sys.platform})"
    if MACHINE not in _SYSCALLS:
        return False, f"the filter is written for x86_64 only (this machine: {MACHINE})"
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            if not any(line.startswith("Seccomp:") for line in status):
                return False, "this kernel has no seccomp (CONFIG_SECCOMP)"
    except OSError:
        pass
    return True, ""


def seccomp_program(own_pid: int) -> bytes:
    """A BPF program: deny ``_DENIED`` with EPERM, ``clone`` unless it makes a thread, ``clone3`` with ENOSYS
    (glibc then uses clone), and signals to any process but this one; kill on a foreign ABI."""
    nr = _SYSCALLS[MACHINE]
    code: list[tuple[int, Any, Any, int]] = []  # (opcode, jump-if-true label, jump-if-false label, k)

    def op(opcode: int, k: int, jt: Any = 0, jf: Any = 0) -> None:
        code.append((opcode, jt, jf, k & 0xFFFFFFFF))

    def load_arg(index: int) -> None:
        op(_LD_W_ABS, 16 + 8 * index)  # the low 32 bits (little-endian)

    op(_LD_W_ABS, 4)
    op(_JEQ, _AUDIT_ARCH[MACHINE], 0, "kill")
    op(_LD_W_ABS, 0)
    op(_JGE, 0x40000000, "kill", 0)  # the x32 ABI
    for name in _DENIED:
        op(_JEQ, nr[name], "eperm", 0)
    op(_JEQ, nr["clone3"], "enosys", 0)
    op(_JEQ, nr["clone"], "clone", 0)
    op(_JEQ, nr["kill"], "kill-check", 0)
    op(_JEQ, nr["fcntl"], "fcntl-check", 0)
    op(_JEQ, nr["ioctl"], "ioctl-check", 0)
    for name in ("tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        op(_JEQ, nr[name], "self-check", 0)
    op(_RET, _RET_ALLOW)
    labels: dict[str, int] = {}  # every jump goes forward (classic BPF has no backward jumps)
    labels["clone"] = len(code)
    load_arg(0)
    op(_JSET, CLONE_THREAD, "allow", "eperm")
    labels["kill-check"] = len(code)
    load_arg(1)
    op(_JEQ, 0, "allow", 0)  # signal 0 only asks whether a process exists
    load_arg(0)
    op(_JEQ, 0, "allow", 0)  # its own process group
    op(_JEQ, own_pid, "allow", 0)
    op(_JEQ, -own_pid, "allow", "eperm")
    labels["fcntl-check"] = len(code)
    load_arg(1)
    op(_JEQ, _F_SETOWN, "eperm", 0)
    op(_JEQ, _F_SETSIG, "eperm", 0)
    op(_JEQ, _F_SETOWN_EX, "eperm", "allow")
    labels["ioctl-check"] = len(code)
    load_arg(1)
    op(_JEQ, _FIOSETOWN, "eperm", 0)
    op(_JEQ, _SIOCSPGRP, "eperm", "allow")
    labels["self-check"] = len(code)
    load_arg(0)
    op(_JEQ, own_pid, "allow", "eperm")
    labels["allow"] = len(code)
    op(_RET, _RET_ALLOW)
    labels["eperm"] = len(code)
    op(_RET, _RET_ERRNO | errno.EPERM)
    labels["enosys"] = len(code)
    op(_RET, _RET_ERRNO | errno.ENOSYS)
    labels["kill"] = len(code)
    op(_RET, _RET_KILL)
    out = b""
    for index, (opcode, jt, jf, k) in enumerate(code):
        jumps = [labels[j] - index - 1 if isinstance(j, str) else j for j in (jt, jf)]
        assert all(0 <= j < 256 for j in jumps), "seccomp jump out of range"
        out += struct.pack("<HBBI", opcode, jumps[0], jumps[1], k)
    return out


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp() -> None:
    """Apply the filter to this process (and its threads from now on); needs no privilege."""
    program = seccomp_program(os.getpid())
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    _check(_libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_SECCOMP)")


# ----------------------------------------------------------------------------- landlock

PROC_SELF = ("status", "stat", "statm", "fd", "fdinfo", "maps", "smaps", "limits", "cmdline", "comm", "auxv", "environ")
# what a worker may read of its own /proc entry: enough for Python, numpy and /dev/stdout; not the host's sockets
_LL_CREATE, _LL_ADD, _LL_RESTRICT = 444, 445, 446  # the same number on every architecture
_LL_FILE = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15)  # rights that apply to a file, not a folder
_LL_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read a file, list a folder


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    if not LINUX:
        return 0
    result = _libc.syscall(_LL_CREATE, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    return max(int(result), 0)


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= 1 << 13  # refer
    if abi >= 3:
        rights |= 1 << 14  # truncate
    if abi >= 5:
        rights |= 1 << 15  # ioctl on devices
    return rights


def landlock(read: Sequence[str], write: Sequence[str], devices: Sequence[str] = DEVICES) -> int:
    """Restrict this process for good: read (and execute) ``read``, everything under ``write``, read and write
    ``devices``; from ABI 4 no TCP bind or connect, from ABI 6 no signals or abstract sockets outside.
    Returns the ABI used."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError(errno.EOPNOTSUPP, "Landlock is not enabled in this kernel")
    fs = _fs_rights(abi)
    attr = struct.pack("<Q", fs)
    if abi >= 4:
        attr += struct.pack("<Q", 0b11)  # bind and connect TCP: handled, never allowed
    if abi >= 6:
        attr += struct.pack("<Q", 0b11)  # scoped: abstract unix sockets, signals
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(_libc.syscall(_LL_CREATE, buf, len(attr), 0), "landlock_create_ruleset")
    try:
        rules = [(p, fs & _LL_READ) for p in read] + [(p, fs) for p in write] + \
                [(p, fs & ((1 << 1) | (1 << 2))) for p in devices]
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    rights &= _LL_FILE
                rule = struct.pack("<Qi", rights, fd)
                rbuf = ctypes.create_string_buffer(rule, len(rule))
                _check(_libc.syscall(_LL_ADD, ruleset, 1, rbuf, 0), f"landlock_add_rule {path}")
            finally:
                os.close(fd)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        _check(_libc.syscall(_LL_RESTRICT, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi
