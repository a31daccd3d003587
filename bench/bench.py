"""Benchmark: the grader against Python's start-up and against plain pytest, measured in ONE run.

    python bench/bench.py [--learners 1000] [--repeat 5] [--pytest-sample 40] [--jobs 2] [--keep DIR]

Generates one class of unique learners (bench/make_class.py: both labs, one in 25 with a fixture's
defect) in a temporary folder and measures on it, in this order:

  * ``python -c "import numpy"`` and ``grade learners/borja``, interleaved, medians of --repeat;
  * the floor: bench/floor.py, the rubrics' call plan on every learner in one unisolated process;
  * the whole class, first run into an empty --out (``--gradescope --junit --jobs``), with its
    phase split (GRADER_PHASES: worker, calls, checks, deliverable, reports, history);
  * the same command again, nothing changed (everything reused);
  * the same command after appending a comment to 10 learners' phase-04 code;
  * ``grade similar`` on a class of N distinct learners (no fixture copies): its time and the pairs it lists;
  * the grader's peak memory (in-process wrapper, --force, fresh --out) at 100 and at N learners;
  * (a) bench/equivalent_test.py, one pytest process per learner, on a sample of learners;
  * (b) bench/equivalent_test.py, one pytest session over every learner.

Before that, a small class (every third learner defective) is graded with --json to check that the
defective learners do not pass and the others do; a mismatch is printed as a WARNING.
Prints medians and ratios; it is a benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_class import BUGS, learner_name, make_class

sys.path.insert(0, str(ROOT))
from grader.phases import PHASES, gather

PY = sys.executable
GRADE = [PY, "-m", "grader"]
PYTEST = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "bench/equivalent_test.py"]
RSS_WRAPPER = ("import resource, sys\n"
               "from grader.cli import main\n"
               "rc = main(sys.argv[1:])\n"
               "print('BENCH-MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
               " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
               "sys.exit(rc)\n")


@dataclass
class Run:
    seconds: float
    rc: int
    stdout: str
    stderr: str
    ok: bool


def run(label: str, cmd: list[str], *, ok_codes: tuple[int, ...] = (0,), env: dict[str, str] | None = None,
        quiet: bool = False) -> Run:
    """Run once, timed; a failure (exit code not in ok_codes) is printed with the tail of its stderr."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace",
                          env=None if env is None else {**os.environ, **env}, check=False)
    seconds = time.perf_counter() - start
    result = Run(seconds, proc.returncode, proc.stdout, proc.stderr, proc.returncode in ok_codes)
    if not result.ok:
        print(f"  !! {label}: exit code {proc.returncode} (expected {' or '.join(map(str, ok_codes))}) "
              f"after {seconds:.2f} s", file=sys.stderr)
        print(f"  !! command: {shlex.join(cmd)}", file=sys.stderr)
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-15:]
        for line in tail:
            print(f"  !!   {line}", file=sys.stderr)
    elif not quiet:
        print(f"  {label}: {seconds:.2f} s (exit {proc.returncode})", file=sys.stderr)
    return result


def interleaved(first: list[str], second: list[str], repeat: int) -> tuple[float | None, float | None]:
    """Medians of two commands run alternately: a machine that slows down mid-run slows both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for k, cmd in enumerate((first, second)):
            done = run(shlex.join(cmd[-4:]), cmd)
            if done.ok:
                times[k].append(done.seconds)
    return tuple(statistics.median(t) if t else None for t in times)  # type: ignore[return-value]


def grader_source_digest() -> str:
    """The grader's own files: if they change mid-bench (someone editing grader/), nothing is reused."""
    hasher = hashlib.sha256()
    for path in sorted((ROOT / "grader").rglob("*")):  # what grader.batch.grader_digest() hashes
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            hasher.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()


def grade_flags() -> set[str]:
    """Which optional flags this grader has (the CLI is being extended): read from --help."""
    proc = subprocess.run([*GRADE, "--help"], cwd=ROOT, capture_output=True, text=True, check=False)
    return {flag for flag in ("--gradescope", "--junit", "--jobs", "--force", "--json") if flag in proc.stdout}


def class_command(klass: Path, out: Path, jobs: int, flags: set[str], force: bool = False) -> list[str]:
    cmd = [str(klass), "--out", str(out), "-q"]
    if "--gradescope" in flags:
        cmd.append("--gradescope")
    if "--junit" in flags:
        cmd += ["--junit", str(out / "junit.xml")]
    if "--jobs" in flags:
        cmd += ["--jobs", str(jobs)]
    if force and "--force" in flags:
        cmd.append("--force")
    return cmd


