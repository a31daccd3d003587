"""``section``: a part of the deliverable, found by what it holds.

Headings are looked for first (by the words that matter, either language, any order); when none matches,
or the content is not under it, the whole document is read before anything fails — a correct derivation
under an unexpected heading passes, with a note that a clearer heading helps the reader. A check never
fails only because of a heading's wording.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grader.checks.base import Context, result
from grader.rubric import rubric_text
from grader.deliverable import CodeBlock, Image, Section
from grader.maths.match import Analysis, Match, analyse
from grader.i18n import Message, Texts, as_message, joined, msg, plural
from grader.model import Check, CheckResult, Status
from grader.phases import phase
from grader.notation import heading_matches, sentences

_TAG = re.compile(r"<[^<>]{0,300}>")
_PICTURE = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff", ".svg", ".pdf")
_REFLECTIVE = re.compile(  # the words of looking back on one's work, in English and Spanish ("I" alone is not one)
    r"\b(?:felt|feel|feels|feeling|stuck|insight\w*|mechanical\w*|learn\w*|realis\w*|realiz\w*|surpris\w*|struggl\w*|"
    r"difficult|hard|easy|tricky|confus\w*|lesson\w*|takeaway\w*|hindsight|clicked|intuiti\w*|enjoy\w*|"
    r"frustrat\w*|satisf\w*|next\s+time|would\s+(?:do|have|start)|mec[aá]nic\w*|atasc\w*|atasqu[ée]|aprend\w*|"
    r"cost[óo]|dif[ií]cil|f[aá]cil|sorprend\w*|confund\w*|me\s+di\s+cuenta|intuici\w*|lecci[oó]n\w*|valios\w*|"
    r"reflexi\w*|la\s+pr[oó]xima\s+vez|me\s+(?:cost[óo]|pareci[óo]|gust[óo]|sirvi[óo]))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Finding:
    """One requirement of the check: its outcome and what to say about it."""

    status: Status
    text: Message
    note: Message | None = None  # said after the outcome (found elsewhere, a clearer heading helps)
    lines: tuple[int, ...] = ()  # where what it found is: the message names only the sections holding these


def analysis_of(ctx: Context) -> Analysis | None:
    """The document's formulas read once per learner and lab, whichever checks ask."""
    if ctx.document is None or ctx.rubric.notation is None:
        return None
    if ctx.analysis is None:
        with phase("deliverable"):
            ctx.analysis = analyse(ctx.document.pieces, ctx.rubric.notation, ctx.document.prose)
    return ctx.analysis


def _is_picture(ctx: Context, src: str) -> bool:
    """A photo of the paper derivation: a picture file with something in it, not any file at all."""
    if ctx.deliverable is None:
        return False
    path = (ctx.deliverable.parent / src.split("?")[0].split("#")[0]).resolve()
    try:
        return path.suffix.lower() in _PICTURE and path.stat().st_size > 0
    except OSError:
        return False


_CODE_SPAN = re.compile(r"`[^`\n]{0,200}`")


def _heading_hint(ctx: Context, words: Sequence[str]) -> Message | None:
    """A line that reads like the wanted heading but is not one (bold text, a label with a colon)."""
    assert ctx.document is not None
    for piece in ctx.document.pieces:
        if piece.kind != "text":
            continue
        for k, line in enumerate(piece.text.splitlines()[:200]):
            plain = _TAG.sub("", _CODE_SPAN.sub(" ", line)).strip()  # a file name in backticks is not a heading word
            bare = plain.strip("*_:# ").strip()
            looks = plain.startswith(("**", "__")) or plain.endswith(":")  # a bold line, or a label
            if looks and bare and len(bare) <= 60 and len(bare.split()) <= 8 and "=" not in bare and "$" not in bare \
                    and heading_matches(bare, words):
                return msg("section.looks_like", where=ctx.document.place(piece.line + k, start=True),
                           line=line.strip()[:80], bare=bare)
    return None


def _where(ctx: Context, match: Match) -> Message:
    """"line 12 (under 'Part A')": where the learner will find it."""
    assert ctx.document is not None
    place = ctx.document.place(match.line)
    section = ctx.document.section_at(match.line)
    return msg("section.under", place=place, heading=section.heading) if section is not None and section.heading else place


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "…"


def _suggest(spec: dict[str, Any]) -> Texts | str:
    """The heading to suggest: the rubric's ``suggest`` (one per language), else its first heading word."""
    if spec.get("suggest"):
        return Texts.of(spec["suggest"])
    first = str(spec["headings"][0])
    return first[:1].upper() + first[1:]


def _elsewhere(ctx: Context, spec: dict[str, Any], sections: Sequence[Section]) -> Message:
    if sections:
        return msg("section.outside", heading=_suggest(spec))
    return _heading_hint(ctx, spec["headings"]) or msg("section.heading_helps", heading=_suggest(spec))


