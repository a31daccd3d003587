"""Human-facing reports: an offline HTML page, a pull-request comment, and the terminal summary.

All wording and layout live in ``templates/``; this module only feeds them and formats values.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
import unicodedata
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import markupsafe

from grader.atomicio import atomic_write_text
from grader.i18n import DEFAULT, LANGUAGES, Message, joined, language, msg, plural, say
from grader.model import CheckResult, LabResult, Status, adjustment_deltas

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

MAX_ENTRIES = 12  # per axis; evidence is for spotting a pattern, not for reading every entry
HEADLINE_WIDTH = 100
_TEMPLATE_CHECK = "report.html.j2"


@dataclass(frozen=True)
class Todo:
    """One failing check as the reader should meet it: acceptance first, its cause said once."""

    check: CheckResult
    cause: Message | None  # said here: the first check it explains
    shared: tuple[str, ...] = ()  # other checks the same cause explains
    same_as: str = ""  # the cause was said at this earlier check
    error: bool = False  # the "cause" is the error of learner code itself (shared: the checks it also stops)


@dataclass(frozen=True)
class Skipped:
    reason: Message
    ids: tuple[str, ...]


@dataclass(frozen=True)
class FirstThings:
    todo: tuple[Todo, ...]
    skipped: tuple[Skipped, ...]


def first_things(result: LabResult, overridden: bool = True) -> FirstThings:
    """The failing checks, those deciding the verdict first (acceptance), each cause said once with every check it
    explains; skipped checks grouped by why, so the points shown add up. ``overridden``: list the checks an
    instructor decided too (the terminal says those apart)."""
    failing = [c for c in result.checks if c.status in (Status.FAIL, Status.ERROR) and (overridden or not c.override)]
    failing.sort(key=lambda c: not c.acceptance)
    first_by_cause: dict[str, str] = {}
    explained: dict[str, list[str]] = {}
    for c in failing:
        cause = _cause_of(c)
        if cause is not None:
            key = say(cause, DEFAULT)
            first_by_cause.setdefault(key, c.id)
            explained.setdefault(key, []).append(c.id)
    todo = []
    for c in failing:
        cause = _cause_of(c)
        key = say(cause, DEFAULT) if cause is not None else ""
        error = c.status is Status.ERROR and (c.evidence is None or not c.evidence.cause)
        if cause is None:
            todo.append(Todo(c, None))
        elif first_by_cause[key] == c.id:
            todo.append(Todo(c, None if error else cause, tuple(i for i in explained[key] if i != c.id), error=error))
        else:
            todo.append(Todo(c, None, same_as=first_by_cause[key], error=error))
    groups: dict[str, tuple[Message, list[str]]] = {}
    for c in result.checks:
        if c.status is Status.SKIP and (overridden or not c.override):
            groups.setdefault(say(c.message, DEFAULT), (c.message, []))[1].append(c.id)
    return FirstThings(tuple(todo), tuple(Skipped(reason, tuple(ids)) for reason, ids in groups.values()))


def _cause_of(check: CheckResult) -> Message | None:
    """A failure's cause; for an error of learner code (a raise, a crash, a timeout), the error itself, so that one
    function that raises is said once, not once per check that calls it."""
    if check.evidence is not None and check.evidence.cause:
        return check.evidence.cause
    if check.status is Status.ERROR and check.message.id in ("fault.on", "fault.plain"):
        what = check.message.params.get("what")
        return what if isinstance(what, Message) else None
    return None


def without_cause(message: Message, cause: Message | None) -> Message:
    """The message with its closing "Likely cause: …" left out when that cause is said apart (once, for all the
    checks it explains)."""
    if cause is None or message.id != "join":
        return message
    parts = [p for p in message.params.get("parts", ())
             if not (isinstance(p, Message) and p.id == "sentence.likely_cause" and say(p.params.get("cause"), DEFAULT) == say(cause, DEFAULT))]
    return Message("join", {**message.params, "parts": parts}) if len(parts) > 1 else (parts[0] if parts else message)


def reader_language(result: LabResult, lang: str = "auto") -> str:
    """The language a learner reads: the one asked for, else the one their deliverable is written in."""
    if lang in LANGUAGES:
        return lang
    return result.language if result.language in LANGUAGES else DEFAULT


def render_html(result: LabResult, lang: str = "auto") -> str:
    """One self-contained page (inline CSS, no scripts, no remote assets) so it works offline and prints."""
    chosen = reader_language(result, lang)
    return environment(chosen).get_template("report.html.j2").render(r=result, lang=chosen)


def render_markdown(result: LabResult, lang: str = "auto") -> str:
    """GitHub-flavoured Markdown for a pull-request comment; learner text cannot break its layout."""
    chosen = reader_language(result, lang)
    return environment(chosen).get_template("report.md.j2").render(r=result, lang=chosen)


def kit_more(result: LabResult) -> Message:
    """Graded with a learner kit: what the instructor's grading adds (checks held back, hidden inputs)."""
    return joined(plural("kit.more.held", result.held_back) if result.held_back else msg("kit.more.none"),
                  plural("kit.more.narrowed", result.narrowed) if result.narrowed else None)


