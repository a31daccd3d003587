"""Finite-difference functions, judged by what they compute — in the grader's process, from plain numbers.

A function that honours its step h is called at large steps (0.1 and 0.01), where a difference is far from
the derivative, and its values are compared with differences of the reference function at the same steps
(centred, forward, backward, five-point) — no fake can match those without computing the difference — and
then with differences of the learner's own version of the function (a correct difference of a wrong function
is said as such). A function that ignores h is judged by its error at the one step it uses: a real
difference's error has the shape of its scheme's truncation term, so refitting the reference's difference
column by column finds the scheme and the step (a one-sided difference, a step of 1e5 from a typo); values
equal to the derivative to the last bits are not a difference at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader import diagnose
from grader.i18n import Message, joined, msg
from grader.checks.base import Context, check_on, expected_value, prefetch, reference_call
from grader.model import FunctionSpec
from grader.rubric import arity
from grader.runner import Observed, Outcome

SCHEMES = ("centred", "forward", "backward", "five-point")
PROBES = (1e-1, 1e-2)  # large steps, where a difference is visibly not the derivative
_GRID = tuple(10.0 ** (k / 4) for k in range(-36, 25))  # 1e-9 … 1e6, for fitting the step an ignored h hides
_LEARNER_STEPS = (1e-4, 1e-5, 1e-3, 1e-6, 1e-7, 1e-2)
_STEP_PROBES = (1e-1, 5e-2, 2e-2, 1e-2, 5e-3, 2e-3, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12,
                1e-13, 1e-14)
def _words(scheme: str) -> Message:
    """The difference by name and formula: "forward (one-sided) difference (f(z+h) − f(z)) / h"."""
    return msg(f"scheme.words.{scheme}")


def _scheme(scheme: str) -> Message:
    """The scheme as an adjective: a "centred" difference."""
    return msg(f"scheme.{scheme}")

Values = Callable[[np.ndarray], "np.ndarray | None"]


@dataclass(frozen=True)
class Verdict:
    """What a finite-difference function computes, as far as its values tell."""

    takes_step: bool  # it can be called with h at the rubric's position
    honours_step: bool  # its values change with h
    scheme: str = ""  # the difference it computes, when known
    step: float | None = None  # the step it uses: its default (h honoured) or the one it hides (h ignored)
    own: str = ""  # the learner's function it differences, when that function is not the true one
    fake: Message | None = None  # why it is not a finite difference, when it is not
    analytic: bool = False  # its values are the derivative itself, to the last bits
    times_step: int = 0  # its values are the derivative times h (1) or h² (2): the step multiplies instead of divides


def primitive(ctx: Context, fn_spec: FunctionSpec) -> FunctionSpec | None:
    """The lab function a finite-difference function differences (the rubric's ``differences``)."""
    if fn_spec.differences is None:
        return None
    try:
        return ctx.rubric.function(fn_spec.differences)
    except KeyError:
        return None


def at_steps(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], steps: tuple[float, ...]) -> list[np.ndarray] | Outcome | None:
    """The learner's finite difference called with explicit steps h (positionally); the failed Outcome if it
    cannot be called so, None if the rubric names no step argument."""
    if fn_spec.step_arg is None or ctx.run is None or fn_spec.step_arg > len(args):
        return None
    calls: list[tuple[Any, ...]] = []
    for h in steps:
        with_step = list(args)
        with_step.insert(fn_spec.step_arg, h)
        calls.append(tuple(with_step))
    prefetch(ctx, fn_spec.name, calls)
    values = []
    for call in calls:
        outcome = ctx.run.call(fn_spec.name, call)
        if not outcome.ok or outcome.value is None:
            return outcome
        values.append(outcome.value.array)
    return values


def _with(args: tuple[Any, ...], wrt: int, point: np.ndarray) -> tuple[Any, ...]:
    out = list(args)
    out[wrt] = point
    return tuple(out)


