"""Machine-readable exports for other tools: an LMS gradebook (CSV), CI dashboards (JUnit XML), Gradescope.

Each exporter serialises everything before writing anything, and writes atomically.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from grader.atomicio import atomic_write_text
from grader.results import adjustment_to_dict, message_data
from grader.model import CheckResult, LabResult, Override, Status, adjustment_deltas, nfc
from grader.i18n import DEFAULT, VERBATIM, msg, say
from grader.reports import (format_index, format_number, format_points, format_value, headline, markdown_detail,
                            markdown_head, reader_language)

__all__ = [
    "BOM",
    "cell_text",
    "decimal_text",
    "gradebook_csv",
    "gradescope_results",
    "junit_xml",
    "write_gradebook",
    "write_gradescope",
    "write_junit",
]

BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")  # full-width signs too: Excel folds them
_PIECES = re.compile(r"([;,])")  # Spanish Excel splits on ';', others on ','; each piece may start a formula
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_GRADESCOPE_FILE = "results.json"


def similar_cells(pairs: Sequence[Any]) -> dict[str, str]:
    """Per learner, whom their work resembles: ``ben phase-04/lab-00 code 92% prose 71%; …`` (a class run's pairs)."""
    said: dict[str, list[str]] = {}
    for pair in pairs:
        shares = " ".join(f"{kind} {round(value * 100)}%" for kind, value in (("code", pair.code), ("prose", pair.prose))
                          if value is not None)
        said.setdefault(pair.first, []).append(f"{pair.second} {pair.lab} {shares}")
        said.setdefault(pair.second, []).append(f"{pair.first} {pair.lab} {shares}")
    return {learner: "; ".join(items) for learner, items in said.items()}


def provenance_cells(findings: Sequence[Any]) -> dict[str, str]:
    """Per learner, what their history says: ``phase-04/lab-00 paper_first 48h; …`` (stable labels, for filters)."""
    said: dict[str, list[str]] = {}
    for f in findings:
        if f.kind == "no_history":  # most folders: an empty cell
            continue
        hours = f" {round(f.hours)}h" if f.hours is not None and f.kind in ("paper_first", "code_first") else ""
        said.setdefault(f.learner, []).append(f"{f.lab} {f.kind}{hours}")
    return {learner: "; ".join(items) for learner, items in said.items()}


def gradebook_csv(results: Sequence[LabResult], maxima: Mapping[str, float] | None = None, roster: Any = None,
                  similar: Sequence[Any] | None = None, history: Sequence[Any] | None = None) -> str:
    """One row per learner, six columns per lab, then totals; RFC 4180 (CRLF, quoted as needed).

    Every lab of ``maxima`` (the rubrics') is a column, and a lab not handed in is 0 out of its maximum, so every
    learner's total is out of the same points whatever part of the class a run graded. Points are what an LMS
    should receive: adjustments applied, review points left out when the rubric holds them (``review_points: held``).
    With a roster, its student id, email, name and section follow the folder name. ``similar``: a class run's similar
    pairs, said in a column ``similar to``; ``history``: what each learner's git history says (``paper first``);
    both information for the instructor, no points.
    """
    maxima = dict(maxima or {})
    for r in results:
        maxima.setdefault(r.lab, r.max_score)
    labs = sorted(maxima)
    table = _by_learner(results)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
    header = ["learner", *(["student id", "email", "name", "section"] if roster is not None else [])]
    for lab in labs:
        header += [f"{lab} score", f"{lab} max", f"{lab} passed", f"{lab} handed in", f"{lab} needs review",
                   f"{lab} adjustments"]
    resembles = similar_cells(similar) if similar is not None else None
    first = provenance_cells(history) if history is not None else None
    writer.writerow([cell_text(h) for h in [*header, "total score", "total max", "needs review",
                                            *(["similar to"] if resembles is not None else []),
                                            *(["paper first"] if first is not None else [])]])
    for learner, mine in table.items():
        row: list[Any] = [cell_text(nfc(learner))]
        if roster is not None:
            student = roster.get(learner)
            row += [cell_text(getattr(student, key, "") or "") for key in ("student_id", "email", "name", "section")]
        total = 0.0
        for lab in labs:
            r = mine.get(lab)
            if r is None:
                row += [0, _number(maxima[lab]), 0, 0, 0, 0]
                continue
            total += r.export_score
            row += [_number(r.export_score), _number(maxima[lab]), 1 if r.passed else 0, 1, len(r.review),
                    _number(round(r.score - r.checks_score, 6))]
        row += [_number(total), _number(sum(maxima.values())), sum(len(r.review) for r in mine.values())]
        if resembles is not None:
            row.append(cell_text(nfc(resembles.get(learner, ""))))
        if first is not None:
            row.append(cell_text(nfc(first.get(learner, ""))))
        writer.writerow(row)
    return buffer.getvalue()


def write_gradebook(path: Path, results: Sequence[LabResult], maxima: Mapping[str, float] | None = None,
                    roster: Any = None, similar: Sequence[Any] | None = None, history: Sequence[Any] | None = None) -> None:
    """UTF-8 with a byte-order mark: without it Excel reads "Begoña" as "BegoÃ±a"; LMS importers skip it."""
    atomic_write_text(Path(path), BOM + gradebook_csv(results, maxima, roster, similar, history),
                      hint=msg("write.hint.gradebook"))


def junit_xml(results: Sequence[LabResult], lang: str = DEFAULT) -> str:
    """``<testsuites>``, one ``<testsuite>`` per lab, one ``<testcase>`` per learner and check.

    ``classname`` is ``<learner>.<phase>-<lab>``: CI dashboards split it at the last dot, so the learner
    becomes the package and the lab the class. ``review`` passes (its points are given) with a note in
    ``<system-out>``; an instructor's override is noted there too. The words are the instructor's (``lang``).
    """
    root = ET.Element("testsuites", name="grader")
    by_lab = _by_lab(results)
    for lab, lab_results in by_lab.items():
        root.append(_junit_suite(lab, lab_results, lang))
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(suite.get(key, "0")) for suite in root)))
    root.set("time", f"{sum(r.seconds for lab_results in by_lab.values() for r in lab_results):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: Path, results: Sequence[LabResult], lang: str = DEFAULT) -> None:
    atomic_write_text(Path(path), junit_xml(results, lang), hint=msg("write.hint.junit"))


def gradescope_results(results_for_one_learner: Sequence[LabResult], lang: str = "auto") -> dict[str, Any]:
    """Gradescope's autograder ``results.json`` for one learner (every lab given, in lab order).

    Test numbers are ``<lab index>.<check index>``; with several labs each name starts with its lab.
    A check with hidden inputs is shown ``after_published``. The outputs are Gradescope's Markdown (``md``), built
    from the Markdown report's own parts (its top, each check's details) with learner text escaped as there.
    """
    learners = {r.learner for r in results_for_one_learner}
    if len(learners) > 1:
        raise ValueError(f"gradescope_results takes one learner's results, got {', '.join(sorted(learners))}")
    labs = sorted(results_for_one_learner, key=lambda r: r.lab)
    lang = reader_language(labs[0], lang) if labs else DEFAULT
    several = len(labs) > 1
    tests = []
    for i, r in enumerate(labs, start=1):
        for j, c in enumerate(r.checks, start=1):
            test: dict[str, Any] = {
                "name": f"{r.lab} · {say(c.title, lang)} ({c.id})" if several else f"{say(c.title, lang)} ({c.id})",
                "number": f"{i}.{j}",
                "score": 0.0 if r.review_held and c.status is Status.REVIEW else float(c.score),  # held until decided
                "max_score": float(c.max_score),
                "status": "passed" if c.status.earns_points else "failed",
                "output": _gradescope_output(c, lang),
                "visibility": "after_published" if c.hidden else "visible",
            }
            tags = _tags(c)
            if tags:
                test["tags"] = tags
            test["extra_data"] = {"check": c.id, "grader_status": c.status.value, **message_data(c.message)}
            tests.append(test)
    return {
        "score": float(round(sum(r.export_score for r in labs), 6)),
        "execution_time": round(sum(r.seconds for r in labs), 2),
        "output": "\n\n".join(markdown_head(r, lang) for r in labs),
        "output_format": "md",
        "test_output_format": "md",
        "test_name_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {
            "learner": labs[0].learner if labs else "",
            "labs": [
                {"lab": r.lab, "passed": r.passed, "score": float(r.export_score), "max_score": float(r.max_score),
                 **({"adjustments": [adjustment_to_dict(a, d, lang)
                                     for a, d in adjustment_deltas(r.checks_score, r.adjustments)]} if r.adjustments else {}),
                 **({"needs_review": len(r.review)} if r.review else {})}
                for r in labs
            ],
        },
        "tests": tests,
    }


