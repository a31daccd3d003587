"""Gradebook CSV, JUnit XML and Gradescope exports: read back by the tools (or schemas) that consume them."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import xmlschema

from grader.exports import (
    gradebook_csv,
    gradescope_results,
    junit_xml,
    write_gradebook,
    write_gradescope,
    write_junit,
)
from grader.grading import grade
from grader.i18n import msg
from grader.model import CheckResult, Evidence, LabResult, Override, Status

SCHEMAS = Path(__file__).parent / "schemas"
LAB0, LAB1 = "phase-04/lab-00", "phase-05/lab-02"
OVERRIDE_NOTE = (
    "overridden by instructor [overrides.yaml:12]: handed in on paper (the grader said fail, 0.0 / 1.0 points)"
)


@pytest.fixture(scope="module")
def junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMAS / "junit.xsd"))


@pytest.fixture(scope="module")
def gradescope_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / "gradescope-results.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def borja() -> list[LabResult]:
    return grade(["learners/borja"])


def lab(learner: str, name: str = LAB0, *checks: CheckResult, seconds: float = 0.25) -> LabResult:
    return LabResult(learner=learner, lab=name, title=f"Lab {name}", checks=checks or (ok("shape"),), seconds=seconds)


def ok(check_id: str, points: float = 2.0, **kw: Any) -> CheckResult:
    return CheckResult(check_id, f"Check {check_id}", Status.PASS, points, points, True, "ok", **kw)


def every_status() -> tuple[CheckResult, ...]:
    """One check per status, partial credit, evidence, hidden inputs, an override and hostile text."""
    return (
        ok("shape"),
        CheckResult(
            "values",
            "Gradient values",
            Status.FAIL,
            1.5,
            4.0,
            True,
            "wrong <b>values</b> & \x00\x07bell\nsecond line",
            Evidence(
                input_label="seed",
                input_value=[1.0, 2.0],
                expected=[0.5, 0.5],
                observed=[0.5, float("nan")],
                max_abs_error=float("inf"),
                where=(1,),
                cause="forward differences",
            ),
        ),
        CheckResult("runs", "Script runs", Status.ERROR, 0.0, 3.0, False, "raised ZeroDivisionError"),
        CheckResult("later", "Later step", Status.SKIP, 0.0, 2.0, False, "needs values", hidden=True),
        CheckResult("plot", "Plot", Status.REVIEW, 2.0, 2.0, False, "a human will look at the plot"),
        CheckResult(
            "reflection",
            "Reflection",
            Status.PASS,
            1.0,
            1.0,
            False,
            "accepted by the instructor",
            override=Override("handed in on paper", Status.FAIL, 0.0, "overrides.yaml:12"),
        ),
    )


def klass() -> list[LabResult]:
    return [
        lab("Begoña Núñez", LAB0, *every_status()),
        lab("Begoña Núñez", LAB1, ok("lse", 5.0)),
        lab("ana", LAB0, ok("shape", 21 + 1 / 3)),
        lab("=HYPERLINK('evil.example')", LAB1, ok("lse", 5.0)),
    ]


# --- gradebook CSV -----------------------------------------------------------------------------


def read_gradebook(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_gradebook_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "gradebook.csv"
    write_gradebook(path, klass())
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\r\n") == 4 and b"\n" not in raw.replace(b"\r\n", b"")
    rows = read_gradebook(path)
    cols = ("score", "max", "passed", "handed in", "needs review", "adjustments")
    assert list(rows[0]) == [
        "learner", *(f"{LAB0} {c}" for c in cols), *(f"{LAB1} {c}" for c in cols), "total score", "total max", "needs review",
    ]
    by_name = {row["learner"]: row for row in rows}
    assert set(by_name) == {"'=HYPERLINK('evil.example')", "Begoña Núñez", "ana"}
    assert by_name["Begoña Núñez"] == {
        "learner": "Begoña Núñez",
        f"{LAB0} score": "6.5", f"{LAB0} max": "14", f"{LAB0} passed": "0", f"{LAB0} handed in": "1",
        f"{LAB0} needs review": "1", f"{LAB0} adjustments": "0",
        f"{LAB1} score": "5", f"{LAB1} max": "5", f"{LAB1} passed": "1", f"{LAB1} handed in": "1",
        f"{LAB1} needs review": "0", f"{LAB1} adjustments": "0",
        "total score": "11.5", "total max": "19", "needs review": "1",
    }  # fmt: skip
    assert by_name["ana"][f"{LAB0} score"] == "21.333333"
    # a lab not handed in is 0 out of its maximum: every total is out of the same points
    assert [by_name["ana"][f"{LAB1} {col}"] for col in cols] == ["0", "5", "0", "0", "0", "0"]
    assert {row["total max"] for row in rows} == {"19"}
    injected = by_name["'=HYPERLINK('evil.example')"]
    assert [injected[f"{LAB0} {col}"] for col in ("score", "max", "passed", "handed in")] == ["0", "14", "0", "0"]


def test_gradebook_totals_count_every_rubric_lab_and_hold_review_points(tmp_path: Path) -> None:
    """A lab nobody in these results handed in still counts (the rubrics' maxima); held review points are left out."""
    from dataclasses import replace

    held = replace(lab("ana", LAB0, *every_status()), review_held=True)
    rows = list(csv.DictReader(io.StringIO(gradebook_csv([held], {LAB0: 14.0, LAB1: 5.0, "phase-06/lab-00": 10.0}))))
    [row] = rows
    assert row["total max"] == "29" and row["phase-06/lab-00 max"] == "10" and row["phase-06/lab-00 score"] == "0"
    review_points = sum(c.score for c in held.checks if c.status is Status.REVIEW)
    assert review_points > 0 and float(row[f"{LAB0} score"]) == held.score - review_points


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+34 600", "'+34 600"),
        ("-2", "'-2"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\tcmd", "'\tcmd"),
        ("ana=b", "ana=b"),
        ("x;=2+5;", "x;'=2+5;"),  # Spanish Excel splits a cell at ';'
        ("a, +b", "a,' +b"),
        (" =1+1", "' =1+1"),
        ("＝1+1", "'＝1+1"),  # full-width signs are folded by Excel
        ('O\'Neil, "Pat"', 'O\'Neil, "Pat"'),
        ("línea\nnueva", "línea\nnueva"),
        ("Begoña Núñez", "Begoña Núñez"),
    ],
)
def test_gradebook_learner_cell(name: str, cell: str) -> None:
    rows = list(csv.reader(io.StringIO(gradebook_csv([lab(name)]), newline="")))
    assert rows[1][0] == cell
    assert rows[1][1:4] == ["2", "2", "1"]