_ADJUSTMENT_IDS = {"late": lambda **p: msg("report.adjustment.late", **p), "bonus": lambda **p: msg("report.adjustment.bonus", **p),
                   "penalty": lambda **p: msg("report.adjustment.penalty", **p), "cap": lambda **p: msg("report.adjustment.cap", **p)}


def adjustment_lines(result: LabResult) -> list[Message]:
    """One line per lab-level adjustment, in the order applied, each with the change it made and its reason."""
    lines = []
    for a, change in adjustment_deltas(result.checks_score, result.adjustments):
        lines.append(_ADJUSTMENT_IDS.get(a.kind, _ADJUSTMENT_IDS["penalty"])(change=format_points(change),
                         points=format_points(a.points), reason=a.reason,
                         source=a.source))
    if lines:
        lines.insert(0, msg("report.checks_earned", score=format_points(result.checks_score),
                            max=format_points(result.max_score)))
    return lines


def handed_in(result: LabResult) -> Message | None:
    """When the lab was handed in, and from what: modification times are said to be the weak evidence they are."""
    if result.submitted is None:
        return None
    from grader.course import SOURCES

    when = datetime.datetime.fromisoformat(result.submitted.time).isoformat(sep=" ", timespec="minutes")
    if result.submitted.source == "mtime":
        return msg("report.handed_in.mtime", time=when)
    return msg("report.handed_in", time=when, source=SOURCES.get(result.submitted.source, SOURCES["mtime"]))


def markdown_head(result: LabResult, lang: str) -> str:
    """The Markdown report's top (verdict, counts, what to look at first): Gradescope's overall output."""
    return str(environment(lang).get_template("report_parts.md.j2").module.head(result)).strip()


def markdown_detail(check: Any, lang: str) -> str:
    """One check's details as the Markdown report gives them (message, evidence table): a Gradescope test's output."""
    return str(environment(lang).get_template("report_parts.md.j2").module.detail(check)).strip()


def render_summary(
    results: Sequence[LabResult], report_paths: Mapping[tuple[str, str], Path] | None = None, detailed: bool = False,
    lang: str = DEFAULT,
) -> str:
    """Plain terminal text (no colour codes, so it can be piped or logged); ends with a newline.

    ``detailed`` (one learner checking their own work) prints each failing message whole, not its headline.
    """
    chosen = language(lang)
    return (
        environment(chosen)
        .get_template("summary.txt.j2")
        .render(results=list(results), paths=dict(report_paths or {}), detailed=detailed, lang=chosen)
    )


def report_paths(out_dir: Path, result: LabResult) -> tuple[Path, Path]:
    """``<out>/<learner>/phase-04-lab-00.{html,md}``: one flat folder per learner is easy to hand out."""
    stem = result.lab.replace("/", "-")
    folder = Path(out_dir) / result.learner
    return folder / f"{stem}.html", folder / f"{stem}.md"


def write_reports(results: Sequence[LabResult], out_dir: Path, *, durable: bool = True,
                  lang: str = "auto") -> dict[tuple[str, str], Path]:
    """Both files of a result are rendered before either is written, so a rendering bug replaces neither."""
    written: dict[tuple[str, str], Path] = {}
    for result in results:
        html, md = render_html(result, lang), render_markdown(result, lang)
        html_path, md_path = report_paths(out_dir, result)
        atomic_write_text(html_path, html, durable=durable)
        atomic_write_text(md_path, md, durable=durable)
        written[(result.learner, result.lab)] = html_path
    return written


