"""Numerical comparison and recognisable causes, in the parent only.

Generic detectors look at the shape of an error (sign, transpose, constant factor, dtype, inf/NaN,
two entries off); a rubric adds lab-specific ones as predicates in its reference module.
"""

from __future__ import annotations

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


def _scaled(expected: np.ndarray, observed: Observed, diff: Diff) -> str | None:
    e, o = expected.ravel(), observed.array.ravel()
    if diff.reason != "value" or e.size < 2 or float(e @ e) == 0.0:
        return None
    c = float(o @ e) / float(e @ e)
    if abs(c - 1) > 1e-6 and abs(c + 1) > 1e-6 and abs(c) > 1e-12 and _same(o, c * e):
        return f"every entry is off by the same factor ≈ {c:.4g}"
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
BUILTIN: dict[str, Detector] = {
    "nonfinite": _nonfinite,
    "shape": _shape,
    "float32": _float32,
    "sign-flipped": _sign,
    "transposed": _transposed,
    "not-symmetric": _symmetric,
    "scaled": _scaled,
    "offset": _offset,
    "index-shift": _index_shift,
}


@np.errstate(all="ignore")
def likely_cause(
    causes: Sequence[Cause],
    reference: Any,
    expected: np.ndarray,
    observed: Observed,
    diff: Diff,
    args: tuple[Any, ...],
) -> str | None:
    """The rubric's own causes first (in order), then the built-in detectors; inf and NaN are expected here."""
    for cause in causes:
        if cause.when == "mutated":
            continue
        detector = BUILTIN.get(cause.when)
        if detector is not None:
            found = detector(expected, observed, diff)
            if found:
                return cause.say or found
            continue
        predicate = getattr(reference, cause.when)
        try:
            matched = bool(predicate(observed.array, *args))
        except Exception:  # noqa: BLE001 - a detector that cannot judge this value simply does not match
            matched = False
        if matched:
            return cause.say or (predicate.__doc__ or cause.when).strip().splitlines()[0]
    listed = {c.when for c in causes}
    for name, detector in BUILTIN.items():
        if name not in listed:
            found = detector(expected, observed, diff)
            if found:
                return found
    return None


def say_for(causes: Sequence[Cause], when: str) -> str | None:
    for cause in causes:
        if cause.when == when:
            return cause.say
    return None