def write_gradescope(out_dir: Path, results: Sequence[LabResult], *, durable: bool = True, lang: str = "auto") -> list[Path]:
    """``<out>/<learner>/results.json``, beside that learner's reports; all are serialised before any is written."""
    documents = {
        Path(out_dir) / learner / _GRADESCOPE_FILE: json.dumps(
            gradescope_results(list(mine.values()), lang), ensure_ascii=False, indent=2, allow_nan=False
        )
        + "\n"
        for learner, mine in _by_learner(results).items()
    }
    for path, text in documents.items():
        atomic_write_text(path, text, durable=durable)
    return list(documents)


def _by_learner(results: Iterable[LabResult]) -> dict[str, dict[str, LabResult]]:
    """Learners in name order, each with their labs; a learner graded twice on a lab: the later run stands."""
    table: dict[str, dict[str, LabResult]] = {}
    for r in results:
        table.setdefault(r.learner, {})[r.lab] = r
    return {learner: dict(sorted(table[learner].items())) for learner in sorted(table)}


def _by_lab(results: Iterable[LabResult]) -> dict[str, list[LabResult]]:
    table: dict[str, dict[str, LabResult]] = {}
    for r in results:
        table.setdefault(r.lab, {})[r.learner] = r
    return {lab: [table[lab][learner] for learner in sorted(table[lab])] for lab in sorted(table)}


