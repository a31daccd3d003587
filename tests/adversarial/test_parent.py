"""Attacks on the grader's own process: what it does with a submission before and around the sandbox.

``test_attacks.py`` attacks from inside a worker; these attacks are files, names, links and text that the
grader itself reads, lists, parses, copies, hashes and prints — unsandboxed. Each test builds the attack's
files and asserts the invariant it threatens: the class finishes within a bound, the honest sibling's result
is unchanged, nothing outside the outputs changes, no process or lock is left, the learner gains nothing.
Time bounds are generous (the machine is shared); the ReDoS tests assert linear growth — twice the input
costs less than three times the time — rather than a fixed time.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BORJA = ROOT / "learners" / "borja"
RUBRICS = ROOT / "rubrics"
LAB = "phase-04/lab-00"
PY, MD = "lab-00-softmax-gradient.py", "lab-00-softmax-gradient.md"
ROOT_USER = os.geteuid() == 0


def run(cwd: Path, *argv: str | Path, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command line, importing this checkout's grader."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "grader", *map(str, argv)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=environment, check=False)


def honest(folder: Path) -> Path:
    shutil.copytree(BORJA, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def results(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return {(r["learner"], r["lab"]): r for r in document["results"]}


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in result["checks"]}


def linear(cost: Callable[[int], Any], n: int) -> tuple[float, float]:
    """The best of three timings of ``cost(n)`` and ``cost(2n)``."""
    def best(size: int) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            cost(size)
            times.append(time.perf_counter() - start)
        return min(times)

    return best(n), best(2 * n)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The honest sibling graded alone: what every attack must leave unchanged."""
    tmp = tmp_path_factory.mktemp("baseline")
    honest(tmp / "class" / "sibling")
    proc = run(tmp, tmp / "class", "--out", tmp / "out", "--lab", LAB, "--json", tmp / "r.json", "-q")
    assert proc.returncode == 0, proc.stderr
    return statuses(results(tmp / "r.json")[("sibling", LAB)])


# ----------------------------------------------------------------------------- 1, 2: instructor inputs

def test_a_learners_own_overrides_are_never_applied(tmp_path: Path) -> None:
    """Finding 1: mallory's overrides.yaml gives her 30/30 and a classmate 0 — with PATH her folder, or the class."""
    klass = tmp_path / "class"
    mallory = klass / "mallory"
    (mallory / "phase-04").mkdir(parents=True)
    (mallory / "phase-04" / MD).write_text("# nothing\n", encoding="utf-8")
    honest(klass / "sibling")
    (mallory / "overrides.yaml").write_text(
        "- {learner: mallory, lab: phase-04/lab-00, check: '*', points: full, reason: regraded}\n"
        "- {learner: sibling, lab: phase-04/lab-00, check: '*', points: 0, reason: plagiarism}\n", encoding="utf-8")
    proc = run(tmp_path, mallory, "--out", tmp_path / "out1", "--json", tmp_path / "one.json")
    assert "overrides from" not in proc.stderr
    assert not results(tmp_path / "one.json")[("mallory", LAB)]["passed"]
    proc = run(tmp_path, klass, "--out", tmp_path / "out2", "--json", tmp_path / "all.json")
    graded = results(tmp_path / "all.json")
    assert not graded[("mallory", LAB)]["passed"] and graded[("sibling", LAB)]["passed"]
    assert "plagiarism" not in (tmp_path / "out2" / "gradebook.csv").read_text(encoding="utf-8")
    proc = run(tmp_path, klass, "--out", tmp_path / "out3", "--overrides", mallory / "overrides.yaml")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "inside the learner folder" in proc.stderr
    assert not (tmp_path / "out3" / "gradebook.csv").exists()


def test_overrides_come_only_from_outside_what_is_graded(tmp_path: Path) -> None:
    """Finding 1, the zip layout: ``class/mallory/{overrides.yaml, mallory-main/phase-04}`` made the learner's file the
    class's. The class's own file is the class folder's ``overrides.yaml`` (the instructor's term issue); a file in a
    learner's folder, or in a folder holding a single learner's folder (an unzipped hand-in), is never used."""
    klass = tmp_path / "class"
    honest(klass / "sibling")
    honest(klass / "mallory" / "mallory-main")
    rules = "- {learner: sibling, lab: phase-04/lab-00, check: reflection, points: 0, reason: plagiarism}\n"
    (klass / "mallory" / "overrides.yaml").write_text(rules, encoding="utf-8")
    proc = run(tmp_path, klass / "mallory", "--out", tmp_path / "out0", "--json", tmp_path / "m.json")
    assert "overrides from" not in proc.stderr and "is not used" in proc.stderr  # the wrapper's file: named, not used
    proc = run(tmp_path, klass / "sibling", klass / "mallory", "--out", tmp_path / "out", "--json", tmp_path / "r.json")
    assert "overrides from" not in proc.stderr and results(tmp_path / "r.json")[("sibling", LAB)]["passed"]
    proc = run(tmp_path, klass, "--out", tmp_path / "out1", "--json", tmp_path / "c.json")
    assert "overrides from" not in proc.stderr and results(tmp_path / "c.json")[("sibling", LAB)]["passed"]
    (klass / "overrides.yaml").write_text(rules.replace("plagiarism", "late"), encoding="utf-8")  # the instructor's
    proc = run(tmp_path, klass, "--out", tmp_path / "out2", "--json", tmp_path / "i.json")
    assert f"overrides from {klass / 'overrides.yaml'}" in proc.stderr
    inside = klass / "mallory" / "mallory-main" / "overrides.yaml"
    inside.write_text(rules, encoding="utf-8")
    proc = run(tmp_path, klass / "sibling", "--out", tmp_path / "out3", "--overrides", inside)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "inside the learner folder" in proc.stderr


