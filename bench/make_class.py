"""Generate a class of learners for the benchmark: every submission unique in content.

    python bench/make_class.py DIR N [--seed 0] [--buggy-every 25]

Each learner ``learner-0001`` … gets ``phase-04/`` (Lab 00, softmax gradient) and ``phase-05/``
(Lab 02, log-sum-exp) like ``learners/borja``: a header naming the learner, and the code assembled
from equivalent, correct pieces (different max-shift, outer product, one-hot, finite-difference
loop, parameter names, helpers, ``__main__`` block), with the deliverables' prose varied by a few
words (and now and then Spanish headings). No two learners have the same bytes, so a content-hash
cache can never reuse one learner's result for another.

One learner in ``buggy_every`` instead hands in a realistic defect: a fixture's phase folder copied
from ``tests/fixtures/`` (plus the unique header), the other lab generated correct. The fixtures
cycle through ``BUGS``. ``make_class`` returns the learners expected NOT to pass (see ``BUGS``:
``page-copy`` and ``unshifted-softmax`` are flawed but pass the lab, as ``tests/test_grading.py``
says). Everything is deterministic per (seed, learner index): the first 100 learners of a class of
1000 are the same bytes as a class of 100.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
BORJA = ROOT / "learners" / "borja"

# fixture -> does the lab still pass (each fixture's EXPECTED.yaml)? Cheap defects only:
# no hangs, crashes or timeouts, so the bench measures grading, not call time limits.
BUGS: dict[str, bool] = {
    "forward-diff": False,
    "sign-flipped": False,
    "scalar-outer": False,
    "raises": False,
    "p05-naive": False,
    "wrong-index": False,
    "unshifted-softmax": True,   # only non-acceptance stability checks fail
    "elementwise-outer": False,
    "p05-no-shift-invariance": False,
    "not-fd": False,
    "page-copy": True,           # advice only: unstable ce_loss, a script at module level
    "float32": False,
    "deliverable-short-reflection": False,
    "p05-forgets-max": False,
}

P04_PY = "lab-00-softmax-gradient.py"
P04_MD = "lab-00-softmax-gradient.md"
P05_PY = "lab_02_logsumexp.py"
P05_MD = "lab-02-logsumexp.md"


# ----------------------------------------------------------------------------- phase-04 code pieces
# Placeholders: _Z_ logits, _Y_ class, _H_ step, LSE the log-sum-exp helper's name.

SOFTMAX = [
    """def softmax(_Z_):
    \"\"\"Stable softmax: shift by the max so exp never overflows.\"\"\"
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    e = np.exp(_Z_ - np.max(_Z_))
    return e / e.sum()
""",
    """def softmax(_Z_):
    _Z_ = np.asarray(_Z_, dtype=float)
    shifted = _Z_ - _Z_.max()
    ex = np.exp(shifted)
    return ex / np.sum(ex)
""",
    """def softmax(_Z_):
    \"\"\"p_i = exp(z_i - logsumexp(z)).\"\"\"
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    return np.exp(_Z_ - LSE(_Z_))
""",
    """def softmax(_Z_):
    # work on a copy: the caller's array must not change
    p = np.array(_Z_, dtype=np.float64, copy=True)
    p -= np.max(p)
    np.exp(p, out=p)
    p /= p.sum()
    return p
""",
]

JACOBIAN = [
    """def softmax_jacobian(_Z_):
    \"\"\"J = diag(p) - p p^T.\"\"\"
    p = softmax(_Z_)
    return np.diag(p) - np.outer(p, p)
""",
    """def softmax_jacobian(_Z_):
    p = softmax(_Z_)
    return np.diag(p) - p[:, None] * p[None, :]
""",
    """def softmax_jacobian(_Z_):
    p = softmax(_Z_)
    return np.diagflat(p) - np.einsum("i,j->ij", p, p)
""",
    """def softmax_jacobian(_Z_):
    # dp_i/dz_j = p_i (delta_ij - p_j)
    p = softmax(_Z_)
    J = -np.outer(p, p)
    J[np.diag_indices_from(J)] += p
    return J
""",
]

JACOBIAN_FD = [
    """def softmax_jacobian_fd(_Z_, _H_=1e-5):
    \"\"\"Centred differences, one column per coordinate.\"\"\"
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    n = len(_Z_)
    J = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = _H_
        J[:, j] = (softmax(_Z_ + e) - softmax(_Z_ - e)) / (2 * _H_)
    return J
