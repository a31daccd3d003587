"""Progress of a class run on stderr: a live bar on a terminal, plain periodic lines in a log, nothing with -q."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any, Protocol, TextIO

from grader.i18n import msg, plural, say


class Progress(Protocol):
    def start(self, total: int, reused: int, graded: int | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


class Silent:
    """``-q``, or a single learner: progress would only be noise."""

    def start(self, total: int, reused: int, graded: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class Lines:
    """A log or CI output: one line every ``every`` seconds and a last one; no carriage returns, no colour."""

    def __init__(self, stream: TextIO, every: float = 5.0, lang: str = "en") -> None:
        self._stream, self._every, self._lang = stream, every, lang
        self._total = self._done = 0
        self._started = self._last = 0.0

    def start(self, total: int, reused: int, graded: int | None = None) -> None:
        self._total, self._started = total, time.monotonic()
        self._last = self._started
        print(_opening(total, reused, graded, self._lang), file=self._stream, flush=True)

    def advance(self, n: int = 1) -> None:
        self._done += n
        now = time.monotonic()
        if now - self._last >= self._every and self._done < self._total:
            self._last = now
            self._line(now)

    def close(self) -> None:
        if self._total:
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        eta = (self._total - self._done) / rate if rate and self._done < self._total else 0.0
        tail = msg("progress.left", seconds=eta) if eta else msg("progress.took", seconds=elapsed)
        line = msg("progress.line", done=self._done, total=self._total, rate=rate, tail=tail)
        print(f"grade: {say(line, self._lang)}", file=self._stream, flush=True)


class Bar:
    """An interactive terminal: tqdm's bar with count, rate and ETA (tqdm draws no colour unless asked)."""

    def __init__(self, stream: TextIO, lang: str = "en") -> None:
        self._stream, self._lang = stream, lang
        self._bar: Any = None

    def start(self, total: int, reused: int, graded: int | None = None) -> None:
        if not total:
            print(_opening(total, reused, graded, self._lang), file=self._stream, flush=True)
            return
        import tqdm

        tqdm.tqdm.monitor_interval = 0  # no monitor thread: the batch forks worker processes
        unit, desc, word = (say(m, self._lang) for m in (msg("progress.bar.unit"), msg("progress.bar.grading"),
                                                         msg("progress.bar.reused")))
        self._bar = tqdm.tqdm(total=total, file=self._stream, unit=unit, desc=desc, dynamic_ncols=True,
                              postfix={word: reused} if reused else None, leave=True, smoothing=0.1)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _opening(total: int, reused: int, graded: int | None = None, lang: str = "en") -> str:
    """``graded``: of ``total``, how many are graded; the others only have their reports written again (an
    override changed, a report was deleted), which an instructor must not read as a regrade."""
    if not total:
        return f"grade: {say(plural('progress.all_unchanged', reused), lang)}"
    graded = total if graded is None else graded
    if graded == total:
        unchanged = msg("progress.unchanged", n=reused) if reused else ""
        return f"grade: {say(plural('progress.grading', total, unchanged=unchanged), lang)}"
    more = msg("progress.more_unchanged", n=reused) if reused else ""
    reports = plural("progress.rewriting", total - graded)
    if not graded:
        return f"grade: {say(msg('progress.nothing_again', reports=reports, more=more), lang)}"
    return f"grade: {say(plural('progress.grading_and', graded, reports=reports, more=more), lang)}"


def choose(quiet: bool, stream: TextIO | None = None, lang: str = "en") -> Progress:
    """A bar only for a real terminal that is not ``TERM=dumb``; ``NO_COLOR`` is honoured by never colouring. ``lang``:
    the instructor's, whose terminal it is."""
    stream = stream or sys.stderr
    if quiet:
        return Silent()
    interactive = getattr(stream, "isatty", lambda: False)() and os.environ.get("TERM", "") != "dumb" \
        and shutil.get_terminal_size((80, 24)).columns > 0  # a pty with no size set cannot draw a bar
    return Bar(stream, lang) if interactive else Lines(stream, lang=lang)
