"""The check kinds. Each takes a Check (its spec validated by the rubric loader) and the learner's
context, and returns a CheckResult: a learner's failure is data, never an exception.
"""

from __future__ import annotations

import difflib
import inspect
import re
import traceback
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader import diagnose
from grader.deliverable import MAX_BYTES, Document
from grader.errors import RubricError
from grader.model import Check, CheckResult, Evidence, FunctionSpec, InputSet, Rubric, Status
from grader.notation import count_sentences, find_formula, heading_matches
from grader.rubric import arity
from grader.runner import LearnerRun, Observed, Outcome

CODE_KINDS = ("implementation", "compare", "agree", "property", "relation")


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
    document_error: str
    phase_note: str = ""  # the phase folder was only a near miss (phase-4 for phase-04)
    results: dict[str, CheckResult] = field(default_factory=dict)


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
    def label(self) -> str:
        shown = ", ".join(f"{n}={short(a)}" for n, a in zip(self.arg_names, self.args))
        name, i, count = self.inputs.name, self.index + 1, len(self.inputs.cases)
        kind = f"hidden input '{name}' #{i}" if self.inputs.hidden else f"input '{name}'" + (f" #{i}" if count > 1 else "")
        return f"{kind} ({shown})"


def result(check: Check, status: Status, message: str, evidence: Evidence | None = None, fraction: float = 0.0) -> CheckResult:
    """``fraction`` is the partial credit of a failing check (0 to 1); passing earns all the points."""
    return CheckResult(
        id=check.id,
        title=check.title,
        status=status,
        score=check.points if status.earns_points else round(check.points * fraction, 6),
        max_score=check.points,
        acceptance=check.acceptance,
        message=message,
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
    except Exception as exc:  # noqa: BLE001 - any failure of the reference is a rubric error
        shown = ", ".join(short(a) for a in args)
        module_file = getattr(ctx.rubric.reference, "__file__", "")
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == module_file]
        where = f"{module_file}:{frames[-1].lineno}" if frames else str(ctx.rubric.path)
        raise RubricError(f"{where}: reference function '{name}' failed on ({shown}): "
                          f"{type(exc).__name__}: {exc} — fix the reference module") from None


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
        raise RubricError(f"{ctx.rubric.path}: reference function '{fn_spec.reference}' returned {type(value).__name__}, "
                          "not numbers — fix the reference module")
    return array


def missing_message(ctx: Context, name: str) -> str:
    assert ctx.run is not None
    found = ctx.run.load.functions
    wanted = {f.name for f in ctx.rubric.functions}
    candidates = [f for f in found if f not in wanted]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not close:  # the same words in another order, or nearly: matriz_grad for grad_matrix
        words = {n: "_".join(sorted(n.lower().split("_"))) for n in [name, *candidates]}
        by_words = difflib.get_close_matches(words[name], [words[c] for c in candidates], n=1, cutoff=0.75)
        close = [c for c in candidates if by_words and words[c] == by_words[0]][:1]
    file = ctx.implementation.name if ctx.implementation else "the implementation"
    failed = next((s for s in ctx.run.load.skipped if f"(def {name})" in s), None)
    if failed:
        return (f"'{name}' is defined in {file}, but its definition failed to run ({failed}): with the top-level "
                "script skipped, its default arguments or decorators used a name that script was to create.")
    text = f"no function '{name}' in {file}"
    if close:
        return f"{text}; found '{close[0]}' — did you mean it? Rename it to '{name}'."
    return f"{text}; functions found: {', '.join(found) or 'none'}."