""",
    """def softmax_jacobian_fd(_Z_, _H_=1e-5):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    steps = np.eye(len(_Z_)) * _H_
    cols = [(softmax(_Z_ + d) - softmax(_Z_ - d)) / (2.0 * _H_) for d in steps]
    return np.stack(cols, axis=1)
""",
    """def softmax_jacobian_fd(_Z_, _H_=1e-5):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    n = _Z_.size
    J = np.empty((n, n))
    for j in range(n):
        up = _Z_.copy()
        down = _Z_.copy()
        up[j] += _H_
        down[j] -= _H_
        J[:, j] = (softmax(up) - softmax(down)) / (2 * _H_)
    return J
""",
]

CE_LOSS = [
    """def ce_loss(_Z_, _Y_):
    \"\"\"-log p_y = logsumexp(z) - z_y, never log(softmax).\"\"\"
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    return LSE(_Z_) - _Z_[_Y_]
""",
    """def ce_loss(_Z_, _Y_):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    m = _Z_.max()
    return m + np.log(np.exp(_Z_ - m).sum()) - _Z_[_Y_]
""",
    """def ce_loss(_Z_, _Y_):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    return float(LSE(_Z_) - _Z_[int(_Y_)])
""",
]

CE_GRAD = [
    """def ce_grad(_Z_, _Y_):
    \"\"\"dL/dz = softmax(z) - one_hot(y).\"\"\"
    g = softmax(_Z_)  # a fresh array
    g[_Y_] -= 1.0
    return g
""",
    """def ce_grad(_Z_, _Y_):
    p = softmax(_Z_)
    return p - np.eye(len(p))[_Y_]
""",
    """def one_hot(_Y_, n):
    v = np.zeros(n)
    v[_Y_] = 1.0
    return v


def ce_grad(_Z_, _Y_):
    p = softmax(_Z_)
    return p - one_hot(_Y_, p.size)
""",
    """def ce_grad(_Z_, _Y_):
    grad = softmax(_Z_).copy()
    grad[int(_Y_)] = grad[int(_Y_)] - 1.0
    return grad
""",
]

CE_GRAD_FD = [
    """def ce_grad_fd(_Z_, _Y_, _H_=1e-5):
    \"\"\"Centred differences of ce_loss.\"\"\"
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    n = len(_Z_)
    g = np.zeros(n)
    for j in range(n):
        e = np.zeros(n)
        e[j] = _H_
        g[j] = (ce_loss(_Z_ + e, _Y_) - ce_loss(_Z_ - e, _Y_)) / (2 * _H_)
    return g
""",
    """def ce_grad_fd(_Z_, _Y_, _H_=1e-5):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    steps = np.eye(len(_Z_)) * _H_
    return np.array([(ce_loss(_Z_ + d, _Y_) - ce_loss(_Z_ - d, _Y_)) / (2.0 * _H_) for d in steps])
""",
    """def ce_grad_fd(_Z_, _Y_, _H_=1e-5):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    g = np.empty(_Z_.size)
    for j in range(_Z_.size):
        up, down = _Z_.copy(), _Z_.copy()
        up[j] += _H_
        down[j] -= _H_
        g[j] = (ce_loss(up, _Y_) - ce_loss(down, _Y_)) / (2 * _H_)
    return g