def test_gradebook_empty_class_has_header_only() -> None:
    assert gradebook_csv([]) == '"learner","total score","total max","needs review"\r\n'  # every text field quoted


# --- JUnit XML ---------------------------------------------------------------------------------


def test_junit_is_valid_and_counts_add_up(junit_schema: xmlschema.XMLSchema) -> None:
    text = junit_xml(klass())
    junit_schema.validate(text)
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == [LAB0, LAB1]
    assert {k: suites[LAB0].get(k) for k in ("tests", "failures", "errors", "skipped", "time")} == {
        "tests": "7", "failures": "1", "errors": "1", "skipped": "1", "time": "0.500",
    }  # fmt: skip
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "time")} == {
        "tests": "9", "failures": "1", "errors": "1", "time": "1.000",
    }  # fmt: skip
    classnames = {case.get("classname") for case in root.iter("testcase")}
    assert classnames == {
        "Begoña Núñez.phase-04-lab-00",
        "ana.phase-04-lab-00",
        "Begoña Núñez.phase-05-lab-02",
        "=HYPERLINK('evil.example').phase-05-lab-02",
    }


@pytest.mark.parametrize(
    ("check_id", "child", "system_out"),
    [
        ("shape", None, None),
        ("values", "failure", None),
        ("runs", "error", None),
        ("later", "skipped", None),
        ("plot", None, "under review: a human must look; the points are given provisionally: a human will look at the plot"),
        ("reflection", None, OVERRIDE_NOTE),
    ],
)
def test_junit_outcome_per_status(check_id: str, child: str | None, system_out: str | None) -> None:
    root = ET.fromstring(junit_xml([lab("Begoña Núñez", LAB0, *every_status())]))
    (case,) = [c for c in root.iter("testcase") if c.get("name") == check_id]
    outcomes = [e.tag for e in case if e.tag in ("failure", "error", "skipped")]
    assert outcomes == ([] if child is None else [child])
    assert case.findtext("system-out") == system_out


