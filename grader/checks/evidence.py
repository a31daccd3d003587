"""The evidence of a failing comparison, and its likely cause."""

from __future__ import annotations

from collections.abc import Sequence

from typing import Any

import numpy as np

from grader import diagnose
from grader.i18n import Message, as_message, joined, msg
from grader.checks.base import Case, Context, cases, check_on, expected_value, fault_result, mutated_argument, plain, prefetch, short
from grader.checks import fd
from grader.model import Check, CheckResult, Evidence, FunctionSpec
from grader.rubric import arity
from grader.runner import Observed, Outcome


def first_failure(
    check: Check, ctx: Context, fn_spec: FunctionSpec, atol: float, rtol: float
) -> tuple[CheckResult | None, list[tuple[Case, np.ndarray, Observed, diagnose.Diff, Outcome]], int]:
    assert ctx.run is not None
    failures = []
    total = 0
    all_cases = cases(check, ctx, fn_spec)
    prefetch(ctx, fn_spec.name, (c.args for c in all_cases))
    for case in all_cases:
        total += 1
        outcome = ctx.run.call(fn_spec.name, case.args)
        if not outcome.ok:
            return fault_result(check, ctx, fn_spec.name, outcome, case), [], total
        assert outcome.value is not None
        expected = expected_value(ctx, fn_spec, case.args)
        diff = diagnose.compare(expected, outcome.value.array, atol, rtol)
        if not diff.ok:
            failures.append((case, expected, outcome.value, diff, outcome))
    return None, failures, total


def value_evidence(case: Case, expected: np.ndarray, observed: Observed, diff: diagnose.Diff,
                   cause: Message | str | None) -> Evidence:
    return Evidence(
        input_label=case.label_message,
        input_value=case.named_args,
        expected=plain(expected),
        observed=plain(observed.array),
        max_abs_error=diff.max_abs,
        max_rel_error=diff.max_rel,
        where=diff.where,
        cause=as_message(cause),
    )


def describe_diff(diff: diagnose.Diff, expected: np.ndarray, observed: Observed) -> Message:
    if diff.reason == "shape":
        return msg("diff.shape", got=str(observed.array.shape), want=str(expected.shape))
    at: Message | str = msg("diff.at", where=str(list(diff.where))) if diff.where else ""
    got = diff.observed_at
    if got is not None and not np.isfinite(got):
        return msg("diff.nonfinite", got=short(got), want=short(diff.expected_at, 10), at=at)
    return msg("diff.max_abs", err=short(diff.max_abs, 3), at=at, want=short(diff.expected_at, 10), got=short(got, 10))


def cause_for(check: Check, ctx: Context, fn_spec: FunctionSpec, case: Case, expected: np.ndarray, observed: Observed,
              diff: diagnose.Diff, outcome: Outcome, atol: float = 1e-7,
              failures: tuple[tuple[np.ndarray, Observed], ...] = ()) -> Message | str | None:
    """The most specific cause, said once: a finite difference's own verdict, then a lab function it builds on
    being wrong, then the rubric's causes and the built-in detectors (which may read every failing input)."""
    cause = fd.cause(ctx, fn_spec, case.args, expected, observed, atol) if diff.reason != "shape" else None
    cause = cause or dependency_cause(ctx, fn_spec, case.args, observed)
    cause = cause or (characteristic(ctx, check, fn_spec, case) if diff.reason == "nonfinite" else None)
    cause = cause or diagnose.likely_cause(check.causes + fn_spec.causes, ctx.rubric.reference, expected, observed, diff,
                                           case.args, failures)
    if mutated_argument(outcome, case.args) is not None:
        extra = msg("cause.also_mutates")
        return joined(as_message(cause), extra, sep="; ") if cause else extra
    return cause


