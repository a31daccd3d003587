"""``deliverable``: the Markdown deliverable exists and has content."""

from __future__ import annotations

import difflib

from grader.checks.base import Context, result
from grader.i18n import Message, as_message, joined, msg, plural
from grader.model import Check, CheckResult, Status


def check_deliverable(check: Check, ctx: Context) -> CheckResult:
    rubric = ctx.rubric
    if ctx.phase_refused:
        return result(check, Status.FAIL, msg("fault.plain", what=as_message(ctx.phase_refused)))
    if ctx.deliverable is None:
        texts = [f for f in ctx.phase_files if f.lower().endswith((".md", ".markdown", ".txt", ".rst"))]
        close = difflib.get_close_matches(rubric.deliverable.lower(), [f.lower() for f in texts], n=1, cutoff=0.6)
        close = [next(f for f in texts if f.lower() == close[0])] if close else []
        hint: Message | str = msg("deliv.rename", file=close[0], want=rubric.deliverable) if close else (
            msg("deliv.markdown_found", files=", ".join(ctx.markdown_files)) if ctx.markdown_files else "")
        return result(check, Status.FAIL, msg("deliv.none", folder=rubric.phase_dir, name=rubric.deliverable, hint=hint))
    if ctx.document is None:
        return result(check, Status.FAIL, as_message(ctx.document_error))
    shown = ctx.deliverable.name if ctx.deliverable_note else rubric.deliverable
    if not any(s.prose.strip() or s.formula_text.strip() or s.code_blocks or s.images for s in ctx.document.sections):
        return result(check, Status.FAIL, msg("deliv.empty", folder=rubric.phase_dir, name=shown))
    notes = [as_message(text) for text in (ctx.deliverable_note, ctx.phase_note, *ctx.document.notes) if text]
    found = plural("deliv.found", len(ctx.document.sections), folder=rubric.phase_dir, name=shown)
    return result(check, Status.PASS, msg("sentence.end", text=joined(found, *notes, sep="; ")))
