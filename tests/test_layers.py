"""Choosing the sandbox layer, saying why, and what each layer does to a worker (tests/adversarial attacks them)."""

from __future__ import annotations

import os
import stat
import tempfile
import sys
from pathlib import Path

import numpy as np
import pytest

from grader import confine, layers, zygote
from grader.errors import SandboxError
from grader.runner import LearnerRun
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
Z = (np.array([1.0, 2.0]),)
ROOT_USER = os.geteuid() == 0


def available(name: str) -> bool:
    return layers.detect().status(name).available


@pytest.fixture
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH without bubblewrap (the interpreter is found by its full path)."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def failing_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bwrap that cannot create namespaces, as in a container that forbids them."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n", encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(layers, "_FAILED", {})


def learner(tmp_path: Path, source: str, name: str = "ana") -> tuple[Path, Path]:
    root = tmp_path / name
    (root / "phase-04").mkdir(parents=True)
    module = root / "phase-04" / "lab-00.py"
    module.write_text(source, encoding="utf-8")
    return root, module


# ----------------------------------------------------------------------------- choosing

def test_every_layer_is_reported_with_a_reason_when_missing() -> None:
    report = layers.detect()
    assert [s.name for s in report.layers] == list(layers.LAYERS)
    assert report.status("rlimits").available
    for status in report.layers:
        assert status.available or status.reason
    assert report.chosen == next(s.name for s in report.layers if s.available)


def test_an_unknown_layer_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV, "docker")
    with pytest.raises(SandboxError, match="GRADER_SANDBOX=docker: no such sandbox layer — use one of bwrap, unshare"):
        zygote.Zygote()


def test_forcing_a_missing_layer_is_a_clear_error(no_bwrap: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV, "bwrap")
    assert not available("bwrap")
    with pytest.raises(SandboxError, match="GRADER_SANDBOX=bwrap, but that layer is not available here: bwrap not found"):
        zygote.Zygote()


def test_a_layer_error_is_said_in_the_instructors_language(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV, "docker")
    with pytest.raises(SandboxError) as caught:
        layers.requested()
    assert str(caught.value) == "GRADER_SANDBOX=docker: no such sandbox layer — use one of bwrap, unshare, seccomp, rlimits, or unset it"
    assert caught.value.said("es") == ("GRADER_SANDBOX=docker: esa capa de aislamiento no existe — usa una de estas: "
                                       "bwrap, unshare, seccomp, rlimits, o quita la variable")
    assert caught.value.exit_code == 3


def test_a_missing_layer_is_said_in_spanish(no_bwrap: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV, "bwrap")
    with pytest.raises(SandboxError) as caught:
        layers.plan("/nowhere")
    assert caught.value.said("es") == ("GRADER_SANDBOX=bwrap, pero esa capa no está disponible aquí: bwrap no está en el PATH "
                                       "(Debian/Ubuntu: apt install bubblewrap)")


@pytest.mark.skipif(ROOT_USER, reason="as root the unshare layer is available")
def test_unshare_needs_root() -> None:
    assert str(layers.detect().status("unshare").reason).startswith("needs root")


def test_a_chosen_layer_that_does_not_start_gives_way_and_says_so(failing_bwrap: None, capsys: pytest.CaptureFixture[str]) -> None:
    server = zygote.Zygote()
    try:
        server.wait_ready()
        assert server.layer != "bwrap"
        assert "the bwrap sandbox layer did not start (bwrap: No permissions to create new namespace)" in capsys.readouterr().err
        assert "did not start: bwrap: No permissions" in str(layers.detect().status("bwrap").reason)
    finally:
        server.close()


def test_a_forced_layer_that_does_not_start_is_an_error(failing_bwrap: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV, "bwrap")
    server = zygote.Zygote()
    try:
        with pytest.raises(SandboxError, match="did not start in the bwrap sandbox layer: bwrap: No permissions"):
            server.wait_ready()
    finally:
        server.close()


