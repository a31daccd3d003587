"""``property``: symmetric, finite, or unmutated, on the learner's own values."""

from __future__ import annotations

import numpy as np

from grader import diagnose
from grader.i18n import as_message, joined, msg, plural
from grader.checks.base import Case, Context, cases, expected_value, fault_result, inputs_phrase, mutated_argument, plain, prefetch, result, short
from grader.model import Check, CheckResult, Evidence, FunctionSpec, Status
from grader.rubric import arity
from grader.runner import Outcome


def check_property(check: Check, ctx: Context) -> CheckResult:
    if ctx.run is None:
        return result(check, Status.SKIP, msg("skip.no_implementation"))
    prop = check.spec["property"]
    atol = float(check.spec.get("atol", 1e-12))
    total = 0
    names = check.spec["functions"]
    unchecked: list[str] = []
    for name in names:
        fn_spec = ctx.rubric.function(name)
        needed = arity(getattr(ctx.rubric.reference, fn_spec.reference))
        fitting = [c for c in cases(check, ctx, fn_spec) if len(c.args) == needed]
        prefetch(ctx, name, (c.args for c in fitting))
        for case in fitting:
            outcome = ctx.run.call(name, case.args)
            if not outcome.ok:
                if len(names) == 1:
                    return fault_result(check, ctx, name, outcome, case)
                unchecked.append(name)  # its fault is charged to its own checks
                break
            total += 1
            failed = _property_failure(check, ctx, prop, atol, fn_spec, case, outcome)
            if failed is not None:
                return failed
    if total == 0:
        return result(check, Status.SKIP, msg("property.skip"))
    checked = [n for n in names if n not in unchecked]
    note = msg("property.unchecked", names=", ".join(unchecked)) if unchecked else ""
    return result(check, Status.PASS, plural(f"property.pass.{prop}", len(checked), names=", ".join(checked),
                                             inputs=inputs_phrase(total), note=note))


def _property_failure(check: Check, ctx: Context, prop: str, atol: float, fn_spec: FunctionSpec, case: Case, outcome: Outcome) -> CheckResult | None:
    assert outcome.value is not None
    value = outcome.value.array
    name = fn_spec.name
    if prop == "unmutated":
        position = mutated_argument(outcome, case.args)
        if position is None:
            return None
        sent, after = case.args[position], outcome.after[position]
        assert after is not None
        say = diagnose.say_for(check.causes, "mutated")
        message = joined(msg("property.mutated", name=name, pos=position + 1, input=case.label_message, before=short(sent),
                             after=short(after)), msg("sentence.likely_cause", cause=say or msg("cause.mutated")))
        evidence = Evidence(input_label=case.label_message, input_value=case.named_args, expected=plain(sent),
                            observed=plain(after), cause=as_message(say))
        return result(check, Status.FAIL, message, evidence)
    if prop == "finite":
        if np.all(np.isfinite(value)):
            return None
        return result(check, Status.FAIL, msg("property.nonfinite", name=name, input=case.label_message, value=short(value)))
    if value.ndim != 2 or value.shape[0] != value.shape[1]:
        expected = expected_value(ctx, fn_spec, case.args)
        diff = diagnose.compare(expected, value, atol, 0.0)
        cause = diagnose.likely_cause(check.causes + fn_spec.causes, ctx.rubric.reference, expected, outcome.value, diff, case.args)
        return result(check, Status.FAIL, joined(msg("property.not_square", name=name, shape=str(value.shape),
                                                     input=case.label_message),
                                                 msg("sentence.likely_cause", cause=cause) if cause else None))
    asym = np.abs(value - value.T)
    if not np.all(np.isfinite(asym)) or float(np.nanmax(asym)) > atol:
        i, j = (int(k) for k in np.unravel_index(int(np.nanargmax(np.where(np.isfinite(asym), asym, np.inf))), asym.shape))
        expected = expected_value(ctx, fn_spec, case.args)
        diff = diagnose.compare(expected, value, atol, 0.0)
        cause = diagnose.likely_cause(check.causes + fn_spec.causes, ctx.rubric.reference, expected, outcome.value, diff, case.args)
        message = joined(msg("property.asymmetric", name=name, input=case.label_message, i=i, j=j,
                             a=short(float(value[i, j]), 6), b=short(float(value[j, i]), 6), d=short(float(asym[i, j]), 3)),
                         msg("sentence.likely_cause", cause=cause) if cause else None)
        evidence = Evidence(input_label=case.label_message, input_value=case.named_args, expected=plain(value.T),
                            observed=plain(value), max_abs_error=float(asym[i, j]), where=(i, j), cause=as_message(cause))
        return result(check, Status.FAIL, message, evidence)
    return None