def _difference(values: Values, x: np.ndarray, scheme: str, h: float, columns: range | None = None) -> np.ndarray | None:
    """The finite-difference derivative of ``values`` at ``x``: the derivative along x_j is the last axis."""
    base = values(x) if scheme in ("forward", "backward") else None
    if scheme in ("forward", "backward") and base is None:
        return None
    cols = []
    for j in columns if columns is not None else range(x.size):
        e = np.zeros_like(x)
        e.flat[j] = h
        if scheme == "centred":
            up, down = values(x + e), values(x - e)
            col = None if up is None or down is None else (up - down) / (2 * h)
        elif scheme == "forward":
            up = values(x + e)
            col = None if up is None else (up - base) / h  # type: ignore[operator]
        elif scheme == "backward":
            down = values(x - e)
            col = None if down is None else (base - down) / h  # type: ignore[operator]
        else:
            pts = [values(x + 2 * e), values(x + e), values(x - e), values(x - 2 * e)]
            col = None if any(p is None for p in pts) else (-pts[0] + 8 * pts[1] - 8 * pts[2] + pts[3]) / (12 * h)  # type: ignore[operator]
        if col is None:
            return None
        cols.append(np.asarray(col, dtype=np.float64))
    return np.stack(cols, axis=-1)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to rounding: a difference computed in another order differs in its last bits only (at h ≥ 0.01 that
    is ~1e-14 of its size), while a difference of a slightly different function (a loss with ε in its log) does not."""
    if a.shape != b.shape:
        return False
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-300)
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.isfinite(a))) and bool(np.allclose(a, b, rtol=1e-9, atol=1e-11 * scale))


def _layouts(observed: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """The learner's array, and its transpose when that is the layout the derivative has (J[j, i] for J[i, j]); a
    vector where the derivative is a square matrix is an elementwise difference (every entry stepped at once, as for
    σ or tanh): it is that matrix's diagonal, with nothing off it."""
    out = [observed] if observed.shape == shape else []
    if observed.ndim == 2 and observed.T.shape == shape and observed.shape[0] == observed.shape[1]:
        out.append(observed.T)
    if observed.ndim == 1 and shape == (observed.size, observed.size):
        out.append(np.diag(observed))
    return out


def _reference_values(ctx: Context, spec: FunctionSpec, args: tuple[Any, ...], wrt: int) -> Values:
    name = spec.reference

    def values(point: np.ndarray) -> np.ndarray | None:
        try:
            return np.asarray(reference_call(ctx, name, *_with(args, wrt, point)), dtype=np.float64)
        except Exception:  # noqa: BLE001 - a point the reference cannot take simply gives no difference
            return None

    return values


def _learner_values(ctx: Context, spec: FunctionSpec, args: tuple[Any, ...], wrt: int, points: list[np.ndarray]) -> Values:
    """The learner's own function at the given points, fetched in one batch from their worker."""
    assert ctx.run is not None
    calls = [_with(args, wrt, p) for p in points]
    prefetch(ctx, spec.name, calls)
    found: dict[bytes, np.ndarray] = {}
    for point, call in zip(points, calls):
        outcome = ctx.run.call(spec.name, call)
        if outcome.ok and outcome.value is not None:
            found[point.tobytes()] = outcome.value.array

    def values(point: np.ndarray) -> np.ndarray | None:
        return found.get(point.tobytes())

    return values


def _points(x: np.ndarray, steps: tuple[float, ...]) -> list[np.ndarray]:
    """Every point any scheme needs at these steps."""
    out = [x]
    for h in steps:
        for j in range(x.size):
            e = np.zeros_like(x)
            e.flat[j] = h
            out.extend((x + e, x - e, x + 2 * e, x - 2 * e))
    return out


def _scheme_at(values: Values, x: np.ndarray, h: float, observed: np.ndarray) -> str:
    for scheme in SCHEMES:
        want = _difference(values, x, scheme, h)
        if want is not None and any(_same(o, want) for o in _layouts(observed, want.shape)):
            return scheme
    return ""