def cell_text(text: str) -> str:
    """A text cell a spreadsheet will not run: every ``;``- or ``,``-separated piece that starts (after spaces) with
    ``=``, ``+``, ``-``, ``@`` (or their full-width forms, a tab or a CR) gets a ``'``. Text cells are always quoted."""
    from grader.reports import visible_controls

    pieces = _PIECES.split(visible_controls(text))
    for k in range(0, len(pieces), 2):
        if pieces[k].lstrip(" ").startswith(_FORMULA_START) or pieces[k].startswith(_FORMULA_START):
            pieces[k] = "'" + pieces[k]
    return "".join(pieces)


def _number(x: float) -> float | int:
    """A number cell written unquoted (csv's QUOTE_NONNUMERIC): an integer when it is one."""
    value = round(float(x), 6)
    return int(value) if value.is_integer() else value


def decimal_text(x: float) -> str:
    """Exact to 1e-6, no exponent, no trailing zeros ("30", "21.333333"): what gradebook importers parse."""
    text = f"{round(float(x), 6):.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry NUL, most C0 controls, lone surrogates or U+FFFE/U+FFFF, even escaped."""
    return _NOT_XML.sub("", text)


def _junit_suite(lab: str, results: Sequence[LabResult], lang: str = DEFAULT) -> ET.Element:
    suite = ET.Element("testsuite", name=_xml_text(lab))
    statuses = [c.status for r in results for c in r.checks]
    suite.set("tests", str(len(statuses)))
    for key, status in (("failures", Status.FAIL), ("errors", Status.ERROR), ("skipped", Status.SKIP)):
        suite.set(key, str(statuses.count(status)))
    suite.set("time", f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        classname = _xml_text(f"{r.learner}.{r.lab.replace('/', '-')}")
        for c in r.checks:
            suite.append(_junit_case(c, classname, lang))
        for a, change in adjustment_deltas(r.checks_score, r.adjustments):  # a lab-level change is no check: said beside them
            case = ET.SubElement(suite, "testcase", name=f"adjustment:{a.kind}", classname=classname, time="0.000")
            line = say(msg("export.adjustment", kind=a.kind, change=format_points(change), reason=a.reason), lang)
            ET.SubElement(case, "system-out").text = _xml_text(line + "\n" + json.dumps(
                {"adjustment": a.kind, "change": change, **message_data(a.reason)}, ensure_ascii=False))
            suite.set("tests", str(int(suite.get("tests", "0")) + 1))
    return suite


def _junit_case(c: CheckResult, classname: str, lang: str = DEFAULT) -> ET.Element:
    """Per-check time is not measured (a lab's calls are batched), so a case says 0 and its suite the lab's run."""
    case = ET.Element("testcase", name=_xml_text(c.id), classname=classname, time="0.000")
    outcome = {Status.FAIL: "failure", Status.ERROR: "error", Status.SKIP: "skipped"}.get(c.status)
    if outcome is not None:
        detail = ET.SubElement(case, outcome, message=_xml_text(headline(say(c.message, lang)) or c.status.value))
        if outcome != "skipped":
            detail.set("type", c.status.value)
            points = say(msg("export.score", score=format_points(c.score), max=format_points(c.max_score)), lang)
            detail.text = _xml_text(f"{_check_detail(c, lang)}\n{points}".lstrip("\n"))
    notes = _notes(c, lang)
    if notes:
        ET.SubElement(case, "system-out").text = _xml_text(notes)
    return case


def _check_detail(c: CheckResult, lang: str = DEFAULT) -> str:
    """The message, then the evidence as labelled lines: the same facts the HTML report shows."""
    def label(message_id: str) -> str:
        text = say(msg(message_id), lang)
        return text[:1].lower() + text[1:]

    lines = [say(c.message, lang)]
    e = c.evidence
    if e is not None:
        if e.input_label or e.input_value is not None:
            value = "" if e.input_value is None else format_value(e.input_value)
            given = say(e.input_label, lang)
            lines.append(f"{label('evidence.input')}: {given}{' = ' if given and value else ''}{value}")
        if e.expected is not None or e.observed is not None:
            lines += [f"{label('evidence.expected')}: {format_value(e.expected)}",
                      f"{label('evidence.observed')}: {format_value(e.observed)}"]
        if e.max_abs_error is not None:
            lines.append(f"{label('evidence.max_abs')}: {format_number(e.max_abs_error)}")
        if e.max_rel_error is not None:
            lines.append(f"{label('evidence.max_rel')}: {format_number(e.max_rel_error)}")
        if e.where:
            lines.append(f"{label('evidence.where')}: {format_index(e.where)} ({say(msg('export.where.hint'), lang)})")
        if e.cause:
            lines.append(say(msg("report.likely_cause", cause=e.cause), lang))
    return "\n".join(line for line in lines if line)


def _notes(c: CheckResult, lang: str = DEFAULT) -> str:
    """What a CI page shows beside the outcome; the last line is the finding as data (``message_id``, ``params``)."""
    notes = []
    if c.status is Status.REVIEW:
        notes.append(f"{say(msg('export.status.review'), lang)}: {say(c.message, lang)}".rstrip(": "))
    if c.override is not None:
        notes.append(_override_line(c.override, c.max_score, lang))
    data = message_data(c.message)
    if c.status is not Status.PASS and data["message_id"] not in (None, VERBATIM):
        notes.append(json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")))
    return "\n".join(notes)


def _override_line(o: Override, max_score: float, lang: str = DEFAULT) -> str:
    return say(msg("export.overridden", source=f" [{o.source}]" if o.source else "", reason=o.reason,
                   status=msg(f"status.{o.status.value}"), score=format_points(o.score), max=format_points(max_score)), lang)


def _gradescope_output(c: CheckResult, lang: str = DEFAULT) -> str:
    """Gradescope says only passed or failed: review and error are said first; a skipped check's own message says
    why it was skipped (once — the overall output groups them)."""
    status = f"*{say(msg(f'export.status.{c.status.value}'), lang)}*" if c.status in (Status.REVIEW, Status.ERROR) else ""
    return "\n\n".join(part for part in (status, markdown_detail(c, lang)) if part)


def _tags(c: CheckResult) -> list[str]:
    """What Gradescope's passed/failed cannot say: error, skip and review apart, acceptance, overrides."""
    candidates = [
        ("acceptance", c.acceptance),
        (c.status.value, c.status in (Status.ERROR, Status.SKIP, Status.REVIEW)),
        ("hidden inputs", c.hidden),
        ("overridden", c.override is not None),
    ]
    return [tag for tag, on in candidates if on]
