"""``compare``: a learner function against the reference on input sets."""

from __future__ import annotations

import numpy as np

from grader.checks.base import Context, cases, expected_value, inputs_phrase, result
from grader.i18n import Message, joined, msg
from grader.checks.evidence import cause_for, describe_diff, first_failure, only_when, value_evidence
from grader.checks import fd
from grader.model import Check, CheckResult, Status


def check_compare(check: Check, ctx: Context) -> CheckResult:
    if ctx.run is None:
        return result(check, Status.SKIP, msg("skip.no_implementation"))
    fn_spec = ctx.rubric.function(check.spec["function"])
    atol, rtol = float(check.spec.get("atol", 1e-9)), float(check.spec.get("rtol", 0.0))
    fault, failures, total = first_failure(check, ctx, fn_spec, atol, rtol)
    if fault is not None:
        return fault
    name = fn_spec.name
    if failures:
        case, expected, observed, diff, outcome = failures[0]
        cause = cause_for(check, ctx, fn_spec, case, expected, observed, diff, outcome, atol,
                          tuple((f[1], f[2]) for f in failures))
        pattern = only_when(cases(check, ctx, fn_spec), [f[0] for f in failures])
        count: Message | str = "" if total <= 1 else msg("compare.count.pattern" if pattern else "compare.count",
                                                          n=len(failures), total=total, pattern=pattern)
        message = joined(msg("compare.off", name=name, input=case.label_message, diff=describe_diff(diff, expected, observed),
                             atol=f"{atol:g}", count=count),
                         msg("sentence.likely_cause", cause=cause) if cause else None)
        fraction = (1 - len(failures) / total) if check.spec.get("partial") else 0.0
        return result(check, Status.FAIL, message, value_evidence(case, expected, observed, diff, cause), fraction)
    sums_to = check.spec.get("sums_to")
    if sums_to is not None:
        for case in cases(check, ctx, fn_spec):
            outcome = ctx.run.call(name, case.args)
            assert outcome.value is not None
            total_sum = float(np.sum(outcome.value.array))
            if abs(total_sum - sums_to) > max(atol, 1e-12) * max(1, outcome.value.array.size):
                return result(check, Status.FAIL, msg("compare.sums", name=name, total=repr(total_sum),
                                                      input=case.label_message, want=f"{sums_to:g}"))
    first = cases(check, ctx, fn_spec)[0]
    probe = ctx.run.call(name, first.args).value
    verdict = fd.judge(ctx, fn_spec, first.args, probe.array, atol) if probe is not None else None
    if verdict is not None and verdict.fake:
        return result(check, Status.FAIL, msg("compare.fake", name=name, why=verdict.fake))
    notes: list[Message | str | None] = [fd.note(fn_spec, verdict)]
    if probe is not None:
        notes.append(_shape_note(probe.array, expected_value(ctx, fn_spec, first.args)))
    passed = msg("compare.pass.sums" if sums_to is not None else "compare.pass", name=name, inputs=inputs_phrase(total),
                 atol=f"{atol:g}", sums=f"{sums_to:g}" if sums_to is not None else "")
    return result(check, Status.PASS, joined(passed, *(msg("sentence.note", note=n) for n in notes if n)))


def _shape_note(observed: np.ndarray, expected: np.ndarray) -> Message | None:
    """A value right in every number but held in another shape (a loss as an array of one entry)."""
    if observed.shape == expected.shape:
        return None
    if expected.shape == ():
        return msg("note.scalar_array", shape=str(observed.shape))
    return msg("note.shape", shape=str(observed.shape), want=str(expected.shape))
