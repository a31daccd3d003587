"""Reading learners' prose: sentences and headings (formulas are read as mathematics by grader.maths).

Pure functions. Everything lab-specific (the words a heading may use) arrives as an argument.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

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
_AMBIGUOUS = frozenset("etc hrs hr hrs min mins sec secs approx ca vol no pp ed eds".split())
# ends a sentence only when a capitalised one follows (so does a single letter: "p. 3", "h. The")
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
    if word in _AMBIGUOUS or len(word) == 1 and word.isalpha():
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


def heading_matches(heading: str, words: Sequence[str]) -> str | None:
    """The first entry naming this heading: its words begin consecutive words of the heading.

    "deriv" names "Derivative of the loss" and "Derivación"; "lesson" names "Lessons learned"; "part a"
    names "Part A — on paper". Entries shorter than four letters match whole words only (with a plural),
    so "a" never names "analytic"."""
    return _heading_matches(heading[:300], tuple(str(w) for w in words))


@functools.lru_cache(maxsize=8192)
def _heading_matches(heading: str, words: tuple[str, ...]) -> str | None:
    have = normalise_heading(heading).split()
    for entry in words:
        wanted = _entry_words(entry)
        if not wanted or len(wanted) > len(have):
            continue
        for start in range(len(have) - len(wanted) + 1):
            if all(_word_matches(have[start + k], w) for k, w in enumerate(wanted)):
                return entry
    return None


@functools.lru_cache(maxsize=1024)
def _entry_words(entry: str) -> tuple[str, ...]:
    return tuple(normalise_heading(entry).split())


def _word_matches(word: str, stem: str) -> bool:
    if word == stem or word in (stem + "s", stem + "es"):
        return True
    return len(stem) >= 4 and word.startswith(stem)