def _images(sections: Sequence[Section], ctx: Context) -> tuple[list[str], list[str], list[str]]:
    """The pictures (present), broken links and non-pictures linked from these sections."""
    images: list[Image] = list({img.src: img for s in sections for img in s.images}.values())
    broken = [img.src for img in images if not img.exists]
    present = [img.src for img in images if img.exists and _is_picture(ctx, img.src)]
    others = [img.src for img in images if img.exists and img.src not in present]
    return present, broken, others


def _inside(matches: list[Match], sections: Sequence[Section]) -> list[Match]:
    return [m for m in matches if any(s.holds(m.line) for s in sections)]


def _result(check: Check, ctx: Context, sections: Sequence[Section], analysis: Analysis) -> _Finding:
    spec = check.spec
    name = spec["result"]
    notation = ctx.rubric.notation
    matches = analysis.results.get(name, [])
    inside = _inside(matches, sections)
    if inside:  # the last statement of it is the learner's conclusion
        return _Finding(Status.PASS, msg("section.reaches", formula=_shown(inside[-1].text), where=_where(ctx, inside[-1])),
                        _contradicted(ctx, analysis, name, inside[-1]), (inside[-1].line,))
    if matches:
        note = joined(_elsewhere(ctx, spec, sections), _contradicted(ctx, analysis, name, matches[-1]), sep="; ")
        return _Finding(Status.PASS, msg("section.reaches", formula=_shown(matches[-1].text), where=_where(ctx, matches[-1])),
                        note, (matches[-1].line,))
    picture = _picture_review(check, ctx, sections)
    if picture is not None:
        return picture
    steps = notation.results[name].steps
    shown = [k for k in range(len(steps)) if analysis.steps.get((name, k))]
    incomplete: Message | str = "" if analysis.complete else msg("section.incomplete", read=analysis.read, total=analysis.total)
    near = analysis.near.get(name, [])
    for wanted in ("sign", "other", "diagonal"):  # the most telling near miss first; the last one written of its kind
        found = [m for m, kind in near if kind == wanted]
        if not found or wanted == "diagonal" and len(shown) == len(steps) > 1:
            continue  # a diagonal beside the other cases is just the case i = j
        match = found[-1]
        where = msg("section.formula_at", formula=_shown(match.text), where=_where(ctx, match))
        if wanted == "sign":
            return _Finding(Status.FAIL, msg("section.negative", where=where, incomplete=incomplete))
        if wanted == "other":
            return _Finding(Status.FAIL, msg("section.not_it", where=where, result=_describe(ctx, name), incomplete=incomplete))
        return _Finding(Status.FAIL, msg("section.diagonal", where=where, incomplete=incomplete))
    broken, others = _images(sections or ctx.document.top_sections(), ctx)[1:]  # type: ignore[union-attr]
    if broken:
        return _Finding(Status.FAIL, msg("section.broken_image.result", images=", ".join(broken)))
    if others:
        return _Finding(Status.FAIL, msg("section.not_picture.result", files=", ".join(others)))
    said = _said(steps[k].say for k in shown)
    if len(steps) > 1 and len(shown) == len(steps):
        return _Finding(Status.FAIL, msg("section.not_combined", said=said, result=_describe(ctx, name), incomplete=incomplete))
    if shown:
        return _Finding(Status.FAIL, msg("section.stops_before", said=said, result=_describe(ctx, name), incomplete=incomplete))
    code: Message | str = msg("section.code_not_read") if any(
        b.kind == "source" for sec in ctx.document.top_sections() for b in sec.code_blocks) else ""  # type: ignore[union-attr]
    return _Finding(Status.FAIL, msg("section.no_formula", result=_describe(ctx, name), code=code, incomplete=incomplete))


def _contradicted(ctx: Context, analysis: Analysis, name: str, match: Match) -> Message | None:
    """A later statement of the same result that says something else (the right component form, then a wrong
    boxed matrix form): the check still passes — the result is there — but the learner is told where to look."""
    later = [m for m, kind in analysis.near.get(name, []) if kind in ("sign", "other") and m.line > match.line]
    if not later:
        return None
    return msg("section.contradicted", formula=_shown(later[-1].text), where=_where(ctx, later[-1]))


def _describe(ctx: Context, name: str) -> Texts | str:
    described = ctx.rubric.notation.results[name]
    return Texts.of(described.say) if described.say else name


def _said(says: Any) -> Message:
    """The rubric's words for some steps, each in the reader's language."""
    return joined(*(Message("text", {"text": Texts.of(s)}) for s in says), sep="; ")


