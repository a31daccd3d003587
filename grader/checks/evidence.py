"""The evidence of a failing comparison, and its likely cause."""

from __future__ import annotations

import numpy as np

from grader import diagnose
from grader.checks.base import Case, Context, cases, expected_value, fault_result, mutated_argument, plain, prefetch, short
from grader.checks.fd import fd_cause
from grader.model import Check, CheckResult, Evidence, FunctionSpec
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


def value_evidence(case: Case, expected: np.ndarray, observed: Observed, diff: diagnose.Diff, cause: str | None) -> Evidence:
    return Evidence(
        input_label=case.label,
        input_value=case.named_args,
        expected=plain(expected),
        observed=plain(observed.array),
        max_abs_error=diff.max_abs,
        max_rel_error=diff.max_rel,
        where=diff.where,
        cause=cause,
    )


def describe_diff(diff: diagnose.Diff, expected: np.ndarray, observed: Observed) -> str:
    if diff.reason == "shape":
        return f"shape {observed.array.shape} where {expected.shape} was expected"
    at = f" at entry {list(diff.where)}" if diff.where else ""
    got = diff.observed_at
    if got is not None and not np.isfinite(got):
        return f"{short(got)} where {short(diff.expected_at, 10)} was expected{at}"
    return (f"max abs error {short(diff.max_abs, 3)}{at} (expected {short(diff.expected_at, 10)}, got {short(got, 10)})")


def cause_for(check: Check, ctx: Context, fn_spec: FunctionSpec, case: Case, expected: np.ndarray, observed: Observed, diff: diagnose.Diff, outcome: Outcome) -> str | None:
    cause = fd_cause(ctx, fn_spec, case.args, expected, observed) if diff.reason != "shape" else None
    cause = cause or diagnose.likely_cause(check.causes + fn_spec.causes, ctx.rubric.reference, expected, observed, diff, case.args)
    if mutated_argument(outcome, case.args) is not None:
        extra = "it also changes its input in place (see no-input-mutation)"
        cause = f"{cause}; {extra}" if cause else extra
    return cause