@functools.cache
def environment(lang: str = DEFAULT) -> jinja2.Environment:
    """One environment per language: ``_("id", **params)`` and ``_n("id", n)`` say catalogue messages, the
    ``say`` filter a finding's message — both in this language, through the same renderer as every export."""
    root = template_root()

    def load(name: str) -> str | None:
        source = root.joinpath(name)
        return source.read_text(encoding="utf-8") if source.is_file() else None

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=lambda value: visible_controls(value) if isinstance(value, str) and not isinstance(value, markupsafe.Markup)
        else value,  # Markup is the templates' own (tojson): made safe already
    )
    env.filters.update(
        num=format_number,
        points=format_points,
        value=format_value,
        index=format_index,
        headline=headline,
        md_text=markdown_text,
        md_code=markdown_code,
        say=lambda value: say(value, lang),
    )
    env.tests["late"] = lambda r: any(a.kind == "late" for a in r.adjustments)
    env.globals.update(
        first_things=first_things,
        kit_more=kit_more,
        adjustments=adjustment_lines,
        handed_in=handed_in,
        without_cause=without_cause,
        _=lambda message_id, **params: say(msg(message_id, **params), lang),
        _n=lambda message_id, n, **params: say(plural(message_id, n, **params), lang),
    )
    return env


def template_root() -> Traversable:
    """Installed: the ``grader.templates`` package; from a source checkout: ``<repo>/templates``."""
    try:
        root = resources.files("grader.templates")
        if root.joinpath(_TEMPLATE_CHECK).is_file():
            return root
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "templates"


def format_number(x: Any) -> str:
    """Six significant digits: enough to see a wrong digit, short enough for a table cell."""
    x = _native(x)
    if isinstance(x, (bool, int)) or not isinstance(x, float):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}"


def format_points(x: float) -> str:
    """Scores read as points ("18.0/20.0"); partial credit to two decimals ("21.33"), exact in the JSON."""
    x = round(float(x), 2)
    return f"{x:.1f}" if x.is_integer() else f"{x:g}"


def format_value(value: Any, multiline: bool = False) -> str:
    """Evidence values compactly; with ``multiline`` a matrix shows one row per line, like numpy."""
    return _format(value, multiline, 0)


def _native(value: Any) -> Any:
    """numpy arrays and scalars as Python lists and numbers, without importing numpy here."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) and not isinstance(value, (list, tuple, str)) else value


def _format(value: Any, multiline: bool, depth: int) -> str:
    value = _native(value)
    if value is None:
        return "None"
    if isinstance(value, str):
        return value if depth == 0 else repr(value)
    if isinstance(value, (bool, int, float)):
        return format_number(value)
    if isinstance(value, dict):  # named arguments: one per line
        return ("\n" if multiline else ", ").join(f"{k} = {_format(v, False, depth + 1)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        items = [_native(v) for v in value]
        parts = [_format(v, multiline, depth + 1) for v in items[:MAX_ENTRIES]]
        if len(items) > MAX_ENTRIES:
            parts.append("…")
        nested = any(isinstance(v, (list, tuple)) for v in items)
        sep = ",\n" + " " * (depth + 1) if multiline and nested else ", "
        if isinstance(value, tuple):
            return "(" + sep.join(parts) + ("," if len(items) == 1 else "") + ")"
        return "[" + sep.join(parts) + "]"
    return repr(value)


def format_index(where: Sequence[int]) -> str:
    """As the learner would index the array: ``[1, 2]``."""
    return "[" + ", ".join(str(int(i)) for i in where) + "]"


def headline(text: str, width: int = HEADLINE_WIDTH) -> str:
    """First non-blank line of a message, cut to ``width`` characters, for one-line listings."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= width else first[: width - 1].rstrip() + "…"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$])")  # $ too: GitHub renders $…$ as mathematics
_MD_LIVE = re.compile(r"@(?=\w)|#(?=\d)|(?<=\bGH)-(?=\d)|(?<=\w)(?=://)|(?<![\w.])(?=www\.)", re.IGNORECASE)
_MD_LINE_START = re.compile(r"^(\s*)([#+\-=])")
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])")


