"""The machine-readable results file: strict JSON that any tool (or a later grader run) can read back."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grader.atomicio import atomic_write_text
from grader.model import CheckResult, Evidence, LabResult

SCHEMA_VERSION = 1


def results_document(results: Sequence[LabResult]) -> dict[str, Any]:
    """The whole file; the version lets readers refuse a schema they do not know."""
    return {"version": SCHEMA_VERSION, "results": [lab_to_dict(r) for r in results]}


def lab_to_dict(r: LabResult) -> dict[str, Any]:
    """Totals are included although derivable, so readers need not re-implement the pass rule."""
    return {
        "learner": r.learner,
        "lab": r.lab,
        "title": r.title,
        "passed": r.passed,
        "score": float(r.score),
        "max_score": float(r.max_score),
        "seconds": float(r.seconds),
        "checks": [check_to_dict(c) for c in r.checks],
    }


def check_to_dict(c: CheckResult) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "status": c.status.value,
        "score": float(c.score),
        "max_score": float(c.max_score),
        "acceptance": bool(c.acceptance),
        "message": c.message,
        "hidden": bool(c.hidden),
        "evidence": None if c.evidence is None else evidence_to_dict(c.evidence),
    }


def evidence_to_dict(e: Evidence) -> dict[str, Any]:
    """Evidence holds arbitrary values (numpy arrays, tuples, nan); make them strict-JSON data."""
    return {
        "input": e.input_label,
        "input_value": plain(e.input_value),
        "expected": plain(e.expected),
        "observed": plain(e.observed),
        "max_abs_error": plain(e.max_abs_error),
        "max_rel_error": plain(e.max_rel_error),
        "where": None if e.where is None else [int(i) for i in e.where],
        "cause": e.cause,
    }


def plain(value: Any) -> Any:
    """JSON has no nan/inf: they become the strings "nan", "inf", "-inf"; unknown objects their repr."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # numpy arrays and scalars, without importing numpy here
        return plain(tolist())
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return repr(value)


def dumps(results: Sequence[LabResult]) -> str:
    return json.dumps(results_document(results), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def write_json(path: Path, results: Sequence[LabResult]) -> None:
    """Serialise first, then write: a serialisation bug leaves the previous file in place."""
    atomic_write_text(path, dumps(results), hint="choose another --json file")
