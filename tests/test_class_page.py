"""The class page (index.html): its data, its safety, its golden layout, and a real browser clicking it."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from babel.messages.pofile import read_po

from grader.grading import grade
from grader.i18n import msg, plural
from grader.model import Adjustment, CheckResult, LabResult, Override, Status
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
        self.trs: list[dict[str, str]] = []  # each learner row's attributes
        self.keys: dict[str, list[str]] = {}  # each pass-rate bar's data-key, by lab section
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
        if tag == "li" and "data-check" in a:
            self.rates.setdefault(self._lab, []).append((a["data-check"], int(a["data-passed"]), int(a["data-graded"])))
            self.keys.setdefault(self._lab, []).append(a["data-key"])
        if tag == "tr" and "data-order" in a:
            self.trs.append(a)
        if tag == "th" and a.get("scope") == "row":
            self.rows.append(a["data-value"])

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_rows_carry_what_the_filters_match() -> None:
    """data-passed (every lab graded and passed), data-review (checks in review), data-late, data-checks (lab:id=status)."""
    results = klass()
    page = _Page(render_index(results, Path("out")))
    by_learner = {name: [r for r in results if r.learner == name] for name in NAME_ORDER}
    for name, tr in zip(page.rows, page.trs):
        mine = by_learner[name]
        assert tr["data-passed"] == ("1" if len(mine) == 2 and all(r.passed for r in mine) else "0"), name
        assert tr["data-review"] == str(sum(len(r.review) for r in mine)), name
        assert tr["data-late"] == "0"
        assert tr["data-checks"].split() == [f"{r.lab}:{c.id}={c.status.value}" for r in sorted(mine, key=lambda r: r.lab)
                                             for c in r.checks if c.status.value != "pass"], name  # no filter asks for pass
    assert [tr["data-passed"] for tr in page.trs] == ["0", "1", "0", "0", "1"]  # a lab not graded is not passed
    assert page.trs[0]["data-checks"] == "phase-05/lab-02:core=fail phase-05/lab-02:grad=error phase-05/lab-02:plot=review"
    assert page.keys["lab-phase-04-lab-00"] == ["phase-04/lab-00:grad", "phase-04/lab-00:plot", "phase-04/lab-00:core"]
    one = _Page(render_index(filter_class(), Path("out")))  # one lab: the ids alone
    assert one.rows[2] == "Iñaki" and one.trs[2]["data-checks"] == "jacobian-analytic=fail"
    assert one.keys["lab-phase-04-lab-00"][0] == "jacobian-analytic"
    assert [tr["data-late"] for tr in one.trs] == ["0", "0", "0", "1", "0", "0"]
    assert [tr["data-review"] for tr in one.trs] == ["0", "1", "0", "0", "0", "0"]
    assert [tr["data-passed"] for tr in one.trs] == ["1", "1", "0", "0", "0", "1"]


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
    row = re.search(r'<tr data-order="2"[^>]*>(.*?)</tr>', html, re.DOTALL)
    assert row is not None and 'data-value="ana-maría"' in row.group(1)
    cells = row.group(1)
    assert "✎ overridden by instructor</span> <code title=" in cells and ">phase-04/lab-00 plot</code>" in cells
    assert '<a href="ana-mar%C3%ADa/phase-04-lab-00.html">4.0 / 6.0</a>' in cells
    assert cells.count("not graded") == 1
    assert '<td class="num" data-value="1">1</td>\n      <td class="num" data-value="0">0</td>' in cells  # failing, skipped
    assert '<span class="lab">phase-04/lab-00:</span> <code>grad</code>' in cells
    zoe = re.search(r'<tr data-order="4"[^>]*>(.*?)</tr>', html, re.DOTALL)
    assert zoe is not None and '<td class="num" data-value="10.0">10.0 / 12.0</td>' in zoe.group(1)


def test_empty_class_renders_a_sentence_not_a_table() -> None:
    html = render_index([], Path("out"))
    page = _Page(html)
    assert page.errors == [] and page.stack == []
    assert "No results: nothing was graded" in html
    assert "<table" not in html and "<script" not in html and "<svg" not in html
    assert "<title>Class report · 0 learners</title>" in html


def test_failing_counts_fail_and_error_and_skips_apart() -> None:
    html = render_index(filter_class(), Path("out"))
    marta = re.search(r'<tr data-order="4"[^>]*>(.*?)</tr>', html, re.DOTALL)
    assert marta is not None and 'data-value="Marta"' in marta.group(1)
    assert '<td class="num" data-value="1">1</td>\n      <td class="num" data-value="1">1</td>' in marta.group(1)
    assert '<code>jacobian-analytic</code><span class="skips">skipped: <code>plot</code></span>' in marta.group(1)
    assert "failing</strong> counts the checks that failed or raised an error." in html


def test_rates_are_coloured_and_said_in_words() -> None:
    html = render_index(filter_class(), Path("out"))
    levels = re.findall(r'<li class="rate (\w+)" data-check="([\w-]+)"', html)
    assert levels == [("mid", JA), ("mid", "plot"), ("high", "core"), ("high", "jacobian-fd")]  # 50 % is not low
    assert "50 % (3/6) · medium</span>" in html and "66 % (4/6) · medium</span>" in html and "100 % (6/6) · high</span>" in html
    levels = re.findall(r'<li class="rate (\w+)" data-check="([\w-]+)"', render_index(klass(), Path("out")))
    assert levels == [("low", "grad"), ("mid", "plot"), ("mid", "core"), ("low", "grad"), ("mid", "core"), ("high", "plot")]
    assert '<svg class="meter" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false">' in html


def test_review_and_late_badges_and_adjusted_score() -> None:
    html = render_index(filter_class(), Path("out"))
    assert ('<span class="badge s-review" title="Points given for now, until an instructor decides: jacobian-analytic">'
            "? 1 to review</span>") in html
    assert ('<span class="badge s-late" title="late penalty -2.0 points: handed in 3 days late (due 2025-03-01 23:59, '
            'last commit 2025-03-04 10:00): 1.0 per day">◷ late</span>') in html
    assert ('<a href="Luc%C3%ADa/phase-04-lab-00.html" title="6.0 / 8.0 from the checks; 4.0 after the lab&#39;s '
            'adjustments\nlate penalty -2.0: handed in 3 days late (due 2025-03-01 23:59, last commit 2025-03-04 10:00): '
            '1.0 per day">4.0 / 8.0</a>') in html
    assert ('<a href="Marta/phase-04-lab-00.html" title="4.0 / 8.0 from the checks; 5.0 after the lab&#39;s adjustments\n'
            'bonus 1.0: helped in the lab session">5.0 / 8.0</a>') in html
    assert html.count(" from the checks; ") == 2  # only where the lab was adjusted
    assert html.count("s-late") == 2  # the style and Lucía's badge: a bonus is not late


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


JA = "jacobian-analytic"


def filter_class() -> list[LabResult]:
    """One lab: a learner passing, two failing jacobian-analytic (one of them late), one in review, one with an
    error and a skip (and a bonus), and a hostile name."""
    ids = ("core", JA, "jacobian-fd", "plot")

    def lab(learner: str, *statuses: Status, **kw: Any) -> LabResult:
        checks = tuple(dataclasses.replace(check(i, s), acceptance=i in ("core", JA)) for i, s in zip(ids, statuses))
        return LabResult(learner, LAB0, f"Lab {LAB0}", checks, **kw)

    late = Adjustment("late", -2.0, plural("late.reason", 3, due="2025-03-01 23:59", source=msg("late.source.git"),
                                           submitted="2025-03-04 10:00", per_day="1.0", extension="", capped=""),
                      "course.yaml:4")
    return [
        lab("zoe", P, P, P, P),
        lab("Iñaki", P, F, P, P),
        lab("Begoña Núñez", P, R, P, P),
        lab("Lucía", P, F, P, P, adjustments=(late,)),
        lab("Marta", P, E, P, S, adjustments=(Adjustment("bonus", 1.0, "helped in the lab session", "overrides.yaml:2"),)),
        lab(HOSTILE, P, P, P, F),
    ]


def query(results: list[LabResult], check_id: str, *statuses: Status) -> list[str]:
    """What ``grade query --check ID --status S`` lists: the learners whose result for that check is S."""
    return sorted(r.learner for r in results for c in r.checks if c.id == check_id and c.status in statuses)


_PLACEHOLDER = re.compile(r"\{\w+\}")


def _english_fragments(text: str) -> list[str]:
    return [part.strip(" :;,.") for part in _PLACEHOLDER.split(text) if len(part.strip(" :;,.")) >= 3]


class _Words(HTMLParser):
    """What a reader is told: text outside script and style, the attributes said aloud or on hover, and the
    script's words (its JSON)."""

    SAID = ("title", "aria-label", "data-label", "placeholder", "alt")

    def __init__(self, html: str) -> None:
        super().__init__()
        self.words: list[str] = []
        self._skip = 0
        self.feed(html)
        blob = re.search(r"const words = (\{.*?\});", html)
        assert blob is not None
        self.words += json.loads(blob.group(1)).values()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")
        self.words += [v or "" for k, v in attrs if k in self.SAID]

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.words.append(data)


