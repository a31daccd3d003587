"""Reading learners' prose: formula notation, sentences and headings.

Pure functions. Everything lab-specific (synonyms, formulas) arrives as an argument, so
a rubric names a result once per mathematical form and never once per way of typing it.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Callable, Sequence

# --- formulas -----------------------------------------------------------------------

_GREEK_NAMES = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu "
    "nu xi omicron pi rho sigma tau upsilon phi chi psi omega"
).split()
_GREEK_CAPITALS = "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split()

# What a LaTeX command becomes; a command not listed loses only its backslash (\exp -> exp).
_COMMANDS: dict[str, str] = {
    **dict(zip(_GREEK_NAMES, "αβγδεζηθικλμνξοπρστυφχψω")),
    **dict(zip(_GREEK_CAPITALS, "ΓΔΘΛΞΠΣΥΦΨΩ")),
    "varepsilon": "ε", "vartheta": "θ", "varpi": "π", "varrho": "ρ", "varsigma": "σ",
    "varphi": "φ",
    **dict.fromkeys(
        "operatorname mathrm text textrm textit textbf texttt textsf textnormal textup "
        "mathbf boldsymbol bm pmb mathit mathsf mathbb mathcal mathtt mathnormal vec emph boxed "
        "hat widehat tilde widetilde bar overline "
        "displaystyle textstyle scriptstyle limits nolimits".split(),
        "",
    ),
    **dict.fromkeys(
        "left right middle big Big bigg Bigg bigl bigr Bigl Bigr biggl biggr Biggl Biggr "
        "bigm Bigm quad qquad cdot cdotp times langle rangle lbrace rbrace lbrack rbrack "
        "lparen rparen".split(),
        "",
    ),
    "top": "T", "intercal": "T",
    "sum": "∑", "prod": "∏", "partial": "∂", "nabla": "∇", "infty": "∞",
    "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠",
    "approx": "≈", "in": "∈", "to": "→", "rightarrow": "→", "otimes": "⊗",
    "ldots": "...", "cdots": "...", "dots": "...", "sqrt": "√",
    "Vert": "‖", "lVert": "‖", "rVert": "‖", "vert": "|", "lvert": "|", "rvert": "|",
    "mid": "|",
}  # fmt: skip

_SYMBOLS = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2796", "-"),
        **dict.fromkeys("·⋅∙×∗⟨⟩〈〉", ""),
        "⊤": "T",
        "Σ": "∑",
        "Π": "∏",
    }
)

_ARG = r"\{((?:[^{}]|\{[^{}]*\})*)\}"
_FRAC = re.compile(r"\\[dt]?frac\s*" + _ARG + r"\s*" + _ARG)
_LATEX_STEPS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\\\\"), " "),
    (re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}"), " "),
    (re.compile(r"\\(?:left|right)\s*\."), " "),
    (re.compile(r"\\[,;:!>\s]"), " "),
    (re.compile(r"\\\|"), "‖"),
    (re.compile(r"\\([^A-Za-z0-9\s])"), r"\1"),
)
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_ESCAPED_BRACES = (re.compile(r"\\\{"), re.compile(r"\\\}"))
_INDICATOR_LETTER = re.compile(r"\\math(?:bb|bf|rm)\s*\{?\s*([1I])\s*\}?")
_INDICATOR_BRACES = re.compile(r"(?<![\w.])1\s*_?\s*\{([^{}]*=[^{}]*)\}")
_DROPPED = re.compile(r"[\s^_{}$*&\\]")
_SUBSCRIPT_COMMAS = re.compile(r"_\{([^{}]*)\}")
_ATOM_PARENS = re.compile(r"\(([^()+\-=/<>≤≥≠]*)\)")
_DOUBLE_PARENS = re.compile(r"\(\(([^()]*(?:\([^()]*\)[^()]*)*)\)\)")
_SYMMETRIC: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"δ([a-z])([a-z])"), lambda m: "δ" + "".join(sorted(m[1] + m[2]))),
    (re.compile(r"\(([a-z0-9])=([a-z0-9])\)"), lambda m: "({}={})".format(*sorted((m[1], m[2])))),
)
_ASCII_SPELLINGS: tuple[tuple[str, str], ...] = (
    ("<=", "≤"),
    (">=", "≥"),
    ("!=", "≠"),
    ("->", "→"),
    ("||", "‖"),
    ("one-hot", "onehot"),
    ("delta", "δ"),
)


@functools.lru_cache(maxsize=16384)
def normalise_formula(text: str) -> str:
    """One canonical string for LaTeX, Unicode and ASCII spellings of the same formula.

    Layout (spaces, brackets, sub/superscript marks, multiplication dots) is discarded,
    signs and relations are kept, so ``diag(p) - pp^T`` never equals ``diag(p) - p``.
    """
    text = unicodedata.normalize("NFKC", text).translate(_SYMBOLS)
    text = _INDICATOR_LETTER.sub("1", text)
    text = _SUBSCRIPT_COMMAS.sub(lambda m: "_{" + m[1].replace(",", "") + "}", text)
    text = _ESCAPED_BRACES[1].sub(")", _ESCAPED_BRACES[0].sub("(", text))
    for pattern, replacement in _LATEX_STEPS:
        text = pattern.sub(replacement, text)
    count = 1
    while count:
        text, count = _FRAC.subn(r"(\1)/(\2)", text)
    text = _COMMAND.sub(lambda match: _COMMANDS.get(match[1], match[1]), text)
    text = _INDICATOR_BRACES.sub(r"1(\1)", text)
    text = _DROPPED.sub("", text.replace("[", "(").replace("]", ")")).lower()
    for spelling, canonical in _ASCII_SPELLINGS:
        text = text.replace(spelling, canonical)
    text = unicodedata.normalize("NFKC", text)
    count = 1
    while count:  # parentheses around a single term carry no meaning: (p), diag(p), (∂L)/(∂z); nor do doubled ones
        text, count = _ATOM_PARENS.subn(r"\1", text)
        text, doubled = _DOUBLE_PARENS.subn(r"(\1)", text)
        count += doubled
    for pattern, reorder in _SYMMETRIC:
        text = pattern.sub(reorder, text)
    return text


_INDEX_POOL = "ijklmnabcdrstuvw"
_SUBSCRIPT_GROUP = re.compile(r"_\{([a-z]+)\}")
_SUBSCRIPT_ONE = re.compile(r"_([a-z])(?![a-z])")
_INDEX_PLACES = re.compile(r"_\{([a-z]+)\}|_([a-z])(?![a-z])|(?<![A-Za-z\\])([a-z])(?![A-Za-z])")


@functools.lru_cache(maxsize=1024)
def _variants(alternative: str) -> tuple[str, ...]:
    """The alternative with its index letters renamed every way (p_k − 1[k=y] is p_j − 1[j=y])."""
    found = {c for group in _SUBSCRIPT_GROUP.findall(alternative) for c in group} | set(_SUBSCRIPT_ONE.findall(alternative))
    indices = sorted(c for c in found if c in _INDEX_POOL)
    forms = {normalise_formula(alternative)}
    for names in itertools.permutations(_INDEX_POOL, len(indices)):
        mapping = dict(zip(indices, names))

        def rename(match: re.Match[str], mapping: dict[str, str] = mapping) -> str:
            letters = next(g for g in match.groups() if g is not None)
            return match[0].replace(letters, "".join(mapping.get(c, c) for c in letters))

        forms.add(normalise_formula(_INDEX_PLACES.sub(rename, alternative)))
    forms.discard("")
    return tuple(sorted(forms))


_SEGMENT = re.compile(r"\$+|\n|\\q?quad\b|\\(?:Long|long)?(?:left)?(?:right)?arrow\b|\\(?:iff|implies)\b|[⟺⇔⇒]")
_BEFORE = frozenset("=≈:,;→")
_AFTER = frozenset("=≈:,;.→")


_MATH_WORDS = frozenset("log ln exp diag sum max min det tr argmax argmin sin cos tanh".split())
_PROSE_WORD = re.compile(r"(?<![\\\w])([^\W\d_]{2,})\s+")


def _prose_break(match: re.Match[str]) -> str:
    """A prose word ("is", "decir", "gradient") ends an expression; a math word ("log", "diag") does not."""
    return match[0] if match[1].lower() in _MATH_WORDS else "\n"


def find_formula(text: str, alternatives: Sequence[str]) -> str | None:
    """The first alternative written as a whole expression somewhere in ``text``, in any notation and
    with any index letters: each side of an equation, a line, or a ``$…$`` span is compared, so
    ``-(p_j - 1[j=y])`` or ``2p_j - 1[j=y]`` never pass for ``p_j - 1[j=y]``."""
    segments = [normalise_formula(piece) for piece in _SEGMENT.split(_PROSE_WORD.sub(_prose_break, text))]
    segments = [segment for segment in segments if segment]
    for renamed in (False, True):  # most learners use the rubric's own letters: try those first, cheaply
        for alternative in alternatives:
            needles = _variants(alternative) if renamed else (normalise_formula(alternative),)
            if any(needle and _whole(segment, needle) for needle in needles for segment in segments):
                return alternative
    return None


def _whole(segment: str, needle: str) -> bool:
    """``needle`` occurs in ``segment`` bounded by the segment's ends or by relations and punctuation."""
    start = segment.find(needle)
    while start != -1:
        end = start + len(needle)
        if (start == 0 or segment[start - 1] in _BEFORE) and (end == len(segment) or segment[end] in _AFTER):
            return True
        start = segment.find(needle, start + 1)
    return False