""",
]

LOCAL_LSE = '''def _logsumexp(_Z_):
    """Same as my phase-05 logsumexp, copied so this file runs on its own."""
    m = np.max(_Z_)
    return m + np.log(np.sum(np.exp(_Z_ - m)))
'''

IMPORT_LSE = '''import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "phase-05"))
from lab_02_logsumexp import logsumexp  # noqa: E402
'''

HELPER = '''def max_abs_diff(a, b):
    """Largest absolute entry of a - b (my own check helper)."""
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))
'''

MAIN_04 = [
    '''if __name__ == "__main__":
    z = np.array([2.0, 1.0, 0.5, -1.0, 0.0])
    err = np.max(np.abs(softmax_jacobian(z) - softmax_jacobian_fd(z)))
    print(f"softmax Jacobian: max_err = {err:.1e}")
    for y in range(len(z)):
        print(f"CE gradient, y = {y}: max_err = {np.max(np.abs(ce_grad(z, y) - ce_grad_fd(z, y))):.1e}")
''',
    '''if __name__ == "__main__":
    np.set_printoptions(precision=4, suppress=True)
    z = np.array([2.0, 1.0, 0.5, -1.0, 0.0])
    J = softmax_jacobian(z)
    print("J =")
    print(J)
    print("row sums =", J.sum(axis=1))
    print("all checks passed" if np.allclose(J, softmax_jacobian_fd(z), atol=1e-7) else "MISMATCH")
''',
    '''if __name__ == "__main__":
    z = np.array([2.0, 1.0, 0.5, -1.0, 0.0])
    print("sanity check z = [2, 1, 0], y = 0: grad =", ce_grad(np.array([2.0, 1.0, 0.0]), 0))
''',
    "",
]

MAIN_04_HELPER = '''if __name__ == "__main__":
    z = np.array([2.0, 1.0, 0.5, -1.0, 0.0])
    print(f"Jacobian: max_err = {max_abs_diff(softmax_jacobian(z), softmax_jacobian_fd(z)):.1e}")
    for y in range(5):
        print(f"y = {y}: max_err = {max_abs_diff(ce_grad(z, y), ce_grad_fd(z, y)):.1e}")
'''

DOCSTRINGS_04 = [
    '"""Phase 04 · Lab 00 — softmax / cross-entropy gradients, checked with centred finite differences."""\n',
    '"""Softmax Jacobian and cross-entropy gradient, verified numerically (Phase 04, Lab 00)."""\n',
    "# Phase 04 - Lab 00: softmax Jacobian + cross-entropy gradient vs. finite differences\n",
    '"""Lab 00: the derivations are in the .md file; this script only checks them."""\n',
]

NAMES_Z = ["z", "z", "logits", "x", "scores"]
NAMES_Y = ["y", "y", "target", "label", "k"]
NAMES_H = ["h", "h", "eps", "step"]


def _fill(code: str, z: str, y: str, h: str, lse: str) -> str:
    return code.replace("_Z_", z).replace("_Y_", y).replace("_H_", h).replace("LSE", lse)


def phase04_code(rng: random.Random, learner: str, imports_phase05: bool) -> str:
    z, y, h = rng.choice(NAMES_Z), rng.choice(NAMES_Y), rng.choice(NAMES_H)
    lse = "logsumexp" if imports_phase05 else "_logsumexp"
    parts = [f"# {learner} — handed in for Phase 04, Lab 00\n", rng.choice(DOCSTRINGS_04), "\n"]
    if imports_phase05:
        parts += ["from __future__ import annotations\n\n", IMPORT_LSE, "\n\n"]
    else:
        parts += ["import numpy as np\n\n\n", _fill(LOCAL_LSE, z, y, h, lse), "\n\n"]
    helper = rng.random() < 0.3
    if helper:
        parts += [HELPER, "\n\n"]
    functions = [_fill(rng.choice(pieces), z, y, h, lse) for pieces in (SOFTMAX, JACOBIAN, JACOBIAN_FD, CE_LOSS,
                                                                          CE_GRAD, CE_GRAD_FD)]
    rng.shuffle(functions)  # learners write them in their own order: two learners rarely share a whole file
    for function in functions:
        parts += [function, "\n\n"]
    main = MAIN_04_HELPER if helper else rng.choice(MAIN_04)
    parts.append(main)
    return "".join(parts).rstrip() + "\n"


# ----------------------------------------------------------------------------- phase-05 code pieces

LOGSUMEXP = [
    '''def logsumexp(_Z_):
    """log(sum_k exp(z_k)) computed as m + log(sum_k exp(z_k - m)), m = max(z)."""
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    m = np.max(_Z_)
    if not np.isfinite(m):
        m = 0.0  # all -inf (or inf / nan somewhere): do not shift
    return float(m + np.log(np.sum(np.exp(_Z_ - m))))
''',
    '''def logsumexp(_Z_):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    m = np.max(_Z_)
    return m + np.log(np.sum(np.exp(_Z_ - m)))
''',
    '''def logsumexp(_Z_):
    # subtract the maximum first: the largest exponent is then exp(0) = 1
    _Z_ = np.asarray(_Z_, dtype=float)
    m = _Z_.max()
    s = np.exp(_Z_ - m).sum()
    return float(np.log(s) + m)
''',
]

LOG_SOFTMAX = [
    '''def log_softmax(_Z_):
    """log p_i = z_i - logsumexp(z)."""
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    return _Z_ - logsumexp(_Z_)
''',
    '''def log_softmax(_Z_):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    shifted = _Z_ - np.max(_Z_)
    return shifted - np.log(np.sum(np.exp(shifted)))
''',
]

CROSS_ENTROPY = [
    '''def cross_entropy_from_logits(_Z_, _Y_):
    """-log p_{y*} = logsumexp(z) - z[y*]."""
    return float(-log_softmax(_Z_)[_Y_])
''',
    '''def cross_entropy_from_logits(_Z_, _Y_):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    return logsumexp(_Z_) - _Z_[_Y_]
''',
    '''def cross_entropy_from_logits(_Z_, _Y_):
    return -log_softmax(_Z_)[int(_Y_)]
''',
]

NAIVE_05 = '''# --- naive versions (for the demo only) ---

def logsumexp_naive(_Z_):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    return np.log(np.sum(np.exp(_Z_)))


def log_softmax_naive(_Z_):
    _Z_ = np.asarray(_Z_, dtype=np.float64)
    return _Z_ - logsumexp_naive(_Z_)
'''

MAIN_05 = [
    '''if __name__ == "__main__":
    for z in ([0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [1000.0, 1001.0, 1002.0], [-1000.0, -999.0, -998.0]):
        print(f"z = {z}: logsumexp = {logsumexp(z):.10f}, CE(z, 0) = {cross_entropy_from_logits(z, 0):.10f}")
''',
    '''if __name__ == "__main__":
    np.set_printoptions(precision=6)
    base = np.array([1.0, 2.0, 3.0])
    for c in (1000.0, -1000.0, 123.456):
        print(f"c = {c:>9}: shift error = {abs(logsumexp(base + c) - (logsumexp(base) + c)):.1e}")
''',
    "",
]

NAMES_YSTAR = ["y_star", "y_star", "y", "target"]


def phase05_code(rng: random.Random, learner: str) -> str:
    z, y = rng.choice(NAMES_Z), rng.choice(NAMES_YSTAR)
    parts = [f"# {learner} — Phase 05, Lab 02\n",
             rng.choice(['"""Phase 05 · Lab 02 — log-sum-exp and stable cross-entropy from logits."""\n',
                         '"""Log-sum-exp with the max-shift, log-softmax and cross-entropy from logits."""\n',
                         "# stable log-sum-exp (Phase 05)\n"]),
             "\nfrom __future__ import annotations\n\nimport numpy as np\n\n\n"]
    if rng.random() < 0.4:
        parts += [_fill(NAIVE_05, z, y, "h", "logsumexp"), "\n\n# --- stable versions ---\n\n"]
    functions = [_fill(rng.choice(pieces), z, y, "h", "logsumexp") for pieces in (LOGSUMEXP, LOG_SOFTMAX, CROSS_ENTROPY)]
    rng.shuffle(functions)
    for function in functions:
        parts += [function, "\n\n"]
    parts.append(rng.choice(MAIN_05))
    return "".join(parts).rstrip() + "\n"


# ----------------------------------------------------------------------------- deliverables

# (phrase in borja's text, alternatives): prose only, never a formula or a heading
PROSE = [
    ("this is a faithful\ntranscription", ["this is a clean\ntranscription", "this is a faithful\ncopy",
                                           "this file is a faithful\ntranscription"]),
    ("felt mechanical", ["felt routine", "was mostly mechanical", "felt like bookkeeping"]),
    ("genuinely insightful", ["really illuminating", "the part I learned most from", "genuinely surprising"]),
    ("I got stuck for a while", ["I was stuck for some time", "I lost half an hour", "I struggled for a while"]),
    ("cost nothing", ["was free", "cost me nothing"]),
    ("Two properties that I later used as checks", ["Two properties I used later as checks",
                                                     "Two facts I later used as sanity checks"]),
    ("which is exactly what we want", ["which is exactly what we need", "which is what we want"]),
    ("The fix is a single line", ["The fix is one line", "The change is a single line", "The fix is tiny"]),
    ("What surprised me most", ["The most surprising part", "What I did not expect", "What surprised me"]),
    ("From now on I will", ["In future labs I will", "Going forward I will", "From now on I'll"]),
    ("is the right test", ["is the right check", "is the correct test"]),
    ("as it must,", ["as it should,", "as expected,"]),
]

EXTRA = [
    "Next time I would write the finite-difference check before the analytic code.",
    "Working through the example by hand took longer than the code itself.",
    "I also tried a few random vectors to be sure the result was not a coincidence.",
    "Comparing against a second derivation route gave me more confidence than the tests alone.",
    "Writing this up helped me see where the numbers come from.",
]

SPANISH = [("## Part A — Derivation", "## Parte A — Derivación"), ("## Reflection", "## Reflexión"),
           ("## Part B — Verification output", "## Parte B — Verificación"), ("## Verification", "## Verificación")]


def vary_markdown(text: str, rng: random.Random, learner: str, spanish: bool) -> str:
    for phrase, alternatives in PROSE:
        if phrase in text and rng.random() < 0.6:
            text = text.replace(phrase, rng.choice(alternatives), 1)
    if spanish:
        for english, spanish_heading in SPANISH:
            text = re.sub(rf"^{re.escape(english)}$", spanish_heading, text, count=1, flags=re.MULTILINE)
    if rng.random() < 0.5:
        text = text.rstrip("\n") + " " + rng.choice(EXTRA) + "\n"
    return with_md_header(text, learner)


def with_md_header(text: str, learner: str) -> str:
    """The learner's name after the title line (before any section)."""
    first, _, rest = text.partition("\n")
    if first.startswith("# "):
        return f"{first}\n\n_Handed in by {learner}._\n{rest}"
    return f"_Handed in by {learner}._\n\n{text}"


