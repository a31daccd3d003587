"""Similar submissions across a class: code by winnowed token fingerprints (as MOSS does), prose by word shingles.

Information for the instructor, never a grade change and never in a learner's report. Code is read as Python
tokens with every name but attributes (``np.exp`` keeps ``exp``) made one symbol, numbers and strings likewise,
comments and layout dropped: renamed variables and reordered functions still match, since a function's tokens
stay together. Prose is the deliverable's words outside code blocks, folded to lower case without accents.
What every learner is given (the rubric's ``given`` files: the lab page's snippets and text) is left out, and
so is any passage shared by more learners than ``common``: the idiom of a class is not a copy. Pairs are found
through an index of fingerprints, so the work grows with the class, not with its square.
"""

from __future__ import annotations

import hashlib
import io
import keyword
import re
import tokenize
import unicodedata
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.model import Rubric
from grader.submission import Submission

MAX_SOURCE = 256 << 10
MAX_PROSE = 128 << 10
CODE_K, CODE_WINDOW = 12, 6  # a match of CODE_K + CODE_WINDOW - 1 tokens is always seen
PROSE_K = 4
MIN_SHARED = {"code": 10, "prose": 20}  # shared fingerprints a pair needs for its share to mean anything
GIVEN_K = {"code": 6, "prose": 3}  # a given passage is recognised by runs this long, inserts between them allowed
_GIVEN = np.iinfo(np.int64).max
THRESHOLD = 0.6
SHOWN_LINES = 400

_FENCE = re.compile(r"^\s*(```|~~~)")
_WORD = re.compile(r"[^\W\d_]{2,}|\d+(?:[.,]\d+)?", re.UNICODE)


@dataclass(frozen=True)
class Text:
    """One learner's code or prose for one lab: its fingerprints and the lines each one covers."""

    learner: str
    lab: str
    kind: str  # "code" or "prose"
    name: str  # the file, as the learner named it
    packed: bytes  # the text, compressed: shown only for the few pairs listed
    hashes: np.ndarray  # int64 fingerprints (arrays, not dicts: a class of 1,000 keeps 4,000 of these)
    spans: np.ndarray  # int32 (first line, last line) of each, 1-based

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(zlib.decompress(self.packed).decode("utf-8").splitlines())

    @property
    def prints(self) -> dict[int, tuple[int, int]]:
        """fingerprint → (first line, last line)"""
        return dict(zip(self.hashes.tolist(), map(tuple, self.spans.tolist())))


@dataclass(frozen=True)
class Pair:
    lab: str
    first: str
    second: str
    code: float | None  # shared share of the smaller side's fingerprints, None when too little to score
    prose: float | None
    first_lines: dict[str, tuple[int, ...]]  # kind → the lines of ``first`` in a shared passage
    second_lines: dict[str, tuple[int, ...]]
    first_text: dict[str, tuple[str, ...]]  # kind → the text's lines (SHOWN_LINES at most), to show side by side
    second_text: dict[str, tuple[str, ...]]
    names: dict[str, tuple[str, str]]  # kind → the two files' names

    @property
    def score(self) -> float:
        return max(self.code or 0.0, self.prose or 0.0)


_TOKEN_IDS: dict[str, int] = {}
_FSTRING_START = getattr(tokenize, "FSTRING_START", -1)  # Python 3.12 tokenizes f-strings in parts


def _token_id(token: str) -> int:
    """A stable number per token (the same in every process, unlike ``hash``), computed once per distinct token."""
    value = _TOKEN_IDS.get(token)
    if value is None:
        value = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=7).digest(), "little")
        if len(_TOKEN_IDS) < 200_000:
            _TOKEN_IDS[token] = value
    return value


def code_tokens(source: str) -> list[tuple[str, int]]:
    """Normalised tokens and their lines; a file Python cannot tokenize is read as words and symbols."""
    out: list[tuple[str, int]] = []
    previous = ""
    try:
        for token in tokenize.generate_tokens(io.StringIO(source[:MAX_SOURCE]).readline):
            kind, text, line = token.type, token.string, token.start[0]
            if kind in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER):
                continue
            if kind == tokenize.NAME:
                symbol = text if keyword.iskeyword(text) or previous == "." else "V"
            elif kind == tokenize.NUMBER:
                symbol = "N"
            elif kind == tokenize.STRING or kind == _FSTRING_START:
                symbol = "S"
            elif kind in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                symbol = {tokenize.NEWLINE: ";", tokenize.INDENT: "{", tokenize.DEDENT: "}"}[kind]
            else:
                symbol = text
            previous = text
            out.append((symbol, line))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        out = [(("V" if m.group()[0].isalpha() else m.group()), number)
               for number, line in enumerate(source[:MAX_SOURCE].splitlines(), 1)
               for m in re.finditer(r"\w+|[^\w\s]", line)]
    return out