def test_junit_and_gradescope_carry_the_finding_as_data() -> None:
    """A tool counts causes across a class from the id and parameters, never from the English words."""
    finding = msg("compare.off", name="ce_grad", input="seed", diff="0.87", atol=1e-07, count="")
    failed = CheckResult(id="values", title="Gradient values", status=Status.FAIL, score=0.0, max_score=2.0,
                         acceptance=True, message=finding)
    result = lab("Begoña Núñez", LAB0, failed)
    case = ET.fromstring(junit_xml([result])).find(".//testcase[@name='values']")
    assert case is not None
    assert json.loads((case.findtext("system-out") or "").splitlines()[-1]) == {
        "message_id": "compare.off", "params": {"name": "ce_grad", "input": "seed", "diff": "0.87", "atol": 1e-07, "count": ""}}
    (test,) = gradescope_results([result])["tests"]
    assert test["extra_data"] == {"check": "values", "grader_status": "fail", "message_id": "compare.off",
                                  "params": {"name": "ce_grad", "input": "seed", "diff": "0.87", "atol": 1e-07, "count": ""}}


def test_junit_failure_carries_evidence_and_drops_illegal_characters() -> None:
    text = junit_xml([lab("bad\x00name\x1b", LAB0, *every_status())])
    assert "\x00" not in text and "\x07" not in text and "\x1b" not in text
    root = ET.fromstring(text)
    failure = root.find(".//testcase[@name='values']/failure")
    assert failure is not None
    assert failure.get("message") == "wrong <b>values</b> & bell"
    assert failure.get("type") == "fail"
    assert failure.text == (
        "wrong <b>values</b> & bell\nsecond line\ninput: seed = [1, 2]\nexpected: [0.5, 0.5]\n"
        "observed: [0.5, nan]\nmax abs error: inf\nwhere: [1] (entry index, from 0)\n"
        "likely cause: forward differences\nscore: 1.5 / 4.0"
    )
    assert {c.get("classname") for c in root.iter("testcase")} == {"badname.phase-04-lab-00"}


def test_junit_real_and_empty_results_validate(
    junit_schema: xmlschema.XMLSchema, borja: list[LabResult], tmp_path: Path
) -> None:
    write_junit(tmp_path / "junit.xml", borja)
    junit_schema.validate(str(tmp_path / "junit.xml"))
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.get("tests") == str(sum(len(r.checks) for r in borja)) and root.get("failures") == "0"
    junit_schema.validate(junit_xml([]))


@pytest.mark.parametrize(
    "broken",
    [
        '<testsuites><testsuite name="x" tests="one"/></testsuites>',
        '<testsuites><testsuite name="x" tests="1"><testcase classname="c"/></testsuite></testsuites>',
        '<testsuites><testsuite name="x" tests="1"><testcase name="n" time="-1"/></testsuite></testsuites>',
        '<testsuites><testsuite name="x" tests="1"><testcase name="n"><failed/></testcase></testsuite></testsuites>',
    ],
)
def test_junit_schema_rejects_malformed(junit_schema: xmlschema.XMLSchema, broken: str) -> None:
    assert not junit_schema.is_valid(broken)


# --- Gradescope --------------------------------------------------------------------------------


def test_gradescope_document(gradescope_validator: jsonschema.Draft202012Validator) -> None:
    doc = gradescope_results([lab("Begoña Núñez", LAB0, *every_status(), seconds=1.234)])
    gradescope_validator.validate(doc)
    assert doc["score"] == sum(t["score"] for t in doc["tests"]) == 6.5
    assert doc["execution_time"] == 1.23
    # the Markdown report's top: verdict, counts, what to look at first (acceptance first), skipped grouped once
    assert doc["output"].startswith(f"## ❌ NOT PASSED · 6.5/14.0 · {LAB0}\n")
    first = doc["output"].split("**What to look at first**")[1]
    assert first.index("`values`") < first.index("`runs`") and "*(acceptance)*" in first
    assert first.count("⏭️") == 1 and "(later)" in first
    assert (doc["visibility"], doc["stdout_visibility"]) == ("visible", "hidden")
    assert (doc["output_format"], doc["test_output_format"], doc["test_name_format"]) == ("md", "md", "text")
    assert [t["number"] for t in doc["tests"]] == ["1.1", "1.2", "1.3", "1.4", "1.5", "1.6"]
    assert doc["tests"][0]["name"] == "Check shape (shape)"