def test_the_class_page_in_spanish_has_no_english_words() -> None:
    english, spanish = _catalogue("en"), _catalogue("es")
    ours = [k for k in english if k.startswith("class.") and not k.startswith("class_")]
    said = "\n".join(_Words(render_index(filter_class() + klass()[:2], Path("out"), lang="es")).words)
    bare = _PLACEHOLDER.sub("", said)  # the script's templates: their placeholders are not words
    leaks = {k: f for k in ours for f in _english_fragments(english[k])
             if f not in _PLACEHOLDER.sub("", spanish[k]) and re.search(rf"(?<!\w){re.escape(f)}(?!\w)", bare)}
    assert leaks == {}
    for words in ("Se muestran 6 de 6 estudiantes", "Buscar estudiante", "Sin filtros: se muestran todos los estudiantes.",
                  "1 por revisar", "penalización por retraso de -2.0 puntos: entregado con 3 días de retraso", "omitidas:",
                  "Una fila por estudiante, ordenadas por {column}, de menor a mayor", "nota de phase-04/lab-00",
                  "comprobación {check}: {status}", "no superada (fallida, error u omitida)", "Quitar este filtro"):
        assert words in said, words
    assert "late penalty" not in said and "Showing" not in said


def _catalogue(lang: str) -> dict[str, str]:
    with (Path(__file__).resolve().parent.parent / "grader" / "locale" / f"{lang}.po").open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale=lang) if m.id}


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
    names = [text.splitlines()[0] for text in page.locator("#learners tbody th").all_inner_texts()]
    assert names[:2] == [HOSTILE, "Álvaro"]
    assert page.locator("button:visible, input:visible, select:visible").count() == 0  # no control that would do nothing
    assert page.locator("#filters").is_hidden() and page.locator(".rates-hint").first.is_hidden()
    assert page.locator("#learners tbody tr:visible").count() == len(NAME_ORDER)
    assert page.locator("#learners a").count() == len(klass())
    assert page.locator("svg.histogram").count() == 2 and page.locator("li.rate").count() == 6
    assert page.locator("li.rate svg.meter").count() == 6


