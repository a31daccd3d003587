"""``implementation``: the lab's Python file exists and its functions load."""

from __future__ import annotations

from grader.checks.base import Context, listed, result
from grader.i18n import Message, any_of, as_message, joined, msg, verbatim
from grader.model import Check, CheckResult, Status


def _alnum(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def check_implementation(check: Check, ctx: Context) -> CheckResult:
    rubric = ctx.rubric
    patterns = any_of(rubric.implementation)
    if ctx.implementation is None:
        found = msg("impl.found", files=", ".join(ctx.phase_files[:10])) if ctx.phase_files else msg("impl.folder_empty")
        prefixes = {_alnum(p.split("*")[0]) for p in rubric.implementation}
        near = [f for f in ctx.phase_files if f.lower().endswith(".py") and any(_alnum(f).startswith(x) for x in prefixes)]
        if ctx.implementation_error:
            error = ctx.implementation_error  # a catalogue message, or a plain text said as it is
            what = as_message(error.rstrip(".") if isinstance(error, str) else error)
            return result(check, Status.FAIL, msg("fault.plain", what=what))
        return result(check, Status.FAIL, joined(msg("impl.none", patterns=patterns, folder=rubric.phase_dir, found=found),
                                                 msg("impl.near", file=near[0], patterns=patterns) if near else None))
    assert ctx.run is not None
    load = ctx.run.load
    name = ctx.implementation.name
    if not load.ok and load.machine_fault:
        return result(check, Status.ERROR, msg("fault.plain", what=load.error_said or verbatim(load.error.rstrip("."))))
    if not load.ok:
        return result(check, Status.FAIL, msg("impl.not_loaded", name=name, error=load.error_said or load.error))
    wanted = [f.name for f in rubric.functions]
    missing = [f for f in wanted if f not in load.functions]
    if len(missing) == len(wanted):
        defines = msg("impl.defines", names=listed(load.functions)) if load.functions else msg("impl.defines_none")
        return result(check, Status.FAIL, msg("impl.none_of_the_lab", name=name, wanted=", ".join(wanted), defines=defines))
    first = msg("impl.loaded.ast", name=name, note=load.note_said or load.note) if load.mode in ("ast", "ast-strict") else \
        msg("impl.loaded", name=name)
    parts: list[Message | None] = [first]
    parts += [as_message(ctx.implementation_note) if ctx.implementation_note else None,
              as_message(ctx.phase_note) if ctx.phase_note else None]
    if ctx.other_implementations:
        parts.append(msg("impl.others", files=", ".join(ctx.other_implementations)))
    if load.skipped_said:
        parts.append(msg("impl.skipped", statements=joined(*load.skipped_said[:3], sep="; ")))
    if missing:
        parts.append(msg("impl.missing.found" if load.functions else "impl.missing", names=", ".join(missing),
                         found=listed(load.functions)))
    else:
        parts.append(msg("impl.all_found", n=len(wanted)))
    return result(check, Status.PASS, msg("sentence.end", text=joined(*parts, sep="; ")))
