"""``deliverable``: the Markdown deliverable exists and has content."""

from __future__ import annotations

import difflib

from grader.checks.base import Context, result
from grader.model import Check, CheckResult, Status


def check_deliverable(check: Check, ctx: Context) -> CheckResult:
    rubric = ctx.rubric
    if ctx.phase_refused:
        return result(check, Status.FAIL, ctx.phase_refused + ".")
    if ctx.deliverable is None:
        texts = [f for f in ctx.phase_files if f.lower().endswith((".md", ".markdown", ".txt", ".rst"))]
        close = difflib.get_close_matches(rubric.deliverable.lower(), [f.lower() for f in texts], n=1, cutoff=0.6)
        close = [next(f for f in texts if f.lower() == close[0])] if close else []
        hint = f"; found '{close[0]}' — rename it to '{rubric.deliverable}'" if close else (
            f"; Markdown files found: {', '.join(ctx.markdown_files)}" if ctx.markdown_files else "")
        return result(check, Status.FAIL, f"no {rubric.phase_dir}/{rubric.deliverable}{hint} — write the deliverable as a "
                      "Markdown (.md) file in that folder.")
    if ctx.document is None:
        return result(check, Status.FAIL, ctx.document_error)
    shown = ctx.deliverable.name if ctx.deliverable_note else rubric.deliverable
    if not any(s.prose.strip() or s.formula_text.strip() or s.code_blocks or s.images for s in ctx.document.sections):
        return result(check, Status.FAIL, f"{rubric.phase_dir}/{shown} is empty: write the deliverable the lab asks for.")
    note = "".join(f"; {text}" for text in (ctx.deliverable_note, ctx.phase_note, *ctx.document.notes) if text)
    return result(check, Status.PASS, f"{rubric.phase_dir}/{shown} found ({len(ctx.document.sections)} sections){note}.")