def dependency_cause(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], observed: Observed | None = None) -> Message | None:
    """A lab function this one builds on (the rubric's ``uses``) is itself wrong on these arguments: that is the
    cause to fix first, with that function's own likely cause. With a builder in the reference, the grader first
    checks that the learner's value really is this function computed from their wrong one (a learner kit, which
    cannot ship that answer, says the dependency is wrong too, without that proof)."""
    if ctx.run is None:
        return None
    for name, builder in fn_spec.uses:
        spec = ctx.rubric.function(name)
        needed = arity(getattr(ctx.rubric.reference, spec.reference))
        call = tuple(args[:needed])
        outcome = ctx.run.call(name, call)
        if not outcome.ok or outcome.value is None:
            continue
        truth = expected_value(ctx, spec, call)
        diff = diagnose.compare(truth, outcome.value.array, 1e-9, 1e-7)
        if diff.ok:
            continue
        said = diagnose.likely_cause(spec.causes, ctx.rubric.reference, truth, outcome.value, diff, call)
        where = check_on(ctx, spec, call)
        detail = joined(msg("dep.said", said=said) if said else None, msg("dep.see", where=where) if where else None, sep="")
        if builder and callable(getattr(ctx.rubric.reference, builder, None)):  # a learner kit does not ship it
            if observed is None or not _rebuilt(ctx, builder, outcome.value.array, args[needed:], observed.array):
                continue
            return msg("dep.built_on", fn=fn_spec.name, name=name, detail=detail)
        return msg("dep.also_wrong", fn=fn_spec.name, name=name, detail=detail)
    return None


def _rebuilt(ctx: Context, builder: str, value: np.ndarray, rest: tuple[Any, ...], observed: np.ndarray) -> bool:
    try:
        again = np.asarray(getattr(ctx.rubric.reference, builder)(value.copy(), *rest), dtype=np.float64)
    except Exception:  # noqa: BLE001 - a value the builder cannot take is not this function of it
        return False
    with np.errstate(invalid="ignore"):
        return again.shape == observed.shape and bool(np.allclose(again, observed, rtol=1e-7, atol=1e-9, equal_nan=True))


def characteristic(ctx: Context, check: Check, fn_spec: FunctionSpec, case: Case) -> Message | None:
    """Where a value is only NaN or inf, which many mistakes give alike, the mistake the rubric recognises in the
    same function on its first input (where the numbers are finite) is the likely one here too."""
    if ctx.run is None:
        return None
    for other in ctx.rubric.checks:
        if other.kind != "compare" or other.spec.get("function") != fn_spec.name:
            continue
        first = cases(other, ctx, fn_spec)[0]
        if first.args is case.args:
            return None
        outcome = ctx.run.call(fn_spec.name, first.args)
        if not outcome.ok or outcome.value is None:
            return None
        truth = expected_value(ctx, fn_spec, first.args)
        diff = diagnose.compare(truth, outcome.value.array, 1e-12, 1e-9)
        if diff.ok or diff.reason == "nonfinite":
            return None
        predicates = tuple(c for c in check.causes + fn_spec.causes if c.when not in diagnose.NAMES)
        found = diagnose.likely_cause(predicates, ctx.rubric.reference, truth, outcome.value, diff, first.args) if predicates else None
        if found and predicates and _predicate_fired(ctx, predicates, outcome.value, first.args):
            return msg("cause.as_on", cause=found, input=first.label_message)
        return None
    return None


def _predicate_fired(ctx: Context, causes: tuple[Any, ...], value: Observed, args: tuple[Any, ...]) -> bool:
    for cause in causes:
        try:
            if bool(getattr(ctx.rubric.reference, cause.when)(value.array, *args)):
                return True
        except Exception:  # noqa: BLE001
            continue
    return False


def only_when(all_cases: Sequence[Case], failed: Sequence[Case]) -> Message | str:
    """What every failing input has in common that some passing one has not: an integer argument at the last
    index (or the first) of the array it indexes — "only when y is the last class" tells where to look."""
    if not failed or len(failed) == len(all_cases):
        return ""
    for k, name in enumerate(failed[0].arg_names):
        def at(case: Case, end: str) -> bool | None:
            if k >= len(case.args) or isinstance(case.args[k], (bool, np.bool_)) or not isinstance(case.args[k], (int, np.integer)):
                return None
            size = next((len(a) for a in case.args if isinstance(a, (list, np.ndarray)) and np.ndim(a) == 1), None)
            if size is None:
                return None
            return int(case.args[k]) == (size - 1 if end == "last" else 0)
        for end in ("last", "first"):
            marks = [at(c, end) for c in failed]
            if all(m is True for m in marks):
                others = [at(c, end) for c in all_cases if all(c is not f for f in failed)]
                if any(m is False for m in others):
                    return msg(f"pattern.only_{end}", name=name)
    return ""