def markdown_text(text: str, cell: bool = False) -> str:
    """Learner-quoted text shown verbatim: markup escaped, line breaks kept (``<br>`` only, in a ``cell``)."""
    lines = [
        _MD_LIVE.sub(_inert, _MD_ORDERED.sub(r"\1\\\2", _MD_LINE_START.sub(r"\1\\\2", _MD_SPECIAL.sub(r"\\\1", line))))
        for line in visible_controls(str(text)).splitlines()
    ]
    return ("<br>" if cell else "<br>\n").join(lines)


_INVISIBLE = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible_controls(text: str) -> str:
    """Bidirectional controls shown as ``<U+202E>``: a learner named "\u202eajrob" must not pass for "borja" on a page."""
    return _INVISIBLE.sub(lambda m: f"<U+{ord(m[0]):04X}>", text)


def _inert(match: re.Match[str]) -> str:
    """A zero-width joiner inside @mentions, owner/repo#1 references and bare URLs: a PR comment that quotes a
    learner pings no one and links nowhere."""
    return match[0] + "\u2060" if match[0] else "\u2060"


def markdown_code(text: str) -> str:
    """A code span for a table cell: fence longer than any backtick run, pipes escaped, one line."""
    text = " ".join(str(text).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


INDEX_NAME = "index.html"
HISTOGRAM_BINS = 10  # of 10 % each; the last one also holds 100 %
_FAILING = (Status.FAIL, Status.ERROR)
_EARNING = (Status.PASS, Status.REVIEW)  # as in LabResult.passed: review counts until a human says otherwise


@dataclass(frozen=True)
class _LabCell:
    """A result's totals taken once: LabResult derives them from its checks on every access."""

    score: float  # after the lab's adjustments
    max_score: float
    passed: bool
    href: str  # relative to the class page, percent-encoded
    checks_score: float = 0.0  # before the adjustments: said in a title when it differs from ``score``
    adjustments: tuple[Message, ...] = ()  # each lab-level adjustment, as the learner's report says it


@dataclass(frozen=True)
class _LearnerRow:
    learner: str
    cells: dict[str, _LabCell]  # by lab; a lab the learner was not graded on is absent
    failing: tuple[tuple[str, tuple[str, ...]], ...]  # (lab, ids of checks that failed or errored)
    overridden: tuple[tuple[str, CheckResult], ...]
    skipped: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (lab, ids of checks skipped): counted apart
    review: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (lab, ids of checks a human must look at)
    late: tuple[tuple[str, Message, float], ...] = ()  # (lab, why it is late, the change the penalty made)
    statuses: tuple[tuple[str, str], ...] = ()  # (check key, status): what the page's filters match
    passed: bool = False  # every lab on the page graded and passed; as ``grade query --not-passed``, a lab not
    # handed in is not passed
    out_of: float | None = None  # every lab's maximum (the rubrics'): a lab not handed in counts 0 of it, as in the CSV

    @property
    def total_score(self) -> float:
        return round(sum(c.score for c in self.cells.values()), 6)

    @property
    def total_max(self) -> float:
        return self.out_of if self.out_of is not None else round(sum(c.max_score for c in self.cells.values()), 6)

    @property
    def failing_count(self) -> int:
        return sum(len(ids) for _, ids in self.failing)

    @property
    def skipped_count(self) -> int:
        return sum(len(ids) for _, ids in self.skipped)

    @property
    def review_count(self) -> int:
        return sum(len(ids) for _, ids in self.review)

    @property
    def check_tokens(self) -> str:
        """``key=status`` tokens, space-separated (keys and statuses hold no spaces): ``[data-checks~="grad=fail"]``."""
        return " ".join(f"{key}={status}" for key, status in self.statuses if status != "pass")  # no filter asks for pass


@dataclass(frozen=True)
class _CheckRate:
    id: str
    title: str
    passed: int
    graded: int
    key: str = ""  # as in _LearnerRow.statuses: the id, after its lab when the page has several

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0

    @property
    def level(self) -> str:
        """The bar's colour and the word beside it: under 50 %, under 80 %, or more."""
        return "low" if self.rate < 0.5 else "mid" if self.rate < 0.8 else "high"


@dataclass(frozen=True)
class _LabSummary:
    lab: str
    title: str
    graded: int
    passed: int
    mean_percent: float
    bins: tuple[int, ...]  # learners per HISTOGRAM_BINS slice of the score, as a share of the maximum
    rates: tuple[_CheckRate, ...]  # worst first: the checks the class missed most


@dataclass(frozen=True)
class _SimilarSide:
    kind: str  # "code" or "prose"
    names: tuple[str, str]
    first: tuple[tuple[int, str, bool], ...]  # (line, text, in a shared passage)
    second: tuple[tuple[int, str, bool], ...]


@dataclass(frozen=True)
class _SimilarView:
    lab: str
    first: str
    second: str
    code: int | None  # percent
    prose: int | None
    sides: tuple[_SimilarSide, ...]


def similar_view(pairs: Sequence[Any]) -> list[_SimilarView]:
    """A ``grader.similarity.Pair`` as the class page shows it: both texts, the shared lines marked."""
    views = []
    for pair in pairs:
        sides = []
        for kind, lines in pair.first_text.items():
            marked_a, marked_b = set(pair.first_lines.get(kind, ())), set(pair.second_lines.get(kind, ()))
            sides.append(_SimilarSide(
                kind, pair.names[kind],
                tuple((n, text, n in marked_a) for n, text in enumerate(lines, 1)),
                tuple((n, text, n in marked_b) for n, text in enumerate(pair.second_text[kind], 1))))
        percent = [None if v is None else round(v * 100) for v in (pair.code, pair.prose)]
        views.append(_SimilarView(pair.lab, pair.first, pair.second, percent[0], percent[1], tuple(sides)))
    return views


def provenance_message(finding: Any) -> Message:
    """A ``grader.provenance.Provenance`` said as a finding: the gap between the two first commits, and when."""
    def when(stamp: int | None) -> str:
        return "" if stamp is None else datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC")

    hours = finding.hours
    if hours is None or hours < 1:
        delta = msg("provenance.delta.minutes")
    elif hours < 48:
        delta = plural("provenance.delta.hours", round(hours))
    else:
        delta = plural("provenance.delta.days", round(hours / 24))
    return msg(f"provenance.{finding.kind}", delta=delta, derivation=when(finding.derivation), code=when(finding.code))


def render_index(results: Sequence[LabResult], out_dir: Path, *, generated: str = "", lang: str = DEFAULT,
                 maxima: Mapping[str, float] | None = None, similar: Sequence[Any] = (),
                 threshold: float | None = None, history: Sequence[Any] | None = None) -> str:
    """The class page: one self-contained file (inline CSS, SVG and a small script, nothing remote).

    Links are relative to ``out_dir`` so the folder can be zipped, moved or served as it is. The script sorts
    and filters the table; without it the page is the same table, unfiltered, in name order.
    """
    labs, rows = _class_view(results, Path(out_dir))
    if maxima:
        out_of = round(sum(maxima.values()), 6)
        rows = [replace(row, out_of=out_of) for row in rows]
    chosen = language(lang)
    return (
        environment(chosen)
        .get_template("index.html.j2")
        .render(labs=labs, rows=rows, generated=generated, bins=HISTOGRAM_BINS, several_labs=len(labs) > 1, lang=chosen,
                similar=similar_view(similar), threshold=None if threshold is None else round(threshold * 100),
                history=None if history is None else [(f.learner, f.lab, provenance_message(f))
                                                      for f in history if f.kind != "no_history"],
                no_history=0 if history is None else len({f.learner for f in history if f.kind == "no_history"}))
    )


def write_index(out_dir: Path, results: Sequence[LabResult], lang: str = DEFAULT,
                maxima: Mapping[str, float] | None = None, similar: Sequence[Any] = (),
                threshold: float | None = None, history: Sequence[Any] | None = None) -> Path:
    """``<out>/index.html`` beside the learners' folders, so its relative links resolve."""
    path = Path(out_dir) / INDEX_NAME
    generated = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    atomic_write_text(path, render_index(results, out_dir, generated=generated, lang=lang, maxima=maxima,
                                         similar=similar, threshold=threshold, history=history))
    return path


def _class_view(results: Sequence[LabResult], out_dir: Path) -> tuple[list[_LabSummary], list[_LearnerRow]]:
    by_lab: dict[str, dict[str, LabResult]] = {}
    for r in results:
        by_lab.setdefault(r.lab, {})[r.learner] = r  # a learner graded twice on a lab: the later run stands
    several = len(by_lab) > 1
    cells = {
        (lab, learner): _LabCell(r.score, r.max_score, r.passed, _relative_href(out_dir, r), r.checks_score,
                                 tuple(adjustment_lines(r)[1:]))  # [0] says the checks' points: the title does
        for lab, graded in by_lab.items()
        for learner, r in graded.items()
    }
    labs = [_lab_summary(lab, list(by_lab[lab].values()), cells, several) for lab in sorted(by_lab)]

    def ids(mine: list[LabResult], *statuses: Status) -> tuple[tuple[str, tuple[str, ...]], ...]:
        found = ((r.lab, tuple(c.id for c in r.checks if c.status in statuses)) for r in mine)
        return tuple((lab, got) for lab, got in found if got)

    rows = []
    for learner in sorted({r.learner for r in results}, key=_name_order):
        mine = [by_lab[lab.lab][learner] for lab in labs if learner in by_lab[lab.lab]]
        rows.append(
            _LearnerRow(
                learner=learner,
                cells={r.lab: cells[r.lab, learner] for r in mine},
                failing=ids(mine, *_FAILING),
                overridden=tuple((r.lab, c) for r in mine for c in r.checks if c.override is not None),
                skipped=ids(mine, Status.SKIP),
                review=ids(mine, Status.REVIEW),
                late=tuple((r.lab, a.reason, change) for r in mine
                           for a, change in adjustment_deltas(r.checks_score, r.adjustments) if a.kind == "late"),
                statuses=tuple((f"{r.lab}:{c.id}" if several else c.id, c.status.value) for r in mine for c in r.checks),
                passed=len(mine) == len(labs) and all(r.passed for r in mine),
            )
        )
    return labs, rows


def _lab_summary(lab: str, results: list[LabResult], cells: Mapping[tuple[str, str], _LabCell],
                 several_labs: bool = False) -> _LabSummary:
    bins = [0] * HISTOGRAM_BINS
    shares = []
    tallies: dict[str, list[int]] = {}
    titles: dict[str, str] = {}
    for r in results:
        cell = cells[lab, r.learner]
        share = cell.score / cell.max_score if cell.max_score else 1.0
        shares.append(share)
        bins[min(HISTOGRAM_BINS - 1, max(0, math.floor(round(share * HISTOGRAM_BINS, 9))))] += 1
        for c in r.checks:
            tally = tallies.get(c.id)
            if tally is None:
                tally = tallies[c.id] = [0, 0]
                titles[c.id] = c.title
            tally[0] += c.status in _EARNING
            tally[1] += 1
    rates = sorted(
        (_CheckRate(cid, titles[cid], won, graded, f"{lab}:{cid}" if several_labs else cid)
         for cid, (won, graded) in tallies.items()),
        key=lambda rate: rate.rate,  # stable: equal rates keep the rubric's order
    )
    return _LabSummary(
        lab=lab,
        title=results[0].title,
        graded=len(results),
        passed=sum(cells[lab, r.learner].passed for r in results),
        mean_percent=100 * sum(shares) / len(shares),
        bins=tuple(bins),
        rates=tuple(rates),
    )


def _relative_href(out_dir: Path, result: LabResult) -> str:
    return urllib.parse.quote(report_paths(out_dir, result)[0].relative_to(out_dir).as_posix())


def _name_order(name: str) -> tuple[str, str]:
    """Accents and case do not move a name ("Álvaro" sits with the a's), as the page's sort script does."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in folded if not unicodedata.combining(ch)), name


def render_class_summary(results: Sequence[LabResult], run: Any, lang: str = DEFAULT) -> str:
    """A class on the terminal: totals per lab, the learners who did not pass (first few), where to look."""
    learners = sorted({r.learner for r in results})
    return environment(language(lang)).get_template("class_summary.txt.j2").render(results=list(results), run=run,
                                                                                  learners=learners)
