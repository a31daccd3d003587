"""``output_rerun``: the output pasted in the deliverable, against what the learner's own script prints when run.

Never a fail: a learner may fix a bug after pasting. Numbers that agree pass; numbers that do not are put side by
side for a human (``review``); a script that prints nothing leaves a note. The worker runs the learner's own file,
which knows no expected value: nothing hidden is involved.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader import printed
from grader.checks.base import Context, result
from grader.deliverable import CodeBlock
from grader.i18n import Message, joined, msg, plural
from grader.model import Check, CheckResult, Status

SHOWN = 3  # disagreements said in full
MAX_BLOCKS = 20
LINE = 120  # characters of a printed line shown beside them


def pasted_blocks(check: Check, ctx: Context) -> list[CodeBlock]:
    """The output blocks under the rubric's headings, else every output block of the deliverable."""
    assert ctx.document is not None
    here = [b for s in ctx.document.find(check.spec["headings"]) for b in s.code_blocks if b.kind == "output"]
    return here or [b for s in ctx.document.top_sections() for b in s.code_blocks if b.kind == "output"]


@dataclass(frozen=True)
class _Compared:
    """Every pasted block compared with the re-run on its own (a second, stale block is not hidden by the first)."""

    compared: int
    changing: int
    unmatched: int
    pasted_numbers: int
    disagreements: tuple[tuple[printed.Disagreement, int], ...]  # each with its line in the deliverable


def _compare(blocks: list[CodeBlock], rerun: str, unstable: frozenset[tuple[int, int]] = frozenset()) -> _Compared:
    parts = [(block, printed.compare(block.text, rerun, unstable)) for block in blocks]
    return _Compared(sum(c.compared for _, c in parts), sum(c.changing for _, c in parts),
                     sum(c.unmatched for _, c in parts), sum(c.pasted_numbers for _, c in parts),
                     tuple((d, block.line + d.pasted.number) for block, c in parts for d in c.disagreements))


def check_output_rerun(check: Check, ctx: Context) -> CheckResult:
    if ctx.document is None:
        return result(check, Status.SKIP, msg("rerun.no_deliverable"))
    blocks = [b for b in pasted_blocks(check, ctx) if printed.lines_of(b.text)][:MAX_BLOCKS]
    if not blocks:
        return result(check, Status.SKIP, msg("rerun.no_pasted"))
    script = ctx.run.run_script() if ctx.run is not None else None
    if script is None:
        return result(check, Status.SKIP, msg("rerun.no_script"))
    stopped: Message | str = msg("rerun.stopped", why=script.fault) if script.fault is not None else ""
    if not printed.lines_of(script.printed):
        if script.fault is not None:
            return result(check, Status.REVIEW, msg("rerun.stopped_silent", why=script.fault))
        return result(check, Status.SKIP, msg("rerun.prints_nothing"))
    comparison = _compare(blocks, script.printed)
    if comparison.disagreements:  # a random input with no seed prints new numbers each run: those are not compared
        again = ctx.run.run_script() if ctx.run is not None else None
        if again is not None and again.fault == script.fault:
            unstable = printed.unstable_numbers(script.printed, again.printed)
            if unstable:
                comparison = _compare(blocks, script.printed, unstable)
    if comparison.compared == 0 and comparison.changing:
        return result(check, Status.SKIP, plural("rerun.changing", comparison.changing))
    if comparison.compared == 0 and script.cut:
        return result(check, Status.SKIP, msg("rerun.cut", kib=len(script.printed.encode()) // 1024))
    if comparison.compared == 0:
        return result(check, Status.REVIEW, joined(msg("rerun.nothing_in_common", n=comparison.pasted_numbers), stopped, sep=" "))
    if not comparison.disagreements and comparison.unmatched and script.fault is not None:
        return result(check, Status.REVIEW, plural("rerun.stopped_before", comparison.unmatched, why=script.fault))
    if not comparison.disagreements:
        said = plural("rerun.matches", comparison.compared)
        if comparison.changing:
            said = joined(said, plural("rerun.some_changing", comparison.changing), sep="; ")
        if comparison.unmatched:
            said = joined(said, plural("rerun.some_unmatched", comparison.unmatched), sep="; ")
        return result(check, Status.PASS, joined(said, stopped, sep="; ") if stopped else said)
    shown = [msg("rerun.side_by_side", pasted=d.pasted_number.text, pasted_line=d.pasted.text[:LINE],
                 line=line, rerun=d.rerun_number.text, rerun_line=d.rerun.text[:LINE])
             for d, line in comparison.disagreements[:SHOWN]]
    wrong = len(comparison.disagreements)
    lead = (msg("rerun.differs_the_one") if comparison.compared == 1 else msg("rerun.differs_all", n=wrong)) \
        if wrong == comparison.compared else plural("rerun.differs", wrong, of=comparison.compared)
    said = msg("sentence.end", text=joined(lead, joined(*shown, sep="; "), sep=" "))
    return result(check, Status.REVIEW, joined(said, msg("rerun.differs_why"), stopped, sep=" "))