def _minimise(residual: Callable[[float], float]) -> tuple[float, float]:
    """The step h whose residual is least: a coarse grid over log h, then a golden-section search around its best."""
    logs = [math.log10(h) for h in _GRID]
    scores = [residual(v) for v in logs]
    best = int(np.argmin(scores))
    lo, hi = logs[max(best - 1, 0)], logs[min(best + 1, len(logs) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = residual(a), residual(b)
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = residual(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = residual(b)
    log_h, score = (a, fa) if fa < fb else (b, fb)
    if scores[best] < score:
        log_h, score = logs[best], scores[best]
    return 10.0**log_h, score


def _fit(values: Values, x: np.ndarray, scheme: str, target: np.ndarray, column: int | None = None) -> tuple[float, float]:
    """The step whose difference is closest to ``target``: along x_j alone when ``column`` is j, else in every column."""
    columns = range(column, column + 1) if column is not None else None

    def residual(log_h: float) -> float:
        got = _difference(values, x, scheme, 10.0**log_h, columns)
        if got is None:
            return math.inf
        got = got[..., 0] if column is not None else got
        if got.shape != target.shape:
            return math.inf
        with np.errstate(invalid="ignore", over="ignore"):
            r = float(np.max(np.abs(got - target)))
        return r if math.isfinite(r) else math.inf

    return _minimise(residual)


def _fitted(values: Values, x: np.ndarray, observed: np.ndarray, truth: np.ndarray) -> tuple[str, float] | None:
    """The scheme and step that explain the error of a function that ignores h: the scheme whose difference at one
    step reproduces the values best (then, for a step that varies with the entry, column by column)."""
    for layout in _layouts(observed, truth.shape):
        size = float(np.max(np.abs(layout - truth)))
        floor = 1e-12 * (1 + float(np.max(np.abs(layout))))
        fits = sorted((_fit(values, x, scheme, layout)[::-1], scheme) for scheme in SCHEMES)
        (score, h), scheme = fits[0]
        if score <= 0.02 * size + floor:
            return scheme, h
        for scheme in SCHEMES:
            steps = []
            for j in range(x.size):
                column, wanted = (layout - truth)[..., j], layout[..., j]
                h, score = _fit(values, x, scheme, wanted, j)
                if score > 0.02 * float(np.max(np.abs(column))) + floor:
                    break
                steps.append(h)
            else:
                return scheme, float(np.median(steps))
    return None


_ORDERS = (3, 2, 5, 4)  # the truncation term of centred-type, one-sided, and higher-order differences
_SCHEME_OF_ORDER = {3: "centred", 2: "one-sided", 5: "higher-order", 4: "higher-order"}


def _derivatives(values: Values, x: np.ndarray, delta: float = 0.05) -> dict[int, np.ndarray] | None:
    """The k-th derivative of the function along each x_j (k = 2…5), from a 9-point polynomial through it."""
    u = np.arange(-4.0, 5.0)
    columns: dict[int, list[np.ndarray]] = {k: [] for k in _ORDERS}
    shape: tuple[int, ...] = ()
    for j in range(x.size):
        rows = []
        for t in u * delta:
            e = np.zeros_like(x)
            e.flat[j] = t
            v = values(x + e)
            if v is None or not np.all(np.isfinite(v)):
                return None
            shape = v.shape
            rows.append(v.ravel())
        coefficients = np.polynomial.polynomial.polyfit(u, np.asarray(rows), 8)
        for k in _ORDERS:
            columns[k].append(coefficients[k] * math.factorial(k) / delta**k)
    return {k: np.stack(cols, axis=-1).reshape(shape + (x.size,)) for k, cols in columns.items()}


def _truncation(error: np.ndarray, derivatives: dict[int, np.ndarray], floor: float) -> tuple[int, np.ndarray] | None:
    """The derivative order whose columns the error is proportional to, column by column (a step that varies with
    the entry, h·(1 + |z_j|), scales each column alike), and those factors; None when no order fits."""
    for k in _ORDERS:
        d = derivatives[k]
        if d.shape != error.shape:
            return None
        factors = []
        for j in range(error.shape[-1]):
            e, g = error[..., j].ravel(), d[..., j].ravel()
            size = float(np.max(np.abs(e))) if e.size else 0.0
            if size <= floor:
                factors.append(0.0)
                continue
            norm = float(g @ g)
            if norm == 0.0:
                break
            c = float(e @ g) / norm
            if float(np.max(np.abs(e - c * g))) > 0.05 * size + floor:
                break
            factors.append(c)
        else:
            return k, np.asarray(factors)
    return None


def _step_from(order: int, factors: np.ndarray) -> float | None:
    """The step a truncation factor implies: c = h²/6 centred, ±h/2 one-sided, h⁴/30 five-point."""
    c = float(np.median(np.abs(factors[factors != 0]))) if np.any(factors != 0) else 0.0
    if c == 0.0:
        return None
    return {3: math.sqrt(6 * c), 2: 2 * c, 5: (30 * c) ** 0.25, 4: (30 * c) ** 0.25}[order]


def _analytic(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], observed: np.ndarray, truth: np.ndarray) -> bool:
    """The values are the derivative itself: bit for bit the learner's analytic function, or the true one to the
    last bits (a real difference keeps an error of at least ~1e-13 at any step)."""
    scale = max(float(np.max(np.abs(truth))) if truth.size else 0.0, 1e-300)
    if observed.shape == truth.shape and float(np.max(np.abs(observed - truth))) <= 1e-14 * scale:
        return True
    assert ctx.run is not None
    analytic = next((f for f in ctx.rubric.functions if f.reference == fn_spec.reference and f.step_arg is None), None)
    if analytic is None or analytic.name not in ctx.run.load.functions:
        return False
    needed = arity(getattr(ctx.rubric.reference, analytic.reference))
    outcome = ctx.run.call(analytic.name, args[:needed])
    return outcome.ok and outcome.value is not None and np.array_equal(outcome.value.array, observed)


def default_step(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], observed: np.ndarray) -> float | None:
    """The step the learner's default argument uses, found by calling with candidates until one matches."""
    values = at_steps(ctx, fn_spec, args, _STEP_PROBES)
    if not isinstance(values, list):
        return None
    for h, value in zip(_STEP_PROBES, values):
        if value.shape == observed.shape and np.array_equal(value, observed):
            return h
    return None


def judge(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], observed: np.ndarray, atol: float) -> Verdict | None:
    """What the learner's finite-difference function computes at ``args`` (judged once per input, then kept)."""
    prim = primitive(ctx, fn_spec)
    if prim is None or fn_spec.step_arg is None or ctx.run is None:
        return None
    key = (fn_spec.name, tuple(a.tobytes() if isinstance(a, np.ndarray) else repr(a) for a in args), observed.tobytes())
    if key not in ctx.verdicts:
        ctx.verdicts[key] = _judge(ctx, fn_spec, prim, args, observed, atol)
    return ctx.verdicts[key]