def prose_words(markdown: str) -> list[tuple[str, int]]:
    """The deliverable's words outside fenced code blocks, folded (lower case, no accents), with their lines."""
    out: list[tuple[str, int]] = []
    fenced = False
    for number, line in enumerate(markdown[:MAX_PROSE].splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        folded = line.lower() if line.isascii() else "".join(
            c for c in unicodedata.normalize("NFKD", line.lower()) if not unicodedata.combining(c))
        out += [(m.group(), number) for m in _WORD.finditer(folded[:2_000])]
    return out


def _gram_hashes(ids: Sequence[int], k: int) -> list[int]:
    return [hash(tuple(ids[i:i + k])) for i in range(len(ids) - k + 1)]


def given_grams(sources: Iterable[str], kind: str) -> frozenset[int]:
    """Short k-grams (GIVEN_K tokens or words) of what every learner is given: the lab page's code and sentences."""
    out: set[int] = set()
    for source in sources:
        tokens = code_tokens(source) if kind == "code" else prose_words(source)
        out.update(_gram_hashes([_token_id(t) for t, _ in tokens], GIVEN_K[kind]))
    return frozenset(out)


def fingerprints(tokens: Sequence[tuple[str, int]], k: int, window: int, given: frozenset[int] = frozenset(),
                 given_k: int = 6) -> dict[int, tuple[int, int]]:
    """Winnowing (Schleimer, Wilkerson and Aiken, 2003): the smallest hash of every window of k-grams. A k-gram's
    hash is that of its tokens' stable numbers (a tuple of ints hashes the same in every process). A k-gram at
    least half made of what is ``given`` (tokens inside a short k-gram of the page) is never chosen: the page's
    code with a learner's print or two between its lines is still the page's."""
    if len(tokens) < k:
        return {}
    ids = [_token_id(t) for t, _ in tokens]
    grams = np.fromiter(_gram_hashes(ids, k), dtype=np.int64, count=len(ids) - k + 1)
    if given:
        covered = np.zeros(len(ids) + 1, dtype=np.int64)
        for i, value in enumerate(_gram_hashes(ids, given_k)):
            if value in given:
                covered[i] += 1
                covered[i + given_k] -= 1
        inside = np.cumsum(covered)[:len(ids)] > 0
        share = np.convolve(inside.astype(np.int64), np.ones(k, dtype=np.int64), mode="valid")
        grams[share * 2 >= k] = _GIVEN
    if window <= 1 or len(grams) <= window:
        picked = range(len(grams)) if window <= 1 else [int(grams.argmin())]
    else:
        lows = np.lib.stride_tricks.sliding_window_view(grams, window).argmin(axis=1) + np.arange(len(grams) - window + 1)
        picked = np.unique(lows).tolist()
    chosen: dict[int, tuple[int, int]] = {}
    for i in picked:
        if grams[i] != _GIVEN:
            chosen.setdefault(int(grams[i]), (tokens[i][1], tokens[i + k - 1][1]))
    return chosen


def _text(learner: str, lab: str, kind: str, name: str, text: str, prints: dict[int, tuple[int, int]]) -> Text:
    return Text(learner, lab, kind, name, zlib.compress(text.encode("utf-8", "replace"), 6),
                np.fromiter(prints, dtype=np.int64, count=len(prints)),
                np.array(list(prints.values()), dtype=np.int32).reshape(-1, 2))


def code_text(learner: str, lab: str, name: str, source: str, given: frozenset[int] = frozenset()) -> Text:
    source = source[:MAX_SOURCE]
    return _text(learner, lab, "code", name, source,
                 fingerprints(code_tokens(source), CODE_K, CODE_WINDOW, given, GIVEN_K["code"]))


def prose_text(learner: str, lab: str, name: str, markdown: str, given: frozenset[int] = frozenset()) -> Text:
    markdown = markdown[:MAX_PROSE]
    return _text(learner, lab, "prose", name, markdown,
                 fingerprints(prose_words(markdown), PROSE_K, 1, given, GIVEN_K["prose"]))


def common_limit(learners: int) -> int:
    """A passage shared by more learners than this is the class's idiom (or the page's), not a copy."""
    return max(4, learners // 50)


def similar_pairs(texts: Sequence[Text], threshold: float = THRESHOLD, common: int | None = None) -> list[Pair]:
    """Every pair of learners of a lab whose code or prose shares at least ``threshold`` of the smaller side's
    fingerprints, and at least MIN_SHARED of them (what is common left out); best first."""
    by_lab: dict[str, list[Text]] = defaultdict(list)
    for text in texts:
        by_lab[text.lab].append(text)
    pairs: list[Pair] = []
    for lab, mine in sorted(by_lab.items()):
        learners = sorted({t.learner for t in mine})
        limit = common if common is not None else common_limit(len(learners))
        scores: dict[str, dict[tuple[str, str], float]] = {}
        shared_prints: dict[str, dict[tuple[str, str], list[int]]] = {}
        for kind, least in (("code", MIN_SHARED["code"]), ("prose", MIN_SHARED["prose"])):
            sides = {t.learner: t for t in mine if t.kind == kind}
            index: dict[int, list[str]] = defaultdict(list)
            for learner, text in sides.items():
                for value in text.hashes.tolist():
                    index[value].append(learner)
            rare = {value: who for value, who in index.items() if len(who) <= limit}
            sizes = Counter(learner for who in rare.values() for learner in who)
            overlap: Counter[tuple[str, str]] = Counter()
            where: dict[tuple[str, str], list[int]] = defaultdict(list)
            for value, who in rare.items():
                for i, a in enumerate(who):
                    for b in who[i + 1:]:
                        key = (a, b) if a < b else (b, a)
                        overlap[key] += 1
                        where[key].append(value)
            scores[kind] = {key: count / min(sizes[key[0]], sizes[key[1]]) for key, count in overlap.items()
                            if count >= least}
            shared_prints[kind] = where
        flagged = {key for kind in scores for key, score in scores[kind].items() if score >= threshold}
        for a, b in flagged:
            texts_of = {(t.learner, t.kind): t for t in mine if t.learner in (a, b)}
            lines_a: dict[str, tuple[int, ...]] = {}
            lines_b: dict[str, tuple[int, ...]] = {}
            for kind in ("code", "prose"):
                shared = shared_prints[kind].get((a, b), [])
                lines_a[kind] = _covered(texts_of.get((a, kind)), shared)
                lines_b[kind] = _covered(texts_of.get((b, kind)), shared)
            kinds = [kind for kind in ("code", "prose") if (a, kind) in texts_of and (b, kind) in texts_of]
            pairs.append(Pair(lab, a, b, _rounded(scores["code"].get((a, b))), _rounded(scores["prose"].get((a, b))),
                              lines_a, lines_b,
                              {kind: texts_of[(a, kind)].lines[:SHOWN_LINES] for kind in kinds},
                              {kind: texts_of[(b, kind)].lines[:SHOWN_LINES] for kind in kinds},
                              {kind: (texts_of[(a, kind)].name, texts_of[(b, kind)].name) for kind in kinds}))
    return sorted(pairs, key=lambda p: (-p.score, p.lab, p.first, p.second))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(min(value, 1.0), 3)


def _covered(text: Text | None, shared: Iterable[int]) -> tuple[int, ...]:
    if text is None:
        return ()
    lines: set[int] = set()
    prints = text.prints
    for value in shared:
        first, last = prints.get(value, (0, -1))
        lines.update(range(first, last + 1))
    return tuple(sorted(lines))


def read_class(learners: Sequence[Path], rubrics: Sequence[Rubric], lab: str | None = None,
               handed: Sequence[tuple[Path, Rubric, Submission]] | None = None) -> list[Text]:
    """Each learner's code and prose for every lab they handed in (or ``lab``), found the way grading finds them
    (``handed``: already found, ``grader.submission.handed_in``)."""
    from grader.learnerfiles import read_bytes
    from grader.submission import handed_in

    given = given_for(rubrics)
    texts: list[Text] = []
    for learner, rubric, found in handed if handed is not None else handed_in(learners, rubrics, lab):
        lab_name = rubric.lab
        if found.implementation is not None:
            source = found.module_source
            if source is None:
                try:
                    source = read_bytes(found.implementation, learner, MAX_SOURCE).decode("utf-8", "replace")
                except Exception:  # noqa: BLE001 - a file that cannot be read has nothing to compare
                    source = None
            if source:
                texts.append(code_text(learner.name, lab_name, found.implementation.name, source, given[lab_name]["code"]))
        markdown = found.markdown
        if markdown is None and found.deliverable is not None:
            try:
                markdown = read_bytes(found.deliverable, learner, MAX_PROSE).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001
                markdown = None
        if markdown and found.deliverable is not None:
            texts.append(prose_text(learner.name, lab_name, found.deliverable.name, markdown, given[lab_name]["prose"]))
    return texts


def given_for(rubrics: Sequence[Rubric]) -> dict[str, dict[str, frozenset[int]]]:
    """Per lab, the short k-grams of its rubric's ``given`` files and of the page sentences it quotes (``not_from``)."""
    out: dict[str, dict[str, set[int]]] = {}
    for rubric in rubrics:
        code, prose = [], []
        for path in rubric.given:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            (code if str(path).endswith(".py") else prose).append(text)
        for check in rubric.checks:
            prose += [str(t) for t in check.spec.get("not_from", ()) or ()]
        out[rubric.lab] = {"code": given_grams(code, "code"), "prose": given_grams(prose, "prose")}
    return out