# --- sentences ----------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_TERMINATOR = re.compile(r"(?P<marks>[.!?…]+)(?P<closers>[\"'”’»)\]*_]*)(?=\s|$)")
_LAST_WORD = re.compile(r"(\S+)$")
_NEXT_CHAR = re.compile(r"\s*(\S)")
_EJ = re.compile(r"\s*ej\.", re.IGNORECASE)
_ABBREVIATIONS = frozenset(
    "e.g i.e vs cf approx aprox fig figs eq eqs ec ecs ej p.ej pág pag núm num "
    "dr mr mrs ms sr sra srta".split()
)
_AMBIGUOUS = frozenset({"etc"})  # ends a sentence only when a capitalised one follows
_PLACEHOLDER = re.compile(
    r"\b(?:TODO|(?i:tbd|fixme|x{3,}))\b"
    r"|(?i:lorem\s+ipsum)"
    r"|^\W*(?i:fill\s+in)\b"
    r"|^\W*(?i:pendiente|por\s+hacer)\s*(?:$|[^\w\s])"
)
_BRACKETED = re.compile(r"\[[^\[\]]*\]|<[^<>]*>|\{[^{}]*\}")
_TRAILING_MARKS = re.compile(r"[\s.!?…]+$")


def sentences(text: str) -> list[str]:
    """Real sentences of prose: stubs, placeholders, fragments and repeats do not count.

    Used to check "write N sentences", so it errs towards not splitting: an
    abbreviation, a number or a dotted identifier never ends a sentence.
    """
    found: list[str] = []
    seen: set[str] = set()
    for block in _PARAGRAPH_BREAK.split(text):
        for piece in _split(block):
            sentence = " ".join(piece.split())
            key = _TRAILING_MARKS.sub("", sentence.casefold())
            if key in seen or not _is_sentence(sentence):
                continue
            seen.add(key)
            found.append(sentence)
    return found


