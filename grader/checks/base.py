"""What every check kind shares: the learner's context, one concrete call, and how a result is made."""

from __future__ import annotations

import difflib
import inspect
import traceback
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.deliverable import Document
from grader.errors import KitMissing, RubricError
from grader.i18n import Message, as_message, joined, msg, verbatim
from grader.model import Check, CheckResult, Evidence, FunctionSpec, InputSet, Rubric, Status
from grader.runner import LearnerRun, Outcome

@dataclass
class Context:
    """Everything a check may look at for one learner and one lab."""

    rubric: Rubric
    learner: str
    root: Path
    implementation: Path | None
    phase_files: tuple[str, ...]  # every file in the phase folder, for "found instead" hints
    other_implementations: tuple[str, ...]  # further files matching the patterns (not graded)
    run: LearnerRun | None
    deliverable: Path | None
    markdown_files: tuple[str, ...]
    document: Document | None
    document_error: Message | str  # a deliverable that cannot be read
    phase_note: Message | str = ""  # the phase folder was only a near miss (phase-4 for phase-04)
    phase_refused: Message | str = ""  # the phase folder is a link out of the learner's folder, so nothing of it is read
    results: dict[str, CheckResult] = field(default_factory=dict)
    grader_fault: bool = False  # a check failed for the grader's own reasons: the lab is graded again next run
    analysis: Any = None  # the deliverable's formulas, read once (grader.maths.match.Analysis)
    implementation_note: Message | str = ""  # the file was found by content, or a notebook's cells were left out
    implementation_error: Message | str = ""  # a notebook that could not be read
    deliverable_note: Message | str = ""  # the deliverable was found by content
    verdicts: dict[Any, Any] = field(default_factory=dict)  # what each finite difference computes (grader.checks.fd)


@dataclass(frozen=True)
class Case:
    """One concrete call: which input set, which case, the arguments; its label is made only when shown."""

    inputs: InputSet
    index: int
    args: tuple[Any, ...]
    arg_names: tuple[str, ...]

    @property
    def named_args(self) -> dict[str, Any]:
        """The arguments by name, as plain data (for evidence)."""
        return {n: plain(a) for n, a in zip(self.arg_names, self.args)}

    @property
    def label_message(self) -> Message:
        """The input as the learner finds it on the lab page, in their language: ``input 'seed-y' #1 (z=…)``."""
        shown = ", ".join(f"{n}={short(a)}" for n, a in zip(self.arg_names, self.args))
        kind = "hidden" if self.inputs.hidden else ("case" if len(self.inputs.cases) > 1 else "only")
        return msg(f"input.{kind}", name=self.inputs.name, i=self.index + 1, args=shown)


def result(check: Check, status: Status, message: Message | str, evidence: Evidence | None = None, fraction: float = 0.0) -> CheckResult:
    """``fraction`` is the partial credit of a failing check (0 to 1); passing earns all the points."""
    return CheckResult(
        id=check.id,
        title=check.title,
        status=status,
        score=check.points if status.earns_points else round(check.points * fraction, 6),
        max_score=check.points,
        acceptance=check.acceptance,
        message=as_message(message),
        evidence=evidence,
        hidden=check.hidden,
    )


def short(value: Any, digits: int = 4, items: int = 6) -> str:
    """A compact, readable rendering of an argument or value for a one-line message."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return short(float(value), digits)
        flat = [short(float(v), digits) for v in value.ravel()[:items]]
        more = ", …" if value.size > items else ""
        if value.ndim == 1:
            return "[" + ", ".join(flat) + more + "]"
        return f"{value.shape[0]}×{value.shape[1] if value.ndim > 1 else ''} matrix [" + ", ".join(flat) + more + "]"
    if isinstance(value, float):
        if not np.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def plain(value: Any) -> Any:
    """Evidence values as plain lists and numbers (what templates and JSON take)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def cases(check: Check, ctx: Context, fn_spec: FunctionSpec) -> list[Case]:
    ref = getattr(ctx.rubric.reference, fn_spec.reference)
    names = tuple(inspect.signature(ref).parameters)
    out = []
    for set_name in check.spec["inputs"]:
        inputs = ctx.rubric.inputs[set_name]
        for i, args in enumerate(inputs.cases):
            out.append(Case(inputs=inputs, index=i, args=args, arg_names=inputs.arg_names or names))
    return out