def _alnum(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _inputs(total: int) -> str:
    return "the 1 input" if total == 1 else f"all {total} inputs"


def fault_result(check: Check, ctx: Context, fn: str, outcome: Outcome, case: Case | None = None) -> CheckResult:
    where = f" on {case.label}" if case and not outcome.message.startswith("not called") else ""
    if outcome.fault == "missing":
        if ctx.run is not None and ctx.run.load.ok:
            return result(check, Status.FAIL, missing_message(ctx, fn))
        return result(check, Status.SKIP, "skipped: the implementation could not be loaded (see implementation-found)")
    if outcome.fault == "bad-return":
        return result(check, Status.FAIL, f"{outcome.message}{where}.")
    hint = ""
    load = ctx.run.load if ctx.run is not None else None
    if outcome.fault == "raised" and ("NameError" in outcome.message or "ImportError" in outcome.message) and load and load.skipped:
        hint = f" It probably follows from a top-level statement that failed: {load.skipped[0]}."
    return result(check, Status.ERROR, f"{outcome.message}{where}.{hint}")


def _at_steps(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], steps: tuple[float, ...]) -> list[np.ndarray] | Outcome | None:
    """The learner's finite difference called with explicit steps h (positionally); the failed Outcome if it
    cannot be called so, None if the rubric names no step argument."""
    if fn_spec.step_arg is None or ctx.run is None or fn_spec.step_arg > len(args):
        return None
    calls: list[tuple[Any, ...]] = []
    for h in steps:
        with_step = list(args)
        with_step.insert(fn_spec.step_arg, h)
        calls.append(tuple(with_step))
    prefetch(ctx, fn_spec.name, calls)
    values = []
    for call in calls:
        outcome = ctx.run.call(fn_spec.name, call)
        if not outcome.ok or outcome.value is None:
            return outcome
        values.append(outcome.value.array)
    return values


NOT_FD = "not a finite difference: the result does not change with the step h at all"
_PROBES = (1e-1, 5e-2, 2e-2, 1e-2, 5e-3, 2e-3, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14)


def step_problem(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], observed: np.ndarray) -> str | None:
    """Why a finite-difference function that gives the right values still is not one we can accept."""
    values = _at_steps(ctx, fn_spec, args, (1e-3, 1e-4))
    if isinstance(values, Outcome):
        if values.fault == "raised" and "TypeError" in values.message:
            return (f"it cannot be called with the step h as its positional argument #{(fn_spec.step_arg or 0) + 1}, as the "
                    "lab's signature has it, so it cannot be verified as a finite difference")
        return None
    if values is None or any(v.shape != observed.shape for v in values):
        return None
    if all(np.array_equal(v, observed) for v in values):
        return NOT_FD + " (is it the analytic formula, or is h ignored?)"
    return None


def _default_step(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], observed: np.ndarray) -> float | None:
    """The step the learner's default argument uses, found by calling with candidates until one matches."""
    values = _at_steps(ctx, fn_spec, args, _PROBES)
    if not isinstance(values, list):
        return None
    for h, value in zip(_PROBES, values):
        if value.shape == observed.shape and np.array_equal(value, observed):
            return h
    return None


def fd_cause(ctx: Context, fn_spec: FunctionSpec, args: tuple[Any, ...], expected: np.ndarray, observed: Observed) -> str | None:
    """Tell forward differences, a step too small or too large, low precision and a non-FD apart by calling
    the learner's function at other steps and watching how the error moves."""
    if fn_spec.step_arg is None:
        return None
    if observed.dtype in ("float32", "float16"):
        return (f"computed in {observed.dtype}: with h = 1e-5 the difference f(z+h) − f(z−h) loses most digits in "
                "float32 (use float64, or h ≈ 1e-3 for float32)")
    values = _at_steps(ctx, fn_spec, args, (1e-3, 1e-4))
    if not isinstance(values, list) or any(v.shape != expected.shape for v in values):
        return None
    big, small = values
    if np.array_equal(big, small) and np.array_equal(big, observed.array):
        return NOT_FD + " (is it the analytic formula, or is h ignored?)"
    e_big = float(np.max(np.abs(big - expected)))
    e_small = float(np.max(np.abs(small - expected)))
    e_default = float(np.max(np.abs(observed.array - expected)))
    ratio = e_big / e_small if e_small > 0 else np.inf
    recommended = fn_spec.default_step or 1e-5
    if 4 < ratio < 25:
        return (f"forward (one-sided) differences: the error shrinks in proportion to h (h=1e-3: {e_big:.1e}, "
                f"h=1e-4: {e_small:.1e}), i.e. O(h); centred differences (f(z+h) − f(z−h)) / 2h are O(h²)")
    if ratio < 0.5:
        return (f"rounding dominates: the error grows as h shrinks (h=1e-3: {e_big:.1e}, h=1e-4: {e_small:.1e}); "
                "the function being differenced is computed with too few digits (float32 somewhere?)")
    if e_default <= 10 * min(e_small, e_big):
        return None
    h = _default_step(ctx, fn_spec, args, observed.array)
    if h is not None and h > 1e-4:
        return (f"step too large: your default h = {h:g} leaves a truncation error of {e_default:.1e} (it shrinks like h²: "
                f"h=1e-3 gives {e_big:.1e}); use h = {recommended:g}")
    if h is not None and h < 1e-6:
        return (f"step too small: your default h = {h:g} loses digits to cancellation in f(z+h) − f(z−h) "
                f"(error {e_default:.1e}, while h=1e-4 gives {e_small:.1e}); use h = {recommended:g} for float64")
    return (f"your default step gives an error of {e_default:.1e}, while h=1e-4 gives {e_small:.1e}: "
            f"use h = {recommended:g}")