def count_sentences(text: str) -> int:
    return len(sentences(text))


def _split(block: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _TERMINATOR.finditer(block):
        if _ends_sentence(block, match):
            pieces.append(block[start : match.end()])
            start = match.end()
    pieces.append(block[start:])
    return pieces


def _ends_sentence(block: str, match: re.Match[str]) -> bool:
    marks = match["marks"]
    if "?" in marks or "!" in marks:
        return True
    if marks != ".":
        return _capital_follows(block, match.end())
    before = _LAST_WORD.search(block, max(0, match.start() - 20), match.start())
    word = before[1].lstrip("([{\"'¿¡«“‘").casefold() if before else ""
    if word in _ABBREVIATIONS:
        return False
    if word in _AMBIGUOUS:
        return _capital_follows(block, match.end())
    if word == "p" and _EJ.match(block, match.end()):
        return False
    return True


def _capital_follows(block: str, end: int) -> bool:
    following = _NEXT_CHAR.match(block, end)
    return following is None or following[1].isupper() or following[1] in "¿¡"


def _is_sentence(sentence: str) -> bool:
    if _PLACEHOLDER.search(sentence):
        return False
    words = _BRACKETED.sub(" ", sentence).split()
    return sum(any(char.isalpha() for char in word) for word in words) >= 3


# --- headings -----------------------------------------------------------------------


def normalise_heading(text: str) -> str:
    """Caseless, accentless, punctuation-free: "Parte A — Derivación" is "parte a derivacion"."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    kept = "".join(
        char if char.isalnum() else " " for char in folded if not unicodedata.combining(char)
    )
    return " ".join(kept.split())


def heading_matches(heading: str, synonyms: Sequence[str]) -> str | None:
    """The first synonym naming this heading, as whole words and allowing a plural."""
    padded = f" {normalise_heading(heading)} "
    for synonym in synonyms:
        wanted = normalise_heading(synonym)
        if wanted and re.search(rf" {re.escape(wanted)}(?:e?s)? ", padded):
            return synonym
    return None