def _picture_review(check: Check, ctx: Context, sections: Sequence[Section]) -> _Finding | None:
    if check.spec.get("images", "review") != "review":
        return None
    assert ctx.document is not None
    present, broken, _ = _images(sections, ctx)
    if not present and not sections:
        present, broken, _ = _images(ctx.document.top_sections(), ctx)
    if not present:
        return None
    extra: Message | str = msg("section.link_broken", images=", ".join(broken)) if broken else ""
    return _Finding(Status.REVIEW, msg("section.picture", images=", ".join(present), extra=extra))


def _steps(check: Check, ctx: Context, sections: Sequence[Section], analysis: Analysis) -> _Finding:
    spec = check.spec
    name = spec["steps_of"]
    steps = ctx.rubric.notation.results[name].steps
    found = {k: analysis.steps.get((name, k), []) for k in range(len(steps))}
    missing = [k for k, m in found.items() if not m]
    if not missing:
        inside = all(_inside(m, sections) for m in found.values())
        said = _said(s.say for s in steps)
        return _Finding(Status.PASS, msg("section.steps_shown", said=said), None if inside else _elsewhere(ctx, spec, sections),
                        tuple(m[0].line for m in found.values()))
    picture = _picture_review(check, ctx, sections)
    if picture is not None:
        return picture
    broken = _images(sections or ctx.document.top_sections(), ctx)[1]  # type: ignore[union-attr]
    if broken and not any(found.values()):
        return _Finding(Status.FAIL, msg("section.broken_image.steps", images=", ".join(broken)))
    wanted = _said(steps[k].say for k in missing)
    incomplete: Message | str = "" if analysis.complete else msg("section.incomplete.short", read=analysis.read)
    flipped = [(k, analysis.near[f"{name}#{k}"][-1][0]) for k in missing if analysis.near.get(f"{name}#{k}")]
    if flipped:
        k, match = flipped[0]
        return _Finding(Status.FAIL, msg("section.step_sign", step=Texts.of(steps[k].say), formula=_shown(match.text),
                                         where=_where(ctx, match), incomplete=incomplete))
    if analysis.results.get(name):
        if len(missing) == len(steps):
            return _Finding(Status.FAIL, msg("section.result_no_steps", wanted=wanted, incomplete=incomplete))
        return _Finding(Status.FAIL, msg("section.show_also", wanted=wanted, incomplete=incomplete))
    if len(missing) < len(steps):
        return _Finding(Status.FAIL, msg("section.step_missing", wanted=wanted, incomplete=incomplete))
    return _Finding(Status.FAIL, msg("section.no_steps", wanted=wanted, incomplete=incomplete))


def _reflective_runs(ctx: Context, skip: Sequence[Section], page: Sequence[str] = ()) -> tuple[int, Section | None]:
    """The longest run of consecutive paragraphs written as a reflection (in the first person, or about how the
    work felt), outside the sections in ``skip``: how many sentences it has, and where it starts."""
    assert ctx.document is not None
    best, best_at = 0, None
    run: list[str] = []
    run_at: Section | None = None
    title = ctx.document.title()
    for section in ctx.document.sections:
        if section is title or any(s.holds(section.line) for s in skip):
            paragraphs: list[str] = []
        else:
            paragraphs = [p for p in section.own_prose.split("\n\n") if p.strip()]
        if section.heading and run:  # a heading that does not name a reflection ends one
            run, run_at = [], None
        for paragraph in paragraphs or [""]:
            if paragraph and _REFLECTIVE.search(paragraph):
                run_at = run_at or section
                run.append(paragraph)
                count = len(own_sentences("\n\n".join(run), page)[0])
                if count > best:
                    best, best_at = count, run_at
            else:
                run, run_at = [], None
    return best, best_at


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.casefold())
    return {tuple(words[k : k + 3]) for k in range(len(words) - 2)}


def own_sentences(text: str, page: Sequence[str]) -> tuple[list[str], int]:
    """The sentences of ``text`` in the learner's own words, and how many were the lab page's (``not_from``): a
    sentence counts as copied when most of its three-word runs are the page's."""
    found = sentences(text)
    if not page:
        return found, 0
    theirs = set().union(*(_trigrams(str(p)) for p in page))
    own = [s for s in found if not (grams := _trigrams(s)) or len(grams & theirs) < 0.5 * len(grams)]
    return own, len(found) - len(own)


def _sentences(check: Check, ctx: Context, sections: Sequence[Section]) -> _Finding:
    wanted = int(check.spec["min_sentences"])
    page = check.spec.get("not_from", ())
    assert ctx.document is not None
    own, copied = own_sentences("\n\n".join(s.prose for s in sections), page) if sections else ([], 0)
    n = len(own)
    if sections and n >= wanted:
        return _Finding(Status.PASS, plural("section.sentences", n))
    if sections and copied:
        return _Finding(Status.FAIL, plural("section.copied", n, copied=copied, wanted=wanted))
    count, where = _reflective_runs(ctx, sections, page)  # not under its heading: the part written as a reflection
    if where is not None and count >= wanted:
        place = msg("section.under_heading", heading=where.heading) if where.heading else msg("section.before_headings")
        return _Finding(Status.PASS, msg("section.reflection_at", n=count, place=place, where=ctx.document.place(where.line)),
                        _elsewhere(ctx, check.spec, sections))
    if sections:
        return _Finding(Status.FAIL, plural("section.too_few", n, wanted=wanted))
    return _Finding(Status.FAIL, _no_section(check, ctx))


