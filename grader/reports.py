"""Human-facing reports: an offline HTML page, a pull-request comment, and the terminal summary.

All wording and layout live in ``templates/``; this module only feeds them and formats values.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from grader.atomicio import atomic_write_text
from grader.model import LabResult

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

MAX_ENTRIES = 12  # per axis; evidence is for spotting a pattern, not for reading every entry
HEADLINE_WIDTH = 100
_TEMPLATE_CHECK = "report.html.j2"


def render_html(result: LabResult) -> str:
    """One self-contained page (inline CSS, no scripts, no remote assets) so it works offline and prints."""
    return _environment().get_template("report.html.j2").render(r=result)


def render_markdown(result: LabResult) -> str:
    """GitHub-flavoured Markdown for a pull-request comment; learner text cannot break its layout."""
    return _environment().get_template("report.md.j2").render(r=result)


def render_summary(
    results: Sequence[LabResult], report_paths: Mapping[tuple[str, str], Path] | None = None, detailed: bool = False
) -> str:
    """Plain terminal text (no colour codes, so it can be piped or logged); ends with a newline.

    ``detailed`` (one learner checking their own work) prints each failing message whole, not its headline.
    """
    return (
        _environment()
        .get_template("summary.txt.j2")
        .render(results=list(results), paths=dict(report_paths or {}), detailed=detailed)
    )


def report_paths(out_dir: Path, result: LabResult) -> tuple[Path, Path]:
    """``<out>/<learner>/phase-04-lab-00.{html,md}``: one flat folder per learner is easy to hand out."""
    stem = result.lab.replace("/", "-")
    folder = Path(out_dir) / result.learner
    return folder / f"{stem}.html", folder / f"{stem}.md"


def write_reports(results: Sequence[LabResult], out_dir: Path) -> dict[tuple[str, str], Path]:
    """Both files of a result are rendered before either is written, so a rendering bug replaces neither."""
    written: dict[tuple[str, str], Path] = {}
    for result in results:
        html, md = render_html(result), render_markdown(result)
        html_path, md_path = report_paths(out_dir, result)
        atomic_write_text(html_path, html)
        atomic_write_text(md_path, md)
        written[(result.learner, result.lab)] = html_path
    return written


@functools.cache
def _environment() -> jinja2.Environment:
    root = _template_root()

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
    )
    env.filters.update(
        num=format_number,
        points=format_points,
        value=format_value,
        index=format_index,
        headline=headline,
        md_text=markdown_text,
        md_code=markdown_code,
    )
    return env


def _template_root() -> Traversable:
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


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_MD_LINE_START = re.compile(r"^(\s*)([#+\-=])")
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])")


def markdown_text(text: str, cell: bool = False) -> str:
    """Learner-quoted text shown verbatim: markup escaped, line breaks kept (``<br>`` only, in a ``cell``)."""
    lines = [
        _MD_ORDERED.sub(r"\1\\\2", _MD_LINE_START.sub(r"\1\\\2", _MD_SPECIAL.sub(r"\\\1", line)))
        for line in str(text).splitlines()
    ]
    return ("<br>" if cell else "<br>\n").join(lines)


def markdown_code(text: str) -> str:
    """A code span for a table cell: fence longer than any backtick run, pipes escaped, one line."""
    text = " ".join(str(text).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")
