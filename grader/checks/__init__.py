"""The check kinds, one module each. Each takes a Check (its spec validated by the rubric loader) and the
learner's context, and returns a CheckResult: a learner's failure is data, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable

from grader.i18n import msg
from grader.checks.agree import check_agree
from grader.checks.base import Context, result
from grader.checks.compare import check_compare
from grader.checks.deliverable import check_deliverable
from grader.checks.implementation import check_implementation
from grader.checks.property import check_property
from grader.checks.relation import check_relation
from grader.checks.rerun import check_output_rerun
from grader.checks.section import check_section
from grader.errors import GraderError
from grader.model import Check, CheckResult, Status

__all__ = ["CODE_KINDS", "KIND_FUNCTIONS", "Context", "run_check"]

CODE_KINDS = ("implementation", "compare", "agree", "property", "relation")

KIND_FUNCTIONS: dict[str, Callable[[Check, Context], CheckResult]] = {
    "implementation": check_implementation,
    "compare": check_compare,
    "agree": check_agree,
    "property": check_property,
    "relation": check_relation,
    "deliverable": check_deliverable,
    "section": check_section,
    "output_rerun": check_output_rerun,
}


def run_check(check: Check, ctx: Context) -> CheckResult:
    """Apply prerequisites, then the kind's function."""
    for required in check.spec.get("requires", ()):
        prior = ctx.results.get(required)
        if prior is not None and not prior.status.earns_points:
            return result(check, Status.SKIP, msg("skip.requires", required=required))
    if check.kind in CODE_KINDS and check.kind != "implementation" and (ctx.run is None or not ctx.run.load.ok):
        return result(check, Status.SKIP, msg("skip.no_file" if ctx.implementation is None else "skip.not_loaded"))
    try:
        return KIND_FUNCTIONS[check.kind](check, ctx)
    except GraderError:
        raise
    except Exception as exc:  # noqa: BLE001 - a grader bug this submission triggers costs this check, never the others
        ctx.grader_fault = True
        return result(check, Status.ERROR, msg("check.grader_failed", error=f"{type(exc).__name__}: {str(exc)[:200]}"))