def _mutation(outcome: Outcome, args: tuple[Any, ...]) -> int | None:
    for position, (sent, after) in enumerate(zip(args, outcome.after)):
        if isinstance(sent, np.ndarray) and after is not None and (after.shape != sent.shape or not np.array_equal(after, sent, equal_nan=True)):
            return position
    return None


# ---------------------------------------------------------------------------------- code kinds

def check_implementation(check: Check, ctx: Context) -> CheckResult:
    rubric = ctx.rubric
    patterns = " or ".join(rubric.implementation)
    if ctx.implementation is None:
        found = f" (found: {', '.join(ctx.phase_files[:10])})" if ctx.phase_files else " (the folder is missing or empty)"
        hint = ""
        prefixes = {_alnum(p.split("*")[0]) for p in rubric.implementation}
        near = [f for f in ctx.phase_files if f.lower().endswith(".py") and any(_alnum(f).startswith(x) for x in prefixes)]
        if near:
            hint = f" Is {near[0]} it? Rename it to match {patterns} (names are case-sensitive)."
        notebooks = [f for f in ctx.phase_files if f.endswith(".ipynb")]
        if notebooks and not hint:
            hint = f" A notebook is not graded: export {notebooks[0]} as a .py file (File → Download as → Python)."
        return result(check, Status.FAIL, f"no file matching {patterns} in {rubric.phase_dir}/{found}.{hint}")
    assert ctx.run is not None
    load = ctx.run.load
    name = ctx.implementation.name
    if not load.ok:
        return result(check, Status.FAIL, f"{name} could not be loaded: {load.error}.")
    wanted = [f.name for f in rubric.functions]
    missing = [f for f in wanted if f not in load.functions]
    if len(missing) == len(wanted):
        found = f"; it defines {', '.join(load.functions)}" if load.functions else "; it defines no functions"
        return result(check, Status.FAIL, f"{name} defines none of the lab's functions ({', '.join(wanted)}){found}.")
    parts = [f"{name} loaded"]
    if ctx.phase_note:
        parts.append(ctx.phase_note)
    if ctx.other_implementations:
        parts.append(f"also found {', '.join(ctx.other_implementations)}, not graded (the graded file is the one defining most "
                     "of the lab's functions, then the fuller one; keep one file)")
    if load.mode in ("ast", "ast-strict"):
        parts[0] += f" from its definitions only: {load.note}; its top-level script was skipped and the functions were graded"
    if load.skipped:
        parts.append("top-level statements that failed: " + "; ".join(load.skipped[:3]))
    if missing:
        parts.append("missing: " + ", ".join(missing) + (f" (found: {', '.join(load.functions)})" if load.functions else ""))
    else:
        parts.append("all " + str(len(wanted)) + " functions found")
    return result(check, Status.PASS, "; ".join(parts) + ".")


