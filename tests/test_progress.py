"""Progress on stderr: a bar on a terminal, plain lines in a log, nothing when quiet."""

from __future__ import annotations

import io

import pytest

from grader import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream", "quiet", "kind"), [
    (_Terminal(), False, progress.Bar),
    (io.StringIO(), False, progress.Lines),
    (_Terminal(), True, progress.Silent),
])
def test_the_display_fits_where_it_goes(stream: io.StringIO, quiet: bool, kind: type) -> None:
    assert isinstance(progress.choose(quiet, stream), kind)


def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(progress.choose(False, _Terminal()), progress.Lines)


def test_the_bar_shows_count_rate_and_no_colour() -> None:
    stream = _Terminal()
    bar = progress.Bar(stream)
    bar.start(4, reused=1)
    bar.advance()
    bar.advance(3)
    bar.close()
    text = stream.getvalue()
    assert "4/4" in text and "learner/s" in text and "reused=1" in text
    assert "\x1b[3" not in text  # no colour codes


def test_plain_lines_say_count_rate_and_time_left() -> None:
    stream = io.StringIO()
    lines = progress.Lines(stream, every=0.0)
    lines.start(3, reused=0)
    lines.advance()
    lines.advance()
    lines.advance()
    lines.close()
    text = stream.getvalue().splitlines()
    assert text[0] == "grade: grading 3 learners"
    assert "1/3 learners" in text[1] and "left" in text[1]
    assert text[-1].startswith("grade: 3/3 learners") and "\r" not in stream.getvalue()
