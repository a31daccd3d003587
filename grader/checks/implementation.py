"""``implementation``: the lab's Python file exists and its functions load."""

from __future__ import annotations

from grader.checks.base import Context, listed, result
from grader.model import Check, CheckResult, Status


def _alnum(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def check_implementation(check: Check, ctx: Context) -> CheckResult:
    rubric = ctx.rubric
    patterns = " or ".join(rubric.implementation)
    if ctx.implementation is None:
        found = f" (found: {', '.join(ctx.phase_files[:10])})" if ctx.phase_files else " (the folder is missing or empty)"
        hint = ""
        prefixes = {_alnum(p.split("*")[0]) for p in rubric.implementation}
        near = [f for f in ctx.phase_files if f.lower().endswith(".py") and any(_alnum(f).startswith(x) for x in prefixes)]
        if near:
            hint = f" Is {near[0]} it? Rename it to match {patterns} (names are case-sensitive)."
        if ctx.implementation_error:
            return result(check, Status.FAIL, ctx.implementation_error.rstrip(".") + ".")
        return result(check, Status.FAIL, f"no file matching {patterns} in {rubric.phase_dir}/{found}.{hint}")
    assert ctx.run is not None
    load = ctx.run.load
    name = ctx.implementation.name
    if not load.ok and load.machine_fault:
        return result(check, Status.ERROR, load.error.rstrip(".") + ".")
    if not load.ok:
        return result(check, Status.FAIL, f"{name} could not be loaded: {load.error}.")
    wanted = [f.name for f in rubric.functions]
    missing = [f for f in wanted if f not in load.functions]
    if len(missing) == len(wanted):
        found = f"; it defines {listed(load.functions)}" if load.functions else "; it defines no functions"
        return result(check, Status.FAIL, f"{name} defines none of the lab's functions ({', '.join(wanted)}){found}.")
    parts = [f"{name} loaded"]
    if ctx.implementation_note:
        parts.append(ctx.implementation_note)
    if ctx.phase_note:
        parts.append(ctx.phase_note)
    if ctx.other_implementations:
        parts.append(f"also found {', '.join(ctx.other_implementations)}, not graded (the graded file is the one defining most "
                     "of the lab's functions, then the fuller one; keep one file)")
    if load.mode in ("ast", "ast-strict"):
        parts[0] += f" from its definitions only: {load.note}; its top-level script was skipped and the functions were graded"
    if load.skipped:
        parts.append("top-level statements that failed: " + "; ".join(load.skipped[:3]))
    if missing:
        parts.append("missing: " + ", ".join(missing) + (f" (found: {listed(load.functions)})" if load.functions else ""))
    else:
        parts.append("all " + str(len(wanted)) + " functions found")
    return result(check, Status.PASS, "; ".join(parts) + ".")
