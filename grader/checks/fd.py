"""Finite-difference functions: judged by what they compute, in the grader's process."""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.checks.base import Context, prefetch
from grader.model import FunctionSpec
from grader.runner import Observed, Outcome


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


NOT_FD = "not a finite difference: the result does not change with the step h at all"
_PROBES = (1e-1, 5e-2, 2e-2, 1e-2, 5e-3, 2e-3, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14)


def step_problem(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], observed: np.ndarray) -> str | None:
    """Why a finite-difference function that gives the right values still is not one we can accept."""
    values = at_steps(ctx, fn_spec, args, (1e-3, 1e-4))
    if isinstance(values, Outcome):
        if values.fault == "raised" and "TypeError" in values.message:
            return (f"it cannot be called with the step h as its positional argument #{(fn_spec.step_arg or 0) + 1}, as the "
                    "lab's signature has it, so it cannot be verified as a finite difference")
        return None
    if values is None or any(v.shape != observed.shape for v in values):
        return None
    if all(np.array_equal(v, observed) for v in values):
        return NOT_FD + " (is it the analytic formula, or is h ignored?)"
    return None


def default_step(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], observed: np.ndarray) -> float | None:
    """The step the learner's default argument uses, found by calling with candidates until one matches."""
    values = at_steps(ctx, fn_spec, args, _PROBES)
    if not isinstance(values, list):
        return None
    for h, value in zip(_PROBES, values):
        if value.shape == observed.shape and np.array_equal(value, observed):
            return h
    return None


def fd_cause(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], expected: np.ndarray, observed: Observed) -> str | None:
    """Tell forward differences, a step too small or too large, low precision and a non-FD apart by calling
    the learner's function at other steps and watching how the error moves."""
    if fn_spec.step_arg is None:
        return None
    if observed.dtype in ("float32", "float16"):
        return (f"computed in {observed.dtype}: with h = 1e-5 the difference f(z+h) − f(z−h) loses most digits in "
                "float32 (use float64, or h ≈ 1e-3 for float32)")
    values = at_steps(ctx, fn_spec, args, (1e-3, 1e-4))
    if not isinstance(values, list) or any(v.shape != expected.shape for v in values):
        return None
    big, small = values
    if np.array_equal(big, small) and np.array_equal(big, observed.array):
        return NOT_FD + " (is it the analytic formula, or is h ignored?)"
    e_big = float(np.max(np.abs(big - expected)))
    e_small = float(np.max(np.abs(small - expected)))
    e_default = float(np.max(np.abs(observed.array - expected)))
    ratio = e_big / e_small if e_small > 0 else np.inf
    recommended = fn_spec.default_step or 1e-5
    if 4 < ratio < 25:
        return (f"forward (one-sided) differences: the error shrinks in proportion to h (h=1e-3: {e_big:.1e}, "
                f"h=1e-4: {e_small:.1e}), i.e. O(h); centred differences (f(z+h) − f(z−h)) / 2h are O(h²)")
    if ratio < 0.5:
        return (f"rounding dominates: the error grows as h shrinks (h=1e-3: {e_big:.1e}, h=1e-4: {e_small:.1e}); "
                "the function being differenced is computed with too few digits (float32 somewhere?)")
    if e_default <= 10 * min(e_small, e_big):
        return None
    h = default_step(ctx, fn_spec, args, observed.array)
    if h is not None and h > 1e-4:
        return (f"step too large: your default h = {h:g} leaves a truncation error of {e_default:.1e} (it shrinks like h²: "
                f"h=1e-3 gives {e_big:.1e}); use h = {recommended:g}")
    if h is not None and h < 1e-6:
        return (f"step too small: your default h = {h:g} loses digits to cancellation in f(z+h) − f(z−h) "
                f"(error {e_default:.1e}, while h=1e-4 gives {e_small:.1e}); use h = {recommended:g} for float64")
    return (f"your default step gives an error of {e_default:.1e}, while h=1e-4 gives {e_small:.1e}: "
            f"use h = {recommended:g}")


def mutated_argument(outcome: Outcome, args: tuple[Any, ...]) -> int | None:
    for position, (sent, after) in enumerate(zip(args, outcome.after)):
        if isinstance(sent, np.ndarray) and after is not None and (after.shape != sent.shape or not np.array_equal(after, sent, equal_nan=True)):
            return position
    return None
