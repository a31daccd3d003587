"""The class page (index.html): its data, its safety, its golden layout, and a real browser clicking it."""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.parse
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from grader.grading import grade
from grader.model import CheckResult, LabResult, Override, Status
from grader.reports import render_index, report_paths, write_index, write_reports

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

GOLDEN = Path(__file__).parent / "golden"
LAB0, LAB1 = "phase-04/lab-00", "phase-05/lab-02"
HOSTILE = "<img src=x onerror=alert(1)>"
NAME_ORDER = [HOSTILE, "Álvaro", "ana-maría", "Begoña Núñez", "zoe"]


def check(check_id: str, status: Status, points: float = 2.0, **kw: Any) -> CheckResult:
    score = points if status.earns_points else 0.0
    return CheckResult(check_id, f"Check {check_id}", status, score, points, check_id == "core", "msg", **kw)


def result(learner: str, lab: str, *statuses: Status, override: bool = False) -> LabResult:
    ids = ("core", "grad", "plot")
    checks = [check(i, s) for i, s in zip(ids, statuses)]
    if override:
        checks[-1] = dataclasses.replace(
            checks[-1], override=Override("accepted on paper <b>ok</b>", Status.FAIL, 0.0, "overrides.yaml:3")
        )
    return LabResult(learner, lab, f"Lab {lab}", tuple(checks), seconds=0.1)


P, F, E, S, R = Status.PASS, Status.FAIL, Status.ERROR, Status.SKIP, Status.REVIEW


def klass() -> list[LabResult]:
    """Distinct lab-00 scores (for sorting), a learner without lab-00, an override, accents, a hostile name."""
    return [
        result("zoe", LAB0, P, P, P),
        result("zoe", LAB1, P, F, P),
        result("Álvaro", LAB0, P, F, S),
        result("Álvaro", LAB1, P, P, P),
        result("ana-maría", LAB0, P, F, P, override=True),
        result(HOSTILE, LAB1, F, E, R),
        result("Begoña Núñez", LAB0, F, E, S),
    ]