def _shown(page: Page) -> list[str]:
    """The learners the table shows, top to bottom."""
    script = "rows => rows.filter(r => !r.hidden).map(r => r.cells[0].dataset.value)"
    return [str(name) for name in page.eval_on_selector_all("#learners tbody tr", script)]


def _bar(page: Page, key: str) -> Any:
    return page.locator(f'li.rate[data-key="{key}"] button')


def test_class_page_filters_in_chromium(tmp_path: Path, browser: Pages) -> None:
    results = filter_class()
    everyone = [HOSTILE, "Begoña Núñez", "Iñaki", "Lucía", "Marta", "zoe"]
    page = browser.page
    page.goto(write_index(tmp_path, results).as_uri())
    showing, said, status = page.locator("#showing"), page.locator("#filter-words"), page.locator("#check-status")
    assert _shown(page) == everyone and showing.inner_text() == "Showing 6 of 6 learners"
    assert said.inner_text() == "No filter: every learner is shown." and page.locator("#check-filter").is_hidden()
    assert page.locator(".rates-hint").inner_text() == "Select a bar to list the learners who failed that check."

    # a pass-rate bar: the learners `grade query --check jacobian-analytic --status fail` lists
    bar = _bar(page, JA)
    assert bar.get_attribute("aria-pressed") == "false" and "50 % (3/6) · medium" in bar.inner_text()
    bar.click()
    assert sorted(_shown(page)) == query(results, JA, F) == ["Iñaki", "Lucía"]
    assert bar.get_attribute("aria-pressed") == "true" and showing.inner_text() == "Showing 2 of 6 learners"
    assert said.inner_text().startswith("Filters: check jacobian-analytic: fail.") and status.is_visible()
    status.select_option("error")
    assert _shown(page) == query(results, JA, E) == ["Marta"]
    assert said.inner_text().startswith("Filters: check jacobian-analytic: error.")
    status.select_option("review")
    assert _shown(page) == query(results, JA, R) == ["Begoña Núñez"]
    status.select_option("skip")
    assert _shown(page) == query(results, JA, S) == [] and showing.inner_text() == "Showing 0 of 6 learners"
    status.select_option("not-passed")
    assert sorted(_shown(page)) == query(results, JA, F, E, S) == ["Iñaki", "Lucía", "Marta"]
    assert said.inner_text().startswith("Filters: check jacobian-analytic: not passed (fail, error or skip).")
    _bar(page, "plot").click()  # another bar: its failures, whatever the selector said
    assert status.input_value() == "fail" and _shown(page) == query(results, "plot", F) == [HOSTILE]
    assert bar.get_attribute("aria-pressed") == "false"
    page.locator("#check-clear").click()
    assert _shown(page) == everyone and page.locator("#check-filter").is_hidden()
    bar.focus()  # the keyboard: a real button
    page.keyboard.press("Enter")
    assert sorted(_shown(page)) == ["Iñaki", "Lucía"]
    page.keyboard.press("Space")  # the same bar again clears it
    assert _shown(page) == everyone and bar.get_attribute("aria-pressed") == "false"

    # the search box: accents and case do not count
    search = page.locator("#filter-name")
    search.fill("bego")
    assert _shown(page) == ["Begoña Núñez"] and showing.inner_text() == "Showing 1 of 6 learners"
    assert said.inner_text() == "Filters: name contains “bego”."
    for typed, found in (("NUNEZ", ["Begoña Núñez"]), ("  iña ", ["Iñaki"]), ("LUCIA", ["Lucía"]), ("a", everyone[:5]),
                         ("zz", [])):
        search.fill(typed)
        assert _shown(page) == found, typed
    search.fill(HOSTILE)  # said as text, never as markup
    assert _shown(page) == [HOSTILE] and said.inner_text() == f"Filters: name contains “{HOSTILE}”."
    assert page.locator("#filters img").count() == 0
    search.fill("")
    assert _shown(page) == everyone

    # the toggles, each alone, then together
    toggles = {name: page.locator(f"#filter-{name}") for name in ("not-passed", "review", "late")}
    toggles["review"].check()
    assert _shown(page) == ["Begoña Núñez"] and said.inner_text() == "Filters: needs review."
    toggles["review"].uncheck()
    toggles["late"].check()
    assert _shown(page) == ["Lucía"]
    toggles["late"].uncheck()
    toggles["not-passed"].check()
    assert _shown(page) == [r.learner for r in sorted(results, key=lambda r: everyone.index(r.learner)) if not r.passed]
    assert _shown(page) == ["Iñaki", "Lucía", "Marta"]
    toggles["late"].check()
    assert _shown(page) == ["Lucía"] and said.inner_text() == "Filters: not passed; late."
    bar.click()
    assert _shown(page) == ["Lucía"] and said.inner_text() == "Filters: check jacobian-analytic: fail; not passed; late."
    toggles["late"].uncheck()
    search.fill("iñ")
    assert _shown(page) == ["Iñaki"]
    toggles["review"].check()
    assert _shown(page) == [] and showing.inner_text() == "Showing 0 of 6 learners"
    page.locator("#filter-reset").click()
    assert _shown(page) == everyone and said.inner_text() == "No filter: every learner is shown."
    assert search.input_value() == "" and not any(t.is_checked() for t in toggles.values())
    assert bar.get_attribute("aria-pressed") == "false"

    # the badges
    begona = page.locator('#learners tbody th[data-value="Begoña Núñez"] .s-review')
    assert begona.inner_text() == "? 1 to review"
    late = page.locator('#learners tbody th[data-value="Lucía"] .s-late')
    assert late.inner_text() == "◷ late" and (late.get_attribute("title") or "").startswith("late penalty -2.0 points: handed in 3 days")
    assert page.locator("#learners .s-review, #learners .s-late").count() == 2
    assert browser.problems == []