def _judge(ctx: Context, fn_spec: FunctionSpec, prim: FunctionSpec, args: tuple[Any, ...], observed: np.ndarray,
           atol: float) -> Verdict:
    wrt = fn_spec.wrt
    needed = arity(getattr(ctx.rubric.reference, prim.reference))
    base_args = tuple(args[:needed]) if len(args) >= needed else args
    x = np.asarray(base_args[wrt], dtype=np.float64)
    truth = expected_value(ctx, fn_spec, args)
    reference = _reference_values(ctx, prim, base_args, wrt)
    probes = at_steps(ctx, fn_spec, args, PROBES)
    takes = isinstance(probes, list)
    honours = takes and not all(np.array_equal(v, observed) for v in probes)  # type: ignore[union-attr]
    if honours:
        assert isinstance(probes, list)
        step = default_step(ctx, fn_spec, args, observed)
        schemes = [_scheme_at(reference, x, h, v) for h, v in zip(PROBES, probes)]
        if schemes[0] and schemes[0] == schemes[1]:
            return _switched(ctx, fn_spec, args, observed, truth, reference, x, schemes[0], step) or \
                Verdict(True, True, schemes[0], step)
        own = _learner_values(ctx, prim, base_args, wrt, _points(x, PROBES))
        mine = [_scheme_at(own, x, h, v) for h, v in zip(PROBES, probes)]
        if mine[0] and mine[0] == mine[1]:
            return _switched(ctx, fn_spec, args, observed, truth, reference, x, mine[0], step) or \
                Verdict(True, True, mine[0], step, own=prim.name if _wrong(ctx, prim, base_args) else "")
        scale = max(float(np.max(np.abs(truth))) if truth.size else 0.0, 1e-300)
        errors = [v - truth if v.shape == truth.shape else None for v in probes]
        if all(e is not None and float(np.max(np.abs(e))) <= 1e-9 * scale for e in errors) \
                and not _analytic(ctx, fn_spec, args, probes[0], truth):
            return Verdict(True, True, "adaptive", step)  # exact already at h = 0.1: an extrapolated or adaptive difference
        derivatives = _derivatives(reference, x)
        if derivatives is not None and all(e is not None for e in errors):
            fits = [_truncation(e, derivatives, 1e-11 * scale) for e in errors]  # type: ignore[arg-type]
            if fits[0] and fits[1] and fits[0][0] == fits[1][0] and _converges(fits[0][1], fits[1][1]):
                return Verdict(True, True, _SCHEME_OF_ORDER[fits[0][0]], step)
        power = _times_step(probes, truth)
        if power:
            return Verdict(True, True, step=step, times_step=power)
        centred = _difference(reference, x, "centred", PROBES[0])
        theirs = float(np.max(np.abs(probes[0] - truth))) if probes[0].shape == truth.shape else math.nan
        true_gap = float(np.max(np.abs(centred - truth))) if centred is not None else math.nan
        return Verdict(True, True, fake=msg("fd.fake.large_step.uniform" if _uniform(probes[0] - truth) else "fd.fake.large_step",
                                            h=f"{PROBES[0]:g}", gap=f"{true_gap:.1e}", theirs=f"{theirs:.1e}"))
    if observed.shape == truth.shape and _analytic(ctx, fn_spec, args, observed, truth):
        return Verdict(takes, False, fake=msg("fd.fake.analytic"), analytic=True)
    error = float(np.max(np.abs(observed - truth))) if observed.shape == truth.shape else math.inf
    if error <= atol * 1e-3:  # rounding only: accurate, and nothing to read its scheme from
        return Verdict(takes, False)
    fit = _fitted(reference, x, observed, truth)
    if fit is not None:
        return Verdict(takes, False, fit[0], fit[1])
    if _wrong(ctx, prim, base_args):
        own = _learner_values(ctx, prim, base_args, wrt, _points(x, _LEARNER_STEPS))
        for h in _LEARNER_STEPS:
            scheme = _scheme_at(own, x, h, observed)
            if scheme:
                return Verdict(takes, False, scheme, h, own=prim.name)
    derivatives = _derivatives(reference, x)
    fit_shape = _truncation(observed - truth, derivatives, 1e-12) if derivatives is not None and observed.shape == truth.shape else None
    if fit_shape is not None:
        order, factors = fit_shape
        return Verdict(takes, False, _SCHEME_OF_ORDER[order], _step_from(order, factors))
    if error <= atol:
        return Verdict(takes, False)
    for h in (1e-9, 1e-10, 1e-11, 1e-12, 1e-13):  # a step so small that rounding is all there is
        noisy = _difference(reference, x, "centred", h)
        if noisy is not None and noisy.shape == truth.shape:
            gap = float(np.max(np.abs(noisy - truth)))
            if gap / 5 <= error <= gap * 5:
                return Verdict(takes, False, "centred", h)
    return Verdict(takes, False, fake=msg("fd.fake.shape", error=f"{error:.1e}"))


