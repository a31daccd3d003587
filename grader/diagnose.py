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

from grader.i18n import Message, Texts, msg
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


def _sign(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    if diff.reason == "value" and np.any(np.abs(expected) > 1e-12) and _same(observed.array, -expected):
        return msg("cause.sign")
    return None


def _transposed(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    if diff.reason == "value" and expected.ndim == 2 and not _same(expected, expected.T) and _same(observed.array, expected.T):
        return msg("cause.transposed")
    return None


def _float32(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    if observed.dtype in ("float32", "float16"):
        return msg("cause.low_precision", dtype=observed.dtype, digits=7 if observed.dtype == "float32" else 3)
    values = observed.array[np.isfinite(observed.array)]
    if diff.reason == "value" and values.size and np.array_equal(values.astype(np.float32).astype(np.float64), values) \
            and diff.max_rel is not None and 1e-9 < diff.max_rel < 1e-5 and np.any(values != np.round(values)):
        return msg("cause.looks_float32")
    return None


def _symmetric(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    a = observed.array
    if diff.reason == "value" and expected.ndim == 2 and expected.shape[0] == expected.shape[1] \
            and _same(expected, expected.T) and a.shape == expected.shape and not _same(a, a.T):
        return msg("cause.not_symmetric")
    return None


def _error_vector(expected: np.ndarray, observed: Observed, diff: Diff, min_size: int) -> np.ndarray | None:
    """observed − expected, flat, when it is a finite value mismatch worth reading a pattern in."""
    if diff.reason != "value":
        return None
    d = (observed.array - expected).ravel()
    return d if d.size >= min_size and np.all(np.isfinite(d)) else None


def _offset(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    d = _error_vector(expected, observed, diff, 2)
    if d is None:
        return None
    c = float(np.mean(d))
    if abs(c) > 1e-9 and np.allclose(d, c, rtol=1e-6, atol=1e-9):
        return msg("cause.offset", c=f"{c:.4g}")
    return None


def _index_shift(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    d = _error_vector(expected, observed, diff, 3)
    if d is None:
        return None
    big = np.flatnonzero(np.abs(d) > 1e-6)
    if big.size == 2 and np.isclose(d[big[0]], -d[big[1]], rtol=1e-6):
        i, j = (np.unravel_index(k, expected.shape) for k in big)
        return msg("cause.index_shift", d=f"{abs(d[big[0]]):.4g}", i=_index(i), j=_index(j))
    return None


def _nonfinite(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    if diff.reason == "nonfinite":
        return msg("cause.nonfinite")
    return None


def _scaled(expected: np.ndarray, observed: Observed, diff: Diff, args: tuple[Any, ...] = ()) -> Message | None:
    e, o = expected.ravel(), observed.array.ravel()
    first = next((a for a in args if isinstance(a, np.ndarray)), None)
    if diff.reason == "value" and e.size == o.size == 1 and e[0] != 0 and first is not None and first.size > 1:
        ratio = float(o[0] / e[0])  # a single number is a factor of anything: only 1/n, n the input's length, tells
        if _log_base(ratio):
            return _log_base(ratio)
        if abs(ratio * first.size - 1) < 1e-9:
            return msg("cause.mean", n=first.size)
        return None
    if diff.reason != "value" or e.size < 2 or float(e @ e) == 0.0:
        return None
    c = float(o @ e) / float(e @ e)
    if abs(c - 1) > 1e-6 and abs(c + 1) > 1e-6 and abs(c) > 1e-12 and _same(o, c * e):
        sizes = {e.size} | ({first.size, first.shape[0]} if first is not None and first.ndim else set())
        n = next((s for s in sorted(sizes) if s > 1 and abs(c * s - 1) < 1e-6), None)
        if n is not None:
            return msg("cause.divided", n=n)
        return _log_base(c) or msg("cause.factor", c=f"{c:.4g}")
    return None


def _log_base(ratio: float) -> Message | None:
    """A logarithm in base 10 or 2 where the natural one belongs: off by exactly 1/ln 10 or 1/ln 2."""
    for base, name in ((10, "np.log10"), (2, "np.log2")):
        if abs(ratio * math.log(base) - 1) < 1e-7:
            return msg("cause.log_base", base=base, factor=f"{1 / math.log(base):.4f}", name=name)
    return None


def _nan(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    if diff.reason == "nonfinite" and diff.observed_at is not None and np.isnan(diff.observed_at):
        return msg("cause.nan")
    return None


def _infinite(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    if diff.reason == "nonfinite" and diff.observed_at is not None and np.isinf(diff.observed_at):
        return msg("cause.infinite")
    return None


def _diagonal(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    """A matrix returned as the vector of its diagonal."""
    got = observed.array
    if diff.reason == "shape" and expected.ndim == 2 and expected.shape[0] == expected.shape[1] and got.ndim == 1 \
            and got.shape[0] == expected.shape[0] and _same(got, np.diag(expected).copy()):
        return msg("cause.diagonal", shape=str(got.shape), rows=expected.shape[0], cols=expected.shape[1])
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


def _log_epsilon(failures: Sequence[tuple[np.ndarray, Observed]]) -> Message | None:
    """−log(p + ε): exp(−value) − p is the same small ε on every input."""
    pairs = _probabilities(failures)
    if not pairs:
        return None
    eps = [got - truth for truth, got in pairs]
    first = eps[0]
    if first <= 0 or not all(abs(e - first) <= 1e-3 * first for e in eps) or not (_round(first) or len(eps) >= 3):
        return None
    return msg("cause.log_epsilon", eps=f"{first:.0e}")


def _log_clip(failures: Sequence[tuple[np.ndarray, Observed]]) -> Message | None:
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
    return msg("cause.log_clip", eps=f"{first:.0e}", cap=f"{-math.log(first):.3g}")


def _shape(expected: np.ndarray, observed: Observed, diff: Diff) -> Message | None:
    if diff.reason != "shape":
        return None
    got, want = observed.array.shape, expected.shape
    if got == () and want != ():
        return msg("cause.scalar", want=str(want))
    if observed.array.size == expected.size:
        same = np.allclose(observed.array.ravel(), expected.ravel(), rtol=1e-6, atol=1e-9)
        return msg("cause.shape.same" if same else "cause.shape.layout", got=str(got), want=str(want))
    return msg("cause.shape", got=str(got), want=str(want))


def _index(ix: Sequence[Any]) -> str:
    return "[" + ", ".join(str(int(i)) for i in ix) + "]"


Detector = Callable[[np.ndarray, Observed, Diff], "Message | None"]
Many = Callable[[Sequence[tuple[np.ndarray, Observed]]], "Message | None"]
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
) -> Message | Texts | str | None:
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


def _run(detector: Detector, name: str, expected: np.ndarray, observed: Observed, diff: Diff, args: tuple[Any, ...]) -> Message | None:
    if name == "scaled":
        return _scaled(expected, observed, diff, args)
    return detector(expected, observed, diff)


def say_for(causes: Sequence[Cause], when: str) -> Texts | str | None:
    for cause in causes:
        if cause.when == when:
            return cause.say
    return None