def _rubric_that_reports(folder: Path, marker: Path) -> None:
    """A copy of the bundled rubrics whose reference module, once imported, leaves ``marker``: code run as the grader."""
    shutil.copytree(RUBRICS, folder)
    reference = folder / "phase-04" / "lab_00_reference.py"
    reference.write_text(f"open({str(marker)!r}, 'w').write('ran')\n" + reference.read_text(encoding="utf-8"),
                         encoding="utf-8")


@pytest.mark.parametrize("where", ["inside-learner", "learner-named-rubrics", "beside-the-learners", "explicit"])
def test_a_learners_rubrics_never_run_in_the_grader(where: str, tmp_path: Path) -> None:
    """Finding 2: ``cd learners/me && grade .`` or a learner folder named ``rubrics`` imported the learner's reference."""
    marker = tmp_path / "pwned"
    learners = tmp_path / "learners"
    me = honest(learners / "me")
    if where == "inside-learner":
        _rubric_that_reports(me / "rubrics", marker)
        proc = run(me, ".", "--out", tmp_path / "reports")
        assert proc.returncode == 0 and "the bundled rubrics are" in proc.stderr, proc.stderr
    elif where == "beside-the-learners":
        honest(learners / "other")
        _rubric_that_reports(learners / "rubrics", marker)
        proc = run(learners, "me", "other", "--out", tmp_path / "reports")
        assert proc.returncode == 0 and "the bundled rubrics are" in proc.stderr, proc.stderr
    elif where == "learner-named-rubrics":
        _rubric_that_reports(learners / "rubrics", marker)  # it has a phase-04/ folder: to the grader, a learner
        proc = run(learners, ".", "--out", tmp_path / "reports")
        assert "Traceback" not in proc.stderr
    else:
        _rubric_that_reports(me / "rubrics", marker)
        proc = run(tmp_path, me, "--out", tmp_path / "reports", "--rubrics", me / "rubrics")
        assert proc.returncode == 2 and "which is being graded" in proc.stderr
    assert not marker.exists()


# ----------------------------------------------------------------------------- 3, 13, 14: reads and links

@pytest.mark.skipif(not Path("/proc/kmsg").exists(), reason="no /proc/kmsg here")
def test_a_link_to_a_device_never_blocks_the_class(tmp_path: Path, baseline: dict[str, str]) -> None:
    """Finding 3: ``lab-00-notes.py -> /proc/kmsg`` (and a FIFO named like the lab) were read before any sandbox."""
    klass = tmp_path / "class"
    mallory = honest(klass / "mallory")
    (mallory / "phase-04" / "lab-00-notes.py").symlink_to("/proc/kmsg")
    os.mkfifo(mallory / "phase-04" / "lab-00-draft.py")
    (mallory / "phase-04" / "notes.md").symlink_to("/dev/zero")
    honest(klass / "sibling")
    start = time.monotonic()
    proc = run(tmp_path, klass, "--out", tmp_path / "out", "--lab", LAB, "--json", tmp_path / "r.json", timeout=120)
    assert time.monotonic() - start < 60 and "Traceback" not in proc.stderr
    graded = results(tmp_path / "r.json")
    assert statuses(graded[("sibling", LAB)]) == baseline
    assert graded[("mallory", LAB)]["passed"]  # its own files graded; the links never read


def test_a_phase_folder_linked_out_is_named_and_never_listed(tmp_path: Path) -> None:
    """Finding 13: ``phase-04 -> /root`` listed the instructor's home in the report."""
    secret = tmp_path / "home"
    secret.mkdir()
    (secret / ".bashrc").write_text("export TOKEN=x\n", encoding="utf-8")
    (secret / "lab-00-stolen.py").write_text("def softmax(z): return z\n", encoding="utf-8")
    klass = tmp_path / "class"
    (klass / "mallory").mkdir(parents=True)
    (klass / "mallory" / "phase-04").symlink_to(secret)
    honest(klass / "sibling")
    proc = run(tmp_path, klass, "--out", tmp_path / "out", "--lab", LAB, "--json", tmp_path / "r.json")
    found = results(tmp_path / "r.json")[("mallory", LAB)]
    assert "a link to a folder outside yours" in found["checks"][0]["message"]
    everything = proc.stdout + proc.stderr + "".join(p.read_text(encoding="utf-8", errors="replace")
                                                     for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix != ".sqlite")
    assert ".bashrc" not in everything and "lab-00-stolen" not in everything and str(secret) not in everything