def _step_scaled(x: np.ndarray, expected: np.ndarray, observed: np.ndarray) -> str:
    """Entry (or column) j off by exactly max(1, |z_j|) or |z_j|: a relative step in the numerator only."""
    if observed.shape != expected.shape or expected.ndim not in (1, 2) or expected.shape[-1] != x.size:
        return ""
    with np.errstate(all="ignore"):
        ratio = observed / expected
    mask = np.abs(expected) > 1e-8 * float(np.max(np.abs(expected)))
    for factor, said in ((np.maximum(1.0, np.abs(x)), "max(1, |z_j|)"), (np.abs(x), "|z_j|")):
        wanted = np.broadcast_to(factor, expected.shape)
        if mask.any() and np.allclose(ratio[mask], wanted[mask], rtol=1e-3) and not np.allclose(wanted[mask], 1.0):
            return said
    return ""


def _switched(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], observed: np.ndarray, truth: np.ndarray,
              reference: Values, x: np.ndarray, scheme: str, step: float | None) -> Verdict | None:
    """A real difference at large steps that, at its default step, returns the analytic derivative to the last bit
    (``if h < 1e-4: return the analytic value``): no difference of that scheme is that exact at a small step."""
    if step is None or not _analytic(ctx, fn_spec, args, observed, truth):
        return None
    honest = _difference(reference, x, scheme, step)
    if honest is None or honest.shape != truth.shape:
        return None
    gap = float(np.max(np.abs(honest - truth)))
    scale = max(float(np.max(np.abs(truth))) if truth.size else 0.0, 1e-300)
    if gap <= 1e-14 * scale:
        return None  # at this step even an honest difference is exact
    return Verdict(True, True, scheme, step, fake=msg("fd.fake.switched", scheme=_scheme(scheme), h1=f"{PROBES[0]:g}",
                                                      h2=f"{PROBES[1]:g}", step=f"{step:g}", gap=f"{gap:.0e}"))