def test_class_page_caption_follows_the_sort_in_chromium(tmp_path: Path, browser: Pages) -> None:
    page = browser.page
    page.goto(write_index(tmp_path, klass()).as_uri())
    caption = page.locator("#learners caption")
    heads = page.locator("#learners thead th")
    start = "One row per learner, in name order; select a column heading to sort by it. A score links to that learner's report."
    assert caption.inner_text() == start
    heads.nth(1).locator("button").click()
    assert caption.inner_text().startswith("One row per learner, sorted by phase-04/lab-00 score, lowest first; select")
    heads.nth(1).locator("button").click()
    assert caption.inner_text().startswith("One row per learner, sorted by phase-04/lab-00 score, highest first;")
    heads.nth(5).locator("button").click()
    assert caption.inner_text().startswith("One row per learner, sorted by all labs total, lowest first;")
    heads.nth(7).locator("button").click()
    assert heads.nth(7).inner_text() == "skipped"
    assert caption.inner_text().startswith("One row per learner, sorted by skipped, lowest first;")
    heads.first.locator("button").click()
    assert caption.inner_text() == start
    heads.first.locator("button").click()
    assert caption.inner_text().startswith("One row per learner, in reverse name order;")
    assert _shown(page) == NAME_ORDER[::-1]

    # a filter holds through a sort, and a sort through a filter; with two labs a bar names its lab
    _bar(page, "phase-04/lab-00:grad").click()
    assert page.locator("#filter-words").inner_text().startswith("Filters: check phase-04/lab-00 grad: fail.")
    assert _shown(page) == ["ana-maría", "Álvaro"]  # still in reverse name order
    page.locator("#check-status").select_option("error")
    assert _shown(page) == ["Begoña Núñez"]
    page.locator("#check-status").select_option("not-passed")
    assert _shown(page) == ["Begoña Núñez", "ana-maría", "Álvaro"]
    heads.nth(1).locator("button").click()
    assert _shown(page) == ["Begoña Núñez", "Álvaro", "ana-maría"]
    assert page.locator("#showing").inner_text() == "Showing 3 of 5 learners"
    assert browser.problems == []


def test_class_page_filters_in_spanish_in_chromium(tmp_path: Path, browser: Pages) -> None:
    page = browser.page
    path = tmp_path / "index.html"
    path.write_text(render_index(filter_class(), tmp_path, lang="es"), encoding="utf-8")
    page.goto(path.as_uri())
    assert page.locator("#showing").inner_text() == "Se muestran 6 de 6 estudiantes"
    _bar(page, JA).click()
    assert page.locator("#showing").inner_text() == "Se muestran 2 de 6 estudiantes"
    assert page.locator("#filter-words").inner_text().startswith("Filtros: comprobación jacobian-analytic: fallida.")
    page.locator("#filter-name").fill("lucia")
    assert _shown(page) == ["Lucía"]
    assert page.locator("#filter-words").inner_text().startswith("Filtros: comprobación jacobian-analytic: fallida; el nombre contiene «lucia».")
    page.locator("#learners thead th").nth(1).locator("button").click()
    assert page.locator("#learners caption").inner_text().startswith("Una fila por estudiante, ordenadas por nota de phase-04/lab-00, de menor a mayor")
    assert browser.problems == []
