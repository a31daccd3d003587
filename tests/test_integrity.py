"""Integrity: a grader killed at any moment leaves every output either as it was or complete, and reports
never let a learner's text run in the instructor's browser.
"""

from __future__ import annotations

import csv
import html.parser
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BORJA = ROOT / "learners" / "borja"
FIXTURES = ROOT / "tests" / "fixtures"
RUBRICS = ROOT / "rubrics"
MD = "lab-00-softmax-gradient.md"
PY = "lab-00-softmax-gradient.py"
TEMP = re.compile(r"^\..+\.tmp$")  # atomicio's ".<name>.<pid>-<random>.tmp"


def command(klass: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "grader", str(klass), "--out", str(out), "--json", str(out / "results.json"),
            "--junit", str(out / "junit.xml"), "--gradescope", "--rubrics", str(RUBRICS), "-q"]


def run(klass: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(klass, out), cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def make_class(klass: Path, version: int) -> None:
    """Eight learners; version 2 changes every one of them, so a run rewrites every report."""
    shutil.rmtree(klass, ignore_errors=True)
    cases = ["sign-flipped", "forward-diff", "wrong-index", "scalar-outer", "missing-function", "no-deliverable",
             "deliverable-spanish", "deliverable-ascii"]
    for i, case in enumerate(cases):
        source = FIXTURES / (case if version == 1 else cases[(i + 1) % len(cases)])
        shutil.copytree(source, klass / f"learner-{i}")
    shutil.copytree(BORJA, klass / "borja")
    if version == 2:
        reflection = klass / "borja" / "phase-05" / "lab-02-logsumexp.md"
        reflection.write_text(reflection.read_text(encoding="utf-8").replace("## Reflection", "## Notes"), encoding="utf-8")


def whole(name: str, data: bytes, old: bytes | None, new: bytes | None) -> str:
    """'' when ``data`` is a complete file of its kind (for reports: exactly the old or the new one), else why not."""
    if data == old or data == new:
        return ""
    if name.endswith((".html", ".md")) and "/" in name:
        return "a learner report that is neither the previous one nor the one a whole run writes"
    try:
        if name.endswith(".html"):
            return "" if data.rstrip().endswith(b"</html>") and data.lstrip().lower().startswith(b"<!doctype html") else "cut HTML"
        if name.endswith(".json"):
            json.loads(data)
            return ""
        if name.endswith(".xml"):
            ET.fromstring(data)
            return ""
        if name.endswith(".csv"):
            rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
            header = next(csv.reader(io.StringIO((old or new or b"").decode("utf-8-sig"))))
            return "" if rows and rows[0] == header and all(len(r) == len(header) for r in rows) else "cut CSV"
    except (ValueError, ET.ParseError, StopIteration) as exc:
        return f"does not parse: {exc}"
    return ""


def check_outputs(out: Path, before: dict[str, bytes], after: dict[str, bytes], when: str) -> None:
    for path in sorted(out.rglob("*")):
        if not path.is_file() or TEMP.match(path.name):
            continue
        name = path.relative_to(out).as_posix()
        if name.startswith("gradebook.sqlite"):
            continue
        problem = whole(name, path.read_bytes(), before.get(name), after.get(name))
        assert not problem, f"killed at {when}: {name}: {problem}"
    with sqlite3.connect(out / "gradebook.sqlite") as db:  # rolls back a hot journal, as the next run would
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], when
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] >= 1


def test_a_killed_run_leaves_every_output_old_or_whole(tmp_path: Path) -> None:
    klass, out, reference = tmp_path / "class", tmp_path / "out", tmp_path / "reference"
    make_class(klass, 1)
    assert run(klass, out, tmp_path).returncode == 1
    before = snapshot(out)
    pristine = tmp_path / "pristine"
    shutil.copytree(out, pristine)

    make_class(klass, 2)
    shutil.copytree(pristine, reference)
    started = time.perf_counter()
    finished = run(klass, reference, tmp_path)
    full = time.perf_counter() - started
    assert finished.returncode == 1, finished.stderr
    after = snapshot(reference)
    changed = [name for name in after if name.endswith(".html") and before.get(name) != after[name]]
    assert len(changed) >= 9, "version 2 must change the reports, or the test proves nothing"

    rng = random.Random(20261127)
    delays = sorted(rng.uniform(0.05, full) for _ in range(5))
    for delay in delays:
        shutil.rmtree(out)
        shutil.copytree(pristine, out)
        proc = subprocess.Popen(command(klass, out), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the grader and its pool processes, as an OOM kill or power loss would
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        check_outputs(out, before, after, f"{delay:.2f} s of {full:.2f} s")

    stale = [p for p in out.rglob("*") if TEMP.match(p.name)]
    resumed = run(klass, out, tmp_path)
    assert resumed.returncode == 1, resumed.stderr
    assert not [p for p in out.rglob("*") if TEMP.match(p.name)], f"stale temporary files were not removed: {stale}"
    final = snapshot(out)
    for name, data in after.items():
        if "/" in name and name.endswith((".html", ".md")):
            assert final[name] == data, name


def test_stale_temporary_files_go_but_a_live_writers_stay(tmp_path: Path) -> None:
    from grader.atomicio import remove_stale_temps

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "ana").mkdir()
    stale = tmp_path / "ana" / f".phase-04-lab-00.html.{dead.pid}-abcd1234.tmp"
    live = tmp_path / f".index.html.{os.getpid()}-efgh5678.tmp"
    other = tmp_path / "ana" / ".notes.tmp"  # not ours: left alone
    for path in (stale, live, other):
        path.write_text("partial", encoding="utf-8")
    assert remove_stale_temps(tmp_path) == [stale]
    assert live.exists() and other.exists()


