"""Attacks on the sandbox: one fixture learner per attack, graded beside an honest sibling under every layer.

For each attack and layer: grading completes; the attacked checks are ``error``/``fail`` with a message naming
the cause (every other check passes); nothing outside the attacker's temporary copy changed (its own folder,
the sibling's, a copy of the rubrics, the grader's working directory, the real rubrics and grader package,
/dev/shm, /tmp); no process is left behind (neither below the fork server nor anywhere on the machine working
in this run's folders); nothing reached the test's loopback listener; the sibling's results equal a run without the
attacker. Where a layer does not stop an attack, the test is a strict expected failure naming the gap
(``GAPS``), and not run at all when running it would harm the machine.

Layers are forced with ``GRADER_SANDBOX``; ``bwrap`` fails (not skips) when ``GRADER_REQUIRE_BWRAP=1`` and it is
missing; ``unshare`` needs root.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import selectors
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from grader import layers, zygote
from grader.grading import grade
from grader.model import LabResult, Status
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BORJA = ROOT / "learners" / "borja"
LAB = "phase-04/lab-00"
LIMITS = Limits(call_seconds=1.0, learner_seconds=30.0)
ERROR, FAIL = Status.ERROR, Status.FAIL
ROOT_USER = os.geteuid() == 0

# the checks each function of the lab feeds (a fault in one costs these and no others)
USES = {
    "softmax_jacobian": {"jacobian-analytic", "jacobian-symmetric", "jacobian-matches-fd", "no-input-mutation"},
    "ce_loss": {"ce-loss-correct", "ce-loss-stable", "ce-grad-fd", "ce-grad-matches-fd", "no-input-mutation"},
    "ce_grad": {"ce-grad-analytic", "ce-grad-matches-fd", "no-input-mutation"},
}
DENIED = ("PermissionError", "FileNotFoundError", "Read-only file system", "OSError")


@dataclass(frozen=True)
class Attack:
    """``check``: the check whose status and words are asserted; ``function``: the attacked function (its other
    checks may fail too); ``words``: the message must contain one of them."""

    check: str
    statuses: tuple[Status, ...]
    words: tuple[str, ...]
    function: str | None = None
    output_cap: bool = False
    extra_ok: frozenset[str] = field(default_factory=frozenset)


ATTACKS: dict[str, Attack] = {
    "infinite-loop": Attack("ce-grad-analytic", (ERROR,), ("timed out after 1 s",), "ce_grad"),
    "swallow-timeout": Attack("ce-grad-analytic", (ERROR,), ("timed out after 1 s",), "ce_grad"),
    "memory-bomb": Attack("jacobian-analytic", (ERROR,), ("MemoryError",), "softmax_jacobian"),
    "fork-bomb": Attack("jacobian-analytic", (ERROR,), ("PermissionError", "start processes"), "softmax_jacobian"),
    "setsid-grandchild": Attack("ce-grad-analytic", (ERROR, FAIL), ("PermissionError", "returned None"), "ce_grad"),
    "exit-at-import": Attack("implementation-found", (Status.PASS,), ("definitions only", "sys.exit(0)")),
    "os-exit-at-import": Attack("implementation-found", (Status.PASS,), ("definitions only", "exited with code 0")),
    "sys-exit-in-function": Attack("ce-loss-correct", (ERROR,), ("called sys.exit(0)",), "ce_loss"),
    "os-exit-in-function": Attack("ce-loss-correct", (ERROR,), ("exited with code 0",), "ce_loss"),
    "segfault": Attack("jacobian-analytic", (ERROR,), ("SIGSEGV",), "softmax_jacobian"),
    "output-flood": Attack("ce-grad-analytic", (ERROR,), ("timed out after 1 s",), "ce_grad", output_cap=True),
    "huge-file": Attack("jacobian-analytic", (ERROR,), ("File too large", "wrote a file larger than the limit"), "softmax_jacobian"),
    "tamper-sibling": Attack("ce-grad-analytic", (ERROR,), DENIED, "ce_grad"),
    "tamper-rubric": Attack("ce-grad-analytic", (ERROR,), DENIED, "ce_grad"),
    "tamper-grader": Attack("ce-grad-analytic", (ERROR,), DENIED, "ce_grad"),
    "tamper-cwd": Attack("ce-grad-analytic", (ERROR,), DENIED, "ce_grad"),
    "tamper-shm": Attack("ce-grad-analytic", (ERROR,), DENIED, "ce_grad"),
    "loopback": Attack("ce-grad-analytic", (ERROR,), ("PermissionError", "Network is unreachable"), "ce_grad"),
    "read-reference": Attack("ce-grad-analytic", (ERROR,), DENIED, "ce_grad"),
    "proc-snoop": Attack("ce-grad-analytic", (ERROR,), DENIED, "ce_grad"),
    "environ-secret": Attack("ce-grad-analytic", (ERROR,), ("no secret in the environment",), "ce_grad"),
    "proc-net": Attack("ce-grad-analytic", (ERROR,), ("the host's sockets are not visible",), "ce_grad"),
    "detect-grading": Attack("ce-grad-analytic", (ERROR,), ("nothing tells this run from my own",), "ce_grad"),
    "kill-others": Attack("ce-grad-analytic", (ERROR,), ("PermissionError",), "ce_grad"),
    "ipc-memory": Attack("ce-grad-analytic", (ERROR,), ("PermissionError",), "ce_grad"),
    "forged-sandbox-error": Attack("implementation-found", (Status.PASS,), ("definitions only", "protocol violation")),
    "monkeypatch": Attack("ce-grad-analytic", (FAIL,), ("expected",), "ce_grad"),
    "lying-ndarray": Attack("ce-grad-analytic", (FAIL,), ("expected",), "ce_grad"),
    "forged-protocol": Attack("ce-grad-analytic", (FAIL,), ("expected",), "ce_grad"),
    "outside-links": Attack("ce-grad-analytic", (ERROR,), ("No module named 'reference'",), "ce_grad"),
}


def _gaps() -> dict[tuple[str, str], tuple[str, bool]]:
    """(attack, layer) -> (what the layer does not stop, whether the test may still run it)."""
    files = "no file-system isolation: learner code reads and writes what the grader's user can"
    gaps = {
        ("read-reference", "rlimits"): (files, True),
        ("tamper-sibling", "rlimits"): (files, True),
        ("tamper-rubric", "rlimits"): (files, True),
        ("tamper-cwd", "rlimits"): (files, True),
        ("tamper-shm", "rlimits"): (files, True),
        ("tamper-grader", "rlimits"): (files + " (not run: it would write into the real grader package)", False),
        ("proc-snoop", "rlimits"): ("no PID namespace or Landlock: the grader's memory is readable", True),
        ("loopback", "rlimits"): ("no network isolation", True),
        ("proc-net", "rlimits"): ("no network namespace or Landlock: /proc/net lists the host's sockets", True),
        ("fork-bomb", "rlimits"): (("nothing bounds processes for root, and the limit counts all of a user's "
                                    "processes otherwise (not run: it would exhaust the machine)"), False),
        ("kill-others", "rlimits"): ("signals are not filtered (not run: kill(-1) as root kills every process)", False),
        ("ipc-memory", "rlimits"): ("SysV shared memory, memfd and SIGIO owners are not filtered", True),
    }
    if not ROOT_USER and _ptrace_scope() > 0:
        del gaps[("proc-snoop", "rlimits")]  # Yama already keeps a non-root worker out of the grader's memory
    if not layers.detect().landlock:
        why = "this kernel has no Landlock: the seccomp layer cannot restrict files"
        for attack in ("read-reference", "tamper-sibling", "tamper-rubric", "tamper-cwd", "tamper-shm", "proc-snoop", "proc-net"):
            gaps[(attack, "seccomp")] = (why, True)
        gaps[("tamper-grader", "seccomp")] = (why + " (not run)", False)
    return gaps


def _ptrace_scope() -> int:
    try:
        return int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return 0


GAPS = _gaps()


# ----------------------------------------------------------------------------- the world around an attack

class Listener:
    """A TCP listener on 127.0.0.1 that counts connections (none may arrive)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                if selector.select(0.05):
                    connection, _ = self.sock.accept()
                    self.accepted += 1
                    connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@dataclass