def _first_failure(
    check: Check, ctx: Context, fn_spec: FunctionSpec, atol: float, rtol: float
) -> tuple[CheckResult | None, list[tuple[Case, np.ndarray, Observed, diagnose.Diff, Outcome]], int]:
    assert ctx.run is not None
    failures = []
    total = 0
    all_cases = cases(check, ctx, fn_spec)
    prefetch(ctx, fn_spec.name, (c.args for c in all_cases))
    for case in all_cases:
        total += 1
        outcome = ctx.run.call(fn_spec.name, case.args)
        if not outcome.ok:
            return fault_result(check, ctx, fn_spec.name, outcome, case), [], total
        assert outcome.value is not None
        expected = expected_value(ctx, fn_spec, case.args)
        diff = diagnose.compare(expected, outcome.value.array, atol, rtol)
        if not diff.ok:
            failures.append((case, expected, outcome.value, diff, outcome))
    return None, failures, total


def _value_evidence(case: Case, expected: np.ndarray, observed: Observed, diff: diagnose.Diff, cause: str | None) -> Evidence:
    return Evidence(
        input_label=case.label,
        input_value=case.named_args,
        expected=plain(expected),
        observed=plain(observed.array),
        max_abs_error=diff.max_abs,
        max_rel_error=diff.max_rel,
        where=diff.where,
        cause=cause,
    )


def _describe_diff(diff: diagnose.Diff, expected: np.ndarray, observed: Observed) -> str:
    if diff.reason == "shape":
        return f"shape {observed.array.shape} where {expected.shape} was expected"
    at = f" at entry {list(diff.where)}" if diff.where else ""
    got = diff.observed_at
    if got is not None and not np.isfinite(got):
        return f"{short(got)} where {short(diff.expected_at, 10)} was expected{at}"
    return (f"max abs error {short(diff.max_abs, 3)}{at} (expected {short(diff.expected_at, 10)}, got {short(got, 10)})")


def _cause_for(check: Check, ctx: Context, fn_spec: FunctionSpec, case: Case, expected: np.ndarray, observed: Observed, diff: diagnose.Diff, outcome: Outcome) -> str | None:
    cause = fd_cause(ctx, fn_spec, case.args, expected, observed) if diff.reason != "shape" else None
    cause = cause or diagnose.likely_cause(check.causes + fn_spec.causes, ctx.rubric.reference, expected, observed, diff, case.args)
    if _mutation(outcome, case.args) is not None:
        extra = "it also changes its input in place (see no-input-mutation)"
        cause = f"{cause}; {extra}" if cause else extra
    return cause


def check_compare(check: Check, ctx: Context) -> CheckResult:
    if ctx.run is None:
        return result(check, Status.SKIP, "skipped: no implementation")
    fn_spec = ctx.rubric.function(check.spec["function"])
    atol, rtol = float(check.spec.get("atol", 1e-9)), float(check.spec.get("rtol", 0.0))
    fault, failures, total = _first_failure(check, ctx, fn_spec, atol, rtol)
    if fault is not None:
        return fault
    name = fn_spec.name
    if failures:
        case, expected, observed, diff, outcome = failures[0]
        cause = _cause_for(check, ctx, fn_spec, case, expected, observed, diff, outcome)
        count = f"; wrong on {len(failures)} of {total} inputs" if total > 1 else ""
        message = f"{name} is off on {case.label}: {_describe_diff(diff, expected, observed)}, tolerance {atol:g}{count}."
        if cause:
            message += f" Likely cause: {cause}."
        fraction = (1 - len(failures) / total) if check.spec.get("partial") else 0.0
        return result(check, Status.FAIL, message, _value_evidence(case, expected, observed, diff, cause), fraction)
    sums_to = check.spec.get("sums_to")
    if sums_to is not None:
        for case in cases(check, ctx, fn_spec):
            outcome = ctx.run.call(name, case.args)
            assert outcome.value is not None
            total_sum = float(np.sum(outcome.value.array))
            if abs(total_sum - sums_to) > max(atol, 1e-12) * max(1, outcome.value.array.size):
                return result(check, Status.FAIL, f"{name} sums to {total_sum!r} on {case.label}, not {sums_to:g}.")
    first = cases(check, ctx, fn_spec)[0]
    probe = ctx.run.call(name, first.args).value
    problem = step_problem(ctx, fn_spec, first.args, probe.array) if probe is not None else None
    if problem:
        return result(check, Status.FAIL, f"{name} matches the true value, but {problem}; a centred finite difference "
                      f"changes slightly with h (by about h²).")
    extra = f" and sums to {sums_to:g}" if sums_to is not None else ""
    return result(check, Status.PASS, f"{name} matches the reference{extra} on {_inputs(total)} (tolerance {atol:g}).")