def verify_verdicts(tmp: Path, jobs: int, flags: set[str]) -> None:
    """Grade a small class with --json: defective learners must not pass, the others must."""
    if "--json" not in flags:
        print("WARNING: grade has no --json flag; the verdicts of the generated class were not checked")
        return
    klass, out, report = tmp / "verify-class", tmp / "verify-out", tmp / "verify.json"
    manifest: dict[str, str] = {}
    n = 3 * len(BUGS) + 3  # every third learner defective: every fixture in BUGS at least once
    expected_not = set(make_class(klass, n, seed=1, buggy_every=3, manifest=manifest))
    r = run(f"verify: grade {n} learners --json", [*GRADE, *class_command(klass, out, jobs, flags),
                                                    "--json", str(report)], ok_codes=(0, 1))
    if not r.ok or not report.is_file():
        print("WARNING: the verification run failed; the verdicts of the generated class were not checked")
        return
    passed: dict[str, bool] = {}
    for lab in json.loads(report.read_text(encoding="utf-8"))["results"]:
        passed[lab["learner"]] = passed.get(lab["learner"], True) and bool(lab["passed"])
    wrong = [f"{name} ({manifest[name]}): {'PASSED' if passed.get(name) else 'NOT PASSED'}, expected "
             f"{'NOT PASSED' if name in expected_not else 'PASSED'}"
             for name in manifest if passed.get(name, False) == (name in expected_not)]
    missing = [name for name in manifest if name not in passed]
    if wrong or missing:
        print(f"WARNING: the grader's verdicts on the generated class are not as expected ({len(wrong)} of {n}):")
        for line in wrong[:20]:
            print(f"  {line}")
        if missing:
            print(f"  not in the JSON at all: {', '.join(missing[:10])}")
    else:
        print(f"verdicts OK: {n - len(expected_not)} of {n} learners PASSED, the {len(expected_not)} with "
              f"a failing defect NOT PASSED ({', '.join(k for k, v in BUGS.items() if not v)}); "
              f"{sum(1 for k in manifest.values() if k != 'correct') - len(expected_not)} flawed-but-passing")