# ----------------------------------------------------------------------------- learner text is never markup

HOSTILE_NAME = "<img src=x onerror=alert('folder')>"
HOSTILE_FILE = "lab-00 <img src=x onerror=alert('file')>.py"


@pytest.fixture(scope="module")
def hostile_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/html-injection graded under a folder name that is itself markup, with a second
    implementation file whose name is markup, beside a plain learner (so the class page lists both)."""
    tmp = tmp_path_factory.mktemp("hostile")
    klass = tmp / "class"
    learner = klass / HOSTILE_NAME
    shutil.copytree(FIXTURES / "html-injection", learner)
    (learner / "phase-04" / HOSTILE_FILE).write_text("def softmax(z):\n    return z\n", encoding="utf-8")
    shutil.copytree(FIXTURES / "deliverable-ascii", klass / "plain")
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "-m", "grader", str(klass), "--out", str(out), "--rubrics", str(RUBRICS),
                           "--lab", "phase-04/lab-00", "-q"], cwd=tmp, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert proc.returncode == 1, proc.stderr
    return out


# What the fixture smuggles in, and where it must show up as text (so the test is not vacuous).
SHOWN_AS_TEXT = ["onerror=alert('folder')", "onerror=alert('file')", "onerror=alert('raised')",
                 "<script>alert('printed')</script>", "<script>alert('heading')</script>", "onerror=alert('hint')"]


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def injected(markup: str) -> list[str]:
    """Elements a browser would act on: scripts, event handlers, javascript: links, the planted <img src=x>."""
    parser = _Tags()
    parser.feed(markup)
    found = []
    for tag, attrs in parser.tags:
        if tag in ("script", "iframe", "object", "embed") or (tag == "img" and attrs.get("src") == "x"):
            found.append(tag)
        found += [f"{tag}[{name}]" for name in attrs if name.startswith("on")]
        found += [f"{tag}[{name}={value}]" for name, value in attrs.items()
                  if value and value.strip().lower().startswith("javascript:")]
    return found


def test_the_markdown_report_neutralises_raw_html(hostile_out: Path) -> None:
    from markdown_it import MarkdownIt

    source = (hostile_out / HOSTILE_NAME / "phase-04-lab-00.md").read_text(encoding="utf-8")
    rendered = MarkdownIt("commonmark", {"html": True}).render(source)
    assert injected(rendered) == [], rendered
    for text in ("onerror=alert('folder')", "onerror=alert('raised')", "<script>alert('raised')</script>"):
        assert text in html.unescape(re.sub(r"<[^>]+>", "", rendered)).replace("\\", ""), text


def test_the_html_report_and_class_page_hold_no_injected_markup(hostile_out: Path) -> None:
    report = (hostile_out / HOSTILE_NAME / "phase-04-lab-00.html").read_text(encoding="utf-8")
    assert injected(report) == []
    text = html.unescape(report)
    for shown in SHOWN_AS_TEXT:
        assert shown in text, shown
    index = (hostile_out / "index.html").read_text(encoding="utf-8")
    assert [tag for tag in injected(index) if tag != "script"] == []  # the page's own sorting script is allowed
    assert "alert(" not in "".join(re.findall(r"<script\b[^>]*>(.*?)</script>", index, re.DOTALL))
    assert "onerror=alert('folder')" in html.unescape(index)


@pytest.fixture
def page(chromium: Any) -> Iterator[object]:
    """A fresh page of the suite's shared headless Chromium (tests/conftest.py)."""
    opened = chromium.new_page()
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.parametrize("which", ["report", "index"])
def test_no_learner_text_runs_in_the_browser(hostile_out: Path, page: object, which: str) -> None:
    from playwright.sync_api import Dialog, Page

    assert isinstance(page, Page)
    path = hostile_out / HOSTILE_NAME / "phase-04-lab-00.html" if which == "report" else hostile_out / "index.html"
    dialogs: list[str] = []

    def dialog(d: Dialog) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    try:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # an <img src=x onerror> fires once the load of "x" fails
        for link in page.query_selector_all("a[href]"):  # following a link must not run learner text either
            href = link.get_attribute("href") or ""
            assert not href.strip().lower().startswith("javascript:"), href
        assert dialogs == []
        assert page.query_selector("img[src=x]") is None
        assert page.query_selector("[onerror], [onload], iframe, object, embed") is None
        scripts = page.evaluate("() => [...document.scripts].map(s => s.textContent)")
        assert not [s for s in scripts if "alert(" in s]
        body = page.inner_text("body")
        assert "onerror=alert('folder')" in body
        if which == "report":
            assert "<script>alert('printed')</script>" in page.content().replace("&lt;", "<").replace("&gt;", ">")
    finally:
        page.remove_listener("dialog", dialog)
