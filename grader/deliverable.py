"""A learner's Markdown deliverable, read into sections that rubric checks can query.

Markdown is parsed, never pattern-matched line by line, so a ``#`` inside a code block is
not a heading and ``p_i`` inside math is not emphasis.
"""

from __future__ import annotations

import ast
import functools
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin

from grader.i18n import Message, msg
from grader.errors import SubmissionError
from grader.learnerfiles import read_bytes, size
from grader.maths.extract import Piece
from grader.notation import heading_matches

MAX_BYTES = 256 * 1024  # 50 times a real deliverable; markdown-it needs up to ~12 s per MB of hostile text
CODE_WORD = "CODE"  # stands in for inline code in prose, so `np.exp` never ends a sentence
MATH_WORD = "MATH"

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_MATH_TOKENS = frozenset({"math_inline", "math_inline_double"})
_MATH_BLOCKS = frozenset({"math_block", "math_block_label"})
_URL = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")
_HTML_IMG = re.compile(r"<img\b[^<>]*>", re.IGNORECASE)
_HTML_ATTR = re.compile(
    r"""\b(src|alt)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE
)


@dataclass(frozen=True)
class Image:
    src: str
    alt: str
    exists: bool  # a regular file inside the grading root; never a URL
    line: int


@dataclass(frozen=True)
class CodeBlock:
    info: str
    text: str
    line: int

    @property
    def kind(self) -> str:
        """"output" (what a script printed), "source" (the script itself) or "other"."""
        return block_kind(self.text, self.info)


@dataclass(frozen=True)
class Section:
    """A heading and everything under it, subsections included."""

    heading: str
    level: int
    line: int
    prose: str  # for counting sentences: inline code and math are single neutral words
    formula_text: str  # raw source, for finding formulas in any notation
    code_blocks: tuple[CodeBlock, ...]
    images: tuple[Image, ...]
    end_line: int = 0  # the last line the section (with its subsections) covers
    own_prose: str = ""  # the prose under its own heading, before any subsection
    pieces: tuple[Piece, ...] = ()  # where formulas may be: math, and lines of prose and of non-source code

    def holds(self, line: int) -> bool:
        return self.line <= line <= self.end_line


@dataclass(frozen=True)
class Document:
    path: Path
    sections: tuple[Section, ...]
    notes: tuple[Message | str, ...] = ()  # what was done with awkward bytes (not UTF-8, cut at MAX_BYTES), for the learner
    cells: tuple[tuple[int, int], ...] = ()  # (first line, cell number) when the text comes from a notebook

    @property
    def pieces(self) -> tuple[Piece, ...]:
        """Every piece of the document, once, in order (a section also holds its subsections' pieces)."""
        return tuple(piece for section in self.top_sections() for piece in section.pieces)

    @property
    def prose(self) -> str:
        return "\n\n".join(s.prose for s in self.top_sections())

    def top_sections(self) -> tuple[Section, ...]:
        """Sections that are not inside another one: together they cover the document once."""
        out: list[Section] = []
        inside: int | None = None
        for section in self.sections:
            if inside is not None and section.level > inside:
                continue
            out.append(section)
            inside = section.level if section.level > 0 else None
        return tuple(out)

    def section_at(self, line: int) -> Section | None:
        """The innermost section holding this line."""
        found = None
        for section in self.sections:
            if section.holds(line) and (found is None or section.level > found.level):
                found = section
        return found

    def place(self, line: int, start: bool = False) -> Message:
        """``where``, as a message: "line 12" or "cell 4"; ``start`` for the beginning of a sentence."""
        cell = None
        for first, number in self.cells:
            if first <= line:
                cell = number
        kind = "cell" if cell is not None else "line"
        return msg(f"place.{kind}{'.start' if start else ''}", n=cell if cell is not None else line)

    def where(self, line: int) -> str:
        """A line as the learner finds it: "line 12", or "cell 4" in a notebook."""
        cell = None
        for first, number in self.cells:
            if first <= line:
                cell = number
        return f"cell {cell}" if cell is not None else f"line {line}"

    def headings(self) -> tuple[str, ...]:
        return tuple(section.heading for section in self.sections if section.level > 0)

    def title(self) -> Section | None:
        """A lone top-level first heading above others is the document's title, not a section to match:
        "# Lab 00 — Derivations" must not stand in for "## Derivation" itself."""
        headed = [s for s in self.sections if s.level > 0]
        if len(headed) < 2:
            return None
        top = min(s.level for s in headed)
        first = headed[0]
        if first.level == top and sum(1 for s in headed if s.level == top) == 1:
            return first
        return None

    def find(self, synonyms: Sequence[str]) -> tuple[Section, ...]:
        """Outermost matching sections: a match nested in another match is already inside it."""
        found: list[Section] = []
        inside: int | None = None
        title = self.title()
        for section in self.sections:
            if section.level == 0 or section is title or (inside is not None and section.level > inside):
                continue
            inside = None
            if heading_matches(section.heading, synonyms) is not None:
                found.append(section)
                inside = section.level
        return tuple(found)


def parse_deliverable(path: Path, root: Path) -> Document:
    """Read and parse; a file that is not text at all is a SubmissionError, any text is a Document.

    Text that is merely awkward is still graded, and ``Document.notes`` says what was done with it: a file
    not saved as UTF-8 is read line by line as Windows-1252 where UTF-8 fails, a UTF-16 file is decoded, and
    past ``MAX_BYTES`` only the lines before the cap are parsed.
    """
    name = _shown(path, root)
    text, notes = _read_text(path, root, name)
    return parse_text(text, path, root, tuple(notes))


def parse_text(text: str, path: Path, root: Path, notes: tuple[Message | str, ...] = (),
               cells: tuple[tuple[int, int], ...] = ()) -> Document:
    """Markdown already read (a file, or a notebook's Markdown cells) as a Document."""
    name = _shown(path, root)
    if len(text) > MAX_BYTES:
        cut = text.rfind("\n", 0, MAX_BYTES) + 1 or MAX_BYTES
        text = text[:cut]
        notes = (*notes, msg("deliv.note.cut", name=name, kb=MAX_BYTES >> 10))
    try:
        tokens = _markdown().parse(text)
    except Exception as error:  # a parser bug must cost one learner a message, not the run
        raise SubmissionError(msg("deliv.unparsable", name=name, error=type(error).__name__)) from error
    parts = _Collector(path.parent, root).collect(tokens)
    return Document(path=path, sections=tuple(_sections(parts, text.count("\n") + 1)), notes=tuple(notes), cells=cells)


def _shown(path: Path, root: Path) -> str:
    """The file as the learner knows it (``phase-04/lab.md``), never the grader's temporary folder."""
    try:
        return (path.parent.resolve() / path.name).relative_to(root.resolve()).as_posix()
    except (OSError, ValueError, RuntimeError):
        return path.name


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", msg("deliv.kind.png")),
    (b"\xff\xd8\xff", msg("deliv.kind.jpeg")),
    (b"GIF87a", msg("deliv.kind.gif")),
    (b"GIF89a", msg("deliv.kind.gif")),
    (b"%PDF-", msg("deliv.kind.pdf")),
    (b"PK\x03\x04", msg("deliv.kind.zip")),
    (b"\x7fELF", msg("deliv.kind.program")),
)


def _read_text(path: Path, root: Path, name: str) -> tuple[str, list[Message]]:
    data = read_bytes(path, root, MAX_BYTES, name)
    total = len(data) if len(data) <= MAX_BYTES else max(len(data), size(path.resolve()))
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise SubmissionError(msg("deliv.not_text", name=name, what=what))
    notes: list[Message] = []
    cut = len(data) > MAX_BYTES
    if cut:
        end = data.rfind(b"\n", 0, MAX_BYTES) + 1 or _char_start(data, MAX_BYTES)
        data = data[:end]
    if data.startswith(_UTF16_BOMS):
        text = data.decode("utf-16", errors="replace")
        notes.append(msg("deliv.note.utf16", name=name))
    else:
        if b"\x00" in data:
            raise SubmissionError(msg("deliv.binary", name=name, offset=data.index(0)))
        text, bad = _decode(data.removeprefix(_BOM))
        if bad:
            notes.append(msg("deliv.note.not_utf8.more" if len(bad) > 1 else "deliv.note.not_utf8", name=name,
                             line=bad[0], n=len(bad) - 1))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if cut:
        lines = text.count("\n")
        notes.append(msg("deliv.note.large", name=name, mb=total / 1e6, kb=MAX_BYTES >> 10, lines=lines))
    return text, notes


def _decode(data: bytes) -> tuple[str, list[int]]:
    """UTF-8; where a line is not, that line as Windows-1252 (an editor's "ANSI"), else Latin-1.
    Returns the text and the numbers of the lines that were not UTF-8."""
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    bad: list[int] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(line.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            bad.append(number)
        try:
            lines.append(line.decode("cp1252"))
        except UnicodeDecodeError:
            lines.append(line.decode("latin-1"))
    return "\n".join(lines), bad


def _char_start(data: bytes, end: int) -> int:
    """``end`` moved back so that a cut there does not split a UTF-8 character."""
    while end > 0 and data[end] & 0xC0 == 0x80:
        end -= 1
    return end


_TAG = re.compile(r"<[^<>]{0,100}>")
_SUMMARY = re.compile(r"<summary\b[^<>]{0,200}>(.{0,500}?)</summary>", re.IGNORECASE | re.DOTALL)
_MAX_HTML = 32 * 1024  # characters of one HTML block read as text
MAX_SECTIONS = 1_000  # headings; past them a heading is read as a line of text (a deliverable has a dozen)


@functools.cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table").use(dollarmath_plugin, double_inline=True)


@dataclass
class _Part:
    """What one heading holds up to the next heading of any level."""

    heading: str
    level: int
    line: int
    prose: list[str] = field(default_factory=list)
    formulas: list[str] = field(default_factory=list)
    code: list[CodeBlock] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (any(p.strip() for p in self.prose) or self.formulas or self.code or self.images)


class _Collector:
    """Walks the flat token stream once, filing content under the latest heading."""

    def __init__(self, folder: Path, root: Path) -> None:
        self._folder = folder
        self._root = root.resolve()
        self._existing: dict[str, bool] = {}

    def collect(self, tokens: Sequence[Token]) -> list[_Part]:
        parts = [_Part(heading="", level=0, line=1)]
        in_heading = False
        for token in tokens:
            line = token.map[0] + 1 if token.map else parts[-1].line
            if token.type == "heading_open" and len(parts) <= MAX_SECTIONS:
                in_heading = True
                level = int(token.tag[1:]) if token.tag[1:].isdigit() else 1
                parts.append(_Part(heading="", level=level, line=line))
            elif token.type == "heading_close":
                in_heading = False
            elif token.type == "inline":
                children = token.children or []
                parts[-1].images.extend(self._inline_images(children, line))
                if in_heading:
                    parts[-1].heading = _heading_text(children)
                else:
                    parts[-1].prose.append(_prose(children))
                    parts[-1].formulas.append(token.content)
                    parts[-1].pieces.append(Piece(line, "text", token.content))
            elif token.type in _MATH_BLOCKS:
                parts[-1].formulas.append(token.content)
                parts[-1].pieces.append(Piece(line, "math", token.content))
            elif token.type in ("fence", "code_block"):
                parts[-1].formulas.append(token.content)
                info = token.info.strip()
                first = line + 1 if token.type == "fence" else line
                if token.type == "fence" and info.split(maxsplit=1)[:1] in (["math"], ["latex"], ["tex"]):
                    parts[-1].pieces.append(Piece(first, "math", token.content))
                    continue
                block = CodeBlock(info=info, text=token.content, line=line)
                parts[-1].code.append(block)
                if block.kind == "other":  # a derivation typed in a code block: its lines may hold formulas
                    parts[-1].pieces.extend(Piece(first + k, "text", row) for k, row in
                                            enumerate(token.content.splitlines()[:_MAX_BLOCK_LINES]) if row.strip())
            elif token.type == "html_block":
                parts[-1].images.extend(self._html_images(token.content, line))
                self._html_text(parts, token.content[:_MAX_HTML], line)
        return parts

    @staticmethod
    def _html_text(parts: list[_Part], source: str, line: int) -> None:
        """Text inside HTML — ``<details><summary>Reflection</summary>…`` as GitHub shows it: the summary is a
        heading, the rest is prose of it."""
        summary = _SUMMARY.search(source)
        if summary is not None:
            title = " ".join(html.unescape(_TAG.sub(" ", summary[1])).split())
            if title:
                parts.append(_Part(heading=title, level=min(parts[-1].level + 1, 6) or 2, line=line))
            source = source[summary.end():]
        text = html.unescape(_TAG.sub(" ", source)).strip()
        if text:
            parts[-1].prose.append(text)
            parts[-1].formulas.append(text)
            parts[-1].pieces.append(Piece(line, "text", text))

    def _inline_images(self, children: Sequence[Token], line: int) -> list[Image]:
        images: list[Image] = []
        for child in children:
            if child.type in ("softbreak", "hardbreak"):
                line += 1
            elif child.type == "image":
                images.append(self._image(str(child.attrs.get("src", "")), child.content, line))
            elif child.type == "html_inline":
                images.extend(self._html_images(child.content, line))
        return images

    def _html_images(self, source: str, line: int) -> list[Image]:
        images: list[Image] = []
        counted = 0
        for tag in _HTML_IMG.finditer(source):
            line += source.count("\n", counted, tag.start())
            counted = tag.start()
            attrs = {
                match[1].lower(): html.unescape(match[2] or match[3] or match[4] or "")
                for match in _HTML_ATTR.finditer(tag[0])
            }
            if "src" in attrs:
                images.append(self._image(attrs["src"], attrs.get("alt", ""), line))
        return images

    def _image(self, src: str, alt: str, line: int) -> Image:
        written = unquote(src)
        if written not in self._existing:
            self._existing[written] = self._exists(written)
        return Image(src=written, alt=alt, exists=self._existing[written], line=line)

    def _exists(self, src: str) -> bool:
        """Only files the grader may show: inside the root, reached without a URL."""
        target = src.split("#", 1)[0].split("?", 1)[0].replace("\\", "/")
        if not target or _URL.match(target) or target.startswith("/"):
            return False
        try:
            resolved = (self._folder / target).resolve()
            return resolved.is_relative_to(self._root) and resolved.is_file()
        except (OSError, ValueError, RuntimeError):
            return False


def _heading_text(children: Sequence[Token]) -> str:
    pieces = [
        " " if child.type in ("softbreak", "hardbreak") else child.content
        for child in children
        if child.type in ("text", "code_inline", "image", "softbreak", "hardbreak")
        or child.type in _MATH_TOKENS
    ]
    return " ".join("".join(pieces).split())


def _prose(children: Sequence[Token]) -> str:
    pieces: list[str] = []
    for child in children:
        if child.type == "text":
            pieces.append(child.content)
        elif child.type == "code_inline":
            pieces.append(CODE_WORD)
        elif child.type in _MATH_TOKENS:
            pieces.append(MATH_WORD)
        elif child.type == "softbreak":
            pieces.append(" ")
        elif child.type == "hardbreak":
            pieces.append("\n")
    return "".join(pieces).strip()


def _sections(parts: list[_Part], lines: int) -> list[Section]:
    sections: list[Section] = []
    ends = [max(p.line, parts[k + 1].line - 1) for k, p in enumerate(parts[:-1])] + [max(parts[-1].line, lines)]
    for index, part in enumerate(parts):
        if part.level == 0:
            if part.is_empty():
                continue
            members = [part]
        else:
            end = index + 1
            while end < len(parts) and parts[end].level > part.level:
                end += 1
            members = parts[index:end]
        sections.append(
            Section(
                heading=part.heading,
                level=part.level,
                line=part.line,
                prose="\n\n".join(p for m in members for p in m.prose if p),
                formula_text="\n".join(f for m in members for f in m.formulas),
                code_blocks=tuple(c for m in members for c in m.code),
                images=tuple(i for m in members for i in m.images),
                end_line=ends[index + len(members) - 1] if part.level else ends[index],
                own_prose="\n\n".join(p for p in part.prose if p),
                pieces=tuple(p for m in members for p in m.pieces),
            )
        )
    return sections


# --- what a code block holds ---------------------------------------------------------------------

_MAX_BLOCK_LINES = 400
_STATEMENTS = ("def ", "async def ", "class ", "for ", "while ", "if ", "elif ", "else", "try", "except", "finally",
               "with ", "return", "assert ", "raise ", "lambda", "yield ", "import ", "from ", "global ", "del ", "pass")
_OUTPUT_WORDS = ("traceback", "error", "passed", "pass", " ok", "ok ", "ok!", "success", "true", "false", "fail",
                 "correct", "✓", "✔", "match", "paso", "pasó", "bien", "all checks", "todos", "exito", "éxito")
_DECIMAL = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][-+]?\d+)(?![\w.])")
_PROMPTS = (">>>", "...", "In [", "Out[", "$ ", "% ", "> ")
_PYTHON_CALL = re.compile(r"[A-Za-z_]\w*\.[A-Za-z_][\w.]*\s*\(|(?<![\w.])(?:print|len|range|zip|enumerate|float|int|list|"
                          r"sum|abs|isinstance|sorted|open|str|dict|tuple|set|round|min|max)\s*\(")