def prefetch(ctx: Context, fn: str, calls: Iterable[tuple[Any, ...]]) -> None:
    """Let the worker run a check's calls back to back (one pipelined batch) before they are read."""
    if ctx.run is not None:
        ctx.run.prefetch(fn, list(calls))


def reference_call(ctx: Context, name: str, *args: Any) -> Any:
    """Call the trusted reference; if it fails, the rubric is broken — one line naming it, not the learner's fault."""
    try:
        return getattr(ctx.rubric.reference, name)(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
    except KitMissing:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the reference is a rubric error
        shown = ", ".join(short(a) for a in args)
        module_file = getattr(ctx.rubric.reference, "__file__", "")
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == module_file]
        where = f"{module_file}:{frames[-1].lineno}" if frames else str(ctx.rubric.path)
        error = verbatim(" ".join(f"{type(exc).__name__}: {exc}".split())[:300])
        raise RubricError(msg("rubric.at", where=where, problem=msg("rubric.reference_failed", name=name, args=shown,
                                                                    error=error))) from None


_EXPECTED: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], np.ndarray]] = weakref.WeakKeyDictionary()


def _args_key(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((a.dtype.str, a.shape, a.tobytes()) if isinstance(a, np.ndarray) else repr(a) for a in args)


def expected_value(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...]) -> np.ndarray:
    """The reference's value, computed once per input for the whole class (every learner gets the same inputs)."""
    cache = _EXPECTED.setdefault(ctx.rubric.reference, {})
    key = (fn_spec.reference, _args_key(args))
    if key not in cache:
        cache[key] = _expected_value(ctx, fn_spec, args)
    return cache[key].copy()


def _expected_value(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...]) -> np.ndarray:
    value = reference_call(ctx, fn_spec.reference, *args)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if value is None or array is None:
        raise RubricError(msg("rubric.at", where=str(ctx.rubric.path), problem=msg(
            "rubric.reference_not_numbers", name=fn_spec.reference, type=type(value).__name__)))
    return array


def listed(names: Sequence[str], most: int = 20) -> Message | str:
    """Names for a message (data, ``""`` when none): the first ``most``, then how many more."""
    shown = ", ".join(names[:most])
    return msg("rubric.names_and_more", names=shown, n=len(names) - most) if len(names) > most else shown


def missing_message(ctx: Context, name: str) -> Message:
    assert ctx.run is not None
    found = ctx.run.load.functions
    wanted = {f.name for f in ctx.rubric.functions}
    candidates = [f for f in found if f not in wanted]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not close:  # the same words in another order, or nearly: matriz_grad for grad_matrix
        words = {n: "_".join(sorted(n.lower().split("_"))) for n in [name, *candidates]}
        by_words = difflib.get_close_matches(words[name], [words[c] for c in candidates], n=3, cutoff=0.75)
        close = [c for c in candidates if words[c] in by_words]
    close = [c for c in close if _plays_the_role(ctx, name, c)][:1]
    file: Message | str = ctx.implementation.name if ctx.implementation else msg("missing.the_implementation")
    load = ctx.run.load
    failed = next((m for m in load.skipped_said if m.id == "load.statement.def" and m.params.get("name") == name), None)
    if failed:
        return msg("missing.failed_def", name=name, file=file, failed=failed)
    if close:
        return msg("missing.rename", name=name, file=file, close=close[0])
    return msg("missing.none", name=name, file=file, found=listed(found) or msg("missing.no_functions"))