class Layer:
    name: str
    server: zygote.Zygote
    secret: str
    baseline: LabResult  # the sibling graded alone, in this layer


def _require(name: str) -> None:
    status = layers.detect().status(name)
    if status.available:
        return
    if name == "bwrap" and os.environ.get("GRADER_REQUIRE_BWRAP") == "1":
        pytest.fail(f"GRADER_REQUIRE_BWRAP=1 but the bwrap layer is not available: {status.reason}")
    pytest.skip(f"the {name} layer is not available here: {status.reason}")


@pytest.fixture(scope="module", params=layers.LAYERS)
def layer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layer]:
    name = request.param
    _require(name)
    secret = "s3cr3t-" + secrets.token_hex(8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(layers.ENV, name)
        patch.setenv("GRADER_TEST_SECRET", secret)
        server = zygote.get()
        server.wait_ready()
        assert server.layer == name
        alone = tmp_path_factory.mktemp(f"alone-{name}")
        shutil.copytree(BORJA, alone / "sibling")
        shutil.copytree(ROOT / "rubrics", alone / "rubrics")
        baseline = grade([alone / "sibling"], rubrics_dir=alone / "rubrics", lab=LAB, limits=LIMITS)[0]
        assert baseline.passed
        yield Layer(name, server, secret, baseline)


@dataclass
class World:
    root: Path
    attacker: Path
    sibling: Path
    rubrics: Path
    cwd: Path
    targets: dict[str, object]
    tag: str


def _make_world(tmp_path: Path, attack: str, layer: Layer, port: int) -> World:
    tag = secrets.token_hex(6)
    world = tmp_path / "world"
    attacker = world / "class" / "attacker"
    sibling = world / "class" / "sibling"
    rubrics = world / "rubrics"
    cwd = world / "instructor"
    shutil.copytree(BORJA, sibling)
    shutil.copytree(ROOT / "rubrics", rubrics)
    cwd.mkdir(parents=True)
    (cwd / "notes.txt").write_text("the instructor's notes\n", encoding="utf-8")
    shm_sentinel = Path(f"/dev/shm/grader-sentinel-{tag}")
    shm_sentinel.write_text("someone else's\n", encoding="utf-8")
    targets: dict[str, object] = {
        "sibling_code": str(sibling / "phase-04" / "lab-00-softmax-gradient.py"),
        "sibling_md": str(sibling / "phase-04" / "lab-00-softmax-gradient.md"),
        "rubric": str(rubrics / "phase-04" / "lab-00.yaml"),
        "reference": str(rubrics / "phase-04" / "lab_00_reference.py"),
        "real_reference": str(ROOT / "rubrics" / "phase-04" / "lab_00_reference.py"),
        "grader_file": str(ROOT / "grader" / "child.py"),
        "grader_new": str(ROOT / "grader" / f"_attack_{tag}.txt"),
        "cwd": str(cwd),
        "shm_new": f"/dev/shm/grader-attack-{tag}",
        "shm_sentinel": str(shm_sentinel),
        "tmp_new": f"/tmp/grader-attack-{tag}",
        "port": port,
        "secret": layer.secret,
        "home": os.path.expanduser("~"),
    }
    phase = attacker / "phase-04"
    phase.mkdir(parents=True)
    source = (FIXTURES / attack / "phase-04" / "lab-00-softmax-gradient.py").read_text(encoding="utf-8")
    assert "TARGETS: dict = {}" in source
    (phase / "lab-00-softmax-gradient.py").write_text(source.replace("TARGETS: dict = {}", f"TARGETS: dict = {targets!r}"),
                                                     encoding="utf-8")
    shutil.copy(BORJA / "phase-04" / "lab-00-softmax-gradient.md", phase)
    if attack == "outside-links":
        (phase / "reference.py").symlink_to(rubrics / "phase-04" / "lab_00_reference.py")
        (phase / "sibling").symlink_to(sibling)
        (phase / "hostname").symlink_to("/etc/hostname")
        (phase / "inside.md").symlink_to("lab-00-softmax-gradient.md")
    return World(world, attacker, sibling, rubrics, cwd, targets, tag)


def _tree(path: Path) -> dict[str, tuple[int, str]]:
    """Every entry under ``path``: mode and content hash (links by target), not following links."""
    found: dict[str, tuple[int, str]] = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = Path(folder) / name
            info = entry.lstat()
            if entry.is_symlink():
                digest = "->" + os.readlink(entry)
            elif entry.is_file():
                digest = hashlib.sha256(entry.read_bytes()).hexdigest()
            else:
                digest = "dir"
            found[str(entry.relative_to(path))] = (info.st_mode, digest)
    return found


def _snapshot(world: World) -> dict[str, object]:
    return {
        "world": _tree(world.root),
        "rubrics": _tree(ROOT / "rubrics"),
        "grader-new": Path(str(world.targets["grader_new"])).exists(),
        "shm": sorted(n for n in os.listdir("/dev/shm") if world.tag in n),
        "tmp": sorted(n for n in os.listdir("/tmp") if world.tag in n),
    }


def _cleanup(world: World) -> None:
    for key in ("shm_new", "shm_sentinel", "tmp_new", "grader_new"):
        try:
            os.remove(str(world.targets[key]))
        except OSError:
            pass


# ----------------------------------------------------------------------------- processes

def _status(pid: int) -> tuple[int, list[int]]:
    ppid, nspid = 0, [pid]
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("PPid:"):
                ppid = int(line.split()[1])
            elif line.startswith("NSpid:"):
                nspid = [int(p) for p in line.split()[1:]]
    return ppid, nspid


def leftovers(server: zygote.Zygote) -> list[int]:
    """Processes below the fork server, or anywhere on the machine working in this run's folders, other than the
    server itself and the processes it runs inside (bwrap, the namespace waiter). Seen from outside its namespaces.
    (No marker in the environment: a worker must not be able to tell a grading run from its own.)"""
    found: dict[int, tuple[int, list[int]]] = {}
    tagged = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            found[int(entry)] = _status(int(entry))
        except (OSError, ValueError):
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd").startswith(server.base + os.sep):
                tagged.add(int(entry))
        except OSError:
            pass  # not readable (another user's, or not dumpable): judged by its ancestry below
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in found.items():
        children.setdefault(ppid, []).append(pid)
    below, todo = set(), [server._proc.pid]
    while todo:
        for kid in children.get(todo.pop(), []):
            below.add(kid)
            todo.append(kid)
    infrastructure = {server._proc.pid}
    chain = server._proc.pid
    while found.get(chain, (0, [0]))[1][-1] != server.server_pid:  # down to the server: bwrap, its init, python
        kids = children.get(chain, [])
        if len(kids) != 1:
            break
        chain = kids[0]
        infrastructure.add(chain)
    return sorted((tagged | below) - infrastructure)


# ----------------------------------------------------------------------------- the test

def _expect(result: LabResult, attack: Attack) -> None:
    by_id = {c.id: c for c in result.checks}
    hit = by_id[attack.check]
    assert hit.status in attack.statuses, f"{attack.check}: {hit.status} — {hit.message.english()}"
    assert any(word in hit.message.english() for word in attack.words), f"{attack.check}: none of {attack.words} in {hit.message.english()!r}"
    may_fail = USES.get(attack.function or "", set()) | {attack.check} | attack.extra_ok
    for check in result.checks:
        if check.id == "output-rerun" and check.id not in may_fail:  # runs the attack again as a script: informational,
            assert check.status in (Status.PASS, Status.REVIEW, Status.SKIP), check.message.english()  # never a fail
        elif check.id not in may_fail:
            assert check.status == Status.PASS, f"{check.id} should pass: {check.status} — {check.message.english()}"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack(attack: str, layer: Layer, listener: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                request: pytest.FixtureRequest) -> None:
    gap = GAPS.get((attack, layer.name))
    if gap is not None:
        reason, run = gap
        if not run:
            pytest.xfail(f"the {layer.name} layer does not stop this: {reason}")
        request.applymarker(pytest.mark.xfail(reason=f"the {layer.name} layer does not stop this: {reason}", strict=True))
    spec = ATTACKS[attack]
    world = _make_world(tmp_path, attack, layer, listener.port)
    monkeypatch.chdir(world.cwd)
    try:
        before = _snapshot(world)
        connections = listener.accepted
        results = grade([world.attacker, world.sibling], rubrics_dir=world.rubrics, lab=LAB, limits=LIMITS)
        by_learner = {r.learner: r for r in results}

        assert zygote.get() is layer.server, "the fork server died or was replaced"
        assert layer.server.census() == [], "processes left below the fork server"
        assert leftovers(layer.server) == [], "processes of this run left on the machine"
        assert _snapshot(world) == before, "something outside the attacker's temporary copy changed"
        assert listener.accepted == connections, "a connection reached the loopback listener"
        assert not list(Path(layer.server.base).iterdir()), "a learner's temporary copy was left behind"

        attacker = by_learner["attacker"]
        _expect(attacker, spec)
        if spec.output_cap:
            assert "output cut here" in attacker.output and len(attacker.output.encode()) < LIMITS.output_bytes + 200
        for result in results:
            assert layer.secret not in result.output and all(layer.secret not in c.message.english() for c in result.checks)

        sibling = by_learner["sibling"]
        assert sibling.checks == layer.baseline.checks
        assert sibling.output == layer.baseline.output
    finally:
        _cleanup(world)
