"""``agree``: two learner functions give the same values (analytic against finite differences)."""

from __future__ import annotations

from grader import diagnose
from grader.checks.base import Context, cases, expected_value, fault_result, inputs_phrase, prefetch, result, short
from grader.checks.evidence import cause_for, value_evidence
from grader.checks import fd
from grader.model import Check, CheckResult, Status
from grader.runner import Observed


def check_agree(check: Check, ctx: Context) -> CheckResult:
    if ctx.run is None:
        return result(check, Status.SKIP, "skipped: no implementation")
    first, second = (ctx.rubric.function(n) for n in check.spec["functions"])
    atol, rtol = float(check.spec.get("atol", 1e-9)), float(check.spec.get("rtol", 0.0))
    total = 0
    all_cases = cases(check, ctx, first)
    for spec in (first, second):
        prefetch(ctx, spec.name, (c.args for c in all_cases))
    for case in all_cases:
        total += 1
        a = ctx.run.call(first.name, case.args)
        if not a.ok:
            return fault_result(check, ctx, first.name, a, case)
        b = ctx.run.call(second.name, case.args)
        if not b.ok:
            return fault_result(check, ctx, second.name, b, case)
        assert a.value is not None and b.value is not None
        diff = diagnose.compare(a.value.array, b.value.array, atol, rtol)
        if diff.ok:
            continue
        truth = expected_value(ctx, first, case.args)
        blame = []
        cause = None
        worst: tuple[Observed, diagnose.Diff] | None = None
        for spec, outcome in ((first, a), (second, b)):
            assert outcome.value is not None
            own = diagnose.compare(truth, outcome.value.array, atol, rtol)
            if own.ok:
                blame.append(f"{spec.name} is right")
                continue
            blame.append(f"{spec.name} is off by {short(own.max_abs, 3)}" if own.max_abs is not None else f"{spec.name} is wrong")
            cause = cause or cause_for(check, ctx, spec, case, truth, outcome.value, own, outcome, atol)
            worst = worst or (outcome.value, own)
        what = f"shapes {a.value.array.shape} and {b.value.array.shape}" if diff.reason == "shape" else \
            f"max abs difference {short(diff.max_abs, 3)}" + (f" at entry {list(diff.where)}" if diff.where else "")
        message = (f"{first.name} and {second.name} disagree on {case.label}: {what}, tolerance {atol:g}. "
                   f"Against the true value: {'; '.join(blame)}.")
        if cause:
            message += f" Likely cause: {cause}."
        shown, shown_diff = worst or (b.value, diff)
        return result(check, Status.FAIL, message, value_evidence(case, truth, shown, shown_diff, cause))
    case = all_cases[0]
    for spec in (first, second):
        observed = ctx.run.call(spec.name, case.args).value
        verdict = fd.judge(ctx, spec, case.args, observed.array, atol) if observed is not None else None
        if verdict is not None and verdict.fake:
            return result(check, Status.FAIL, f"{first.name} and {second.name} agree, but that proves nothing: {spec.name} "
                          f"is not a finite difference — {verdict.fake}.")
    return result(check, Status.PASS, f"{first.name} and {second.name} agree on {inputs_phrase(total)} (tolerance {atol:g}).")
