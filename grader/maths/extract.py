"""Where the formulas are in a deliverable: math spans, display blocks, and formulas typed into prose.

Every candidate is a whole expression — one side of an equation, a row of an ``aligned`` or ``cases``
block, a ``$…$`` span, or a run of a prose line between words — so a result is never found inside a
larger, different expression. Every scan here is a single pass over bounded text (no regular expression
with nested repetition runs on learner text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from grader.maths.syntax import FUNCTIONS, MAX_LENGTH, prepare

MAX_CANDIDATES = 1500  # per document; a real deliverable has one or two hundred
MAX_TEXT = 64 * 1024  # characters of one piece scanned for formulas


@dataclass(frozen=True)
class Piece:
    """A piece of a deliverable that may hold formulas: LaTeX source (``math``) or a line of text (``text``)."""

    line: int
    kind: str
    text: str


@dataclass(frozen=True)
class Candidate:
    line: int
    text: str
    equation: int = -1  # candidates of one equation chain share a number; -1 for a lone expression
    position: int = 0  # its place in that chain (0 is the left-hand side)


# --- math source ------------------------------------------------------------------------------

_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*\{[A-Za-z*]{1,20}\}(?:\s*\{[lcr|]{1,20}\})?")
_ROW_BREAK = re.compile(r"\\\\(?:\s*\[[^\[\]\n]{0,20}\])?|\\cr\b")
_SEPARATORS = re.compile(
    r"\\(?:q?quad|Longleftrightarrow|Longrightarrow|Leftrightarrow|Rightarrow|longrightarrow|rightarrow|implies|iff|"
    r"therefore|because|mapsto|to|text|mbox|textrm|textnormal|hspace|vspace|label|tag|notag|nonumber)\b|&|[⟺⇔⇒→∴]"
)
_TEXT_COMMAND = re.compile(r"\\(?:text|mbox|textrm|textnormal|textit|textbf)\s*\{([^{}]{0,200})\}")
_RELATION = re.compile(r":=|=:|\\coloneqq|\\approx|\\equiv|\\simeq|\\sim|\\propto|\\neq|\\ne\b|\\leq?\b|\\geq?\b|[=≈≡≠<>≤≥]")


def _text_command(match: re.Match[str], words: frozenset[str]) -> str:
    """``\\text{diag}`` is a name; ``\\text{ if } i = j`` is prose between two expressions."""
    inner = match[1].strip().replace("\\_", "_")
    if inner.lower().replace("_", "").replace("-", "") in FUNCTIONS | words:
        return r"\operatorname{" + inner + "}"
    if len(inner) <= 1:
        return inner
    return " \\quad "


def _split_top(text: str) -> list[tuple[str, str]]:
    """Split at separators and relations outside brackets; returns (piece, the relation before it)."""
    pieces: list[tuple[str, str]] = []
    depth = 0
    start = 0
    before = ""
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt in "{[(":
                depth += 1
                i += 2
                continue
            if nxt in "}])":
                depth = max(0, depth - 1)
                i += 2
                continue
            match = _SEPARATORS.match(text, i) if depth == 0 else None
            if match is None and depth == 0:
                relation = _RELATION.match(text, i)
                if relation is not None:
                    pieces.append((text[start:i], before))
                    before = relation[0]
                    start = i = relation.end()
                    continue
            if match is not None:
                pieces.append((text[start:i], before))
                before = ""
                start = i = match.end()
                continue
            j = i + 1
            while j < n and text[j].isalpha():
                j += 1
            i = max(j, i + 2)
            continue
        if char in "{[(":
            depth += 1
        elif char in "}])":
            depth = max(0, depth - 1)
        elif depth == 0:
            if char in ",;" or _SEPARATORS.match(text, i) is not None:
                pieces.append((text[start:i], before))
                before = ""
                start = i + 1
            elif char == ":" and i + 1 < n and text[i + 1] == "=":
                pieces.append((text[start:i], before))
                before = ":="
                i += 2
                start = i
                continue
            elif _RELATION.match(text, i) is not None:
                relation = _RELATION.match(text, i)
                assert relation is not None
                pieces.append((text[start:i], before))
                before = relation[0]
                start = i = relation.end()
                continue
        i += 1
    pieces.append((text[start:], before))
    return pieces


def _clean(piece: str) -> str:
    return piece.strip().strip(".,;:").strip()


_WRAPPERS = re.compile(r"\\(?:boxed|fbox|bbox|underbrace|overbrace|underset\s*\{[^{}]{0,40}\}|overset\s*\{[^{}]{0,40}\}|"
                       r"textcolor\s*\{[A-Za-z]{1,20}\}|colorbox\s*\{[A-Za-z]{1,20}\})\s*\{")
_COLOR = re.compile(r"\\color\s*\{[A-Za-z]{1,20}\}")


def _unwrap(source: str) -> str:
    """``\\boxed{a = b}`` is ``a = b``: wrappers that only frame a formula go, their braces matched in one pass."""
    source = _COLOR.sub(" ", source)
    out: list[str] = []
    i = 0
    pending: list[int] = []  # depths at which a wrapper's closing brace is to be dropped
    depth = 0
    while i < len(source):
        match = _WRAPPERS.match(source, i) if source[i] == "\\" else None
        if match is not None:
            pending.append(depth)
            depth += 1
            i = match.end()
            continue
        char = source[i]
        if char == "\\" and i + 1 < len(source):
            out.append(source[i : i + 2])
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if pending and pending[-1] == depth:
                pending.pop()
                i += 1
                if source.startswith("_{", i) or source.startswith("^{", i):  # \underbrace{…}_{label}
                    i = _group_end(source, i + 1)
                continue
        out.append(char)
        i += 1
    return "".join(out)


def _group_end(source: str, start: int) -> int:
    """The index after the brace group opening at ``start``."""
    depth = 0
    for k in range(start, len(source)):
        if source[k] == "{" and source[k - 1] != "\\":
            depth += 1
        elif source[k] == "}" and source[k - 1] != "\\":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(source)


_MATH_PROSE = re.compile(r"(?<![\\A-Za-z])(?:if|for|where|when|and|or|otherwise|else|with|then|hence|thus|so|si|para|"
                         r"donde|cuando|con|caso|otro|resto|entonces|luego)(?![A-Za-z])")


def from_math(source: str, line: int, chain: list[int], words: frozenset[str] = frozenset()) -> list[Candidate]:
    """Candidates of one LaTeX span or display block (``aligned`` and ``cases`` rows apart). Words of prose typed
    into it without ``\\text`` (an ASCII derivation in a ```` ```math ```` block: "… if i == y") separate too."""
    source = _TEXT_COMMAND.sub(lambda m: _text_command(m, words), _unwrap(source[:MAX_TEXT]))
    source = _MATH_PROSE.sub(r" \\quad ", source)
    source = _ENVIRONMENT.sub(r" \\\\ ", source)
    out: list[Candidate] = []
    row_line = line
    for row in _ROW_BREAK.split(source):
        out.extend(_sides(row, row_line, chain))
        row_line += row.count("\n")
    return out


def _sides(text: str, line: int, chain: list[int]) -> list[Candidate]:
    out: list[Candidate] = []
    equation = chain[0]
    chain[0] += 1
    position = 0
    for piece, relation in _split_top(text):
        cleaned = _clean(piece)
        if relation not in ("", "=", ":=", "=:", "\\coloneqq", "\\equiv", "≡", "\\approx", "≈"):
            position = 0
            equation = chain[0]
            chain[0] += 1
        elif relation == "" and out:
            position = 0
            equation = chain[0]
            chain[0] += 1
        if cleaned and len(cleaned) <= MAX_LENGTH and any(c.isalpha() for c in cleaned):
            out.append(Candidate(line + piece.count("\n", 0, len(piece) - len(piece.lstrip())), cleaned, equation, position))
        position += 1
    return out


# --- prose ------------------------------------------------------------------------------------

_MATH_WORDS = FUNCTIONS | {"delta", "sigma", "sum", "exp", "argmax", "tr", "det", "T"}
_STOP_WORDS = frozenset(
    "is of in on at to we if so as by or an be it me my us do no am are the and for with where then from this that "
    "es de la el en si un lo se al su le ya mi tu te y o e con por para que los las del una son como donde".split()
)
_WORD = re.compile(r"[^\W\d_]+")
_PARENTHETICAL = re.compile(r"\(([^()\n]{0,200})\)")
_SENTENCE_END = re.compile(r"(?<=[.;:!?])\s")
_MARKUP = re.compile(r"\*\*|__|~~|<[^<>\n]{0,200}>|!?\[([^\[\]\n]{0,200})\]\([^()\n]{0,300}\)")


def _is_prose_word(text: str, start: int, end: int, words: frozenset[str] = frozenset()) -> bool:
    word = text[start:end]
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before in "_^\\{" or word.lower() in _MATH_WORDS or word in _MATH_WORDS or word.lower() in words:
        return False
    if (after in "_-" or before in "_-") and _part_of_name(text, start, end, words):  # one_hot, One-Hot: one name
        return False
    if len(word) == 1:
        return False
    if word.lower() in _STOP_WORDS:
        return True
    if len(word) == 2:
        return False  # pp, dz, dL: letters of a formula
    return not (after == "(" and word.lower() in FUNCTIONS)


def _part_of_name(text: str, start: int, end: int, words: frozenset[str]) -> bool:
    """The word and its neighbours joined by ``_`` or ``-`` spell one of the rubric's function names."""
    left = start
    while left > 0 and (text[left - 1].isalpha() or text[left - 1] in "_-\\") and start - left < 20:
        left -= 1
    right = end
    while right < len(text) and (text[right].isalpha() or text[right] in "_-\\") and right - end < 20:
        right += 1
    joined = text[left:right].lower().replace("\\", "").replace("_", "").replace("-", "")
    return joined in words


def _remark(match: re.Match[str], words: frozenset[str]) -> str:
    """A parenthesised remark after a formula — "(both cases at once)" — is prose, not a factor."""
    inner = match[1]
    found = [m for m in _WORD.finditer(inner) if _is_prose_word(inner, m.start(), m.end(), words)]
    return " ; " if len(found) >= 2 else match[0]


_SPOKEN = {"minus": "-", "plus": "+", "times": "*", "over": "/", "menos": "-", "más": "+", "mas": "+", "por": "*",
           "entre": "/", "squared": "^2", "cuadrado": "^2"}
_SPOKEN_NUMBERS = {"one": "1", "uno": "1", "two": "2", "dos": "2"}
_SPOKEN_PAIRS = re.compile(r"\b(?:divided\s+by|dividido\s+(?:entre|por)|al\s+cuadrado)\b", re.IGNORECASE)
_OPERAND = re.compile(r"^[(\[]?(?:[^\W\d_](?:_\{?\w{1,6}\}?)?|\d+(?:\.\d+)?)[)\]]?$")


def spoken(text: str) -> str:
    """Operators said in words between symbols — "minus p_i times p_j", "minus one over p_y", "p_i menos p_j" —
    written as symbols, so the formula is read; a word between words ("sum over i", "one formula") stays a word.
    One pass over the words."""
    text = _SPOKEN_PAIRS.sub(lambda m: {"d": "over", "a": "squared"}.get(m[0][0].lower(), "entre"), text)
    tokens = text.split(" ")
    bare = [t.strip(",;:.") for t in tokens]
    numbers = [_SPOKEN_NUMBERS.get(b.lower(), b) for b in bare]

    def operand(k: int) -> bool:
        return 0 <= k < len(tokens) and bool(_OPERAND.match(numbers[k])) and bare[k].lower() not in _SPOKEN
    out = list(tokens)
    for k, word in enumerate(bare):
        symbol = _SPOKEN.get(word.lower())
        if symbol is None:
            continue
        if symbol == "^2":
            ok = operand(k - 1)
        elif symbol == "-" and not operand(k - 1):
            ok = operand(k + 1)  # a leading minus: "is minus one over p_y"
        else:
            ok = operand(k - 1) and operand(k + 1)
        if ok:
            out[k] = symbol + tokens[k][len(word):]
            for j in (k - 1, k + 1):
                if 0 <= j < len(tokens) and bare[j].lower() in _SPOKEN_NUMBERS:
                    out[j] = tokens[j].replace(bare[j], _SPOKEN_NUMBERS[bare[j].lower()])
    return " ".join(out)


def from_text(text: str, line: int, chain: list[int], words: frozenset[str] = frozenset()) -> list[Candidate]:
    """Formulas typed into a line of prose: the runs between prose words, split into sides of equations."""
    text = spoken(_MARKUP.sub(lambda m: m[1] or " ", prepare(text[:MAX_TEXT])))
    text = _PARENTHETICAL.sub(lambda m: _remark(m, words), text)
    out: list[Candidate] = []
    runs: list[str] = []
    last = 0
    for match in _WORD.finditer(text):
        if _is_prose_word(text, match.start(), match.end(), words):
            runs.append(text[last : match.start()])
            last = match.end()
    runs.append(text[last:])
    for run in runs:
        for part in _SENTENCE_END.split(run):
            part = part.strip()
            if part and any(c.isalpha() for c in part):
                out.extend(_sides(part, line, chain))
    return out


def candidates(pieces: list[Piece], words: frozenset[str] = frozenset()) -> list[Candidate]:
    """Every candidate of the pieces, in document order, at most MAX_CANDIDATES. ``words`` are the rubric's
    function names, which are not prose."""
    out: list[Candidate] = []
    chain = [0]
    for piece in pieces:
        out.extend(from_math(piece.text, piece.line, chain, words) if piece.kind == "math" else _from_inline(piece, chain, words))
        if len(out) >= MAX_CANDIDATES:
            return out[:MAX_CANDIDATES]
    return out


def _from_inline(piece: Piece, chain: list[int], words: frozenset[str]) -> list[Candidate]:
    """A text piece may hold ``$…$``, ``\\(…\\)``, ``\\[…\\]`` and `code` spans: those are read as math."""
    out: list[Candidate] = []
    text = piece.text[:MAX_TEXT]
    line = piece.line
    for kind, chunk, offset in _spans(text):
        chunk_line = line + text.count("\n", 0, offset)
        if kind == "math":
            out.extend(from_math(chunk, chunk_line, chain, words))
        else:
            for k, row in enumerate(chunk.split("\n")):
                out.extend(from_text(row, chunk_line + k, chain, words))
    return out


_OPENERS = (("$$", "$$", "math"), ("\\[", "\\]", "math"), ("\\(", "\\)", "math"), ("$", "$", "math"), ("`", "`", "code"))


def _spans(text: str) -> list[tuple[str, str, int]]:
    """Split into (kind, text, offset) chunks in one pass; an opener with no closer is plain text."""
    out: list[tuple[str, str, int]] = []
    closed_after: dict[str, int] = {}  # a closer not found from here on is not found later either
    i = start = 0
    n = len(text)
    while i < n:
        for opener, closer, kind in _OPENERS:
            if text.startswith(opener, i) and not (opener == "$" and text.startswith("$$", i)):
                if closed_after.get(closer, n + 1) <= i:
                    continue
                end = text.find(closer, i + len(opener))
                if end == -1:
                    closed_after[closer] = i
                    continue
                if start < i:
                    out.append(("text", text[start:i], start))
                out.append(("math" if kind == "math" else "text", text[i + len(opener) : end], i + len(opener)))
                i = start = end + len(closer)
                break
        else:
            i += 1
            if i < n and text[i] not in "$\\`":  # no opener starts anywhere before the next of these
                found = _OPENER_START.search(text, i)
                i = found.start() if found else n
            continue
    if start < n:
        out.append(("text", text[start:], start))
    return out


_OPENER_START = re.compile(r"[$\\`]")