def _times_step(probes: list[np.ndarray], truth: np.ndarray) -> int:
    """The values are the derivative times h² (``/ 2*h`` is ``/ 2 * h``) or times h, at every probed step."""
    mask = np.abs(truth) > 1e-6 * float(np.max(np.abs(truth))) if truth.size else np.zeros(0, dtype=bool)
    if not mask.any() or any(v.shape != truth.shape for v in probes):
        return 0
    for power in (2, 1):
        if all(np.allclose(v[mask] / truth[mask], h**power, rtol=0.05, atol=0.0) for h, v in zip(PROBES, probes)):
            return power
    return 0


def _converges(big: np.ndarray, small: np.ndarray) -> bool:
    """The truncation factors shrink from h = 0.1 to h = 0.01, as a difference's do (by 10× or more)."""
    pairs = [(abs(b), abs(s)) for b, s in zip(big, small) if b != 0 or s != 0]
    return bool(pairs) and float(np.median([b / max(s, 1e-300) for b, s in pairs])) >= 5.0


def _uniform(values: np.ndarray) -> bool:
    flat = values.ravel()
    return flat.size > 1 and bool(np.allclose(flat, flat[0], rtol=1e-6, atol=0.0))


def _wrong(ctx: Context, prim: FunctionSpec, args: tuple[Any, ...]) -> bool:
    """The learner's own version of the differenced function is off at these arguments."""
    assert ctx.run is not None
    outcome = ctx.run.call(prim.name, args)
    if not outcome.ok or outcome.value is None:
        return False
    truth = expected_value(ctx, prim, args)
    return not _same(outcome.value.array, truth)


def own_cause(ctx: Context, prim: FunctionSpec, args: tuple[Any, ...]) -> Any:
    """What is wrong with the learner's own version of the function, in the rubric's words when it has them."""
    assert ctx.run is not None
    needed = arity(getattr(ctx.rubric.reference, prim.reference))
    call = tuple(args[:needed])
    outcome = ctx.run.call(prim.name, call)
    if not outcome.ok or outcome.value is None:
        return ""
    truth = expected_value(ctx, prim, call)
    diff = diagnose.compare(truth, outcome.value.array, 1e-12, 1e-9)
    return diagnose.likely_cause(prim.causes, ctx.rubric.reference, truth, outcome.value, diff, call) or ""


