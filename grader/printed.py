"""Two printed outputs compared by their numbers: what a learner pasted against what their script prints now.

The same script prints the same lines, so lines are paired by their wording (each measured number replaced by
``#``, small integer labels such as ``y = 3`` kept, spacing around brackets and signs ignored), then number by
number. A line whose wording changed a little (``max_err = #``, ``max_err: #``) and whose count of numbers did
not is still paired, in order: a print format changed between the two runs. Two numbers agree within half a
unit of each one's last printed digit, within a platform's rounding (a relative 1e-6), or when both are
rounding noise (below 1e-8: a finite difference's error differs from one machine to the next). Everything is
bounded: the texts are cut to a fixed size before any regex or alignment runs.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

MAX_TEXT = 64 << 10
MAX_LINES = 1_000
MAX_LINE = 4_000
MAX_NUMBERS = 200  # per line
NOISE = 1e-8
SIMILAR = 0.75
RELATIVE = 1e-6

_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf(?:inity)?)(?![\w.])", re.IGNORECASE)


_BRACKETS = re.compile(r"\s*([\[\](){},;:=])\s*")  # numpy pads "[ 0.1" but not "[-0.1": spacing is no wording


@dataclass(frozen=True)
class Number:
    text: str
    value: float

    @property
    def resolution(self) -> float:
        """One unit in the last printed place: ``0.246`` → 0.001, ``1.1e-11`` → 1e-12, ``5`` → 1."""
        mantissa, _, exponent = self.text.lower().partition("e")
        decimals = len(mantissa.partition(".")[2])
        return 10.0 ** ((int(exponent) if exponent else 0) - decimals)


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, in its own text
    text: str
    wording: str
    numbers: tuple[Number, ...]


@dataclass(frozen=True)
class Disagreement:
    pasted: Line
    rerun: Line
    pasted_number: Number
    rerun_number: Number


@dataclass(frozen=True)
class Comparison:
    compared: int  # numbers paired, whose value is not a small integer label (y = 0)
    agreeing: int
    disagreements: tuple[Disagreement, ...]
    unmatched: int  # pasted numbers with no counterpart in the re-run
    pasted_numbers: int
    changing: int = 0  # paired numbers left out: they differ from one re-run to the next (a random input, no seed)


def lines_of(text: str) -> list[Line]:
    """The text's lines that hold a number (bounded: at most MAX_LINES lines of MAX_LINE characters)."""
    out = []
    for index, raw in enumerate(text[:MAX_TEXT].splitlines()[:MAX_LINES], start=1):
        line = raw[:MAX_LINE]
        found = [m for m in _NUMBER.finditer(line)][:MAX_NUMBERS]
        if not found:
            continue
        numbers = tuple(Number(m.group(), _value(m.group())) for m in found)
        wording = " ".join(_NUMBER.sub(_placeholder, line).split()).lower()
        wording = _BRACKETS.sub(r"\1", wording)
        out.append(Line(index, line.strip(), wording, numbers))
    return out


def _placeholder(match: re.Match[str]) -> str:
    """A measured number becomes ``#``; a small integer label (``y = 3``, ``row 2``) stays, so lines pair by it."""
    return match.group() if _label(Number(match.group(), _value(match.group()))) else "#"


def _value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def agree(a: Number, b: Number) -> bool:
    """Equal within half a unit of each one's last printed digit or a platform's relative rounding; two values below
    NOISE always agree (a finite difference's rounding error changes from one machine and print format to the next)."""
    x, y = a.value, b.value
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    if abs(x) < NOISE and abs(y) < NOISE:
        return True
    tolerance = max(0.5 * (a.resolution + b.resolution), RELATIVE * max(abs(x), abs(y)))
    return abs(x - y) <= tolerance * 1.0000001


def similar(a: str, b: str) -> bool:
    """Two wordings of one print statement (a format changed: ``max_err = #`` and ``max_err: #``), bounded."""
    return difflib.SequenceMatcher(None, a[:200], b[:200], autojunk=False).ratio() >= SIMILAR


def _label(number: Number) -> bool:
    """A small integer (``y = 0``, ``row 3``): it names a line more than it measures anything."""
    return number.text.lstrip("+-").isdigit() and abs(number.value) < 100


def compare(pasted: str, rerun: str, unstable: frozenset[tuple[int, int]] = frozenset()) -> Comparison:
    """Pair the pasted output's numbers with the re-run's. ``unstable``: (re-run line, position) pairs whose number
    differed between two re-runs (a random input with no seed): one of them that disagrees is left out."""
    ours, theirs = lines_of(pasted), lines_of(rerun)
    pairs: list[tuple[Line, Line]] = []
    matcher = difflib.SequenceMatcher(None, [l.wording for l in ours], [l.wording for l in theirs], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs += zip(ours[i1:i2], theirs[j1:j2])
        elif tag == "replace":
            pairs += [(a, b) for a, b in zip(ours[i1:i2], theirs[j1:j2])
                      if len(a.numbers) == len(b.numbers) and similar(a.wording, b.wording)]
    pairs = _monotone(pairs, theirs, unstable)
    compared = agreeing = changing = 0
    paired_numbers = 0
    disagreements = []
    for a, b in pairs:
        for position, (x, y) in enumerate(zip(a.numbers, b.numbers)):
            paired_numbers += not _label(x)
            if _label(x) and _label(y) and x.value == y.value:
                continue
            if agree(x, y):
                compared += 1
                agreeing += 1
            elif (b.number, position) in unstable:
                changing += 1
            else:
                compared += 1
                disagreements.append(Disagreement(a, b, x, y))
    total = sum(not _label(n) for l in ours for n in l.numbers)
    return Comparison(compared, agreeing, tuple(disagreements), total - paired_numbers, total, changing)


def _fits(a: Line, b: Line, unstable: frozenset[tuple[int, int]]) -> bool:
    return len(a.numbers) == len(b.numbers) and all(
        agree(x, y) or (b.number, k) in unstable for k, (x, y) in enumerate(zip(a.numbers, b.numbers)))


def _monotone(pairs: list[tuple[Line, Line]], theirs: list[Line],
              unstable: frozenset[tuple[int, int]]) -> list[tuple[Line, Line]]:
    """A pasted line that disagrees with its partner takes the next re-run line of the same wording that agrees, in
    order: a long loop log pasted as its first and last lines (``...`` between) pairs its tail with the run's tail."""
    position = {id(line): j for j, line in enumerate(theirs)}
    out, last = [], -1
    for a, b in pairs:
        j = position[id(b)]
        if not _fits(a, b, unstable):
            for k in range(max(last + 1, 0), len(theirs)):
                if theirs[k].wording == a.wording and _fits(a, theirs[k], unstable):
                    b, j = theirs[k], k
                    break
        out.append((a, b))
        last = max(last, j)
    return out


def unstable_numbers(first: str, second: str) -> frozenset[tuple[int, int]]:
    """Where two re-runs of the same script print different numbers: (line, position) in ``first``."""
    a, b = lines_of(first), lines_of(second)
    out = set()
    for x, y in zip(a, b):
        for position, (p, q) in enumerate(zip(x.numbers, y.numbers)):
            if p.text != q.text:
                out.add((x.number, position))
        if x.wording != y.wording:
            out.update((x.number, position) for position in range(len(x.numbers)))
    return frozenset(out)