def _no_section(check: Check, ctx: Context) -> Message:
    assert ctx.document is not None
    spec = check.spec
    seen = [h for h in ctx.document.headings() if h]
    hint = _heading_hint(ctx, spec["headings"])
    found = msg("section.no_section", heading=_suggest(spec),
                headings=", ".join(repr(h) for h in seen[:10]) or msg("missing.no_functions"))
    return joined(msg("sentence.end", text=found), hint, sep=" ") if hint else found


_PATTERN_TEXT, _PATTERN_LINES, _PATTERN_LINE = 20_000, 400, 300  # of an output block, for a rubric's code_pattern


def _output(check: Check, ctx: Context, sections: Sequence[Section]) -> _Finding:
    assert ctx.document is not None
    spec = check.spec
    pattern = spec.get("code_pattern")

    compiled = re.compile(pattern) if pattern else None

    def shows(block: CodeBlock) -> bool:
        """A rubric's pattern is tried line by line on bounded lines: a backtracking regex such as ``\\d+\\.\\d+``
        costs at most quadratic time in one short line, never in a learner's 80,000 digits."""
        if block.kind != "output":
            return False
        if compiled is None:
            return True
        lines = block.text[:_PATTERN_TEXT].splitlines()[:_PATTERN_LINES]
        return any(compiled.search(line[:_PATTERN_LINE]) for line in lines)

    here = [b for s in sections for b in s.code_blocks]
    shown = [b for b in here if shows(b)]
    if shown:
        return _Finding(Status.PASS, msg("section.output"), lines=(shown[0].line,))
    everywhere = [b for s in ctx.document.top_sections() for b in s.code_blocks]
    elsewhere = [b for b in everywhere if shows(b)]
    if elsewhere:
        found = elsewhere[0]
        return _Finding(Status.PASS, msg("section.output_at", where=_where(ctx, Match(found.line, ''))),
                        _elsewhere(ctx, spec, sections))
    if any(b.kind == "output" for b in here or everywhere) and pattern:
        want = rubric_text(spec["description"]) if spec.get("description") else msg("section.matching", pattern=pattern)
        return _Finding(Status.FAIL, msg("section.output_lacks", want=want))
    if here or everywhere:
        if all(b.kind == "source" for b in here or everywhere):
            return _Finding(Status.FAIL, msg("section.output_is_source"))
        return _Finding(Status.FAIL, msg("section.output_none_printed"))
    return _Finding(Status.FAIL, msg("section.output_no_block"))


def check_section(check: Check, ctx: Context) -> CheckResult:
    if ctx.document is None:
        return result(check, Status.SKIP, msg("section.skip"))
    spec = check.spec
    sections = ctx.document.find(spec["headings"])
    findings: list[_Finding] = []
    analysis = analysis_of(ctx) if ("result" in spec or "steps_of" in spec) else None
    if "result" in spec and analysis is not None:
        findings.append(_result(check, ctx, sections, analysis))
    if "steps_of" in spec and analysis is not None:
        findings.append(_steps(check, ctx, sections, analysis))
    if "min_sentences" in spec:
        findings.append(_sentences(check, ctx, sections))
    if spec.get("output"):
        findings.append(_output(check, ctx, sections))
    if not findings:
        findings.append(_Finding(Status.PASS, msg("section.present")) if sections else _Finding(Status.FAIL, _no_section(check, ctx)))
    located = [line for f in findings for line in f.lines]
    shown = [s for s in sections if any(s.holds(line) for line in located)] if located else list(sections)
    named = joined(*(msg("section.named", heading=s.heading, where=ctx.document.place(s.line)) for s in shown), sep=", ")
    lead: Message | str = msg("section.lead", named=named) if shown else ""
    for status in (Status.FAIL, Status.REVIEW):
        chosen = [f for f in findings if f.status == status]
        if chosen:
            notes = [msg("sentence.note", note=as_message(text)) for text in ctx.document.notes] if status == Status.FAIL else []
            return result(check, status, joined(msg("section.says", lead=lead, text=joined(*(f.text for f in chosen), sep="; ")),
                                                *notes))
    said = joined(*(msg("section.with_note", text=f.text, note=f.note) if f.note else f.text for f in findings), sep="; ")
    return result(check, Status.PASS, msg("section.says", lead=lead, text=said))
