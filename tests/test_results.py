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

from grader.atomicio import atomic_write_bytes, atomic_write_text
from grader.errors import GraderError
from grader.model import CheckResult, Evidence, LabResult, Status
from grader.results import SCHEMA_VERSION, lab_to_dict, plain, results_document, write_json

NAN, INF = float("nan"), float("inf")

LAB_KEYS = {"learner", "lab", "title", "passed", "score", "max_score", "seconds", "checks"}
CHECK_KEYS = {"id", "title", "status", "score", "max_score", "acceptance", "message", "hidden", "evidence"}
EVIDENCE_KEYS = {"input", "input_value", "expected", "observed", "max_abs_error", "max_rel_error", "where", "cause"}


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
        "version": 1,
        "results": [
            {
                "learner": "borja",
                "lab": "phase-04/lab-00",
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
                        "hidden": False,
                        "evidence": None,
                    },
                    {
                        "id": "values",
                        "title": "Gradient values",
                        "status": "pass",
                        "score": 16.0,
                        "max_score": 16.0,
                        "acceptance": True,
                        "message": "",
                        "hidden": False,
                        "evidence": None,
                    },
                    {
                        "id": "plot",
                        "title": "Error plot",
                        "status": "review",
                        "score": 2.0,
                        "max_score": 2.0,
                        "acceptance": False,
                        "message": "a human will look at the plot",
                        "hidden": False,
                        "evidence": None,
                    },
                ],
            }
        ],
    }


def test_failing_result_keys_and_types() -> None:
    doc = _strict_loads(json.dumps(results_document([passing(), failing()]), allow_nan=False))
    assert set(doc) == {"version", "results"} and doc["version"] == SCHEMA_VERSION == 1
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
        "input_value": [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], 0.001],
        "expected": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        "observed": [[1.0, "nan", 0.0], [0.0, "inf", 0.0], [0.0, 0.0, "-inf"]],
        "max_abs_error": "inf",
        "max_rel_error": "nan",
        "where": [1, 2],
        "cause": "divided by h twice",
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