def check_agree(check: Check, ctx: Context) -> CheckResult:
    if ctx.run is None:
        return result(check, Status.SKIP, "skipped: no implementation")
    first, second = (ctx.rubric.function(n) for n in check.spec["functions"])
    atol, rtol = float(check.spec.get("atol", 1e-9)), float(check.spec.get("rtol", 0.0))
    total = 0
    all_cases = cases(check, ctx, first)
    for spec in (first, second):
        prefetch(ctx, spec.name, (c.args for c in all_cases))
    for case in all_cases:
        total += 1
        a = ctx.run.call(first.name, case.args)
        if not a.ok:
            return fault_result(check, ctx, first.name, a, case)
        b = ctx.run.call(second.name, case.args)
        if not b.ok:
            return fault_result(check, ctx, second.name, b, case)
        assert a.value is not None and b.value is not None
        diff = diagnose.compare(a.value.array, b.value.array, atol, rtol)
        if diff.ok:
            continue
        truth = expected_value(ctx, first, case.args)
        blame = []
        cause = None
        worst: tuple[Observed, diagnose.Diff] | None = None
        for spec, outcome in ((first, a), (second, b)):
            assert outcome.value is not None
            own = diagnose.compare(truth, outcome.value.array, atol, rtol)
            if own.ok:
                blame.append(f"{spec.name} is right")
                continue
            blame.append(f"{spec.name} is off by {short(own.max_abs, 3)}" if own.max_abs is not None else f"{spec.name} is wrong")
            cause = cause or _cause_for(check, ctx, spec, case, truth, outcome.value, own, outcome)
            worst = worst or (outcome.value, own)
        what = f"shapes {a.value.array.shape} and {b.value.array.shape}" if diff.reason == "shape" else \
            f"max abs difference {short(diff.max_abs, 3)}" + (f" at entry {list(diff.where)}" if diff.where else "")
        message = (f"{first.name} and {second.name} disagree on {case.label}: {what}, tolerance {atol:g}. "
                   f"Against the true value: {'; '.join(blame)}.")
        if cause:
            message += f" Likely cause: {cause}."
        shown, shown_diff = worst or (b.value, diff)
        return result(check, Status.FAIL, message, _value_evidence(case, truth, shown, shown_diff, cause))
    case = all_cases[0]
    for spec in (first, second):
        observed = ctx.run.call(spec.name, case.args).value
        problem = step_problem(ctx, spec, case.args, observed.array) if observed is not None else None
        if problem:
            return result(check, Status.FAIL, f"{first.name} and {second.name} agree, but that proves nothing: "
                          f"{spec.name} — {problem}.")
    return result(check, Status.PASS, f"{first.name} and {second.name} agree on {_inputs(total)} (tolerance {atol:g}).")


def check_property(check: Check, ctx: Context) -> CheckResult:
    if ctx.run is None:
        return result(check, Status.SKIP, "skipped: no implementation")
    prop = check.spec["property"]
    atol = float(check.spec.get("atol", 1e-12))
    total = 0
    names = check.spec["functions"]
    unchecked: list[str] = []
    for name in names:
        fn_spec = ctx.rubric.function(name)
        needed = arity(getattr(ctx.rubric.reference, fn_spec.reference))
        fitting = [c for c in cases(check, ctx, fn_spec) if len(c.args) == needed]
        prefetch(ctx, name, (c.args for c in fitting))
        for case in fitting:
            outcome = ctx.run.call(name, case.args)
            if not outcome.ok:
                if len(names) == 1:
                    return fault_result(check, ctx, name, outcome, case)
                unchecked.append(name)  # its fault is charged to its own checks
                break
            total += 1
            failed = _property_failure(check, ctx, prop, atol, fn_spec, case, outcome)
            if failed is not None:
                return failed
    if total == 0:
        return result(check, Status.SKIP, "skipped: none of these functions could be called on a fitting input")
    checked = [n for n in names if n not in unchecked]
    what = {"symmetric": "symmetric", "finite": "finite",
            "unmutated": "left its inputs unchanged" if len(checked) == 1 else "left their inputs unchanged"}[prop]
    note = f" ({', '.join(unchecked)} could not be checked: see its own checks)" if unchecked else ""
    return result(check, Status.PASS, f"{', '.join(checked)}: {what} on {_inputs(total)}{note}.")