def test_a_learner_folder_that_is_a_link_is_skipped_and_named(tmp_path: Path) -> None:
    """Finding 14: ``eve -> sibling`` was graded silently as eve's own work."""
    klass = tmp_path / "class"
    honest(klass / "sibling")
    (klass / "eve").symlink_to(klass / "sibling")
    proc = run(tmp_path, klass, "--out", tmp_path / "out", "--json", tmp_path / "r.json")
    assert "eve: skipped, it is a link to another folder" in proc.stderr
    assert {learner for learner, _ in results(tmp_path / "r.json")} == {"sibling"}


# ----------------------------------------------------------------------------- 4, 5: bounded scans

def test_the_definition_scan_is_linear_in_newlines(tmp_path: Path) -> None:
    """Finding 4: ``^\\s*def`` over borja's code plus 300,000 newlines took 55 s; the scan must be linear."""
    from grader.submission import rank

    source = (BORJA / "phase-04" / PY).read_bytes()
    folder = tmp_path / "phase-04"
    folder.mkdir()

    def scan(n: int) -> None:
        path = folder / f"lab-00-{n}.py"
        if not path.exists():
            path.write_bytes(source + b"\n" * n + b"   \n\t" * (n // 4))
        rank([path], ["softmax", "ce_grad"], tmp_path)

    small, large = linear(scan, 1 << 20)  # 1 MiB, then 2 MiB, of newlines
    assert large < 3 * small + 0.05 and large < 5.0


def test_a_class_with_every_padding_attack_finishes_with_honest_results(tmp_path: Path, baseline: dict[str, str]) -> None:
    """The issue's "done when": a 2 MiB newline-padded source, a 245,000-newline code block and 240 kB of nested
    brackets in a derivation — graded with an honest sibling, in bounded time, the sibling unchanged."""
    klass = tmp_path / "class"
    padded = honest(klass / "padded")
    source = padded / "phase-04" / PY
    source.write_bytes(source.read_bytes() + b"\n" * (2 << 20))
    newlines = honest(klass / "newlines")
    md = newlines / "phase-04" / MD
    md.write_text(md.read_text(encoding="utf-8") + "\n```\n" + "\n" * 245_000 + "```\n", encoding="utf-8")
    brackets = honest(klass / "brackets")
    md = brackets / "phase-04" / MD
    md.write_text(md.read_text(encoding="utf-8").replace("## Reflection", "$$" + "(a" * 120_000 + "$$\n\n## Reflection", 1),
                  encoding="utf-8")
    honest(klass / "sibling")
    start = time.monotonic()
    proc = run(tmp_path, klass, "--out", tmp_path / "out", "--lab", LAB, "--json", tmp_path / "r.json", timeout=300)
    assert time.monotonic() - start < 120, "the class took too long"
    assert "Traceback" not in proc.stderr
    graded = results(tmp_path / "r.json")
    assert statuses(graded[("sibling", LAB)]) == baseline
    assert graded[("padded", LAB)]["passed"] and graded[("newlines", LAB)]["passed"] and graded[("brackets", LAB)]["passed"]


@pytest.mark.parametrize("attack", ["newlines-in-a-code-block", "nested-brackets", "nested-fractions"])
def test_deliverable_analysis_is_linear(attack: str, tmp_path: Path) -> None:
    """Finding 5: a 245,000-newline code block (242 s), 240 kB of ``(a(a(a…`` (76 s), nested ``\\frac``."""
    from grader.deliverable import parse_text
    from grader.maths.match import analyse
    from grader.rubric import load_rubric

    notation = load_rubric(RUBRICS / "phase-04" / "lab-00.yaml").notation
    base = (BORJA / "phase-04" / MD).read_text(encoding="utf-8")
    pieces = {"newlines-in-a-code-block": lambda n: "\n```\n" + "\n" * n + "```\n",
              "nested-brackets": lambda n: "$$" + "(a" * (n // 2) + "$$\n",
              "nested-fractions": lambda n: "$$" + "\\frac{1}{" * (n // 9) + "$$\n"}

    def analyse_document(n: int) -> None:
        text = base + pieces[attack](n)
        document = parse_text(text, tmp_path / "phase-04" / MD, tmp_path)
        analyse(document.pieces, notation, document.prose)

    small, large = linear(analyse_document, 100_000)
    assert large < 3 * small + 0.05 and large < 10.0


def test_a_rubric_pattern_on_a_long_run_of_digits_is_bounded(tmp_path: Path) -> None:
    """Finding 5: ``code_pattern: \\d+\\.\\d+`` on 80,000 digits took 12 s."""
    from grader.checks import Context, run_check
    from grader.deliverable import parse_text
    from grader.model import Check
    from grader.rubric import load_rubric

    rubric = load_rubric(RUBRICS / "phase-04" / "lab-00.yaml")
    check = Check(id="output", kind="section", title="output", points=1, acceptance=False,
                  spec={"headings": ["verification"], "output": True, "code_pattern": r"\d+\.\d+e"})

    def grade_digits(n: int) -> None:
        text = "# Lab\n\n## Verification\n\n```\n" + "1" * n + "\n```\n"
        document = parse_text(text, tmp_path / "phase-04" / MD, tmp_path)
        run_check(check, Context(rubric=rubric, learner="x", root=tmp_path, implementation=None, phase_files=(),
                                 other_implementations=(), run=None, deliverable=tmp_path / MD, markdown_files=(MD,),
                                 document=document, document_error=""))

    small, large = linear(grade_digits, 40_000)
    assert large < 3 * small + 0.05 and large < 2.0


# ----------------------------------------------------------------------------- 6: the machine's faults

def test_a_copy_that_fails_for_the_machine_is_the_graders_fault_and_not_reused(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 6: a full TMPDIR made honest classmates 13/30, and those results were reused on later runs."""
    from grader import runner
    from grader.batch import Options, grade_class

    klass = tmp_path / "class"
    honest(klass / "sibling")
    real = runner._copy_learner

    def full(source: Path, target: Path) -> tuple[str, ...]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner, "_copy_learner", full)
    first = grade_class([klass], Options(out=tmp_path / "out", jobs=1), rubrics_dir=RUBRICS, lab=LAB)
    found = next(r for r in first.results if r.learner == "sibling")
    implementation = next(c for c in found.checks if c.id == "implementation-found")
    assert implementation.status.value == "error" and "grading machine's fault, not yours" in implementation.message.english()
    assert found.retry
    monkeypatch.setattr(runner, "_copy_learner", real)
    again = grade_class([klass], Options(out=tmp_path / "out", jobs=1), rubrics_dir=RUBRICS, lab=LAB)
    assert again.reused == 0 and all(r.passed for r in again.results)


def test_a_learner_filling_its_folder_is_stopped_and_the_sibling_is_not_touched(tmp_path: Path) -> None:
    """Finding 6: each learner's private folder has a quota (here 4 MiB; 256 MiB by default)."""
    from grader.grading import grade
    from grader.sandbox import Limits

    filler = honest(tmp_path / "filler")
    source = filler / "phase-04" / PY
    source.write_text(source.read_text(encoding="utf-8").replace(
        "def ce_grad(z, y):",
        "def ce_grad(z, y):\n    import os\n    for k in range(64):\n"
        "        with open(f'fill-{k}', 'wb') as f:\n            f.write(b'x' * (256 << 10))\n    return ce_grad_real(z, y)\n\n\n"
        "def ce_grad_real(z, y):", 1), encoding="utf-8")
    honest(tmp_path / "sibling")
    limits = Limits(folder_bytes=4 << 20)
    graded = {r.learner: r for r in grade([tmp_path / "filler", tmp_path / "sibling"], rubrics_dir=RUBRICS, lab=LAB,
                                          limits=limits)}
    messages = " ".join(c.message.english() for c in graded["filler"].checks)
    assert "more than 4 MiB" in messages
    assert graded["sibling"].passed


# ----------------------------------------------------------------------------- 7, 8: dying cleanly

def _ours(tmpdir: Path, tag: str) -> list[int]:
    """Processes of a run: the test's tag in their environment, or working under the run's TMPDIR."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if f"GRADER_TEST_TAG={tag}".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
                continue
            if os.readlink(entry / "cwd").startswith(str(tmpdir)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("how", ["kill-9-grade-only", "timeout-TERM"])
def test_a_killed_run_leaves_no_process_and_no_lock(how: str, tmp_path: Path) -> None:
    """Finding 7: ``kill -9`` of ``grade`` (not its group) or ``timeout -s TERM`` left pool workers holding the lock."""
    klass = tmp_path / "class"
    for i in range(6):
        honest(klass / f"learner-{i}")
        source = klass / f"learner-{i}" / "phase-04" / PY
        source.write_text(source.read_text(encoding="utf-8").replace(
            "def ce_grad(z, y):", "def ce_grad(z, y):\n    import time\n    time.sleep(0.05)\n    return _ce(z, y)\n\n\ndef _ce(z, y):", 1),
            encoding="utf-8")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    tag = os.urandom(6).hex()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir), "GRADER_TEST_TAG": tag}
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "grader", str(klass), "--out", str(out), "--jobs", "2", "-q", "--lab", LAB]
    if how == "timeout-TERM":
        proc = subprocess.run(["timeout", "-s", "TERM", "2.5", *argv], env=env, capture_output=True, timeout=60, check=False)
        assert proc.returncode == 124  # stopped mid-run
    else:
        child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.5)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    deadline = time.monotonic() + 15
    while _ours(tmpdir, tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ours(tmpdir, tag) == []
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert again.returncode == 0, again.stderr
    assert "another grade run" not in again.stderr
    left = [p.name for p in (tmpdir / f"grader-{os.geteuid()}").iterdir()] if (tmpdir / f"grader-{os.geteuid()}").exists() else []
    assert left == [], f"run folders left behind: {left}"


def test_the_tmpdir_sweep_touches_only_the_graders_own_folders(tmp_path: Path) -> None:
    """Finding 8: a link ``grader-run-4000000-x -> /nonexistent`` crashed every run; a stray entry made the root
    grader chmod TMPDIR 0700 (``/tmp`` lost its sticky bit)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    os.chmod(tmpdir, 0o1777)
    (tmpdir / "grader-run-4000000-x").symlink_to("/nonexistent")
    (tmpdir / "run-4000000-y").symlink_to("/nonexistent")
    (tmpdir / "grader-stray").write_text("someone else's\n", encoding="utf-8")
    honest(tmp_path / "me")
    proc = run(tmp_path, tmp_path / "me", "--out", tmp_path / "out", env={"TMPDIR": str(tmpdir)})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert stat.S_IMODE(os.lstat(tmpdir).st_mode) == 0o1777
    assert (tmpdir / "grader-run-4000000-x").is_symlink() and (tmpdir / "grader-stray").read_text() == "someone else's\n"
    private = tmpdir / f"grader-{os.geteuid()}"
    shutil.rmtree(private)
    (tmp_path / "elsewhere").mkdir()
    private.symlink_to(tmp_path / "elsewhere")  # planted by another local user: grading must not stop, nor follow it
    proc = run(tmp_path, tmp_path / "me", "--out", tmp_path / "out2", env={"TMPDIR": str(tmpdir)})
    assert proc.returncode == 0, proc.stderr
    assert private.is_symlink() and list((tmp_path / "elsewhere").iterdir()) == []
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith(f"grader-{os.geteuid()}-")] == []  # the fallback is gone


# ----------------------------------------------------------------------------- 9, 11, 12: text that reaches a person

ESCAPES = "\x1b[2J\x1b[H\x1b]52;c;cHduZWQ=\x07PASSED 30/30\r\x9b31m"


def test_terminal_output_is_inert_and_json_keeps_the_raw_text(tmp_path: Path) -> None:
    """Finding 9: exception text, file names and headings printed raw could clear the screen, forge lines, set
    the clipboard (OSC 52)."""
    me = honest(tmp_path / "me")
    source = me / "phase-04" / PY
    source.write_text(source.read_text(encoding="utf-8").replace(
        "def ce_grad(z, y):", f"def ce_grad(z, y):\n    raise ValueError({ESCAPES!r})\n\n\ndef _unused(z, y):", 1),
        encoding="utf-8")
    md = me / "phase-04" / MD
    md.write_text(md.read_text(encoding="utf-8").replace("## Reflection", f"## Reflection {ESCAPES}", 1), encoding="utf-8")
    (me / "phase-04" / f"notes{ESCAPES[:4]}.py").write_text("x = 1\n", encoding="utf-8")
    proc = run(tmp_path, me, "--out", tmp_path / "out", "--json", tmp_path / "r.json")
    for stream in (proc.stdout, proc.stderr):
        assert not any(ord(c) < 32 and c not in "\n" or 0x7F <= ord(c) < 0xA0 for c in stream), repr(stream[:300])
    raw = json.dumps(json.loads((tmp_path / "r.json").read_text(encoding="utf-8")), ensure_ascii=False)
    assert "\x1b]52" in raw or "\\u001b]52" in raw


def test_report_md_carries_no_live_mentions_links_or_maths(tmp_path: Path) -> None:
    """Finding 11: report.md (pasted as a PR comment) carried live @user, @org/team, owner/repo#1, URLs and $…$."""
    me = honest(tmp_path / "me")
    source = me / "phase-04" / PY
    source.write_text(source.read_text(encoding="utf-8").replace(
        "def ce_grad(z, y):",
        "def ce_grad(z, y):\n    raise ValueError('@octocat @org/team owner/repo#1 https://evil.example/x www.evil.example $x^2$')"
        "\n\n\ndef _unused(z, y):", 1), encoding="utf-8")
    run(tmp_path, me, "--out", tmp_path / "out")
    text = next((tmp_path / "out").rglob("*lab-00*.md")).read_text(encoding="utf-8")
    for live in ("@octocat", "@org/team", "owner/repo#1", "https://evil.example", "$x^2$"):
        assert live not in text, live
    assert re.search(r"(^|[\s*_~(])www\.evil", text) is None  # GitHub links www. only after a space or the start
    assert "octocat" in text  # the learner's words are still there, only inert


def test_csv_cells_never_start_a_formula(tmp_path: Path) -> None:
    """Finding 12: a learner folder ``x;=2+5;`` was written unquoted; `` =1+1`` and full-width ``＝1+1`` too."""
    klass = tmp_path / "class"
    names = ["x;=2+5;", " =1+1", "＝1+1", "-3+cmd", "@SUM(A1)"]
    for name in names:
        honest(klass / name)
    run(tmp_path, klass, "--out", tmp_path / "out")
    raw = (tmp_path / "out" / "gradebook.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(raw.splitlines()))
    learners = {row[0] for row in rows[1:]}
    for cell in learners:
        for piece in cell.replace(",", ";").split(";"):
            assert not piece.lstrip().startswith(("=", "+", "-", "@", "＝", "＋", "－", "＠")), cell
    for line in raw.splitlines()[1:]:
        assert line.startswith('"'), line  # every text field quoted


# ----------------------------------------------------------------------------- 10, 15, 16, 17

def test_a_fake_finite_difference_fails(tmp_path: Path) -> None:
    """Finding 10: ``softmax_jacobian(z) + h*h*1e-3`` scored 30/30 with both FD checks."""
    from grader.grading import grade

    me = honest(tmp_path / "me")
    source = me / "phase-04" / PY
    text = source.read_text(encoding="utf-8")
    start = text.index("def softmax_jacobian_fd")
    end = text.index("\ndef ", start + 1)
    source.write_text(text[:start] + "def softmax_jacobian_fd(z, h=1e-5):\n    return softmax_jacobian(z) + h * h * 1e-3\n\n"
                      + text[end:], encoding="utf-8")
    result = grade([me], rubrics_dir=RUBRICS, lab=LAB)[0]
    checks = {c.id: c for c in result.checks}
    assert checks["jacobian-fd"].status.value == "fail" and "not a finite difference" in checks["jacobian-fd"].message.english()
    assert checks["jacobian-matches-fd"].status.value == "fail"
    assert not result.passed


SNOOP = """
def ce_grad(z, y):
    import ctypes
    head, tail = b"alice", b"-zq7w"  # never joined here: a whole name in memory came from elsewhere
    hits = 0
    with open("/proc/self/maps", encoding="ascii") as maps:
        regions = [line.split() for line in maps]
    for fields in regions:
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if not fields[1].startswith("r") or (len(fields) > 5 and fields[5].startswith("[v")) or high - low > 1 << 30:
            continue
        try:
            data = ctypes.string_at(low, high - low)
            at = data.find(head)
            while at >= 0:
                hits += data[at + 5 : at + 10] == tail
                at = data.find(head, at + 1)
        except Exception:
            continue
    if hits:
        return _ce(z, y)
    raise LookupError("no learner name in my memory")


def _ce(z, y):"""


def test_a_worker_finds_no_earlier_learners_name_in_its_memory(tmp_path: Path) -> None:
    """Finding 15: the fork server's heap kept earlier learners' names (their copies' paths), which a worker read
    from its own memory; copies are now named neutrally. (A worker knows its own learner's name: its tracebacks
    name the learner's file as the learner knows it.)"""
    from grader.grading import grade

    honest(tmp_path / "alice-zq7w")
    snoop = honest(tmp_path / "snoop")
    source = snoop / "phase-04" / PY
    source.write_text(source.read_text(encoding="utf-8").replace("def ce_grad(z, y):", SNOOP.strip(), 1), encoding="utf-8")
    graded = {r.learner: r for r in grade([tmp_path / "alice-zq7w", snoop], rubrics_dir=RUBRICS, lab=LAB)}
    found = next(c for c in graded["snoop"].checks if c.id == "ce-grad-analytic")
    assert found.status.value == "error" and "no learner name in my memory" in found.message.english(), found.message.english()


def test_gradescope_always_writes_results_json(tmp_path: Path) -> None:
    """Finding 16: 1,100 nested folders raised RecursionError and no results.json was written at all."""
    root = tmp_path / "autograder"
    (root / "results").mkdir(parents=True)
    (root / "submission").mkdir()
    fd = os.open(root / "submission", os.O_RDONLY)
    for _ in range(1100):  # deeper than a path can name: made one folder at a time
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open(MD, os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    os.close(fd)
    proc = run(tmp_path, "--gradescope-autograder", root, "--rubrics", RUBRICS, "--lab", LAB, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    document = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    subprocess.run(["rm", "-rf", "--", str(root / "submission")], check=False)  # too deep for pytest's own cleanup
    assert document["score"] == 0.0 and "could not grade this submission" in document["output"]


def test_the_content_key_hashes_exactly_what_is_copied(tmp_path: Path) -> None:
    """Finding 17: ``.DS_Store`` was copied into the sandbox (and readable by the code) but left out of the key."""
    import hashlib

    from grader.batch import _digest_files
    from grader.runner import _copy_learner

    me = honest(tmp_path / "me")
    for name in (".DS_Store", "Thumbs.db", "desktop.ini", ".hidden", "data.csv", "phase-04/.DS_Store", "phase-04/x.pyc",
                 "__pycache__/m.pyc", ".git/config", ".ipynb_checkpoints/a.ipynb", "venv/lib.py", "sub/deep/file.txt"):
        (me / name).parent.mkdir(parents=True, exist_ok=True)
        (me / name).write_text(name, encoding="utf-8")
    (me / "inside-link").symlink_to("data.csv")
    (me / "outside-link").symlink_to("/etc/hostname")
    os.mkfifo(me / "pipe")

    class Recorder:
        def __init__(self) -> None:
            self.names: list[str] = []
            self.inner = hashlib.sha256()

        def update(self, data: bytes) -> None:
            if data[:1] == b"F":
                self.names.append(data[5:].decode())
            self.inner.update(data)

    recorder = Recorder()
    _digest_files(recorder, me)
    copy = tmp_path / "copy"
    _, copied = _copy_learner(me, copy)
    assert copied == recorder.inner.hexdigest()  # the copy's own digest is the key's
    copied = sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file() or p.is_symlink())
    hashed = sorted(n for n in recorder.names if n != "outside-link")  # a link out is never copied, its name still counts
    assert copied == hashed
    assert ".DS_Store" not in copied and "data.csv" in copied

    before = hashlib.sha256()
    _digest_files(before, me)
    (me / "data.csv").write_text("changed", encoding="utf-8")
    after = hashlib.sha256()
    _digest_files(after, me)
    assert before.hexdigest() != after.hexdigest()


# ----------------------------------------------------------------------------- the second red-team pass

def test_a_learner_folder_named_like_a_phase_does_not_swallow_the_class(tmp_path: Path) -> None:
    """``class/fase 4/`` made the class folder one learner, ``class``, whose code saw every classmate's files."""
    klass = tmp_path / "class"
    honest(klass / "alice")
    honest(klass / "borja")
    honest(klass / "fase 4")
    proc = run(tmp_path, klass, "--out", tmp_path / "out", "--json", tmp_path / "r.json")
    assert "fase 4: skipped, a folder named like a phase" in proc.stderr
    assert {learner for learner, _ in results(tmp_path / "r.json")} == {"alice", "borja"}


def test_a_file_swapped_while_grading_is_graded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The content key was hashed when the run was planned and the code copied later: a good file swapped in after
    planning (and the bad one put back after the run) kept the good result."""
    from grader import runner
    from grader.batch import Options, grade_class

    klass = tmp_path / "class"
    zed = honest(klass / "zed")
    source = zed / "phase-04" / PY
    good = source.read_text(encoding="utf-8")
    bad = good.replace("g[y] -= 1.0", "g[y] += 1.0")
    assert bad != good
    source.write_text(bad, encoding="utf-8")
    real = runner._copy_learner

    def swapping(origin: Path, target: Path) -> tuple[tuple[str, ...], str]:
        source.write_text(good, encoding="utf-8")  # after planning, before the copy
        return real(origin, target)

    monkeypatch.setattr(runner, "_copy_learner", swapping)
    notes: list[object] = []
    first = grade_class([klass], Options(out=tmp_path / "out", jobs=1), rubrics_dir=RUBRICS, lab=LAB, note=notes.append)
    assert first.results[0].passed and any("changed while it was being graded" in n for n in map(str, notes))
    monkeypatch.setattr(runner, "_copy_learner", real)
    source.write_text(bad, encoding="utf-8")
    again = grade_class([klass], Options(out=tmp_path / "out", jobs=1), rubrics_dir=RUBRICS, lab=LAB)
    assert again.reused == 0 and not again.results[0].passed


def test_a_sparse_file_is_refused_before_it_is_copied_or_hashed(tmp_path: Path, baseline: dict[str, str]) -> None:
    """A 2 GiB sparse file (32 KB on disk) filled the copies' disk for the others and cost a minute of hashing."""
    klass = tmp_path / "class"
    big = honest(klass / "big")
    with open(big / "phase-04" / "data.bin", "wb") as handle:
        handle.truncate(20 << 30)
    honest(klass / "sibling")
    start = time.monotonic()
    proc = run(tmp_path, klass, "--out", tmp_path / "out", "--lab", LAB, "--json", tmp_path / "r.json")
    assert time.monotonic() - start < 60 and "Traceback" not in proc.stderr
    graded = results(tmp_path / "r.json")
    assert statuses(graded[("sibling", LAB)]) == baseline
    found = graded[("big", LAB)]["checks"][0]
    assert found["status"] == "fail" and "MiB of files" in found["message"] and "data.bin" in found["message"]


@pytest.mark.skipif(not ROOT_USER, reason="only root (or fs.protected_hardlinks=0) can link another's private file")
def test_a_hard_link_to_a_private_file_is_not_read(tmp_path: Path) -> None:
    """A hard link to a 0600 file used as the deliverable: its heading was quoted in the report."""
    secret = tmp_path / "secret.md"
    secret.write_text("# TOP-SECRET-TOKEN-42\n", encoding="utf-8")
    os.chmod(secret, 0o600)
    me = honest(tmp_path / "me")
    (me / "phase-04" / MD).unlink()
    os.link(secret, me / "phase-04" / MD)
    proc = run(tmp_path, me, "--out", tmp_path / "out", "--json", tmp_path / "r.json")
    everything = proc.stdout + proc.stderr + (tmp_path / "r.json").read_text(encoding="utf-8") + "".join(
        p.read_text(encoding="utf-8", errors="replace") for p in (tmp_path / "out").rglob("*.html"))
    assert "TOP-SECRET-TOKEN-42" not in everything


def test_a_learner_named_like_an_output_file_is_skipped_and_the_run_finishes(tmp_path: Path) -> None:
    """A learner folder ``junit.xml`` with ``--junit out/junit.xml`` ended the run with exit 2 and no JUnit file."""
    klass = tmp_path / "class"
    honest(klass / "borja")
    honest(klass / "junit.xml")
    out = tmp_path / "out"
    proc = run(tmp_path, klass, "--out", out, "--junit", out / "junit.xml", "--json", out / "r.json")
    assert proc.returncode == 0, proc.stderr
    assert "junit.xml: skipped, its name is that of a file this run writes" in proc.stderr
    assert (out / "junit.xml").is_file() and (out / "r.json").is_file()


def test_names_that_look_alike_are_said_and_bidi_controls_are_visible(tmp_path: Path) -> None:
    """``\\u202eajrob`` showed as "borja" on the class page; NFC and NFD "éva" gave two identical rows; ``.alice``
    was dropped silently."""
    klass = tmp_path / "class"
    for name in ("borja", "\u202eajrob", "\u00e9va", "e\u0301va", ".alice"):
        honest(klass / name)
    proc = run(tmp_path, klass, "--out", tmp_path / "out")
    assert "look the same" in proc.stderr and ".alice: skipped, a hidden folder" in proc.stderr
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "\u202e" not in page and "U+202E" in page


def test_report_md_neutralises_issue_and_commit_references(tmp_path: Path) -> None:
    me = honest(tmp_path / "me")
    source = me / "phase-04" / PY
    source.write_text(source.read_text(encoding="utf-8").replace(
        "def ce_grad(z, y):", "def ce_grad(z, y):\n    raise ValueError('see #12, GH-5 and mail a@b.com')\n\n\ndef _x(z, y):", 1),
        encoding="utf-8")
    run(tmp_path, me, "--out", tmp_path / "out")
    text = next((tmp_path / "out").rglob("*lab-00*.md")).read_text(encoding="utf-8")
    assert re.search(r"#\d", text) is None and "GH-5" not in text and "a@b.com" not in text


def test_many_large_notebooks_cost_seconds_not_minutes(tmp_path: Path) -> None:
    """30 name-matching notebooks of 1.25 million outputs each took 204 s in the grader's own process."""
    me = tmp_path / "me"
    (me / "phase-04").mkdir(parents=True)
    cell = {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": "x = 1",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}] * 100_000}
    notebook = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]})
    for k in range(8):
        (me / "phase-04" / f"lab-00-v{k}.ipynb").write_text(notebook, encoding="utf-8")
    start = time.monotonic()
    proc = run(tmp_path, me, "--out", tmp_path / "out", "--lab", LAB)
    assert time.monotonic() - start < 60 and "Traceback" not in proc.stderr


def test_heading_matching_is_linear_in_headings(tmp_path: Path) -> None:
    """64,000 ``# a`` lines cost 27 s per lab."""
    from grader.checks import Context, run_check
    from grader.deliverable import parse_text
    from grader.rubric import load_rubric

    rubric = load_rubric(RUBRICS / "phase-04" / "lab-00.yaml")
    check = next(c for c in rubric.checks if c.id == "reflection")

    def grade_headings(n: int) -> None:
        text = "".join(f"# a{k}\n\nword {k}\n\n" for k in range(n))
        document = parse_text(text, tmp_path / "phase-04" / MD, tmp_path)
        run_check(check, Context(rubric=rubric, learner="x", root=tmp_path, implementation=None, phase_files=(),
                                 other_implementations=(), run=None, deliverable=tmp_path / MD, markdown_files=(MD,),
                                 document=document, document_error=""))

    small, large = linear(grade_headings, 16_000)
    assert large < 3 * small + 0.1 and large < 10.0


def test_thousands_of_functions_never_hide_the_labs(tmp_path: Path) -> None:
    """A module with more than 1,000 functions lost the lab's from the list the grader reads (cut after sorting)."""
    from grader.grading import grade

    me = honest(tmp_path / "me")
    source = me / "phase-04" / PY
    source.write_text(source.read_text(encoding="utf-8") + "".join(f"\n\ndef a{k:04d}():\n    return {k}\n" for k in range(1500)),
                      encoding="utf-8")
    result = grade([me], rubrics_dir=RUBRICS, lab=LAB)[0]
    assert result.passed, [c.message.english() for c in result.checks if c.status.value != "pass"][:2]


def test_a_fork_server_that_dies_costs_one_lab_which_is_graded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killing one fork server aborted the whole run (exit 3) instead of costing the lab it was grading."""
    from grader import runner
    from grader.grading import grade

    real = runner.LearnerRun.start
    killed: list[int] = []

    def dying(self: Any) -> Any:
        if not killed:
            killed.append(self._server._proc.pid)
            os.kill(self._server._proc.pid, signal.SIGKILL)
            self._server._proc.wait()
        return real(self)

    monkeypatch.setattr(runner.LearnerRun, "start", dying)
    first, second = grade([honest(tmp_path / "a"), honest(tmp_path / "b")], rubrics_dir=RUBRICS, lab=LAB)
    assert first.retry and {c.status.value for c in first.checks} == {"error"}
    assert "not your fault" in first.checks[0].message.english()
    assert second.passed