def test_doctor_says_what_protects_the_user(no_bwrap: None) -> None:
    text = layers.doctor_text(measure_layers=False)
    assert "- bwrap    not available: bwrap not found on PATH (Debian/Ubuntu: apt install bubblewrap)" in text
    chosen = layers.detect().chosen
    assert f"* {chosen}" in text and f"In use: {chosen} (the strongest available)." in text
    assert "It does not stop:" in text and "GRADER_SANDBOX=bwrap|unshare|seccomp|rlimits" in text


def test_doctor_speaks_spanish(no_bwrap: None) -> None:
    text = layers.doctor_text(measure_layers=False, lang="es")
    assert "- bwrap    no disponible: bwrap no está en el PATH (Debian/Ubuntu: apt install bubblewrap)" in text
    chosen = layers.detect().chosen
    assert f"* {chosen}" in text and f"En uso: {chosen} (la más fuerte disponible)." in text
    assert "No impide:" in text and "Elige una capa con GRADER_SANDBOX=bwrap|unshare|seccomp|rlimits" in text
    assert "not available" not in text and "In use" not in text


def test_doctor_measures_every_available_layer() -> None:
    text = layers.doctor_text()
    for status in layers.detect().layers:
        if status.available:
            line = text.split(f"{status.name:8} ", 1)[1].split("\n", 2)[1]
            assert "measured here: start" in line and "ms per worker" in line


# ----------------------------------------------------------------------------- what a worker sees

def test_workers_see_python_and_the_grader_but_not_its_rubrics() -> None:
    paths = layers.visible_paths()["ro"]
    assert str(ROOT / "grader") in paths
    assert any(os.path.realpath(sys.prefix).startswith(p) for p in paths)
    for path in paths:
        assert not (ROOT / "rubrics").is_relative_to(path) and not (ROOT / "learners").is_relative_to(path)


def test_the_seccomp_program_only_jumps_forward() -> None:
    ok, why = confine.seccomp_available()
    if not ok:
        pytest.skip(why)
    program = confine.seccomp_program(1234)
    assert len(program) % 8 == 0 and len(program) // 8 < 256


PROBE = '''
import os
def uid(z):
    return float(os.getuid())
def peek(z):
    return float(len(open(TARGET).read()))
TARGET = ""
'''


@pytest.mark.parametrize("name", ["bwrap", "unshare"])
def test_as_root_each_learner_runs_as_its_own_unprivileged_uid(name: str, tmp_path: Path) -> None:
    if not ROOT_USER or not available(name):
        pytest.skip(f"needs root and the {name} layer")
    server = zygote.Zygote(layer=name)
    try:
        seen = []
        for who in ("ana", "bo"):
            root, module = learner(tmp_path, PROBE, who)
            with LearnerRun(root, module, ("uid",), Limits(), server=server) as run:
                assert run.start().ok
                seen.append(int(run.call("uid", Z).value.array))  # type: ignore[union-attr]
                assert run.private_dir.stat().st_uid == seen[-1] and stat.S_IMODE(run.private_dir.stat().st_mode) == 0o700
        block = layers.uid_block()
        assert seen[0] != seen[1] and all(block <= u < block + layers.UIDS_PER_GRADER for u in seen)
    finally:
        server.close()


@pytest.mark.parametrize("name", layers.LAYERS)
def test_one_learner_cannot_read_another_learners_copy(name: str, tmp_path: Path) -> None:
    if not available(name):
        pytest.skip(f"the {name} layer is not available here")
    server = zygote.Zygote(layer=name)
    try:
        other_root, other_module = learner(tmp_path, "def f(z):\n    return 1.0\n", "bo")
        with LearnerRun(other_root, other_module, ("f",), Limits(), server=server) as other:
            root, module = learner(tmp_path, PROBE.replace('TARGET = ""', f"TARGET = {str(other.module_path)!r}"))
            with LearnerRun(root, module, ("peek",), Limits(), server=server) as run:
                assert run.start().ok
                outcome = run.call("peek", Z)
        if name == "rlimits":
            assert outcome.ok  # the gap the README names: no file isolation
        else:
            assert outcome.fault == "raised" and "PermissionError" in outcome.message
    finally:
        server.close()