class _Page(HTMLParser):
    """Tag balance, links, and the data-* attributes the charts carry."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.hrefs: list[str] = []
        self.bins: dict[str, list[int]] = {}
        self.rates: dict[str, list[tuple[str, int, int]]] = {}
        self.rows: list[str] = []
        self._lab = ""
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "section" and a.get("class") == "lab":
            self._lab = a["id"]
        if tag == "a":
            self.hrefs.append(a["href"])
        if tag == "g" and a.get("class") == "bin":
            self.bins.setdefault(self._lab, []).append(int(a["data-count"]))
        if tag == "g" and "data-check" in a:
            self.rates.setdefault(self._lab, []).append((a["data-check"], int(a["data-passed"]), int(a["data-graded"])))
        if tag == "th" and a.get("scope") == "row":
            self.rows.append(a["data-value"])

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_learner_text_is_escaped() -> None:
    html = render_index(klass(), Path("out"))
    assert "<img" not in html and "<b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'data-value="&lt;img src=x onerror=alert(1)&gt;"' in html
    assert "accepted on paper &lt;b&gt;ok&lt;/b&gt; (the grader said fail, 0.0 / 2.0; overrides.yaml:3)" in html


def test_page_is_balanced_and_self_contained() -> None:
    html = render_index(klass(), Path("out"))
    page = _Page(html)
    assert page.errors == [] and page.stack == []
    assert "<link" not in html.lower() and "@import" not in html and "url(" not in html
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", html, re.IGNORECASE)
    assert html.count("<script>") == 1


def test_links_are_relative_and_reach_every_report(tmp_path: Path) -> None:
    results = klass()
    page = _Page(render_index(results, tmp_path))
    assert all(not urllib.parse.urlsplit(h).scheme and not h.startswith("/") for h in page.hrefs)
    targets = sorted(tmp_path / urllib.parse.unquote(h) for h in page.hrefs)
    assert targets == sorted(report_paths(tmp_path, r)[0] for r in results)
    assert "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E/phase-05-lab-02.html" in page.hrefs


def test_rows_are_in_name_order_ignoring_case_and_accents() -> None:
    assert _Page(render_index(klass(), Path("out"))).rows == NAME_ORDER


@pytest.mark.parametrize("learners", [1, 3, 25, 101])
def test_histogram_bins_add_up_to_the_learners(learners: int) -> None:
    results = [result(f"l{i:03d}", LAB0, *[(P, F, E)[(i + k) % 3] for k in range(3)]) for i in range(learners)]
    results += [result(f"l{i:03d}", LAB1, P, P, P) for i in range(0, learners, 2)]
    page = _Page(render_index(results, Path("out")))
    assert {lab: len(bins) for lab, bins in page.bins.items()} == {"lab-phase-04-lab-00": 10, "lab-phase-05-lab-02": 10}
    assert sum(page.bins["lab-phase-04-lab-00"]) == learners
    assert page.bins["lab-phase-05-lab-02"] == [0] * 9 + [len(range(0, learners, 2))]


@pytest.mark.parametrize(
    ("score", "bin_index"),
    [(0.0, 0), (1.99, 0), (2.0, 1), (5.99, 2), (6.0, 3), (10.0, 5), (14.0, 7), (19.99, 9), (20.0, 9)],
)
def test_histogram_bin_edges(score: float, bin_index: int) -> None:
    one = LabResult("a", LAB0, "t", (CheckResult("x", "x", Status.FAIL, score, 20.0, True, ""),))
    bins = _Page(render_index([one], Path("out"))).bins["lab-phase-04-lab-00"]
    assert bins == [int(i == bin_index) for i in range(10)]


def test_pass_rates_are_counted_and_worst_first() -> None:
    rates = _Page(render_index(klass(), Path("out"))).rates
    assert rates["lab-phase-04-lab-00"] == [("grad", 1, 4), ("plot", 2, 4), ("core", 3, 4)]
    assert rates["lab-phase-05-lab-02"] == [("grad", 1, 3), ("core", 2, 3), ("plot", 3, 3)]


def test_table_cells_and_override_marker() -> None:
    html = render_index(klass(), Path("out"))
    row = re.search(r'<tr data-order="2">(.*?)</tr>', html, re.DOTALL)
    assert row is not None and 'data-value="ana-maría"' in row.group(1)
    cells = row.group(1)
    assert "✎ overridden by instructor</span> <code title=" in cells and ">phase-04/lab-00 plot</code>" in cells
    assert '<a href="ana-mar%C3%ADa/phase-04-lab-00.html">4.0 / 6.0</a>' in cells
    assert cells.count("not graded") == 1
    assert '<td class="num" data-value="1">1</td>' in cells
    assert '<span class="lab">phase-04/lab-00:</span> <code>grad</code>' in cells
    zoe = re.search(r'<tr data-order="4">(.*?)</tr>', html, re.DOTALL)
    assert zoe is not None and '<td class="num" data-value="10.0">10.0 / 12.0</td>' in zoe.group(1)


def test_empty_class_renders_a_sentence_not_a_table() -> None:
    html = render_index([], Path("out"))
    page = _Page(html)
    assert page.errors == [] and page.stack == []
    assert "No results: nothing was graded" in html
    assert "<table" not in html and "<script" not in html and "<svg" not in html
    assert "<title>Class report · 0 learners</title>" in html


def test_one_learner_one_lab() -> None:
    html = render_index([result("solo", LAB0, P, F, P)], Path("out"))
    page = _Page(html)
    assert page.rows == ["solo"] and page.hrefs == ["solo/phase-04-lab-00.html"]
    assert "1 learner, 1 lab" in html and "total</th>" not in html and "phase-04/lab-00:</span>" not in html
    assert page.rates["lab-phase-04-lab-00"] == [("grad", 0, 1), ("core", 1, 1), ("plot", 1, 1)]


def test_index_golden(tmp_path: Path, update_goldens: bool) -> None:
    path = write_index(tmp_path, klass())
    assert path == tmp_path / "index.html"
    html, n = re.subn(r"<p>Generated [^<]*\.</p>", "<p>Generated TIMESTAMP.</p>", path.read_text(encoding="utf-8"))
    assert n == 1
    golden = GOLDEN / "index.html"
    if update_goldens:
        golden.write_text(html, encoding="utf-8", newline="")
        return
    assert golden.is_file(), f"missing golden {golden}: run pytest with --update-goldens"
    assert html == golden.read_text(encoding="utf-8"), "index.html changed: review, then --update-goldens"


def test_a_large_class_renders_quickly() -> None:
    """1000 learners × 2 labs of the real rubrics' size; the bound is loose, the measured time is printed."""
    statuses = [P] * 17 + [F]
    base = [
        LabResult("x", lab, "t", tuple(check(f"check-{k:02d}", statuses[(k * 7) % 18]) for k in range(n)))
        for lab, n in ((LAB0, 18), (LAB1, 11))
    ]
    results = [dataclasses.replace(r, learner=f"learner-{i:04d}") for i in range(1000) for r in base]
    render_index(results[:2], Path("out"))
    started = time.perf_counter()
    html = render_index(results, Path("out"))
    seconds = time.perf_counter() - started
    print(f"render_index: 1000 learners × 2 labs in {seconds * 1000:.0f} ms, {len(html) // 1024} KiB")
    assert html.count('<tr data-order="') == 1000
    assert seconds < 1.0


