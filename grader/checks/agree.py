"""``agree``: two learner functions give the same values (analytic against finite differences)."""

from __future__ import annotations

from grader import diagnose
from grader.checks.base import Context, cases, expected_value, fault_result, inputs_phrase, prefetch, result, short
from grader.checks.evidence import cause_for, value_evidence
from grader.checks import fd
from grader.i18n import Message, joined, msg
from grader.model import Check, CheckResult, Status
from grader.runner import Observed


def check_agree(check: Check, ctx: Context) -> CheckResult:
    if ctx.run is None:
        return result(check, Status.SKIP, msg("skip.no_implementation"))
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
        blame: list[Message] = []
        cause = None
        worst: tuple[Observed, diagnose.Diff] | None = None
        for spec, outcome in ((first, a), (second, b)):
            assert outcome.value is not None
            own = diagnose.compare(truth, outcome.value.array, atol, rtol)
            if own.ok:
                blame.append(msg("agree.right", name=spec.name))
                continue
            blame.append(msg("agree.off", name=spec.name, err=short(own.max_abs, 3)) if own.max_abs is not None
                         else msg("agree.wrong", name=spec.name))
            cause = cause or cause_for(check, ctx, spec, case, truth, outcome.value, own, outcome, atol)
            worst = worst or (outcome.value, own)
        what = msg("agree.shapes", a=str(a.value.array.shape), b=str(b.value.array.shape)) if diff.reason == "shape" else \
            msg("agree.difference", d=short(diff.max_abs, 3),
                at=msg("diff.at", where=str(list(diff.where))) if diff.where else "")
        message = joined(msg("agree.disagree", a=first.name, b=second.name, input=case.label_message, what=what,
                             atol=f"{atol:g}", blame=joined(*blame, sep="; ")),
                         msg("sentence.likely_cause", cause=cause) if cause else None)
        shown, shown_diff = worst or (b.value, diff)
        return result(check, Status.FAIL, message, value_evidence(case, truth, shown, shown_diff, cause))
    case = all_cases[0]
    for spec in (first, second):
        observed = ctx.run.call(spec.name, case.args).value
        verdict = fd.judge(ctx, spec, case.args, observed.array, atol) if observed is not None else None
        if verdict is not None and verdict.fake:
            return result(check, Status.FAIL, msg("agree.fake", a=first.name, b=second.name, fd=spec.name, why=verdict.fake))
    return result(check, Status.PASS, msg("agree.pass", a=first.name, b=second.name, inputs=inputs_phrase(total),
                                          atol=f"{atol:g}"))
