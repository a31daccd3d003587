"""HTML, Markdown and terminal reports: goldens for layout, targeted tests for safety."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
from markdown_it import MarkdownIt

from grader import reports
from grader.errors import GraderError
from grader.model import CheckResult, Evidence, LabResult, Status
from grader.reports import (
    format_points,
    format_value,
    headline,
    markdown_code,
    render_html,
    render_markdown,
    render_summary,
    report_paths,
    write_reports,
)

GOLDEN = Path(__file__).parent / "golden"
NAN, INF = float("nan"), float("inf")
INJECTION = "<script>alert(1)</script>"


def passing() -> LabResult:
    return LabResult(
        learner="borja",
        lab="phase-04/lab-00",
        title="Finite differences",
        checks=(
            CheckResult("shape", "Output shape", Status.PASS, 2.0, 2.0, True, "ok"),
            CheckResult("values", "Gradient values", Status.PASS, 16.0, 16.0, True, "ok"),
            CheckResult("plot", "Error plot", Status.PASS, 2.0, 2.0, False, "ok"),
        ),
        seconds=0.12,
    )


def failing() -> LabResult:
    """Every status, evidence with nan/inf and a 2-D matrix, and learner text that tries to inject HTML."""
    return LabResult(
        learner="ana-maría",
        lab="phase-04/lab-01",
        title="Jacobians | by hand & by numpy",
        checks=(
            CheckResult("shape", "Output shape", Status.PASS, 2.0, 2.0, True, "shape (2, 3) as expected"),
            CheckResult(
                "jacobian",
                "Jacobian of f(x) = A x",
                Status.FAIL,
                0.0,
                6.0,
                True,
                f"Your jacobian printed {INJECTION} and returned the wrong matrix.\n"
                "Compare row 1 with the expected one.",
                Evidence(
                    input_label="A = [[1, 2, 3], [4, 5, 6]], x = ones(3)",
                    input_value=([[1, 2, 3], [4, 5, 6]], [1.0, 1.0, 1.0]),
                    expected=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
                    observed=[[1.0, 2.0, 3.0], [4.0, NAN, INF]],
                    max_abs_error=INF,
                    max_rel_error=NAN,
                    where=(1, 2),
                    cause="you divided by `h` twice | check the step",
                ),
            ),
            CheckResult(
                "step-size",
                "Error shrinks with the step",
                Status.FAIL,
                1.5,
                4.0,
                False,
                "The error should fall roughly like h squared for a central difference, but it grew for every "
                "step below 1e-6; this is floating-point cancellation, not a wrong formula.",
                Evidence(
                    input_label="steps",
                    input_value=[10.0**-k for k in range(1, 16)],
                    expected="decreasing",
                    observed=[0.1 * k for k in range(15)],
                ),
            ),
            CheckResult(
                "runs",
                "Script runs",
                Status.ERROR,
                0.0,
                3.0,
                False,
                "ZeroDivisionError: float division by zero (line 12)",
                Evidence(cause="h = 0 in the call"),
            ),
            CheckResult("hessian", "Hessian", Status.SKIP, 0.0, 2.0, False, "needs jacobian to pass first"),
            CheckResult(
                "plot", "Convergence plot", Status.REVIEW, 3.0, 3.0, False, "a human will look at the plot", hidden=True
            ),
        ),
        output=f"step 1 <b>ok</b>\n{INJECTION}\n",
        seconds=2.5,
    )


def check_golden(name: str, actual: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
        return
    assert path.is_file(), f"missing golden {path}: run pytest with --update-goldens"
    assert actual == path.read_text(encoding="utf-8"), f"{name} changed: review, then --update-goldens"


def test_html_golden(update_goldens: bool) -> None:
    check_golden("report_failing.html", render_html(failing()), update_goldens)


def test_markdown_golden(update_goldens: bool) -> None:
    check_golden("report_failing.md", render_markdown(failing()), update_goldens)


def test_summary_golden(update_goldens: bool) -> None:
    paths = {
        ("borja", "phase-04/lab-00"): Path("reports/borja/phase-04-lab-00.html"),
        ("ana-maría", "phase-04/lab-01"): Path("reports/ana-maría/phase-04-lab-01.html"),
    }
    check_golden("summary.txt", render_summary([passing(), failing()], paths), update_goldens)


def test_html_escapes_learner_text() -> None:
    html = render_html(failing())
    assert "<script" not in html
    assert "<b>" not in html
    assert "Your jacobian printed &lt;script&gt;alert(1)&lt;/script&gt; and" in html
    assert "&lt;b&gt;ok&lt;/b&gt;" in html
    assert "Jacobians | by hand &amp; by numpy" in html


def test_html_is_self_contained() -> None:
    html = render_html(failing())
    assert "<link" not in html.lower()
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", html, re.IGNORECASE)
    assert not re.search(r"<img\b[^>]*\bsrc\s*=\s*[\"']?https?:", html, re.IGNORECASE)
    assert "@import" not in html and "url(" not in html
    assert "http://" not in html and "https://" not in html


class _TagBalance(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_html_tags_balance() -> None:
    parser = _TagBalance()
    parser.feed(render_html(failing()))
    parser.close()
    assert parser.errors == [] and parser.stack == []


def test_html_marks_status_with_text_not_only_colour() -> None:
    html = render_html(failing())
    for badge in ("✓ PASS", "✗ FAIL", "! ERROR", "– SKIP", "? REVIEW"):
        assert f">{badge}</span>" in html
    assert "NOT PASSED" in html and "6.5 / 20.0 points" in html
    assert "PASSED" in render_html(passing()) and "NOT PASSED" not in render_html(passing())
    assert "Your code printed nothing when it was imported" in render_html(passing())


def _markdown_tables(text: str) -> tuple[list[list[str]], str]:
    """Rows of every table (cells as rendered HTML) and the rendered page."""
    html = MarkdownIt("commonmark").enable("table").render(text)
    rows = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)]
    return rows, html


def test_markdown_renders_as_intended() -> None:
    text = render_markdown(failing())
    rows, html = _markdown_tables(text)
    assert text.startswith("## ❌ NOT PASSED · 6.5/20.0 · ")
    assert "<script" not in html
    assert html.count("<details>") == 5
    checks = rows[: 1 + len(failing().checks)]
    assert all(len(row) == 4 for row in checks)
    assert checks[0] == ["Status", "Check", "Title", "Score"]
    assert checks[1] == ["✅ pass", "<code>shape</code>", "Output shape <em>(acceptance)</em>", "2.0/2.0"]
    assert all(len(row) == 2 for row in rows[len(checks) :])
    cause = [row for row in rows if row[0] == "<strong>Likely cause</strong>"]
    assert cause[0][1] == "<strong>you divided by `h` twice | check the step</strong>"
    where = [row for row in rows if row[0].startswith("Where")]
    assert where == [["Where (entry index, from 0)", "<code>[1, 2]</code>"]]
    assert render_markdown(passing()).startswith("## ✅ PASSED · 20.0/20.0 · ")


def test_summary_lists_failures_paths_and_total() -> None:
    text = render_summary([passing(), failing()])
    causes = [line for line in text.splitlines() if line.startswith("      likely cause: ")]
    assert causes == ["      likely cause: you divided by `h` twice | check the step", "      likely cause: h = 0 in the call"]
    lines = [line for line in text.splitlines() if line not in causes]
    assert lines[0].split() == ["borja", "phase-04/lab-00", "PASSED", "20.0/20.0"]
    assert lines[1].split()[:3] == ["ana-maría", "phase-04/lab-01", "NOT"]
    assert lines[2].startswith(f"    ✗ jacobian [acceptance]: Your jacobian printed {INJECTION}")
    assert lines[3].startswith("    ✗ step-size: ") and lines[3].endswith("…")
    assert len(lines[3]) == len("    ✗ step-size: ") + 100
    assert lines[4] == "    ✗ runs: ZeroDivisionError: float division by zero (line 12)"
    assert lines[5] == "    – needs jacobian to pass first — 1 check (hessian)"  # a skip, said once with why
    assert lines[-1] == "total: 1 of 2 passed, 1 check to review (grade review lists them)"  # the instructor's queue
    assert "\x1b" not in text and "report:" not in text
    assert render_summary([]) == "total: 0 of 0 passed\n"


@pytest.mark.parametrize(
    ("value", "multiline", "expected"),
    [
        (None, False, "None"),
        ("text", False, "text"),
        (["a", 1], False, "['a', 1]"),
        ((2.0,), False, "(2,)"),
        (True, False, "True"),
        (1 / 3, False, "0.333333"),
        (np.float32(0.25), False, "0.25"),
        ([NAN, INF, -INF, 1e-12], False, "[nan, inf, -inf, 1e-12]"),
        (np.arange(20), False, "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, …]"),
        (np.eye(2), False, "[[1, 0], [0, 1]]"),
        (np.eye(2), True, "[[1, 0],\n [0, 1]]"),
        (np.zeros((2, 1, 2)), True, "[[[0, 0]],\n [[0, 0]]]"),
        (np.zeros((14, 1), dtype=int), True, "[" + ",\n ".join(["[0]"] * 12 + ["…"]) + "]"),
    ],
)
def test_format_value(value: Any, multiline: bool, expected: str) -> None:
    assert format_value(value, multiline) == expected


def test_small_formatters() -> None:
    assert [format_points(x) for x in (18, 18.0, 2.5, 1 / 3, 21 + 1 / 3, 29.999999)] == ["18.0", "18.0", "2.5", "0.33", "21.33", "30.0"]
    assert headline("\n  first line  \nsecond") == "first line"
    assert headline("x" * 150) == "x" * 99 + "…"
    assert markdown_code("a|b") == "`a\\|b`"
    assert markdown_code("use `x`") == "`` use `x` ``"


def test_report_paths() -> None:
    html, md = report_paths(Path("reports"), failing())
    assert html == Path("reports/ana-maría/phase-04-lab-01.html")
    assert md == Path("reports/ana-maría/phase-04-lab-01.md")


def test_write_reports(tmp_path: Path) -> None:
    written = write_reports([passing(), failing()], tmp_path)
    assert written == {
        ("borja", "phase-04/lab-00"): tmp_path / "borja" / "phase-04-lab-00.html",
        ("ana-maría", "phase-04/lab-01"): tmp_path / "ana-maría" / "phase-04-lab-01.html",
    }
    html, md = report_paths(tmp_path, failing())
    assert html.read_text(encoding="utf-8") == render_html(failing())
    assert md.read_text(encoding="utf-8") == render_markdown(failing())
    assert sorted(os.listdir(html.parent)) == ["phase-04-lab-01.html", "phase-04-lab-01.md"]


def test_render_failure_keeps_old_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    html, md = report_paths(tmp_path, failing())
    html.parent.mkdir(parents=True)
    html.write_text("old html", encoding="utf-8")
    md.write_text("old md", encoding="utf-8")

    def broken(result: LabResult, *rest: object) -> NoReturn:
        raise RuntimeError("template bug")

    monkeypatch.setattr(reports, "render_markdown", broken)
    with pytest.raises(RuntimeError, match="template bug"):
        write_reports([failing()], tmp_path)
    assert html.read_text(encoding="utf-8") == "old html"
    assert md.read_text(encoding="utf-8") == "old md"


def test_unwritable_out_dir_is_grader_error(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    out.write_text("not a folder", encoding="utf-8")
    with pytest.raises(GraderError, match=r"^cannot write .*phase-04-lab-00\.html: .* — choose another --out$"):
        write_reports([passing()], out)
