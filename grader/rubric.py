"""Load and validate a lab rubric (YAML) and its trusted reference module.

Validation happens once, here, so that check code can trust its spec; every error names the file,
the line and the fix.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import itertools
import math
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from grader.errors import RubricError
from grader.model import Cause, Check, FunctionSpec, InputSet, Rubric



def builtin_causes() -> tuple[str, ...]:
    from grader.diagnose import NAMES  # with numpy: loaded when the first rubric is

    return NAMES
PROPERTIES = ("symmetric", "unmutated", "finite")
IMAGE_POLICIES = ("review", "ignore")

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_LAB = re.compile(r"^phase-\d+/lab-\d+$")


@dataclass(frozen=True)
class _Field:
    types: tuple[type, ...]
    required: bool = False
    choices: tuple[str, ...] = ()


_NUM = (int, float)
_TEXT = (str, dict)  # words a learner reads: one text, or one per language {en: …, es: …}
_COMMON = {
    "id": _Field((str,), True),
    "kind": _Field((str,), True),
    "title": _Field(_TEXT, True),
    "points": _Field(_NUM, True),
    "acceptance": _Field((bool,), True),
    "hidden": _Field((bool,)),
    "requires": _Field((list,)),
    "causes": _Field((list,)),
    "description": _Field(_TEXT),
}
KINDS: dict[str, dict[str, _Field]] = {
    "implementation": {},
    "compare": {
        "function": _Field((str,), True),
        "inputs": _Field((list,), True),
        "atol": _Field(_NUM),
        "rtol": _Field(_NUM),
        "sums_to": _Field(_NUM),
        "partial": _Field((bool,)),
    },
    "agree": {
        "functions": _Field((list,), True),
        "inputs": _Field((list,), True),
        "atol": _Field(_NUM),
        "rtol": _Field(_NUM),
    },
    "property": {
        "property": _Field((str,), True, PROPERTIES),
        "functions": _Field((list,), True),
        "inputs": _Field((list,), True),
        "atol": _Field(_NUM),
    },
    "relation": {
        "function": _Field((str,), True),
        "inputs": _Field((list,), True),
        "transform": _Field((str,), True),
        "relate": _Field((str,), True),
        "atol": _Field(_NUM),
        "rtol": _Field(_NUM),
    },
    "deliverable": {},
    "section": {
        "headings": _Field((list,), True),
        "suggest": _Field(_TEXT),  # the heading to suggest, per language (default: the first of headings)
        "result": _Field((str,)),
        "steps_of": _Field((str,)),
        "min_sentences": _Field((int,)),
        "not_from": _Field((list,)),
        "output": _Field((bool,)),
        "code_block": _Field((bool,)),
        "code_pattern": _Field((str,)),
        "images": _Field((str,), False, IMAGE_POLICIES),
    },
}
_TOP = {
    "lab": _Field((str,), True),
    "title": _Field(_TEXT, True),
    "phase_dir": _Field((str,), True),
    "implementation": _Field((list,), True),
    "deliverable": _Field((str,), True),
    "reference": _Field((str,), True),
    "functions": _Field((dict,), True),
    "inputs": _Field((dict,), True),
    "checks": _Field((list,), True),
    "description": _Field(_TEXT),
    "notation": _Field((dict,)),
}
_FUNCTION = {
    "reference": _Field((str,)),
    "causes": _Field((list,)),
    "step_arg": _Field((int,)),
    "default_step": _Field(_NUM),
    "differences": _Field((str,)),
    "wrt": _Field((int,)),
    "uses": _Field((list, dict)),
}
_INPUT = {
    "hidden": _Field((bool,)),
    "args": _Field((dict,)),
    "product": _Field((dict,)),
    "cases": _Field((list,)),
    "generate": _Field((str,)),
}
_CAUSE = {"when": _Field((str,), True), "say": _Field(_TEXT)}


def _type_fix(key: str, types: tuple[type, ...]) -> str:
    """What to write instead, for a value of the wrong type."""
    if float in types or int in types:
        return f"write a plain number without quotes, e.g. '{key}: {1.0e-7 if key in ('atol', 'rtol') else 2}'"
    if bool in types:
        return f"write '{key}: true' or '{key}: false'"
    if str in types:
        return f"write it as text in quotes: '{key}: \"…\"'"
    if list in types:
        return f"write a list: '{key}: [a, b]'"
    return f"indent its keys under '{key}:'"


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "a number", float: "a number", str: "a string", bool: "true or false", list: "a list", dict: "a mapping"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


_ALIASES = {
    "tolerance": "atol", "tol": "atol", "abs_tol": "atol", "rel_tol": "rtol", "heading": "headings",
    "sections": "headings", "input": "inputs", "func": "function", "fn": "function",
    "sentences": "min_sentences", "weight": "points", "score": "points", "name": "title", "required": "acceptance",
    "formulas": "result", "formula": "result", "steps": "steps_of", "code": "output",
}


def did_you_mean(word: str, options: Sequence[str]) -> str:
    alias = _ALIASES.get(word.lower())
    if alias in options:
        return f" — did you mean '{alias}'?"
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if close:
        return f" — did you mean '{close[0]}'?"
    return f" — expected one of: {', '.join(options)}" if options else ""


class _Doc:
    """Parsed YAML plus the line of every key and list item, so errors can point at them."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[tuple[Any, ...], int] = {}
        self._loader = yaml.SafeLoader("")
        try:
            node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            problem = exc.problem or "invalid YAML"
            raise RubricError(f"{self.where(line)}: YAML error: {problem} — check the indentation, quoting and anchors there") from None
        except yaml.YAMLError as exc:  # e.g. a control character (ReaderError): it has a position, not a mark
            position = getattr(exc, "position", None)
            line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 0
            problem = " ".join(str(getattr(exc, "reason", None) or exc).split())
            raise RubricError(f"{self.where(line)}: YAML error: {problem} — save the rubric as plain UTF-8 text") from None
        except RecursionError:
            raise RubricError(f"{path}: YAML error: nested too deeply — flatten the structure") from None
        if node is None:
            raise RubricError(f"{path}: the rubric is empty — start from rubrics/phase-04/lab-00.yaml")
        self._budget = _MAX_NODES
        try:
            self.data = self._walk(node, ())
        except RecursionError:
            raise RubricError(f"{path}: nested too deeply (or an alias that contains itself) — flatten the structure") from None

    def where(self, line: int) -> str:
        return f"{self.path}:{line}" if line else str(self.path)

    def line(self, at: tuple[Any, ...]) -> int:
        while at:
            if at in self.lines:
                return self.lines[at]
            at = at[:-1]
        return 1

    def fail(self, at: tuple[Any, ...], text: str) -> RubricError:
        """One line whatever the rubric holds (a key may contain a line break)."""
        return RubricError(f"{self.where(self.line(at))}: {' '.join(text.split())}")

    def _walk(self, node: yaml.Node, at: tuple[Any, ...]) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise RubricError(f"{self.where(node.start_mark.line + 1)}: more than {_MAX_NODES} values (aliases expanding?) "
                              "— a rubric is a few hundred lines; write the values out")
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = str(self._scalar(key_node)) if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                here = at + (key,)
                if key in out:
                    raise RubricError(f"{self.where(key_node.start_mark.line + 1)}: duplicate key '{key}' — keep only one")
                self.lines[here] = key_node.start_mark.line + 1
                out[key] = self._walk(value_node, here)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(item, at + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise RubricError(f"{self.where(node.start_mark.line + 1)}: bad value: {problem} — use plain YAML values") from None


_MAX_NODES = 100_000

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _coerce(value: Any, field: _Field) -> Any:
    """YAML 1.1 reads 1e-7 as a string and 3.0 as a float: take them as the numbers they mean."""
    if float in field.types and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    if int in field.types and float not in field.types and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_fields(doc: _Doc, at: tuple[Any, ...], data: Any, fields: Mapping[str, _Field], what: str) -> None:
    if not isinstance(data, dict):
        raise doc.fail(at, f"{what} must be a mapping of keys to values, not {_shown(data)} — indent its 'key: value' lines under it")
    for key in data:
        if key not in fields:
            raise doc.fail(at + (key,), f"{what}: unknown key {_shown(key)}{did_you_mean(key, list(fields))}")
    for key, field in fields.items():
        if key not in data:
            if field.required:
                raise doc.fail(at, f"{what}: missing required key '{key}' — add it")
            continue
        value = data[key] = _coerce(data[key], field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not _finite(value):
            raise doc.fail(at + (key,), f"{what}: '{key}' must be a finite number, not {_shown(value)} — {_type_fix(key, field.types)}")
        ok = isinstance(value, field.types) and not (isinstance(value, bool) and bool not in field.types)
        if not ok:
            raise doc.fail(at + (key,), f"{what}: '{key}' must be {_type_name(field.types)}, not {_shown(value)} — {_type_fix(key, field.types)}")
        if field.types == _TEXT and isinstance(value, dict):
            _check_languages(doc, at + (key,), value, f"{what}: '{key}'")
        if field.choices and value not in field.choices:
            raise doc.fail(at + (key,), f"{what}: '{key}: {value}' is not known{did_you_mean(value, field.choices)}")


def _check_languages(doc: _Doc, at: tuple[Any, ...], value: dict[Any, Any], what: str) -> None:
    """``{en: …, es: …}``: known languages, each a non-empty text."""
    from grader.i18n import LANGUAGES

    for lang, text in value.items():
        if lang not in LANGUAGES:
            raise doc.fail(at + (lang,), f"{what}: {_shown(lang)} is not a language of the grader "
                                         f"({', '.join(LANGUAGES)}){did_you_mean(str(lang), LANGUAGES) or ' — use one of them'}")
        if not isinstance(text, str) or not text.strip():
            raise doc.fail(at + (lang,), f"{what}: its '{lang}' text must be a non-empty string, not {_shown(text)} — "
                                         f"write it in quotes, '{lang}: \"…\"'")
    if not value:
        raise doc.fail(at, f"{what}: no text — give one, or one per language ('en: …' and 'es: …')")


def rubric_text(value: Any) -> Any:
    """A rubric text as the model holds it: a plain string, or the author's words per language."""
    from grader.i18n import Texts

    return Texts.of(value) if isinstance(value, dict) else value


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _shown(value: Any) -> str:
    """A value quoted in a message: one line, not too long."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _load_reference(doc: _Doc, name: str) -> ModuleType:
    try:
        path = (doc.path.parent / name).resolve()
        found = path.is_file() and path.suffix == ".py"
    except (OSError, ValueError, RuntimeError):
        path, found = doc.path.parent / name, False
    if not found:
        raise doc.fail(("reference",), f"reference module {_shown(name)} not found beside the rubric ({path}) "
                       "— put the .py file beside the YAML, or fix 'reference:'")
    module_name = f"_grader_reference_{abs(hash(str(path)))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise RubricError(f"{path}:{exc.lineno}: syntax error in the reference module: {exc.msg} — fix the reference module") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - trusted code, but a broken one must still read as one line
        lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == str(path)]
        where = f"{path}:{lines[-1]}" if lines and lines[-1] else str(path)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise RubricError(f"{where}: the reference module raised {reason} while loading — fix the reference module "
                          "(the grader imports it to compute expected values)") from None
    sys.modules[module_name] = module
    return module


def _reference_callable(doc: _Doc, module: ModuleType, name: str, at: tuple[Any, ...], role: str) -> Callable[..., Any]:
    fn = getattr(module, name, None)
    if not callable(fn):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        file = Path(module.__file__ or "the reference module").name
        fix = did_you_mean(name, names) if names else ""
        raise doc.fail(at, f"{role} {_shown(name)} is not a function in the reference module {file}"
                       f"{fix or f' — define it in {file}'}")
    return fn


def _to_arg(value: Any) -> Any:
    """Lists become float arrays (as a learner's numpy code expects); numbers stay numbers."""
    import numpy as np

    if isinstance(value, np.generic):  # np.int64(2) is a class index, not an array
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=np.float64)  # ValueError, TypeError or OverflowError: the caller says where
    return value


def _input_set(doc: _Doc, module: ModuleType, name: str, data: Any) -> InputSet:
    at = ("inputs", name)
    _check_fields(doc, at, data, _INPUT, f"input set '{name}'")
    forms = [k for k in ("args", "product", "cases", "generate") if k in data]
    if len(forms) != 1:
        raise doc.fail(at, f"input set '{name}' needs exactly one of args, product, cases, generate (has {', '.join(forms) or 'none'}) "
                       "— keep one of them")
    form = forms[0]
    cases: list[tuple[Any, ...]]
    names: tuple[str, ...] = ()
    if form == "args":
        cases = [tuple(data["args"].values())]
        names = tuple(data["args"])
    elif form == "product":
        for key, values in data["product"].items():
            if not isinstance(values, list) or not values:
                raise doc.fail(at + ("product", key), f"input set '{name}': product '{key}' must be a non-empty list of values "
                               f"— e.g. '{key}: [0, 1]'")
        cases = list(itertools.product(*data["product"].values()))
        names = tuple(data["product"])
    elif form == "cases":
        cases = []
        for i, case in enumerate(data["cases"]):
            if not isinstance(case, dict):
                raise doc.fail(at + ("cases", i), f"input set '{name}': each case is a mapping of argument names to values "
                               "— write it as '- {z: [1.0, 2.0]}'")
            names = names or tuple(case)
            if set(case) != set(names):
                raise doc.fail(at + ("cases", i), f"input set '{name}': every case names the same arguments "
                               f"({', '.join(names)}); this one has {', '.join(case)} — give every case the same names")
            cases.append(tuple(case[n] for n in names))
    else:
        fn = _reference_callable(doc, module, data["generate"], at + ("generate",), "generator")
        names = ()
        try:
            produced = fn()
            cases = [tuple(case) if isinstance(case, (list, tuple)) else (case,) for case in produced]
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            raise doc.fail(at + ("generate",), f"generator '{data['generate']}' failed: {reason} "
                           f"— fix it in {Path(module.__file__ or '').name}") from None
    if not cases:
        raise doc.fail(at, f"input set '{name}' has no cases — give at least one")
    arity = {len(case) for case in cases}
    if len(arity) != 1:
        raise doc.fail(at, f"input set '{name}': every case needs the same number of arguments — make them all alike")
    try:
        converted = tuple(tuple(_to_arg(v) for v in case) for case in cases)
    except (ValueError, TypeError, OverflowError) as exc:
        raise doc.fail(at, f"input set '{name}': a list that is not a rectangular array of numbers ({' '.join(str(exc).split())[:120]}) "
                       "— give every list the same length and only numbers") from None
    return InputSet(
        name=name,
        cases=converted,
        hidden=bool(data.get("hidden", False)),
        arg_names=names,
    )


def arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments a reference function needs (those without defaults)."""
    params = inspect.signature(fn).parameters.values()
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def _arity(doc: _Doc, at: tuple[Any, ...], fn: Callable[..., Any], name: str) -> int:
    try:
        return arity(fn)
    except (TypeError, ValueError):
        raise doc.fail(at, f"reference '{name}' has no Python signature the grader can read "
                       "— make it a plain 'def' function in the reference module") from None


def _names_in(doc: _Doc, at: tuple[Any, ...], values: list[Any], known: Sequence[str], what: str) -> tuple[str, ...]:
    for i, value in enumerate(values):
        if not isinstance(value, str) or value not in known:
            fix = did_you_mean(str(value), list(known)) if known else ""
            raise doc.fail(at + (i,), f"unknown {what} {_shown(value)}{fix or ' — define it first (none is defined)'}")
    return tuple(values)


def _causes(doc: _Doc, module: ModuleType, at: tuple[Any, ...], items: list[Any], label: str) -> tuple[Cause, ...]:
    causes = []
    for j, cause in enumerate(items):
        _check_fields(doc, at + ("causes", j), cause, _CAUSE, f"{label} cause")
        when = cause["when"]
        builtin = builtin_causes()
        if when not in builtin:
            if not hasattr(module, when):
                raise doc.fail(at + ("causes", j, "when"), f"{label}: cause '{when}' is neither built in nor a reference function{did_you_mean(when, list(builtin))}")
            _reference_callable(doc, module, when, at + ("causes", j, "when"), "cause detector")
        causes.append(Cause(when=when, say=rubric_text(cause.get("say"))))
    return tuple(causes)


def _check(doc: _Doc, module: ModuleType, i: int, data: Any, functions: Sequence[str], inputs: Sequence[str], seen: dict[str, int],
           results: Sequence[str] = ()) -> Check:
    at = ("checks", i)
    if not isinstance(data, dict):
        raise doc.fail(at, "each check is a mapping with id, kind, title, points, acceptance — write it as '- id: …' with those keys")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise doc.fail(at + ("kind",), f"unknown check kind {_shown(kind) if not isinstance(kind, str) else repr(kind)}"
                       f"{did_you_mean(str(kind), list(KINDS))}")
    label = f"check '{data.get('id', i + 1)}'"
    _check_fields(doc, at, data, {**_COMMON, **KINDS[kind]}, label)
    check_id = data["id"]
    if not _ID.match(check_id):
        raise doc.fail(at + ("id",), f"{label}: ids are lower-case words joined by '-' — rename it, e.g. 'no-input-mutation'")
    if check_id in seen:
        raise doc.fail(at + ("id",), f"{label}: duplicate id (first at line {seen[check_id]}) — ids must be unique")
    seen[check_id] = doc.line(at)
    if data["points"] < 0:
        raise doc.fail(at + ("points",), f"{label}: points must be zero or more — use 0 for a check that only gives advice")
    for key in ("inputs", "functions", "headings"):
        if key in data and not data[key]:
            raise doc.fail(at + (key,), f"{label}: '{key}' is empty — list at least one, or leave the key out where it is optional")
    spec = {k: v for k, v in data.items() if k in KINDS[kind]}
    if "function" in spec:
        spec["function"] = _names_in(doc, at + ("function",), [spec["function"]], functions, "function")[0]
    if "functions" in spec:
        spec["functions"] = _names_in(doc, at + ("functions",), spec["functions"], functions, "function")
        if kind == "agree" and len(spec["functions"]) != 2:
            raise doc.fail(at + ("functions",), f"{label}: 'agree' compares exactly two functions — list two")
    if "inputs" in spec:
        spec["inputs"] = _names_in(doc, at + ("inputs",), spec["inputs"], inputs, "input set")
    for j, value in enumerate(spec.get("headings", [])):
        if not isinstance(value, str) or not value.strip():
            raise doc.fail(at + ("headings", j), f"{label}: headings are non-empty strings — quote the text, or remove the empty entry")
    for key in ("result", "steps_of"):
        if key in spec and spec[key] not in results:
            known = list(results)
            fix = did_you_mean(spec[key], known) if known else " — define it under 'notation: results:' first"
            raise doc.fail(at + (key,), f"{label}: {key} {_shown(spec[key])} is not a result of the rubric's notation{fix}")
    if "code_block" in spec:
        spec["output"] = spec.pop("code_block") or spec.get("output", False)
    if "code_pattern" in spec:
        try:
            re.compile(spec["code_pattern"])
        except re.error as exc:
            raise doc.fail(at + ("code_pattern",), f"{label}: code_pattern is not a valid regular expression: {exc} "
                           "— fix it (in single quotes, backslashes stay as written)") from None
    for key in ("transform", "relate"):
        if key in spec:
            _reference_callable(doc, module, spec[key], at + (key,), key)
    for key in ("atol", "rtol"):
        if key in spec and spec[key] < 0:
            raise doc.fail(at + (key,), f"{label}: {key} must be zero or more — e.g. '{key}: 1.0e-7'")
    causes = _causes(doc, module, at, data.get("causes", []), label)
    requires = data.get("requires", [])
    for j, req in enumerate(requires):
        if not isinstance(req, str) or req not in seen or req == check_id:
            fix = did_you_mean(str(req), list(seen)) if seen else " — list it after the check it needs"
            raise doc.fail(at + ("requires", j), f"{label}: requires {_shown(req)}, which is not an earlier check{fix}")
    spec["requires"] = tuple(requires)
    return Check(
        id=check_id,
        kind=kind,
        title=rubric_text(data["title"]),
        points=float(data["points"]),
        acceptance=data["acceptance"],
        spec=spec,
        causes=causes,
        hidden=bool(data.get("hidden", False)),
        line=doc.line(at),
    )


def load_rubric(path: Path) -> Rubric:
    """Parse, validate and resolve one rubric; raises RubricError with file:line on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RubricError(f"{path}: rubric not found — check --rubrics") from None
    except UnicodeDecodeError as exc:
        raise RubricError(f"{path}: not UTF-8 text (byte offset {exc.start}) — save the rubric as UTF-8") from None
    except OSError as exc:
        raise RubricError(f"{path}: cannot read the rubric ({exc.strerror or exc}) — check the file and its permissions") from None
    doc = _Doc(path, text)
    data = doc.data
    _check_fields(doc, (), data, _TOP, "rubric")
    if not _LAB.match(data["lab"]):
        raise doc.fail(("lab",), f"lab {_shown(data['lab'])} is not a lab id — write it like 'phase-04/lab-00'")
    if data["lab"].split("/")[0] != data["phase_dir"]:
        raise doc.fail(("phase_dir",), f"phase_dir '{data['phase_dir']}' does not match lab '{data['lab']}' — make them the same phase")
    if "/" in data["deliverable"] or "\\" in data["deliverable"] or data["deliverable"] in ("", ".", ".."):
        raise doc.fail(("deliverable",), f"deliverable {_shown(data['deliverable'])} must be a file name inside {data['phase_dir']}/, "
                       "not a path — e.g. 'deliverable: lab-00-notes.md'")
    module = _load_reference(doc, data["reference"])

    functions = []
    for name, fdata in data["functions"].items():
        fdata = fdata if fdata is not None else {}
        _check_fields(doc, ("functions", name), fdata, _FUNCTION, f"function '{name}'")
        ref = fdata.get("reference", name)
        _reference_callable(doc, module, ref, ("functions", name), "reference function")
        step = fdata.get("step_arg")
        needed = _arity(doc, ("functions", name), getattr(module, ref), ref)
        if step is not None and not 0 <= step <= needed:
            raise doc.fail(("functions", name, "step_arg"), f"function '{name}': step_arg {step} must be between 0 and {needed} "
                           f"(the position of h among the {needed} argument(s) of '{ref}', counting from 0) — fix step_arg")
        functions.append(FunctionSpec(
            name=name,
            reference=ref,
            step_arg=fdata.get("step_arg"),
            default_step=fdata.get("default_step"),
            causes=_causes(doc, module, ("functions", name), fdata.get("causes", []), f"function '{name}'"),
            differences=fdata.get("differences"),
            wrt=int(fdata.get("wrt", 0)),
            uses=_uses(doc, module, name, fdata.get("uses", [])),
        ))
    if not functions:
        raise doc.fail(("functions",), "no learner function — list at least one under 'functions:'")
    names = [f.name for f in functions]
    for spec in functions:
        for key, targets in (("differences", [spec.differences] if spec.differences else []), ("uses", [u for u, _ in spec.uses])):
            for target in targets:
                if target not in names or target == spec.name:
                    raise doc.fail(("functions", spec.name, key), f"function '{spec.name}': {key} {_shown(target)} is not "
                                   f"another lab function{did_you_mean(str(target), names)}")
        if spec.differences and spec.step_arg is None:
            raise doc.fail(("functions", spec.name, "differences"), f"function '{spec.name}': a finite difference needs "
                           "'step_arg' (the position of h) — add it")

    inputs = {name: _input_set(doc, module, name, idata) for name, idata in data["inputs"].items()}
    notation = _notation(doc, data.get("notation"), module)
    seen: dict[str, int] = {}
    fnames = [f.name for f in functions]
    results = list(notation.results) if notation is not None else []
    checks = tuple(_check(doc, module, i, c, fnames, list(inputs), seen, results) for i, c in enumerate(data["checks"]))
    if not checks:
        raise doc.fail(("checks",), "a rubric needs at least one check — add one under 'checks:'")
    by_name = {f.name: f for f in functions}
    for i, check in enumerate(checks):
        if check.kind not in ("compare", "agree", "relation") and check.spec.get("property") != "symmetric":
            continue
        names = [check.spec["function"]] if "function" in check.spec else list(check.spec["functions"])
        for name in names:
            needed = _arity(doc, ("functions", name), getattr(module, by_name[name].reference), by_name[name].reference)
            for set_name in check.spec["inputs"]:
                given = len(inputs[set_name].cases[0])
                if given != needed:
                    raise doc.fail(("checks", i, "inputs"), f"check '{check.id}': input set '{set_name}' gives {given} argument(s) but {name} takes {needed} — use an input set that fits")
    if not data["implementation"]:
        raise doc.fail(("implementation",), "implementation needs at least one file-name pattern — add one, e.g. 'lab-00*.py'")
    for key in ("implementation",):
        for j, pattern in enumerate(data[key]):
            if not isinstance(pattern, str) or "/" in pattern:
                raise doc.fail((key, j), f"{_shown(pattern)} is not a file-name pattern — use a glob like 'lab-00*.py'")
    return Rubric(
        lab=data["lab"],
        title=rubric_text(data["title"]),
        path=path,
        phase_dir=data["phase_dir"],
        implementation=tuple(data["implementation"]),
        deliverable=data["deliverable"],
        functions=tuple(functions),
        inputs=inputs,
        checks=checks,
        reference=module,
        notation=notation,
    )


def _uses(doc: _Doc, module: ModuleType, name: str, data: list[Any] | dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``uses: [f]``, or ``uses: {f: g_from_f}`` with a reference function rebuilding this one from that one's value,
    so the grader can tell "computed correctly from your wrong f" for sure."""
    pairs = data.items() if isinstance(data, dict) else ((item, "") for item in data)
    out = []
    for dep, builder in pairs:
        if builder:
            _reference_callable(doc, module, str(builder), ("functions", name, "uses", dep), "builder")
        out.append((str(dep), str(builder or "")))
    return tuple(out)


def _notation(doc: _Doc, data: dict[str, Any] | None, module: ModuleType) -> Any:
    """The lab's quantities and results (``notation:``), built once; its errors point at their line."""
    if data is None:
        return None
    from grader.maths.match import NotationError, build

    try:
        return build(data, module)
    except NotationError as exc:
        raise doc.fail(("notation", *exc.where), f"notation: {exc}") from None


def discover_rubrics(directory: Path) -> list[Rubric]:
    """Every ``*.yaml`` under the directory, sorted by lab id."""
    if directory.is_file() and directory.suffix in (".yaml", ".yml"):
        return [load_rubric(directory)]
    if not directory.is_dir():
        raise RubricError(f"{directory}: no such rubrics folder — pass --rubrics DIR (or one rubric .yaml file)")
    paths = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
    if not paths:
        raise RubricError(f"{directory}: no rubric (*.yaml) found — pass --rubrics DIR")
    rubrics = [load_rubric(p) for p in paths]
    labs: dict[str, Path] = {}
    for rubric in rubrics:
        if rubric.lab in labs:
            raise RubricError(f"{rubric.path}: lab '{rubric.lab}' is also defined in {labs[rubric.lab]} — keep one")
        labs[rubric.lab] = rubric.path
    return sorted(rubrics, key=lambda r: r.lab)
