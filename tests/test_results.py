"""The JSON results file and the atomic writes under it."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.atomicio import atomic_write_bytes, atomic_write_text
from grader.errors import GraderError
from grader.i18n import verbatim
from grader.model import CheckResult, Evidence, LabResult, Override, Status
from grader.results import (
    SCHEMA_VERSION,
    dumps,
    lab_from_dict,
    lab_to_dict,
    plain,
    results_document,
    unplain,
    write_json,
)

NAN, INF = float("nan"), float("inf")

LAB_KEYS = {"learner", "lab", "language", "title", "passed", "score", "max_score", "seconds", "checks"}
CHECK_KEYS = {"id", "title", "status", "score", "max_score", "acceptance", "message", "message_id", "params", "hidden", "evidence", "override"}
EVIDENCE_KEYS = {"input", "input_id", "input_params", "input_value", "expected", "observed", "max_abs_error", "max_rel_error",
                 "where", "cause", "cause_id", "cause_params"}


def passing() -> LabResult:
    return LabResult(
        learner="borja",
        lab="phase-04/lab-00",
        title="Finite differences",
        checks=(
            CheckResult("shape", "Output shape", Status.PASS, 2.0, 2.0, True, "shape (3,) as expected"),
            CheckResult("values", "Gradient values", Status.PASS, 16.0, 16.0, True, ""),
            CheckResult("plot", "Error plot", Status.REVIEW, 2.0, 2.0, False, "a human will look at the plot"),
        ),
        output="done\n",
        seconds=0.12,
    )


def failing() -> LabResult:
    matrix = [[1.0, NAN, 0.0], [0.0, INF, 0.0], [0.0, 0.0, -INF]]
    return LabResult(
        learner="ana-maría",
        lab="phase-04/lab-00",
        title="Finite differences",
        checks=(
            CheckResult("shape", "Output shape", Status.PASS, 2.0, 2.0, True, "ok"),
            CheckResult(
                "grad",
                "Gradient values",
                Status.FAIL,
                0.0,
                8.0,
                True,
                "wrong <script>alert(1)</script>",
                Evidence(
                    input_label="identity",
                    input_value=(np.eye(3), 1e-3),
                    expected=np.eye(3),
                    observed=np.array(matrix),
                    max_abs_error=INF,
                    max_rel_error=NAN,
                    where=(np.int64(1), 2),
                    cause="divided by h twice",
                ),
            ),
            CheckResult("crash", "Runs", Status.ERROR, 0.0, 4.0, False, "ZeroDivisionError", Evidence(max_abs_error=-INF)),
            CheckResult("later", "Later step", Status.SKIP, 0.0, 2.0, False, "needs grad", hidden=True),
        ),
    )


def _no_constants(name: str) -> NoReturn:
    raise AssertionError(f"non-strict JSON constant {name}")


def _strict_loads(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constants)


def test_passing_result_document_is_exactly_the_schema() -> None:
    assert results_document([passing()]) == {
        "version": 2,
        "results": [
            {
                "learner": "borja",
                "lab": "phase-04/lab-00",
                "language": "en",
                "title": "Finite differences",
                "passed": True,
                "score": 20.0,
                "max_score": 20.0,
                "seconds": 0.12,
                "checks": [
                    {
                        "id": "shape",
                        "title": "Output shape",
                        "status": "pass",
                        "score": 2.0,
                        "max_score": 2.0,
                        "acceptance": True,
                        "message": "shape (3,) as expected",
                        "message_id": "text",
                        "params": {"text": "shape (3,) as expected"},
                        "hidden": False,
                        "evidence": None,
                        "override": None,
                    },
                    {
                        "id": "values",
                        "title": "Gradient values",
                        "status": "pass",
                        "score": 16.0,
                        "max_score": 16.0,
                        "acceptance": True,
                        "message": "",
                        "message_id": "text",
                        "params": {"text": ""},
                        "hidden": False,
                        "evidence": None,
                        "override": None,
                    },
                    {
                        "id": "plot",
                        "title": "Error plot",
                        "status": "review",
                        "score": 2.0,
                        "max_score": 2.0,
                        "acceptance": False,
                        "message": "a human will look at the plot",
                        "message_id": "text",
                        "params": {"text": "a human will look at the plot"},
                        "hidden": False,
                        "evidence": None,
                        "override": None,
                    },
                ],
            }
        ],
    }


def test_failing_result_keys_and_types() -> None:
    doc = _strict_loads(json.dumps(results_document([passing(), failing()]), allow_nan=False))
    assert set(doc) == {"version", "results"} and doc["version"] == SCHEMA_VERSION == 2
    for lab in doc["results"]:
        assert set(lab) == LAB_KEYS
        assert isinstance(lab["passed"], bool)
        assert all(isinstance(lab[k], float) for k in ("score", "max_score", "seconds"))
        for check in lab["checks"]:
            assert set(check) == CHECK_KEYS
            assert check["status"] in {s.value for s in Status}
            assert check["evidence"] is None or set(check["evidence"]) == EVIDENCE_KEYS
    failed = doc["results"][1]
    assert failed["passed"] is False
    assert (failed["score"], failed["max_score"]) == (2.0, 16.0)
    assert [c["status"] for c in failed["checks"]] == ["pass", "fail", "error", "skip"]
    assert failed["checks"][3]["hidden"] is True


def test_evidence_becomes_strict_json_data() -> None:
    evidence = lab_to_dict(failing())["checks"][1]["evidence"]
    assert evidence == {
        "input": "identity",
        "input_id": None,
        "input_params": None,
        "input_value": [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], 0.001],
        "expected": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        "observed": [[1.0, "nan", 0.0], [0.0, "inf", 0.0], [0.0, 0.0, "-inf"]],
        "max_abs_error": "inf",
        "max_rel_error": "nan",
        "where": [1, 2],
        "cause": "divided by h twice",
        "cause_id": "text",
        "cause_params": {"text": "divided by h twice"},
    }
    assert lab_to_dict(failing())["checks"][2]["evidence"]["max_abs_error"] == "-inf"
    assert lab_to_dict(failing())["checks"][2]["evidence"]["where"] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float32(0.5), 0.5),
        (np.int64(7), 7),
        (np.bool_(True), True),
        (np.array([np.nan, 1.0]), ["nan", 1.0]),
        ((1, (2.0, -math.inf)), [1, [2.0, "-inf"]]),
        ({"h": math.nan, 3: "x"}, {"h": "nan", "3": "x"}),
        (1 + 2j, "(1+2j)"),
        (None, None),
        ("text", "text"),
    ],
)
def test_plain(value: Any, expected: Any) -> None:
    assert plain(value) == expected


def test_write_json_is_strict_utf8_indented_with_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.json"
    write_json(path, [passing(), failing()])
    text = path.read_bytes().decode("utf-8")
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert '"ana-maría"' in text
    assert '\n  "results": [' in text
    assert "NaN" not in text and "Infinity" not in text
    assert _strict_loads(text) == json.loads(json.dumps(results_document([passing(), failing()]), allow_nan=False))
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_write_json_serialisation_failure_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("old", encoding="utf-8")
    broken = LabResult("x", "phase-04/lab-00", "t", (CheckResult("c", "c", Status.FAIL, NAN, 1.0, True, ""),))
    with pytest.raises(ValueError):
        write_json(path, [broken])
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_atomic_write_creates_parents_and_keeps_bytes_exact(tmp_path: Path) -> None:
    text_path = tmp_path / "a" / "b" / "x.md"
    atomic_write_text(text_path, "línea\r\nnext\n")
    assert text_path.read_bytes() == "línea\r\nnext\n".encode("utf-8")
    bytes_path = tmp_path / "c" / "x.bin"
    atomic_write_bytes(bytes_path, b"\x00\xff")
    assert bytes_path.read_bytes() == b"\x00\xff"
    atomic_write_bytes(bytes_path, b"new")
    assert bytes_path.read_bytes() == b"new"
    assert os.listdir(bytes_path.parent) == ["x.bin"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_gives_normal_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    fresh = tmp_path / "fresh.txt"
    atomic_write_text(fresh, "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~mask
    kept = tmp_path / "kept.txt"
    kept.write_text("old", encoding="utf-8")
    kept.chmod(0o640)
    atomic_write_text(kept, "new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_failed_write_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    path = tmp_path / "reports" / "borja" / "x.html"
    path.parent.mkdir(parents=True)
    path.write_text("old", encoding="utf-8")

    def deny(*args: object) -> NoReturn:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, target, deny)
    with pytest.raises(GraderError) as caught:
        atomic_write_text(path, "new")
    monkeypatch.undo()
    assert str(caught.value) == f"cannot write {path}: Permission denied — choose another --out"
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(path.parent) == ["x.html"]


def test_interrupted_write_keeps_old_file_and_reraises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.txt"
    path.write_text("old", encoding="utf-8")

    def interrupt(*args: object) -> NoReturn:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, "new")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_unwritable_parent_is_one_line_grader_error(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(GraderError) as caught:
        atomic_write_text(blocker / "borja" / "x.html", "new", hint="remove the file")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write {blocker / 'borja' / 'x.html'}: ")
    assert message.endswith(" — remove the file")


def overridden() -> LabResult:
    base = failing()
    grad = base.checks[1]
    changed = CheckResult(grad.id, grad.title, Status.PASS, 8.0, 8.0, True, grad.message, grad.evidence,
                          override=Override("derivation checked on paper", Status.FAIL, 0.0, "overrides.yaml:4"))
    return LabResult(base.learner, base.lab, base.title, (base.checks[0], changed, *base.checks[2:]), seconds=1.5)


def test_override_is_written_with_the_graders_own_verdict() -> None:
    check = lab_to_dict(overridden())["checks"][1]
    assert (check["status"], check["score"]) == ("pass", 8.0)
    assert check["override"] == {"reason": "derivation checked on paper", "status": "fail", "score": 0.0, "source": "overrides.yaml:4"}
    assert all(c["override"] is None for c in lab_to_dict(failing())["checks"])


@pytest.mark.parametrize("make", [passing, failing, overridden])
def test_lab_from_dict_reads_back_what_was_written(make: Any) -> None:
    original = make()
    text = json.dumps(lab_to_dict(original), allow_nan=False)
    back = lab_from_dict(_strict_loads(text))
    assert json.dumps(lab_to_dict(back), allow_nan=False) == text
    assert (back.passed, back.score, back.max_score, back.counts) == (original.passed, original.score, original.max_score, original.counts)
    assert [c.override for c in back.checks] == [c.override for c in original.checks]


def test_lab_from_dict_restores_numbers_and_where() -> None:
    e = lab_from_dict(lab_to_dict(failing())).checks[1].evidence
    assert e is not None
    assert e.where == (1, 2) and e.cause == verbatim("divided by h twice")
    assert e.max_abs_error == INF and math.isnan(e.max_rel_error or 0.0)
    assert e.observed[1][1] == INF and math.isnan(e.observed[0][1]) and e.observed[2][2] == -INF
    assert e.input_value == [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], 0.001]
    assert lab_from_dict(lab_to_dict(failing())).checks[2].evidence == Evidence(max_abs_error=-INF)


def test_lab_from_dict_reads_files_from_before_overrides_and_ignores_stored_totals() -> None:
    doc = lab_to_dict(passing())
    for check in doc["checks"]:
        del check["override"]
    doc["passed"], doc["score"] = False, 999.0
    back = lab_from_dict(doc)
    assert all(c.override is None for c in back.checks)
    assert (back.passed, back.score) == (True, 20.0)
    assert back.output == "" and lab_from_dict({**doc, "output": "hi\n"}).output == "hi\n"


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda d: d.pop("checks"), "missing key 'checks'"),
        (lambda d: d["checks"][0].update(status="passed"), "'passed' is not a valid Status"),
        (lambda d: d["checks"][0].update(score="lots"), "could not convert string to float"),
    ],
)
def test_lab_from_dict_rejects_what_is_not_a_result(damage: Any, fragment: str) -> None:
    doc = lab_to_dict(passing())
    damage(doc)
    with pytest.raises(GraderError) as caught:
        lab_from_dict(doc)
    assert str(caught.value).startswith("not a grader result (JSON v2): ") and fragment in str(caught.value)


def test_unplain_is_plains_inverse_on_numbers() -> None:
    assert unplain(["nan", "inf", "-inf", "text", {"h": "inf"}, None])[1:] == [INF, -INF, "text", {"h": INF}, None]
    assert math.isnan(unplain("nan")) and unplain("decreasing") == "decreasing"


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.booleans())
_values = st.recursive(
    st.one_of(st.none(), _number, st.text(max_size=8), st.sampled_from(["nan", "inf", "-inf"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=12,
)
_evidence = st.builds(
    Evidence,
    input_label=st.text(max_size=10),
    input_value=_values,
    expected=_values,
    observed=st.one_of(_values, st.builds(lambda rows: np.array(rows, dtype=float),
                                          st.lists(st.floats(allow_nan=True), min_size=1, max_size=4))),
    max_abs_error=st.one_of(st.none(), st.floats()),
    max_rel_error=st.one_of(st.none(), st.floats()),
    where=st.one_of(st.none(), st.lists(st.integers(0, 50), max_size=3).map(tuple)),
    cause=st.one_of(st.none(), st.text(max_size=10)),
)
_statuses = st.sampled_from(list(Status))
_override = st.builds(Override, reason=st.text(min_size=1, max_size=20), status=_statuses, score=_finite,
                      source=st.text(max_size=20))
_check = st.builds(
    CheckResult,
    id=st.text(min_size=1, max_size=8),
    title=st.text(max_size=12),
    status=_statuses,
    score=_finite,
    max_score=_finite,
    acceptance=st.booleans(),
    message=st.text(max_size=20),
    evidence=st.one_of(st.none(), _evidence),
    hidden=st.booleans(),
    override=st.one_of(st.none(), _override),
)
_lab = st.builds(
    LabResult,
    learner=st.text(min_size=1, max_size=8),
    lab=st.text(min_size=1, max_size=16),
    title=st.text(max_size=12),
    checks=st.lists(_check, max_size=5).map(tuple),
    seconds=st.floats(min_value=0, max_value=1e4),
)


@settings(max_examples=150, deadline=None)
@given(_lab)
def test_round_trip_serialises_identically(result: LabResult) -> None:
    text = dumps([result])
    assert dumps([lab_from_dict(json.loads(text)["results"][0])]) == text
    assert dumps([lab_from_dict(lab_to_dict(result))]) == text