def with_py_header(text: str, learner: str) -> str:
    return f"# {learner} — handed in for grading\n{text}"


# ----------------------------------------------------------------------------- the class

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _copy_fixture_phase(fixture: Path, phase: str, target: Path, learner: str) -> None:
    shutil.copytree(fixture / phase, target / phase, ignore=shutil.ignore_patterns("__pycache__"))
    for path in (target / phase).iterdir():
        if path.suffix == ".py":
            path.write_text(with_py_header(path.read_text(encoding="utf-8"), learner), encoding="utf-8")
        elif path.suffix == ".md":
            path.write_text(with_md_header(path.read_text(encoding="utf-8"), learner), encoding="utf-8")


def make_learner(target: Path, learner: str, rng: random.Random, bug: str | None = None) -> None:
    """One learner folder: both labs correct and varied, or one lab replaced by fixture ``bug``."""
    fixture_phases = {p.name for p in (FIXTURES / bug).iterdir() if p.is_dir()} if bug else set()
    spanish = rng.random() < 0.1
    # phase-04 may import logsumexp from phase-05 like borja, unless phase-05 is the buggy one
    imports_phase05 = "phase-05" not in fixture_phases and rng.random() < 0.35
    if "phase-04" in fixture_phases:
        _copy_fixture_phase(FIXTURES / bug, "phase-04", target, learner)
    else:
        _write(target / "phase-04" / P04_PY, phase04_code(rng, learner, imports_phase05))
        _write(target / "phase-04" / P04_MD,
               vary_markdown((BORJA / "phase-04" / P04_MD).read_text(encoding="utf-8"), rng, learner, spanish))
    if "phase-05" in fixture_phases:
        _copy_fixture_phase(FIXTURES / bug, "phase-05", target, learner)
    else:
        _write(target / "phase-05" / P05_PY, phase05_code(rng, learner))
        _write(target / "phase-05" / P05_MD,
               vary_markdown((BORJA / "phase-05" / P05_MD).read_text(encoding="utf-8"), rng, learner, spanish))