def test_real_results_render(tmp_path: Path) -> None:
    results = grade(["learners/borja"])
    page = _Page(render_index(results, tmp_path))
    assert page.errors == [] and page.rows == ["borja"]
    assert sorted(page.hrefs) == ["borja/phase-04-lab-00.html", "borja/phase-05-lab-02.html"]


# --- a real browser ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Pages:
    page: Page
    no_script: Page  # JavaScript disabled
    problems: list[str]  # console errors, uncaught exceptions and dialogs (an injected alert would be one)


@pytest.fixture
def browser(chromium: Browser) -> Iterator[Pages]:
    scripted = chromium.new_context(viewport={"width": 1280, "height": 900})
    unscripted = chromium.new_context(java_script_enabled=False)
    pages = Pages(scripted.new_page(), unscripted.new_page(), [])

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            pages.problems.append(f"console error: {message.text}")

    def dialog(d: Dialog) -> None:
        pages.problems.append(f"dialog: {d.message}")
        d.dismiss()

    pages.page.on("console", console)
    pages.page.on("pageerror", lambda error: pages.problems.append(f"page error: {error}"))
    pages.page.on("dialog", dialog)
    try:
        yield pages
    finally:
        scripted.close()
        unscripted.close()


def test_class_page_in_chromium(tmp_path: Path, browser: Pages) -> None:
    results = klass()
    write_reports(results, tmp_path)
    index = write_index(tmp_path, results)
    page = browser.page
    page.goto(index.as_uri())

    def learners() -> list[str]:
        script = "rows => rows.map(r => r.cells[0].dataset.value)"
        return [str(name) for name in page.eval_on_selector_all("#learners tbody tr", script)]

    def open_report(learner: str) -> None:
        row = page.locator(f'#learners tbody th[data-value="{learner}"]').locator("xpath=..")
        row.get_by_role("link").first.click()
        page.wait_for_load_state()

    assert learners() == NAME_ORDER
    header = page.locator("#learners thead th").nth(1)
    assert header.inner_text().split() == ["phase-04/lab-00", "score"]
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert page.locator("#learners thead th").first.get_attribute("aria-sort") is None
    assert learners() == ["Begoña Núñez", "Álvaro", "ana-maría", "zoe", HOSTILE]
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "descending"
    assert learners() == ["zoe", "ana-maría", "Álvaro", "Begoña Núñez", HOSTILE]
    page.locator("#learners thead th").first.locator("button").click()
    assert learners() == NAME_ORDER

    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
    png = (tmp_path / "index.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000

    open_report("ana-maría")
    assert page.title() == "ana-maría · phase-04/lab-00 · PASSED"
    opened = Path(urllib.parse.unquote(urllib.parse.urlsplit(page.url).path))
    assert opened == report_paths(tmp_path, results[4])[0]
    page.go_back()
    open_report(HOSTILE)
    assert page.title() == f"{HOSTILE} · phase-05/lab-02 · NOT PASSED"
    assert browser.problems == []


def test_class_page_without_javascript(tmp_path: Path, browser: Pages) -> None:
    page = browser.no_script
    page.goto(write_index(tmp_path, klass()).as_uri())
    assert page.locator("#learners tbody th").all_inner_texts()[:2] == [HOSTILE, "Álvaro"]
    assert page.locator("#learners button").count() == 0
    assert page.locator("#learners a").count() == len(klass())
    assert page.locator("svg.histogram").count() == 2 and page.locator("svg g.rate").count() == 6