def _property_failure(check: Check, ctx: Context, prop: str, atol: float, fn_spec: FunctionSpec, case: Case, outcome: Outcome) -> CheckResult | None:
    assert outcome.value is not None
    value = outcome.value.array
    name = fn_spec.name
    if prop == "unmutated":
        position = _mutation(outcome, case.args)
        if position is None:
            return None
        sent, after = case.args[position], outcome.after[position]
        assert after is not None
        say = diagnose.say_for(check.causes, "mutated")
        message = (f"{name} changed its argument #{position + 1} in place on {case.label}: it was {short(sent)} and became "
                   f"{short(after)}. Callers (and the grader) see the change. Likely cause: "
                   f"{say or 'an in-place operation such as z -= z.max() or z[...] = …; compute into a new array (z = z - z.max()) instead'}.")
        evidence = Evidence(input_label=case.label, input_value=case.named_args, expected=plain(sent), observed=plain(after), cause=say)
        return result(check, Status.FAIL, message, evidence)
    if prop == "finite":
        if np.all(np.isfinite(value)):
            return None
        return result(check, Status.FAIL, f"{name} returned inf or NaN on {case.label}: {short(value)}.")
    if value.ndim != 2 or value.shape[0] != value.shape[1]:
        return result(check, Status.FAIL, f"{name} returned shape {value.shape} on {case.label}; a symmetric matrix must be square.")
    asym = np.abs(value - value.T)
    if not np.all(np.isfinite(asym)) or float(np.nanmax(asym)) > atol:
        i, j = (int(k) for k in np.unravel_index(int(np.nanargmax(np.where(np.isfinite(asym), asym, np.inf))), asym.shape))
        expected = expected_value(ctx, fn_spec, case.args)
        diff = diagnose.compare(expected, value, atol, 0.0)
        cause = diagnose.likely_cause(check.causes + fn_spec.causes, ctx.rubric.reference, expected, outcome.value, diff, case.args)
        message = (f"{name} is not symmetric on {case.label}: entry [{i}, {j}] = {short(float(value[i, j]), 6)} but "
                   f"[{j}, {i}] = {short(float(value[j, i]), 6)} (difference {short(float(asym[i, j]), 3)}).")
        if cause:
            message += f" Likely cause: {cause}."
        evidence = Evidence(input_label=case.label, input_value=case.named_args, expected=plain(value.T),
                            observed=plain(value), max_abs_error=float(asym[i, j]), where=(i, j), cause=cause)
        return result(check, Status.FAIL, message, evidence)
    return None


