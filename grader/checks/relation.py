"""``relation``: a law of the learner's own function, f(transform(x)) == relate(f(x), x)."""

from __future__ import annotations

import numpy as np

from grader import diagnose
from grader.i18n import as_message, joined, msg
from grader.checks.base import Context, cases, fault_result, inputs_phrase, plain, prefetch, reference_call, result, short
from grader.checks.evidence import describe_diff
from grader.model import Check, CheckResult, Evidence, Status


def check_relation(check: Check, ctx: Context) -> CheckResult:
    """A property of the learner's own function: f(transform(x)) == relate(f(x), x), e.g. shift invariance."""
    assert ctx.run is not None
    fn_spec = ctx.rubric.function(check.spec["function"])
    reference = ctx.rubric.reference
    atol, rtol = float(check.spec.get("atol", 1e-9)), float(check.spec.get("rtol", 0.0))
    name = fn_spec.name
    total = 0
    all_cases = cases(check, ctx, fn_spec)
    moved_cases = [tuple(reference_call(ctx, check.spec["transform"], *c.args)) for c in all_cases]
    prefetch(ctx, name, [c.args for c in all_cases] + moved_cases)
    for case, moved_args in zip(all_cases, moved_cases):
        total += 1
        base = ctx.run.call(name, case.args)
        if not base.ok:
            return fault_result(check, ctx, name, base, case)
        moved = ctx.run.call(name, moved_args)
        if not moved.ok:
            return fault_result(check, ctx, name, moved, case)
        assert base.value is not None and moved.value is not None
        try:  # it is given the learner's value: a value it cannot take is the learner's, not the rubric's
            wanted = np.asarray(getattr(reference, check.spec["relate"])(base.value.array.copy(), *case.args), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001
            return result(check, Status.FAIL, msg("relation.cannot", name=name, input=case.label_message,
                                                  shape=str(base.value.array.shape), law=check.title, error=type(exc).__name__))
        diff = diagnose.compare(wanted, moved.value.array, atol, rtol)
        if diff.ok:
            continue
        cause = diagnose.likely_cause(check.causes + fn_spec.causes, reference, wanted, moved.value, diff, moved_args)
        moved_label = ", ".join(short(a) for a in moved_args)
        message = joined(msg("relation.broken", name=name, law=check.title, input=case.label_message, moved=moved_label,
                             diff=describe_diff(diff, wanted, moved.value), atol=f"{atol:g}"),
                         msg("sentence.likely_cause", cause=cause) if cause else None)
        evidence = Evidence(input_label=case.label_message, input_value=dict(zip(case.arg_names, (plain(a) for a in moved_args))), expected=plain(wanted),
                            observed=plain(moved.value.array), max_abs_error=diff.max_abs, max_rel_error=diff.max_rel,
                            where=diff.where, cause=as_message(cause))
        return result(check, Status.FAIL, message, evidence)
    return result(check, Status.PASS, msg("relation.pass", name=name, inputs=inputs_phrase(total), atol=f"{atol:g}"))