def test_links_out_of_the_submission_are_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("answers\n", encoding="utf-8")
    root, module = learner(tmp_path, "def f(z):\n    return float(len(open('data.txt').read()))\n"
                                     "def g(z):\n    return float(len(open('inside.txt').read()))\n")
    (root / "phase-04" / "data.txt").symlink_to(secret)
    (root / "phase-04" / "own.txt").write_text("mine\n", encoding="utf-8")
    (root / "phase-04" / "inside.txt").symlink_to(root / "phase-04" / "own.txt")  # absolute, but inside
    with LearnerRun(root, module, ("f", "g"), Limits()) as run:
        assert run.outside_links == ("phase-04/data.txt",)
        assert not (run.module_path.parent / "data.txt").exists()
        assert os.readlink(run.module_path.parent / "inside.txt") == "own.txt"
        assert run.start().ok
        missed = run.call("f", Z)
        assert missed.fault == "raised" and "data.txt is a link to a file outside your folder" in missed.message
        assert run.call("g", Z).value.array.tolist() == 5.0  # type: ignore[union-attr]


def test_an_implementation_that_links_out_is_not_loaded(tmp_path: Path) -> None:
    elsewhere = tmp_path / "reference.py"
    elsewhere.write_text("def f(z):\n    return 1.0\n", encoding="utf-8")
    root = tmp_path / "cy"
    (root / "phase-04").mkdir(parents=True)
    (root / "phase-04" / "lab-00.py").symlink_to(elsewhere)
    with LearnerRun(root, root / "phase-04" / "lab-00.py", ("f",), Limits()) as run:
        load = run.start()
        assert not load.ok and "lab-00.py is a link to a file outside your folder" in load.error


@pytest.mark.parametrize("name", ["bwrap", "unshare"])
def test_a_grader_checked_out_under_tmp_still_starts(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The private /tmp must not hide the grader itself when the project lives under /tmp (a CI checkout)."""
    if not available(name):
        pytest.skip(f"the {name} layer is not available here")
    import shutil
    import subprocess

    checkout = Path(tempfile.mkdtemp(prefix="grader-checkout-", dir="/tmp"))
    try:
        shutil.copytree(ROOT / "grader", checkout / "grader", ignore=shutil.ignore_patterns("__pycache__"))
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import grader; assert grader.__file__.startswith(sys.argv[1]); "
                "from grader.grading import grade; r = grade([sys.argv[2]], rubrics_dir=sys.argv[3]); "
                "print(all(x.passed for x in r))")
        env = {**os.environ, "GRADER_SANDBOX": name}
        proc = subprocess.run([sys.executable, "-c", code, str(checkout), str(ROOT / "learners" / "borja"), str(ROOT / "rubrics")],
                              cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
        assert proc.stdout.strip() == "True", proc.stderr[-2000:]
    finally:
        shutil.rmtree(checkout, ignore_errors=True)


def test_a_killed_graders_learner_copies_are_swept_at_the_next_start() -> None:
    top = Path(zygote.private_parent())
    dead = top / "run-999999999-stale"
    alive = top / f"run-{os.getpid()}-mine"
    for folder in (dead, alive):
        (folder / "learner-x" / "ana").mkdir(parents=True, exist_ok=True)
    try:
        zygote.sweep_stale_runs()
        assert not dead.exists() and alive.exists()
    finally:
        import shutil

        shutil.rmtree(alive, ignore_errors=True)
        shutil.rmtree(dead, ignore_errors=True)