def check_relation(check: Check, ctx: Context) -> CheckResult:
    """A property of the learner's own function: f(transform(x)) == relate(f(x), x), e.g. shift invariance."""
    assert ctx.run is not None
    fn_spec = ctx.rubric.function(check.spec["function"])
    reference = ctx.rubric.reference
    atol, rtol = float(check.spec.get("atol", 1e-9)), float(check.spec.get("rtol", 0.0))
    name = fn_spec.name
    total = 0
    all_cases = cases(check, ctx, fn_spec)
    moved_cases = [tuple(reference_call(ctx, check.spec["transform"], *c.args)) for c in all_cases]
    prefetch(ctx, name, [c.args for c in all_cases] + moved_cases)
    for case, moved_args in zip(all_cases, moved_cases):
        total += 1
        base = ctx.run.call(name, case.args)
        if not base.ok:
            return fault_result(check, ctx, name, base, case)
        moved = ctx.run.call(name, moved_args)
        if not moved.ok:
            return fault_result(check, ctx, name, moved, case)
        assert base.value is not None and moved.value is not None
        try:  # it is given the learner's value: a value it cannot take is the learner's, not the rubric's
            wanted = np.asarray(getattr(reference, check.spec["relate"])(base.value.array.copy(), *case.args), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001
            return result(check, Status.FAIL, f"{name}'s value on {case.label} (shape {base.value.array.shape}) is not one "
                                              f"the law \"{check.title}\" can be checked on ({type(exc).__name__}).")
        diff = diagnose.compare(wanted, moved.value.array, atol, rtol)
        if diff.ok:
            continue
        cause = diagnose.likely_cause(check.causes + fn_spec.causes, reference, wanted, moved.value, diff, moved_args)
        moved_label = ", ".join(short(a) for a in moved_args)
        message = (f"{name} breaks the law \"{check.title}\" on {case.label}: called on the transformed input "
                   f"({moved_label}) it gives {_describe_diff(diff, wanted, moved.value)}, tolerance {atol:g}.")
        if cause:
            message += f" Likely cause: {cause}."
        evidence = Evidence(input_label=case.label, input_value=dict(zip(case.arg_names, (plain(a) for a in moved_args))), expected=plain(wanted),
                            observed=plain(moved.value.array), max_abs_error=diff.max_abs, max_rel_error=diff.max_rel,
                            where=diff.where, cause=cause)
        return result(check, Status.FAIL, message, evidence)
    return result(check, Status.PASS, f"{name} keeps the law on {_inputs(total)} (tolerance {atol:g}).")


# --------------------------------------------------------------------------- deliverable kinds

def check_deliverable(check: Check, ctx: Context) -> CheckResult:
    rubric = ctx.rubric
    if ctx.deliverable is None:
        close = difflib.get_close_matches(rubric.deliverable.lower(), [f.lower() for f in ctx.phase_files], n=1, cutoff=0.6)
        close = [next(f for f in ctx.phase_files if f.lower() == close[0])] if close else []
        hint = f"; found '{close[0]}' — rename it to '{rubric.deliverable}'" if close else (
            f"; Markdown files found: {', '.join(ctx.markdown_files)}" if ctx.markdown_files else "")
        return result(check, Status.FAIL, f"no {rubric.phase_dir}/{rubric.deliverable}{hint}.")
    if ctx.document is None:
        return result(check, Status.FAIL, ctx.document_error)
    if not any(s.prose.strip() or s.formula_text.strip() or s.code_blocks or s.images for s in ctx.document.sections):
        return result(check, Status.FAIL, f"{rubric.phase_dir}/{rubric.deliverable} is empty: write the deliverable the lab asks for.")
    note = "".join(f"; {text}" for text in (ctx.phase_note, *ctx.document.notes) if text)
    return result(check, Status.PASS, f"{rubric.phase_dir}/{rubric.deliverable} found ({len(ctx.document.sections)} sections){note}.")


_SOURCE = re.compile(r"^\s*(?:def |class |import |from \S+ import |for .*:\s*$|if __name__)", re.MULTILINE)
_PICTURE = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff", ".svg", ".pdf")


def _is_picture(ctx: Context, src: str) -> bool:
    """A photo of the paper derivation: a picture file with something in it, not any file at all."""
    if ctx.deliverable is None:
        return False
    path = (ctx.deliverable.parent / src.split("?")[0].split("#")[0]).resolve()
    try:
        return path.suffix.lower() in _PICTURE and path.stat().st_size > 0
    except OSError:
        return False


def _heading_hint(ctx: Context, synonyms: list[str]) -> str:
    """A line that reads like the wanted heading but is not one (bold text, a label with a colon)."""
    if ctx.deliverable is None:
        return ""
    try:
        with ctx.deliverable.open("rb") as handle:
            lines = handle.read(MAX_BYTES).decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for number, line in enumerate(lines, start=1):
        bare = line.strip().strip("*_:#").strip()
        if bare and len(bare) <= 60 and not line.lstrip().startswith("#") and heading_matches(bare, synonyms):
            return f" Line {number} ('{line.strip()}') looks like one: make it a heading, '## {bare}'."
    return ""


def check_section(check: Check, ctx: Context) -> CheckResult:
    if ctx.document is None:
        return result(check, Status.SKIP, "skipped: the deliverable is missing or unreadable (see deliverable-found)")
    spec = check.spec
    sections = ctx.document.find(spec["headings"])
    if not sections:
        seen = [h for h in ctx.document.headings() if h]
        accepted = ", ".join(spec["headings"][:8]) + (", …" if len(spec["headings"]) > 8 else "")
        return result(check, Status.FAIL,
                      f"no section headed like '{spec['headings'][0]}' (accepted: {accepted}); "
                      f"headings found: {', '.join(repr(h) for h in seen[:10]) or 'none'}.{_heading_hint(ctx, spec['headings'])}"
                      + "".join(f" Note: {text}." for text in ctx.document.notes))
    named = ", ".join(f"'{s.heading}' (line {s.line})" for s in sections)
    problems: list[str] = []
    review: list[str] = []
    passed: list[str] = []
    if spec.get("formulas"):
        text = "\n".join(s.formula_text for s in sections)
        found = find_formula(text, spec["formulas"])
        images = list({img.src: img for s in sections for img in s.images}.values())
        broken = [img.src for img in images if not img.exists]
        present = [img.src for img in images if img.exists and _is_picture(ctx, img.src)]
        not_pictures = [img.src for img in images if img.exists and img.src not in present]
        if found:
            passed.append(f"reaches the result ({found})")
            if broken:
                passed.append(f"but the image link {', '.join(broken)} is broken")
        elif present and spec.get("images", "review") == "review":
            extra = f" (the link to {', '.join(broken)} is broken)" if broken else ""
            review.append(f"the derivation is given as an image ({', '.join(present)}){extra}: an instructor will read it; "
                          "points are given provisionally")
        elif broken:
            problems.append(f"it links to the image {', '.join(broken)}, which is not in the folder, and the result is not written as text")
        elif not_pictures:
            problems.append(f"it links to {', '.join(not_pictures)}, which is not a picture (or is empty), and the result is not written as text")
        else:
            problems.append(f"it does not reach the result; expected one of: {'; '.join(spec['formulas'][:3])} (any notation: LaTeX, Unicode or ASCII)")
    if "min_sentences" in spec:
        prose = "\n\n".join(s.prose for s in sections)
        n = count_sentences(prose)
        if n < spec["min_sentences"]:
            problems.append(f"it has {n} sentence{'s' if n != 1 else ''}; at least {spec['min_sentences']} are asked "
                            "(placeholders such as TODO, fragments under 3 words and repeated sentences do not count)")
        else:
            passed.append(f"{n} sentences")
    if spec.get("code_block"):
        every = [b for s in sections for b in s.code_blocks]
        blocks = [b for b in every if not _SOURCE.search(b.text)]
        pattern = spec.get("code_pattern")
        if every and not blocks:
            problems.append("its code blocks hold source code, not the printed output: run the script and paste what it printed")
        elif not blocks:
            problems.append("it has no fenced code block with the printed output (paste it between ``` lines)")
        elif pattern and not any(re.search(pattern, b.text) for b in blocks):
            want = check.spec.get("description") or f"text matching {pattern}"
            problems.append(f"its code block does not show {want}")
        else:
            passed.append("a code block with the output")
    if problems:
        return result(check, Status.FAIL, f"section {named}: " + "; ".join(problems) + ".")
    if review:
        return result(check, Status.REVIEW, f"section {named}: " + "; ".join(review) + ".")
    return result(check, Status.PASS, f"section {named}: " + ", ".join(passed or ["present"]) + ".")


KIND_FUNCTIONS: dict[str, Callable[[Check, Context], CheckResult]] = {
    "implementation": check_implementation,
    "compare": check_compare,
    "agree": check_agree,
    "property": check_property,
    "relation": check_relation,
    "deliverable": check_deliverable,
    "section": check_section,
}


def run_check(check: Check, ctx: Context) -> CheckResult:
    """Apply prerequisites, then the kind's function."""
    for required in check.spec.get("requires", ()):
        prior = ctx.results.get(required)
        if prior is not None and not prior.status.earns_points:
            return result(check, Status.SKIP, f"skipped: it needs '{required}', which did not pass")
    if check.kind in CODE_KINDS and check.kind != "implementation" and (ctx.run is None or not ctx.run.load.ok):
        why = "no implementation file" if ctx.implementation is None else "the implementation could not be loaded"
        return result(check, Status.SKIP, f"skipped: {why} (see implementation-found)")
    return KIND_FUNCTIONS[check.kind](check, ctx)