@pytest.mark.parametrize(
    ("check_id", "status", "visibility", "tags", "output_starts"),
    [
        ("shape", "passed", "visible", ["acceptance"], "ok"),
        # Gradescope renders md: learner text is escaped as in our Markdown report (no live HTML)
        ("values", "failed", "visible", ["acceptance"], "wrong \\<b\\>values\\</b\\> \\& \x00\x07bell<br>\nsecond line\n\n| Evidence"),
        ("runs", "failed", "visible", ["error"], "*error: your code raised, crashed, exited or timed out*\n\nraised"),
        ("later", "failed", "after_published", ["skip", "hidden inputs"], "needs values"),  # skipped: said by its tag
        ("plot", "passed", "visible", ["review"], "*under review: a human must look; the points are given"),
        ("reflection", "passed", "visible", ["overridden"], "**Overridden by instructor:** handed in on paper "
                                                            "*(grader said: fail 0.0/1.0)*\n\naccepted by the instructor"),
    ],
)
def test_gradescope_test_per_status(
    check_id: str, status: str, visibility: str, tags: list[str], output_starts: str
) -> None:
    doc = gradescope_results([lab("Begoña Núñez", LAB0, *every_status())])
    (test,) = [t for t in doc["tests"] if t["name"].endswith(f"({check_id})")]
    assert (test["status"], test["visibility"], test.get("tags", [])) == (status, visibility, tags)
    assert test["output"].startswith(output_starts)


def test_gradescope_several_labs_are_prefixed_and_numbered(
    gradescope_validator: jsonschema.Draft202012Validator, borja: list[LabResult]
) -> None:
    doc = gradescope_results(list(reversed(borja)))
    gradescope_validator.validate(doc)
    labs = sorted(r.lab for r in borja)
    assert [t["name"].split(" · ")[0] for t in doc["tests"]] == [
        r.lab for r in sorted(borja, key=lambda r: r.lab) for _ in r.checks
    ]
    assert doc["tests"][-1]["number"] == f"2.{len(sorted(borja, key=lambda r: r.lab)[1].checks)}"
    assert doc["score"] == sum(r.score for r in borja)
    assert [entry["lab"] for entry in doc["extra_data"]["labs"]] == labs


def test_gradescope_refuses_several_learners() -> None:
    with pytest.raises(ValueError, match="one learner's results, got ana, bob"):
        gradescope_results([lab("bob"), lab("ana")])


def test_write_gradescope(tmp_path: Path, gradescope_validator: jsonschema.Draft202012Validator) -> None:
    paths = write_gradescope(tmp_path, klass())
    assert paths == [
        tmp_path / "=HYPERLINK('evil.example')" / "results.json",
        tmp_path / "Begoña Núñez" / "results.json",
        tmp_path / "ana" / "results.json",
    ]
    for path in paths:
        doc = json.loads(path.read_text(encoding="utf-8"))
        gradescope_validator.validate(doc)
        assert doc["extra_data"]["learner"] == path.parent.name
    assert write_gradescope(tmp_path / "none", []) == []


@pytest.mark.parametrize(
    "broken",
    [
        {"tests": [{"name": "no score anywhere"}]},
        {"score": 1, "visibility": "secret"},
        {"score": 1, "tests": [{"score": 1, "status": "error"}]},
        {"score": 1, "tests": [{"score": 1, "max_score": "2"}]},
        {"score": 1, "test": []},
    ],
)
def test_gradescope_schema_rejects_malformed(
    gradescope_validator: jsonschema.Draft202012Validator, broken: dict[str, Any]
) -> None:
    assert not gradescope_validator.is_valid(broken)


def test_junit_is_in_the_instructors_language() -> None:
    text = junit_xml([lab("Begoña Núñez", LAB0, *every_status())], "es")
    root = ET.fromstring(text)
    failure = root.find(".//testcase[@name='values']/failure")
    assert failure is not None and (failure.text or "").endswith("puntos: 1.5 / 4.0")
    assert "por revisar: un profesor" in (root.find(".//testcase[@name='plot']/system-out").text or "")  # type: ignore[union-attr]