def touch_learners(klass: Path, n: int, not_passing: set[str], count: int = 10) -> list[str]:
    """Append a comment line to the phase-04 code of ``count`` learners spread over the class."""
    candidates = [learner_name(i) for i in range(1, n + 1) if learner_name(i) not in not_passing]
    step = max(1, len(candidates) // count)
    chosen = candidates[::step][:count]
    for name in chosen:
        for path in sorted((klass / name / "phase-04").glob("*.py")):
            with path.open("a", encoding="utf-8") as handle:
                handle.write("# edited after the first run\n")
    return chosen


def maxrss(label: str, klass: Path, out: Path, jobs: int, flags: set[str]) -> tuple[float, float] | None:
    """Peak RSS (MiB) of the grader's own process and of its largest child, from ru_maxrss."""
    r = run(label, [PY, "-c", RSS_WRAPPER, *class_command(klass, out, jobs, flags, force=True)], ok_codes=(0, 1))
    for line in reversed(r.stderr.splitlines()):
        if line.startswith("BENCH-MAXRSS"):
            _, own, children = line.split()
            return int(own) / 1024, int(children) / 1024
    if r.ok:
        print(f"  !! {label}: no BENCH-MAXRSS line in stderr", file=sys.stderr)
    return None


def pytest_counts(text: str) -> str:
    tail = [line for line in text.strip().splitlines() if " in " in line and ("passed" in line or "failed" in line)]
    return tail[-1].strip("= ") if tail else "?"


def fmt_ms(seconds: float | None) -> str:
    return "failed" if seconds is None else f"{seconds * 1000:.1f} ms"


def fmt_s(seconds: float | None) -> str:
    return "failed" if seconds is None else f"{seconds:.2f} s"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, default=1000, help="size of the generated class (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the short commands, median taken (default 5)")
    parser.add_argument("--pytest-sample", type=int, default=40,
                        help="learners for mode (a), one pytest process each (default 40)")
    parser.add_argument("--jobs", type=int, default=2, help="grade --jobs for the class runs (default 2)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="generate the class in DIR (must be empty or absent) and keep it")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated class")
    args = parser.parse_args()
    n = args.learners
    if n < 1:
        parser.error("--learners must be at least 1")
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: not empty; give an empty or new folder")

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {cores} cores ({usable} usable by this process), load average {load:.2f}; "
          f"python {sys.version.split()[0]}; --jobs {args.jobs}")
    flags = grade_flags()
    missing = {"--gradescope", "--junit", "--jobs", "--force"} - flags
    if missing:
        print(f"NOTE: this grader has no {', '.join(sorted(missing))}: measured without them")

    with tempfile.TemporaryDirectory(prefix="grader-bench-") as tmp_name:
        tmp = Path(tmp_name)
        klass = (args.keep or tmp / "class").resolve()
        out = tmp / "out"

        start = time.perf_counter()
        not_passing = set(make_class(klass, n, seed=args.seed))
        print(f"class: {n} learners in {klass} ({len(not_passing)} expected not to pass), "
              f"generated in {time.perf_counter() - start:.1f} s")
        verify_verdicts(tmp, args.jobs, flags)

        print("measuring … (progress on stderr)", flush=True)
        baseline, borja = interleaved([PY, "-c", "import numpy"],
                                      [*GRADE, "learners/borja", "--out", str(tmp / "borja-out"), "-q"], args.repeat)
        floor_run = run(f"floor: the call plan on {n} learners, one unisolated process",
                        [PY, str(ROOT / "bench" / "floor.py"), str(klass)])
        floor = json.loads(floor_run.stdout.strip().splitlines()[-1])["seconds"] if floor_run.ok else None

        cmd = [*GRADE, *class_command(klass, out, args.jobs, flags)]
        digest = grader_source_digest()
        phases_dir = tmp / "phases"
        first = run(f"grade class ({n}), first run", cmd, ok_codes=(0, 1), env={"GRADER_PHASES": str(phases_dir)})
        split = gather(phases_dir) if phases_dir.is_dir() else {}
        again = run(f"grade class ({n}), nothing changed", cmd, ok_codes=(0, 1))
        touched = touch_learners(klass, n, not_passing)
        changed = run(f"grade class ({n}), {len(touched)} changed", cmd, ok_codes=(0, 1))
        grader_edited = grader_source_digest() != digest
        distinct = tmp / "distinct"
        make_class(distinct, n, seed=args.seed, buggy_every=0)  # no fixture copies: every learner's own work
        similar = run(f"grade similar on {n} distinct learners", [*GRADE, "similar", str(distinct)])
        similar_pairs = sum(1 for line in similar.stdout.splitlines() if " · " in line) if similar.ok else None

        mem_small = None
        if n > 100:
            small = tmp / "class-100"
            make_class(small, 100, seed=args.seed)  # the same bytes as the first 100 learners
            mem_small = maxrss("peak memory, 100 learners", small, tmp / "mem-100", args.jobs, flags)
        mem_n = maxrss(f"peak memory, {n} learners", klass, tmp / f"mem-{n}", args.jobs, flags)
        if n <= 100:
            mem_small = mem_n

        names = sorted(p.name for p in klass.iterdir() if p.is_dir())
        k = max(1, min(args.pytest_sample, len(names)))
        sample = [names[round(i * (len(names) - 1) / max(1, k - 1))] for i in range(k)] if k > 1 else names[:1]
        # exit code 1 (a test failed) is expected for defective learners; anything else is a failure
        def shell_loop(prefix: str) -> list[str]:
            # exit code 1 (a test failed) is expected for defective learners; anything else is a failure
            body = "".join(f"{prefix}LEARNER={shlex.quote(str(klass / name))} {shlex.join(PYTEST)} >/dev/null 2>&1 "
                           "|| { s=$?; [ $s -le 1 ] || bad=$s; }; " for name in sample)
            return ["bash", "-c", f"bad=0; {body}exit $bad"]

        mode_a = run(f"pytest mode (a): {k} processes (sampled)", shell_loop(""))
        mode_a_per = mode_a.seconds / k if mode_a.ok else None
        lean = run(f"pytest mode (a), plugin autoload off: {k} processes (sampled)",
                   shell_loop("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "))
        lean_per = lean.seconds / k if lean.ok else None
        mode_b = run(f"pytest mode (b): one session over {n}", PYTEST, ok_codes=(0, 1),
                     env={"LEARNERS_DIR": str(klass)})
        mode_b_per = mode_b.seconds / n if mode_b.ok else None

    per = first.seconds / n if first.ok else None
    first_s = first.seconds if first.ok else None
    again_s = again.seconds if again.ok else None
    changed_s = changed.seconds if changed.ok else None
    print()
    print("| what | time | per learner | ratio |")
    print("|---|---|---|---|")
    print(f"| `python -c 'import numpy'` (baseline, median of {args.repeat}) | {fmt_ms(baseline)} | | 1.00x |")
    print(f"| `grade learners/borja` (2 labs, median of {args.repeat}, interleaved with the baseline) | {fmt_ms(borja)} | | "
          f"{ratio(borja, baseline)} numpy import |")
    print(f"| floor: the rubrics' call plan on every learner, one process, no isolation | {fmt_s(floor)} | "
          f"{fmt_ms(None if floor is None else floor / n)} | |")
    print(f"| class of {n}, first run, --jobs {args.jobs} | {fmt_s(first_s)} | {fmt_ms(per)} | "
          f"{ratio(per, baseline)} numpy import per learner; {ratio(first_s, floor)} the floor's wall time |")
    print(f"| same command, nothing changed | {fmt_s(again_s)} | | {ratio(again_s, first_s)} of the first run |")
    print(f"| same command, {len(touched)} learners' phase-04 changed | {fmt_s(changed_s)} | | "
          f"{ratio(changed_s, None if per is None else len(touched) * per)} of {len(touched)} x per-learner time |")
    if mem_small and mem_n:
        print(f"| peak RSS, grader process, {min(n, 100)} → {n} learners | {mem_small[0]:.0f} → {mem_n[0]:.0f} MiB | | "
              f"{mem_n[0] / mem_small[0]:.2f}x |")
        print(f"| peak RSS, largest child, {min(n, 100)} → {n} learners | {mem_small[1]:.0f} → {mem_n[1]:.0f} MiB | | "
              f"{mem_n[1] / mem_small[1]:.2f}x |")
    else:
        print("| peak RSS | failed | | |")
    print(f"| (a) pytest per learner, one process each (sampled: {k} of {n}) | {fmt_s(mode_a.seconds if mode_a.ok else None)} "
          f"| {fmt_ms(mode_a_per)} | {ratio(mode_a_per, baseline)} numpy import |")
    print(f"| (a') the same, PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 (sampled) | {fmt_s(lean.seconds if lean.ok else None)} "
          f"| {fmt_ms(lean_per)} | {ratio(lean_per, baseline)} numpy import |")
    print(f"| (b) pytest, one session over {n} (no isolation) | {fmt_s(mode_b.seconds if mode_b.ok else None)} | "
          f"{fmt_ms(mode_b_per)} | {ratio(mode_b_per, baseline)} numpy import |")
    print()
    if split:
        print(f"| phase (first run, per learner, summed over the pool's processes) | wall | grader CPU |")
        print("|---|---|---|")
        for name in PHASES:
            wall, cpu, _count = split.get(name, (0.0, 0.0, 0))
            print(f"| {name} | {wall / n * 1000:.1f} ms | {cpu / n * 1000:.1f} ms |")
        print()
    else:
        print("phase split: no GRADER_PHASES files were written (the first run failed?)")
    if first_s is not None and floor is not None:
        print(f"RATIO grade/floor (class wall): {first_s / floor:.2f}x (target <= 1.0x)")
    if borja is not None and baseline is not None:
        print(f"RATIO grade learners/borja / import numpy: {borja / baseline:.2f}x (target <= 2.0x)")
    if mem_small and mem_n:
        print(f"RATIO peak RSS {n} / {min(n, 100)} learners (grader process): {mem_n[0] / mem_small[0]:.2f}x "
              f"(target <= 1.20x)")
    if again_s is not None:
        print(f"TIME no-change re-run of {n}: {again_s:.2f} s (target < 0.5 s)")
    if similar.ok:
        print(f"TIME grade similar on {n} distinct generated learners: {similar.seconds:.2f} s, "
              f"{similar_pairs} pairs listed (expected 0)")
    print()
    print(f"grader per learner vs (a) pytest per learner: {ratio(per, mode_a_per)} "
          f"(vs (a') without plugins: {ratio(per, lean_per)}); vs (b) one pytest session: {ratio(per, mode_b_per)}; "
          f"vs a numpy import: {ratio(per, baseline)}")
    if grader_edited:
        print("WARNING: grader/ changed while the class runs were measured (someone edited it): its content key "
              "changed, so the re-runs graded everything again; their times are not reuse times. Run again.")
    if mode_b.ok:
        print(f"(b) pytest outcome: {pytest_counts(mode_b.stdout)} "
              f"({len(not_passing)} learners with a failing defect; flawed-but-passing ones fail some tests too)")
    if touched:
        print(f"changed learners: {', '.join(touched)}")
    if args.keep:
        print(f"class kept in {klass} (including the 10 edits)")


if __name__ == "__main__":
    main()
