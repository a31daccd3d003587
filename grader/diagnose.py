"""Numerical comparison and recognisable causes, in the parent only.

Generic detectors look at the shape of an error (sign, transpose, constant factor, dtype, inf/NaN,
two entries off); a rubric adds lab-specific ones as predicates in its reference module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.model import Cause
from grader.runner import Observed


_TINY = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class Diff:
    """How an observed array differs from the expected one."""

    ok: bool
    reason: str = ""  # "", "shape", "nonfinite", "value"
    max_abs: float | None = None
    max_rel: float | None = None
    where: tuple[int, ...] | None = None
    expected_at: float | None = None
    observed_at: float | None = None


def compare(expected: np.ndarray, observed: np.ndarray, atol: float, rtol: float) -> Diff:
    expected = np.asarray(expected, dtype=np.float64)
    if observed.shape != expected.shape:
        if observed.size == expected.size == 1:
            observed = observed.reshape(expected.shape)
        else:
            return Diff(ok=False, reason="shape")
    if expected.size == 0:
        return Diff(ok=True, max_abs=0.0, max_rel=0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(observed - expected)
    flat = int(err.argmax())
    max_abs = float(err.flat[flat])
    if max_abs <= atol and max_abs == max_abs:  # the common case: every entry within atol, nothing non-finite
        rel = err / np.maximum(np.abs(expected), _TINY)
        return Diff(ok=True, max_abs=max_abs, max_rel=float(rel.max()),
                    where=tuple(int(i) for i in np.unravel_index(flat, expected.shape)) if expected.ndim else (),
                    expected_at=float(expected.flat[flat]), observed_at=float(observed.flat[flat]))
    bad_finite = np.isfinite(expected) & ~np.isfinite(observed)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(observed - expected)
        err = np.where(np.isnan(err), np.inf, err)
        tol = atol + rtol * np.abs(expected)
        failing = err > tol
        rel = err / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
    flat = int(np.argmax(bad_finite)) if bad_finite.any() else int(np.argmax(err))
    where = tuple(int(i) for i in np.unravel_index(flat, expected.shape)) if expected.ndim else ()
    max_abs = float(err.max())
    max_rel = float(rel.max())
    reason = "nonfinite" if bad_finite.any() else "value" if failing.any() else ""
    return Diff(ok=not reason, reason=reason, max_abs=max_abs, max_rel=max_rel, where=where,
                expected_at=float(expected.flat[flat]), observed_at=float(observed.flat[flat]))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-300)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=1e-9 * scale))


def _sign(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    if diff.reason == "value" and np.any(np.abs(expected) > 1e-12) and _same(observed.array, -expected):
        return "the sign is flipped: you return the negative of the expected value"
    return None


def _transposed(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    if diff.reason == "value" and expected.ndim == 2 and not _same(expected, expected.T) and _same(observed.array, expected.T):
        return "the result is transposed (rows and columns swapped)"
    return None


def _float32(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    if observed.dtype in ("float32", "float16"):
        return f"computed in {observed.dtype}: it keeps only about {7 if observed.dtype == 'float32' else 3} significant digits; use float64"
    values = observed.array[np.isfinite(observed.array)]
    if diff.reason == "value" and values.size and np.array_equal(values.astype(np.float32).astype(np.float64), values) \
            and diff.max_rel is not None and 1e-9 < diff.max_rel < 1e-5 and np.any(values != np.round(values)):
        return "the values look like float32 arithmetic (about 7 significant digits); use float64"
    return None


def _symmetric(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    a = observed.array
    if diff.reason == "value" and expected.ndim == 2 and expected.shape[0] == expected.shape[1] \
            and _same(expected, expected.T) and a.shape == expected.shape and not _same(a, a.T):
        return "your matrix is not symmetric, but the true one is"
    return None


def _error_vector(expected: np.ndarray, observed: Observed, diff: Diff, min_size: int) -> np.ndarray | None:
    """observed − expected, flat, when it is a finite value mismatch worth reading a pattern in."""
    if diff.reason != "value":
        return None
    d = (observed.array - expected).ravel()
    return d if d.size >= min_size and np.all(np.isfinite(d)) else None


def _offset(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    d = _error_vector(expected, observed, diff, 2)
    if d is None:
        return None
    c = float(np.mean(d))
    if abs(c) > 1e-9 and np.allclose(d, c, rtol=1e-6, atol=1e-9):
        return f"every entry is off by the same constant ≈ {c:.4g} (a missing or extra shift)"
    return None


def _index_shift(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    d = _error_vector(expected, observed, diff, 3)
    if d is None:
        return None
    big = np.flatnonzero(np.abs(d) > 1e-6)
    if big.size == 2 and np.isclose(d[big[0]], -d[big[1]], rtol=1e-6):
        i, j = (np.unravel_index(k, expected.shape) for k in big)
        return f"only two entries are wrong, by +{abs(d[big[0]]):.4g} and −{abs(d[big[0]]):.4g} (at {_index(i)} and {_index(j)}): an index put in the wrong place"
    return None


def _nonfinite(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    if diff.reason == "nonfinite":
        return "the result has inf or NaN where the true value is finite: an overflow (exp of a large number) or log(0); subtract the maximum first (the log-sum-exp trick)"
    return None


def _scaled(expected: np.ndarray, observed: Observed, diff: Diff, args: tuple[Any, ...] = ()) -> str | None:
    e, o = expected.ravel(), observed.array.ravel()
    first = next((a for a in args if isinstance(a, np.ndarray)), None)
    if diff.reason == "value" and e.size == o.size == 1 and e[0] != 0 and first is not None and first.size > 1:
        ratio = float(o[0] / e[0])  # a single number is a factor of anything: only 1/n, n the input's length, tells
        if _log_base(ratio):
            return _log_base(ratio)
        if abs(ratio * first.size - 1) < 1e-9:
            return (f"the value is divided by n = {first.size} (a factor of 1/n): a mean over the {first.size} entries where "
                    "the value of one example is a single term; drop the mean")
        return None
    if diff.reason != "value" or e.size < 2 or float(e @ e) == 0.0:
        return None
    c = float(o @ e) / float(e @ e)
    if abs(c - 1) > 1e-6 and abs(c + 1) > 1e-6 and abs(c) > 1e-12 and _same(o, c * e):
        sizes = {e.size} | ({first.size, first.shape[0]} if first is not None and first.ndim else set())
        n = next((s for s in sorted(sizes) if s > 1 and abs(c * s - 1) < 1e-6), None)
        if n is not None:
            return (f"every entry is divided by n = {n} (a factor of 1/n): an average over the entries where the value "
                    "of one example belongs; drop the division")
        return _log_base(c) or f"every entry is off by the same factor ≈ {c:.4g}"
    return None


def _log_base(ratio: float) -> str:
    """A logarithm in base 10 or 2 where the natural one belongs: off by exactly 1/ln 10 or 1/ln 2."""
    for base, name in ((10, "np.log10"), (2, "np.log2")):
        if abs(ratio * math.log(base) - 1) < 1e-7:
            return (f"the value is the true one divided by ln {base} (×{1 / math.log(base):.4f}): a logarithm in base {base} "
                    f"({name}, or math.log(x, {base})) where the natural logarithm belongs; use np.log")
    return ""


def _nan(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    if diff.reason == "nonfinite" and diff.observed_at is not None and np.isnan(diff.observed_at):
        return ("the result is NaN where the true value is finite: an overflow before it (exp of a large number is inf, "
                "and inf/inf or inf − inf is NaN); subtract the maximum before exp")
    return None


def _infinite(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    if diff.reason == "nonfinite" and diff.observed_at is not None and np.isinf(diff.observed_at):
        return ("the result is infinite where the true value is finite: log(0) of a probability that underflowed, or exp "
                "of a large number; work in logs (log-sum-exp) instead")
    return None


def _diagonal(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    """A matrix returned as the vector of its diagonal."""
    got = observed.array
    if diff.reason == "shape" and expected.ndim == 2 and expected.shape[0] == expected.shape[1] and got.ndim == 1 \
            and got.shape[0] == expected.shape[0] and _same(got, np.diag(expected).copy()):
        return (f"only the diagonal of the matrix is there, as a vector of shape {got.shape}: the off-diagonal entries "
                f"are missing; return the whole {expected.shape[0]}×{expected.shape[1]} matrix")
    return None


def _round(value: float) -> bool:
    """1e-07, 2e-08, 5e-10: the numbers people type as an epsilon."""
    if not 0 < value < 0.1:
        return False
    exponent = math.floor(math.log10(value))
    mantissa = value / 10.0**exponent
    return any(abs(mantissa - m) < 0.01 * m for m in (1.0, 2.0, 5.0, 10.0))


def _probabilities(failures: Sequence[tuple[np.ndarray, Observed]]) -> list[tuple[float, float]] | None:
    """exp(−value) of the true and the learner's values, when every failure is one finite number: a −log p."""
    pairs = []
    for expected, observed in failures:
        if expected.size != 1 or observed.array.size != 1:
            return None
        truth, got = float(expected.ravel()[0]), float(observed.array.ravel()[0])
        if not (math.isfinite(truth) and math.isfinite(got)) or got < -1e-6 or truth < -1e-6:
            return None
        pairs.append((math.exp(-truth), math.exp(-got)))
    return pairs


