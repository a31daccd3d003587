"""The machine-readable results file: strict JSON that any tool (or a later grader run) can read back."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grader.atomicio import atomic_write_text
from grader.errors import GraderError
from grader.i18n import (
    DEFAULT,
    Message,
    Texts,
    from_dict,
    message_from,
    msg,
    say,
    verbatim,
)
from grader.model import Adjustment, CheckResult, Evidence, LabResult, Override, Status, Submitted, adjustment_deltas

SCHEMA_VERSION = 2  # 2: messages as data (message_id, params) beside their words; language


def results_document(results: Sequence[LabResult], lang: str | None = None) -> dict[str, Any]:
    """The whole file; the version lets readers refuse a schema they do not know. ``lang``: the words'
    language for every learner; ``None``, each learner's own (their deliverable's)."""
    return {"version": SCHEMA_VERSION, "results": [lab_to_dict(r, lang) for r in results]}


def _texts(key: str, value: Any) -> dict[str, Any]:
    return {key: value.to_dict()} if isinstance(value, Texts) else {}


def message_data(value: Any, prefix: str = "") -> dict[str, Any]:
    """A message's id and parameters beside its words, so a tool can count causes without parsing English;
    ``null`` when the words are not a message (a plain input label, no cause)."""
    data = plain(value.to_dict()) if isinstance(value, Message) else {"id": None, "params": None}
    return {f"{prefix}_id": data["id"], f"{prefix}_params": data["params"]} if prefix else \
        {"message_id": data["id"], "params": data["params"]}


def lab_to_dict(r: LabResult, lang: str | None = None) -> dict[str, Any]:
    """Totals are included although derivable, so readers need not re-implement the pass rule."""
    lang = lang or r.language or DEFAULT
    return {
        "learner": r.learner,
        "lab": r.lab,
        "language": lang,
        **({"deliverable_language": r.language} if r.language else {}),
        **({"held_back": r.held_back, "narrowed": r.narrowed} if r.held_back or r.narrowed else {}),
        "title": say(r.title, lang),
        **_texts("titles", r.title),
        "passed": r.passed,
        "score": float(r.score),
        "max_score": float(r.max_score),
        "seconds": float(r.seconds),
        "checks": [check_to_dict(c, lang) for c in r.checks],
        **({"retry": True} if r.retry else {}),
        **({"review_held": True} if r.review_held else {}),
        **({"checks_score": float(r.checks_score),
            "adjustments": [adjustment_to_dict(a, d, lang) for a, d in adjustment_deltas(r.checks_score, r.adjustments)]}
           if r.adjustments else {}),
        **({"submitted": {"time": r.submitted.time, "source": r.submitted.source}} if r.submitted else {}),
    }


def adjustment_to_dict(a: Adjustment, change: float, lang: str = DEFAULT) -> dict[str, Any]:
    """``points`` as written (a cap's ceiling); ``change`` is what it did to the lab's points."""
    return {"kind": a.kind, "points": float(a.points), "change": float(change), "reason": say(a.reason, lang),
            **message_data(a.reason), "source": a.source}


def check_to_dict(c: CheckResult, lang: str = DEFAULT) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": say(c.title, lang),
        **_texts("titles", c.title),
        "status": c.status.value,
        "score": float(c.score),
        "max_score": float(c.max_score),
        "acceptance": bool(c.acceptance),
        "message": say(c.message, lang),
        **message_data(c.message),
        "hidden": bool(c.hidden),
        "evidence": None if c.evidence is None else evidence_to_dict(c.evidence, lang),
        "override": None if c.override is None else override_to_dict(c.override),
    }


def override_to_dict(o: Override) -> dict[str, Any]:
    """``status``/``score`` are the grader's own; the check's top-level ones are the instructor's."""
    return {"reason": o.reason, "status": o.status.value, "score": float(o.score), "source": o.source}


def evidence_to_dict(e: Evidence, lang: str = DEFAULT) -> dict[str, Any]:
    """Evidence holds arbitrary values (numpy arrays, tuples, nan); make them strict-JSON data."""
    return {
        "input": say(e.input_label, lang),
        **message_data(e.input_label, "input"),
        "input_value": plain(e.input_value),
        "expected": plain(e.expected),
        "observed": plain(e.observed),
        "max_abs_error": plain(e.max_abs_error),
        "max_rel_error": plain(e.max_rel_error),
        "where": None if e.where is None else [int(i) for i in e.where],
        "cause": None if e.cause is None else say(e.cause, lang),
        **message_data(e.cause, "cause"),
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
            title=_title(d),
            checks=tuple(check_from_dict(c) for c in d["checks"]),
            output=str(d.get("output") or ""),
            seconds=float(d.get("seconds") or 0.0),
            retry=bool(d.get("retry", False)),
            language=str(d.get("deliverable_language") or ""),
            held_back=int(d.get("held_back") or 0),
            narrowed=int(d.get("narrowed") or 0),
            adjustments=tuple(adjustment_from_dict(a) for a in d.get("adjustments") or ()),
            submitted=Submitted(str(d["submitted"]["time"]), str(d["submitted"]["source"])) if d.get("submitted") else None,
            review_held=bool(d.get("review_held", False)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problem = msg("results.missing_key", key=str(exc)) if isinstance(exc, KeyError) else verbatim(str(exc))
        raise GraderError(msg("results.not_a_result", version=SCHEMA_VERSION, problem=problem)) from None


def adjustment_from_dict(d: Mapping[str, Any]) -> Adjustment:
    reason = _read_message(d, "", "reason") or verbatim(str(d.get("reason") or ""))
    return Adjustment(str(d["kind"]), float(d["points"]), reason, str(d.get("source") or ""))


def _title(d: Mapping[str, Any]) -> str | Texts:
    titles = from_dict(d["titles"]) if "titles" in d else None
    return titles if isinstance(titles, Texts) else str(d["title"])


def _read_message(d: Mapping[str, Any], prefix: str, text_key: str) -> Message | None:
    ident = d.get(f"{prefix}_id" if prefix else "message_id")
    if isinstance(ident, str):
        return message_from({"id": ident, "params": d.get(f"{prefix}_params" if prefix else "params") or {}})
    text = d.get(text_key) if text_key else None
    return None if text is None else message_from(str(text))


def check_from_dict(d: Mapping[str, Any]) -> CheckResult:
    """Files written before overrides existed have no ``override`` key: the same as ``null``."""
    evidence, override = d.get("evidence"), d.get("override")
    return CheckResult(
        id=str(d["id"]),
        title=_title(d),
        status=Status(d["status"]),
        score=float(d["score"]),
        max_score=float(d["max_score"]),
        acceptance=bool(d["acceptance"]),
        message=_read_message(d, "", "message") or message_from(""),
        evidence=None if evidence is None else evidence_from_dict(evidence),
        hidden=bool(d.get("hidden", False)),
        override=None if override is None else override_from_dict(override),
    )


def evidence_from_dict(d: Mapping[str, Any]) -> Evidence:
    where = d.get("where")
    return Evidence(
        input_label=_read_message(d, "input", "") or str(d.get("input") or ""),
        input_value=unplain(d.get("input_value")),
        expected=unplain(d.get("expected")),
        observed=unplain(d.get("observed")),
        max_abs_error=None if d.get("max_abs_error") is None else float(d["max_abs_error"]),
        max_rel_error=None if d.get("max_rel_error") is None else float(d["max_rel_error"]),
        where=None if where is None else tuple(int(i) for i in where),
        cause=_read_message(d, "cause", "cause"),
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


def dumps(results: Sequence[LabResult], lang: str | None = None) -> str:
    return json.dumps(results_document(results, lang), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def write_json(path: Path, results: Sequence[LabResult], lang: str | None = None) -> None:
    """Serialise first, then write: a serialisation bug leaves the previous file in place."""
    atomic_write_text(path, dumps(results, lang), hint=msg("write.hint.json"))