def _plays_the_role(ctx: Context, name: str, candidate: str) -> bool:
    """A function is suggested for a missing one only when it behaves like it: called as the missing one would be,
    its values are close to the true ones, and a finite difference's change with its step h (an analytic function
    under another name is never offered as the finite difference, nor the reverse)."""
    assert ctx.run is not None
    spec = ctx.rubric.function(name)
    check = next((c for c in ctx.rubric.checks if c.kind == "compare" and c.spec.get("function") == name), None)
    if check is None:
        return False
    case = cases(check, ctx, spec)[0]
    outcome = ctx.run.call(candidate, case.args)
    if not outcome.ok or outcome.value is None:
        return False
    truth = expected_value(ctx, spec, case.args)
    got = outcome.value.array
    if got.shape != truth.shape or not np.allclose(got, truth, rtol=1e-3, atol=1e-6):
        return False
    if spec.step_arg is None:
        return True
    steps = []
    for h in (1e-1, 1e-2):
        call = list(case.args)
        call.insert(spec.step_arg, h)
        stepped = ctx.run.call(candidate, tuple(call))
        if not stepped.ok or stepped.value is None:
            return False
        steps.append(stepped.value.array)
    return not np.array_equal(steps[0], steps[1])


def inputs_phrase(total: int) -> Message:
    return msg("inputs.one") if total == 1 else msg("inputs.all", n=total)


def fault_result(check: Check, ctx: Context, fn: str, outcome: Outcome, case: Case | None = None) -> CheckResult:
    what = outcome.said or verbatim(outcome.message)
    said = msg("fault.on", what=what, input=case.label_message) if case and not outcome.message.startswith("not called") \
        else msg("fault.plain", what=what)
    if outcome.fault == "missing":
        if ctx.run is not None and ctx.run.load.ok:
            return result(check, Status.FAIL, missing_message(ctx, fn))
        return result(check, Status.SKIP, msg("skip.not_loaded"))
    if outcome.fault == "bad-return":
        return result(check, Status.FAIL, said)
    hint = None
    load = ctx.run.load if ctx.run is not None else None
    if outcome.fault == "raised" and ("NameError" in outcome.message or "ImportError" in outcome.message) and load and load.skipped:
        hint = msg("fault.hint.top_level", statement=load.skipped_said[0] if load.skipped_said else load.skipped[0])
    elif outcome.fault == "raised" and case is not None and any(e in outcome.message for e in _SHAPE_ERRORS) \
            and _batch_only(ctx, fn, case):
        hint = msg("fault.hint.batch", n=case.args[0].shape[0])
    return result(check, Status.ERROR, joined(said, hint))


_SHAPE_ERRORS = ("AxisError", "IndexError", "axis 1 is out of bounds", "too many indices", "tuple index out of range")


def _batch_only(ctx: Context, fn: str, case: Case) -> bool:
    """A function written for a batch: it fails on one example (a 1-D array) and works on a batch of one."""
    if ctx.run is None or not case.args or not isinstance(case.args[0], np.ndarray) or case.args[0].ndim != 1:
        return False
    outcome = ctx.run.call(fn, (case.args[0][None, :], *case.args[1:]))
    return outcome.ok




def mutated_argument(outcome: Outcome, args: tuple[Any, ...]) -> int | None:
    for position, (sent, after) in enumerate(zip(args, outcome.after)):
        if isinstance(sent, np.ndarray) and after is not None and (after.shape != sent.shape or not np.array_equal(after, sent, equal_nan=True)):
            return position
    return None


def check_on(ctx: Context, spec: FunctionSpec, call: tuple[Any, ...]) -> str:
    """The check comparing this function on these very arguments (else the first one comparing it at all)."""
    key = repr([a.tobytes() if isinstance(a, np.ndarray) else a for a in call])
    first = ""
    for check in ctx.rubric.checks:
        if check.kind != "compare" or check.spec.get("function") != spec.name:
            continue
        first = first or check.id
        if any(repr([a.tobytes() if isinstance(a, np.ndarray) else a for a in c.args]) == key for c in cases(check, ctx, spec)):
            return check.id
    return first