def _log_epsilon(failures: Sequence[tuple[np.ndarray, Observed]]) -> str | None:
    """−log(p + ε): exp(−value) − p is the same small ε on every input."""
    pairs = _probabilities(failures)
    if not pairs:
        return None
    eps = [got - truth for truth, got in pairs]
    first = eps[0]
    if first <= 0 or not all(abs(e - first) <= 1e-3 * first for e in eps) or not (_round(first) or len(eps) >= 3):
        return None
    return (f"an epsilon inside the log, −log(p + ε) with ε ≈ {first:.0e}: it biases every loss by about ε/p_y and caps "
            "it near −log ε; compute the loss from the logits (log-sum-exp) instead of the log of a probability")


def _log_clip(failures: Sequence[tuple[np.ndarray, Observed]]) -> str | None:
    """−log(clip(p, ε, 1 − ε)): a certain class costs −log(1 − ε) ≈ ε instead of 0, a far-behind one −log ε."""
    pairs = _probabilities(failures)
    if not pairs:
        return None
    eps = []
    for truth, got in pairs:
        if got > truth:
            eps.append(got)  # a p below ε was raised to ε
        elif got < truth:
            eps.append(1.0 - got)  # a p above 1 − ε was lowered to it
        else:
            return None
    first = eps[0]
    if not _round(first) or not all(abs(e - first) <= 1e-3 * first for e in eps):
        return None
    return (f"the probability is clipped to [ε, 1 − ε] with ε ≈ {first:.0e} before the log: a certain class costs ε "
            f"instead of 0 and a far-behind one is capped at −log ε ≈ {-math.log(first):.3g}; compute the loss from the "
            "logits (log-sum-exp) instead of clipping")


