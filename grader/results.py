"""The machine-readable results file: strict JSON that any tool (or a later grader run) can read back."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grader.atomicio import atomic_write_text
from grader.errors import GraderError
from grader.model import CheckResult, Evidence, LabResult, Override, Status

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
        **({"retry": True} if r.retry else {}),
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
        "override": None if c.override is None else override_to_dict(c.override),
    }


def override_to_dict(o: Override) -> dict[str, Any]:
    """``status``/``score`` are the grader's own; the check's top-level ones are the instructor's."""
    return {"reason": o.reason, "status": o.status.value, "score": float(o.score), "source": o.source}


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


def lab_from_dict(d: Mapping[str, Any]) -> LabResult:
    """Read back what ``lab_to_dict`` wrote (a stored attempt, an earlier ``--json`` file).

    Totals and ``passed`` are derived again from the checks, never trusted from the file. ``output`` is
    not part of the v1 file; it is read when a caller stored it beside the other keys.
    """
    try:
        return LabResult(
            learner=str(d["learner"]),
            lab=str(d["lab"]),
            title=str(d["title"]),
            checks=tuple(check_from_dict(c) for c in d["checks"]),
            output=str(d.get("output") or ""),
            seconds=float(d.get("seconds") or 0.0),
            retry=bool(d.get("retry", False)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problem = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise GraderError(f"not a grader result (JSON v{SCHEMA_VERSION}): {problem}") from None


def check_from_dict(d: Mapping[str, Any]) -> CheckResult:
    """Files written before overrides existed have no ``override`` key: the same as ``null``."""
    evidence, override = d.get("evidence"), d.get("override")
    return CheckResult(
        id=str(d["id"]),
        title=str(d["title"]),
        status=Status(d["status"]),
        score=float(d["score"]),
        max_score=float(d["max_score"]),
        acceptance=bool(d["acceptance"]),
        message=str(d.get("message") or ""),
        evidence=None if evidence is None else evidence_from_dict(evidence),
        hidden=bool(d.get("hidden", False)),
        override=None if override is None else override_from_dict(override),
    )


def evidence_from_dict(d: Mapping[str, Any]) -> Evidence:
    where = d.get("where")
    return Evidence(
        input_label=str(d.get("input") or ""),
        input_value=unplain(d.get("input_value")),
        expected=unplain(d.get("expected")),
        observed=unplain(d.get("observed")),
        max_abs_error=None if d.get("max_abs_error") is None else float(d["max_abs_error"]),
        max_rel_error=None if d.get("max_rel_error") is None else float(d["max_rel_error"]),
        where=None if where is None else tuple(int(i) for i in where),
        cause=d.get("cause"),
    )


def override_from_dict(d: Mapping[str, Any]) -> Override:
    return Override(reason=str(d["reason"]), status=Status(d["status"]), score=float(d["score"]), source=str(d.get("source") or ""))


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def unplain(value: Any) -> Any:
    """The inverse of ``plain`` for evidence values: "nan", "inf", "-inf" are read as the numbers they stood for.

    A learner value that was the string "nan" reads back as a float; both write the same JSON.
    """
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, list):
        return [unplain(v) for v in value]
    if isinstance(value, dict):
        return {k: unplain(v) for k, v in value.items()}
    return value


def dumps(results: Sequence[LabResult]) -> str:
    return json.dumps(results_document(results), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def write_json(path: Path, results: Sequence[LabResult]) -> None:
    """Serialise first, then write: a serialisation bug leaves the previous file in place."""
    atomic_write_text(path, dumps(results), hint="choose another --json file")
