"""Benchmark: the grader's cost against Python's own start-up, measured in the same run.

    python bench/bench.py [--learners 200] [--repeat 5]

Prints medians and ratios; it is not a timed test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUGGY = ["page-copy", "forward-diff", "sign-flipped", "unshifted-softmax", "scalar-outer", "raises"]


def timed(cmd: list[str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def make_class(folder: Path, n: int) -> None:
    """n learners: mostly correct (borja's work), one in 20 with a realistic bug from the fixtures."""
    for i in range(n):
        source = ROOT / "tests" / "fixtures" / BUGGY[(i // 20) % len(BUGGY)] if i % 20 == 7 else ROOT / "learners" / "borja"
        shutil.copytree(source, folder / f"learner-{i:04d}", ignore=shutil.ignore_patterns("__pycache__"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learners", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    grade = [sys.executable, "-m", "grader"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "reports"
        baseline = timed([sys.executable, "-c", "import numpy"], args.repeat)
        one = timed([*grade, "learners/borja", "--out", str(out), "-q"], args.repeat)
        print(f"python -c 'import numpy'            {baseline * 1000:8.1f} ms")
        print(f"grade learners/borja (2 labs)       {one * 1000:8.1f} ms   ratio {one / baseline:5.2f}x")
        klass = Path(tmp) / "class"
        make_class(klass, args.learners)
        many = timed([*grade, str(klass), "--out", str(out), "-q", "--lab", "phase-04/lab-00"], 1)
        per = many / args.learners
        print(f"grade {args.learners} learners (phase-04/lab-00) {many:8.2f} s    "
              f"{per * 1000:.1f} ms per learner   ratio {per / baseline:5.2f}x numpy import")


if __name__ == "__main__":
    main()