def block_kind(text: str, info: str = "") -> str:
    """Judge a code block by what it holds: printed numbers, messages or a traceback are output; Python is source.

    Each line is looked at once, cut at 300 characters, with string tests, one bounded ``ast.parse`` and regular
    expressions that do not backtrack, so a hostile block costs time in proportion to its (capped) size."""
    source = output = prompts = 0
    for raw in text.splitlines()[:_MAX_BLOCK_LINES]:
        line = raw.strip()[:300]
        if not line:
            continue
        if line.startswith(_PROMPTS):
            rest = line.split(" ", 1)[1] if " " in line else ""
            if _DECIMAL.search(rest) and not _parses(rest):  # ">>> max_err(J) = 5.1e-12": a printed line, prompted
                output += 1
            else:
                prompts += 1
            continue
        if line.startswith(("Traceback", 'File "')) or line.endswith(("Error", "Exception")) or "Error:" in line:
            output += 1
        elif _is_source(line):
            source += 1
        elif _DECIMAL.search(line) or line.startswith("[") or any(w in f" {line.lower()} " for w in _OUTPUT_WORDS):
            output += 1
    if prompts and (output or source):
        return "output"
    if output and output >= source:
        return "output"
    if source:
        return "source"
    return "other"


def _parses(line: str) -> bool:
    try:
        ast.parse(line)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _is_source(line: str) -> bool:
    """A line of Python that does something: a statement (``for y in range(5):``, ``return g``), a comment, or a
    call of a dotted name or of Python's own (``J = np.diag(p)``, ``print(err)``) — never printed output
    (``max_err = 1.1e-11``, ``class 0: E = 0.57``) nor a formula typed in ASCII (``J = diag(p) - p*p^T`` and
    ``grad = p - onehot(y)`` are valid Python, but name no Python)."""
    if line.startswith("#"):
        return True
    if line.startswith("@") or line.startswith(_STATEMENTS):
        body = line + ("\n    pass" if line.endswith(":") else "")
    elif _PYTHON_CALL.search(line):
        body = line
    else:
        return False
    try:
        ast.parse(body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True