def learner_name(i: int) -> str:
    return f"learner-{i:04d}"


def bug_for(i: int, buggy_every: int) -> str | None:
    """Learner i (1-based) gets a defect when i ≡ buggy_every // 2 (mod buggy_every); fixtures cycle."""
    if buggy_every <= 0 or i % buggy_every != buggy_every // 2:
        return None
    names = list(BUGS)
    return names[(i // buggy_every) % len(names)]


def make_class(folder: Path, n: int, seed: int = 0, buggy_every: int = 25,
               manifest: dict[str, str] | None = None) -> list[str]:
    """Write n learner folders into ``folder``; return the learners expected NOT to pass.

    ``manifest``, when given, is filled with learner -> "correct" or the fixture it got.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    not_passing: list[str] = []
    for i in range(1, n + 1):
        name = learner_name(i)
        rng = random.Random(f"{seed}:{i}")
        bug = bug_for(i, buggy_every)
        make_learner(folder / name, name, rng, bug)
        if manifest is not None:
            manifest[name] = bug or "correct"
        if bug is not None and not BUGS[bug]:
            not_passing.append(name)
    return not_passing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a benchmark class of unique learners.")
    parser.add_argument("dir", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--buggy-every", type=int, default=25)
    args = parser.parse_args(argv)
    manifest: dict[str, str] = {}
    not_passing = make_class(args.dir, args.n, args.seed, args.buggy_every, manifest)
    flawed = sorted(name for name, kind in manifest.items() if kind != "correct")
    print(f"{args.n} learners in {args.dir}; {len(flawed)} with a fixture's defect, "
          f"{len(not_passing)} of them expected not to pass")
    for name in flawed:
        print(f"  {name}: {manifest[name]}{'' if name in not_passing else ' (flawed, still passes)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