def _shape(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    if diff.reason != "shape":
        return None
    got, want = observed.array.shape, expected.shape
    if got == () and want != ():
        return f"a single number where an array of shape {want} belongs (a dot product or a sum where an outer product or a vector was meant?)"
    if observed.array.size == expected.size:
        same = np.allclose(observed.array.ravel(), expected.ravel(), rtol=1e-6, atol=1e-9)
        return (f"the result has shape {got}, but shape {want} was expected"
                + (" — the numbers are right, only the shape differs (use .ravel() or .reshape)" if same else
                   " — the same number of entries in a different layout"))
    return f"the result has shape {got}, but shape {want} was expected"


def _index(ix: Sequence[Any]) -> str:
    return "[" + ", ".join(str(int(i)) for i in ix) + "]"


Detector = Callable[[np.ndarray, Observed, Diff], "str | None"]
Many = Callable[[Sequence[tuple[np.ndarray, Observed]]], "str | None"]
# The specific before the generic: the first that fires is the cause said.
BUILTIN: dict[str, Detector] = {
    "diagonal": _diagonal,
    "float32": _float32,
    "nan": _nan,
    "infinite": _infinite,
    "nonfinite": _nonfinite,
    "shape": _shape,
    "sign-flipped": _sign,
    "transposed": _transposed,
    "not-symmetric": _symmetric,
    "scaled": _scaled,
    "offset": _offset,
    "index-shift": _index_shift,
}
MANY: dict[str, Many] = {"log-epsilon": _log_epsilon, "log-clip": _log_clip}  # read across every failing input
NAMES = (*BUILTIN, *MANY, "mutated")


@np.errstate(all="ignore")
def likely_cause(
    causes: Sequence[Cause],
    reference: Any,
    expected: np.ndarray,
    observed: Observed,
    diff: Diff,
    args: tuple[Any, ...],
    failures: Sequence[tuple[np.ndarray, Observed]] = (),
) -> str | None:
    """The most specific cause, said once. In order: the rubric's own predicates (lab knowledge of this very
    mistake), the detectors that read every failing input at once, the rubric's built-in causes in its words, then
    the built-in detectors, specific before generic. inf and NaN are expected here."""
    everything = list(failures) or [(expected, observed)]
    for cause in causes:
        if cause.when in BUILTIN or cause.when in MANY or cause.when == "mutated":
            continue
        predicate = getattr(reference, cause.when)
        try:
            matched = bool(predicate(observed.array, *args))
        except Exception:  # noqa: BLE001 - a detector that cannot judge this value simply does not match
            matched = False
        if matched:
            return cause.say or (predicate.__doc__ or cause.when).strip().splitlines()[0]
    said = {c.when: c.say for c in causes}
    for name, many in MANY.items():
        found = many(everything)
        if found:
            return said.get(name) or found
    for cause in causes:
        detector = BUILTIN.get(cause.when)
        if detector is not None and cause.say and _run(detector, cause.when, expected, observed, diff, args):
            return cause.say
    for name, detector in BUILTIN.items():
        found = _run(detector, name, expected, observed, diff, args)
        if found:
            return said.get(name) or found
    return None


def _run(detector: Detector, name: str, expected: np.ndarray, observed: Observed, diff: Diff, args: tuple[Any, ...]) -> str | None:
    if name == "scaled":
        return _scaled(expected, observed, diff, args)
    return detector(expected, observed, diff)


def say_for(causes: Sequence[Cause], when: str) -> str | None:
    for cause in causes:
        if cause.when == when:
            return cause.say
    return None