def cause(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], expected: np.ndarray, observed: Observed,
          atol: float) -> Message | None:
    """Why a finite difference is off: the most specific thing its values tell."""
    if fn_spec.step_arg is None:
        return None
    if observed.dtype in ("float32", "float16"):
        digits = 7 if observed.dtype == "float32" else 3
        return msg("fd.low_precision", dtype=observed.dtype, digits=digits, atol=f"{atol:g}")
    verdict = judge(ctx, fn_spec, args, observed.array, atol)
    if verdict is None:
        return None
    recommended = fn_spec.default_step or 1e-5
    if verdict.own:
        prim = primitive(ctx, fn_spec)
        assert prim is not None
        said = own_cause(ctx, prim, args)
        where = check_on(ctx, prim, tuple(args[: arity(getattr(ctx.rubric.reference, prim.reference))]))
        detail = joined(msg("dep.said", said=said) if said else None, msg("dep.see", where=where) if where else None, sep="")
        return msg("fd.of_wrong", name=fn_spec.name, scheme=_scheme(verdict.scheme), own=verdict.own, detail=detail)
    if verdict.times_step:
        return msg(f"fd.times_step.{verdict.times_step}", factor=f"{PROBES[0] ** verdict.times_step:g}", h=f"{PROBES[0]:g}")
    if verdict.fake:
        return msg("fd.not_a_difference", why=verdict.fake)
    ignored = _ignored(fn_spec, verdict)
    if verdict.scheme in ("forward", "backward", "one-sided"):
        return msg("fd.one_sided", words=_words(verdict.scheme),
                   ignored=msg("fd.also_ignores", name=fn_spec.name, ignored=ignored) if ignored else "")
    h = verdict.step
    if h is None:
        return msg("fd.name_ignores", name=fn_spec.name, ignored=ignored) if ignored else None
    error = float(np.max(np.abs(observed.array - expected))) if observed.array.shape == expected.shape else math.nan
    if h > 10 * recommended or h < recommended / 10:
        size = msg("fd.too_large" if h > recommended else "fd.too_small")
        why = msg("fd.why.truncation" if h > recommended else "fd.why.cancellation", error=f"{error:.1e}")
        if verdict.honours_step:
            return msg("fd.step_size", size=size, h=f"{h:g}", why=why, recommended=f"{recommended:g}")
        return msg("fd.hidden_step_size", name=fn_spec.name, ignored=ignored, size=size, why=why,
                   recommended=f"{recommended:g}")
    if verdict.honours_step and verdict.scheme == "adaptive":
        return msg("fd.adaptive", h=f"{h:g}", error=f"{error:.1e}")
    if verdict.honours_step:
        scaled = _step_scaled(np.asarray(args[fn_spec.wrt], dtype=np.float64), expected, observed.array)
        if scaled:
            return msg("fd.relative_step.column" if expected.ndim == 2 else "fd.relative_step.entry", scaled=scaled)
        scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1e-300)
        if error > 1e-6 * scale:
            return msg("fd.steps_differ", scheme=_scheme(verdict.scheme), h=f"{h:g}", error=f"{error:.1e}")
        return msg("fd.few_digits", scheme=_scheme(verdict.scheme), h=f"{h:g}", error=f"{error:.1e}")
    return msg("fd.name_ignores", name=fn_spec.name, ignored=ignored) if ignored else None


def _ignored(fn_spec: FunctionSpec, verdict: Verdict) -> Message | None:
    """What a function that does not use the h it is given does instead (after its name)."""
    if verdict.honours_step:
        return None
    uses: Message | str = msg("fd.uses", scheme=_scheme(verdict.scheme), h=nice_step(verdict.step)) \
        if verdict.scheme and verdict.step else ""
    if not verdict.takes_step:
        return msg("fd.ignores.no_arg", position=(fn_spec.step_arg or 0) + 1, uses=uses)
    return msg("fd.ignores", uses=uses)


def nice_step(h: float) -> str:
    """A step estimated from the error, said as the learner wrote it: 9.95e-05 is the 1e-4 of a book's helper."""
    if not math.isfinite(h) or h == 0:
        return f"{h:g}"
    exponent = math.floor(math.log10(abs(h)))
    for mantissa in (1, 2, 5, 10):
        if abs(abs(h) / (mantissa * 10.0**exponent) - 1) <= 0.05:
            value = math.copysign(mantissa * 10.0**exponent, h)
            return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e+").replace("e+", "e") if abs(value) < 1e-2 \
                else f"{value:g}"
    return f"{h:.2g}"


def note(fn_spec: FunctionSpec, verdict: Verdict | None) -> Message | None:
    """Said once on a passing check: an accurate difference that ignores its step, or a one-sided one (accurate
    here only because its step is small: its error shrinks like h, a centred difference's like h²)."""
    if verdict is None or verdict.fake:
        return None
    if verdict.scheme in ("forward", "backward", "one-sided"):
        step: Message | str = msg("fd.with_step", h=nice_step(verdict.step)) if verdict.step else ""
        return msg("fd.note.one_sided", name=fn_spec.name, words=_words(verdict.scheme), step=step)
    if verdict.honours_step:
        return None
    return msg("fd.name_ignores", name=fn_spec.name, ignored=_ignored(fn_spec, verdict))


