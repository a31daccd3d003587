"""Load and validate a lab rubric (YAML) and its trusted reference module.

Validation happens once, here, so that check code can trust its spec; every problem names the file, the line and
the fix, as a catalogue message. Each independent part of a rubric (its top-level keys, each function, each input
set, each check, each cause, the notation) is validated on its own, so every problem is found in one reading: the
error raised is the first problem by line, and carries them all (``RubricProblem.problems``, which ``grade lint``
lists). A part whose problem makes what is built on it meaningless is not read further (an unknown check kind, a
function whose reference is missing); a YAML error and a reference module that is missing or fails to import stop
the rubric there.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import inspect
import itertools
import math
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from grader.errors import RubricError
from grader.i18n import Message, map_strings, msg, verbatim
from grader.model import LAB_NAME, Cause, Check, FunctionSpec, InputSet, Rubric


def builtin_causes() -> tuple[str, ...]:
    from grader.diagnose import NAMES  # with numpy: loaded when the first rubric is

    return NAMES


PROPERTIES = ("symmetric", "unmutated", "finite")
IMAGE_POLICIES = ("review", "ignore")
NOT_RUBRICS = ("course.yaml", "overrides.yaml")  # the class's own files, when kept beside the rubrics
REVIEW_POINTS = ("given", "held")  # a check in review: its points count now, or only once an instructor decides

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


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
    "output_rerun": {
        "headings": _Field((list,), True),  # where the pasted output is (else any output block of the deliverable)
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
    "helpers": _Field((str,)),
    "given": _Field((list,)),  # files beside the rubric that every learner is given (grade similar leaves them out)
    "review_points": _Field((str,), False, REVIEW_POINTS),
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


def schema_keys() -> dict[str, frozenset[str]]:
    """Every key a rubric may hold, by where it goes (for the README's reference and its test)."""
    return {"rubric": frozenset(_TOP), "function": frozenset(_FUNCTION), "input set": frozenset(_INPUT),
            "cause": frozenset(_CAUSE), "check": frozenset(_COMMON),
            **{f"check {kind}": frozenset(fields) for kind, fields in KINDS.items()}}


def _type_fix(key: str, types: tuple[type, ...]) -> Message:
    """What to write instead, for a value of the wrong type."""
    if float in types or int in types:
        return msg("rubric.fix.number", key=key, example="1e-07" if key in ("atol", "rtol") else "2")
    if bool in types:
        return msg("rubric.fix.bool", key=key)
    if str in types:
        return msg("rubric.fix.text", key=key)
    if list in types:
        return msg("rubric.fix.list", key=key)
    return msg("rubric.fix.mapping", key=key)


def _type_name(types: tuple[type, ...]) -> Message:
    """``a number``, ``a string or a mapping``: what a key's value must be."""
    names = {int: "number", float: "number", str: "string", bool: "bool", list: "list", dict: "mapping"}
    said = [_TYPE_WORDS[name] for name in dict.fromkeys(names[t] for t in types)]
    out = said[0]
    for more in said[1:]:
        out = msg("rubric.type.or", first=out, second=more)
    return out


_TYPE_WORDS = {
    "number": msg("rubric.type.number"), "string": msg("rubric.type.string"), "bool": msg("rubric.type.bool"),
    "list": msg("rubric.type.list"), "mapping": msg("rubric.type.mapping"),
}

_ALIASES = {
    "tolerance": "atol", "tol": "atol", "abs_tol": "atol", "rel_tol": "rtol", "heading": "headings",
    "sections": "headings", "input": "inputs", "func": "function", "fn": "function",
    "sentences": "min_sentences", "weight": "points", "score": "points", "name": "title", "required": "acceptance",
    "formulas": "result", "formula": "result", "steps": "steps_of", "code": "output",
}


def did_you_mean(word: str, options: Sequence[str]) -> Message:
    """What the author may have meant, said after the problem (`` — did you mean 'atol'?``), else the options;
    an empty message when there is none."""
    alias = _ALIASES.get(word.lower())
    if alias in options:
        return msg("rubric.did_you_mean", name=alias)
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if close:
        return msg("rubric.did_you_mean", name=close[0])
    return msg("rubric.one_of", options=list(options)) if options else verbatim("")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class RubricProblem(RubricError):
    """One problem of a rubric at its place: ``file`` and ``line`` (0: the file as a whole); ``problems`` is every
    problem found in that rubric, sorted by line, this one first (what ``grade lint`` lists)."""

    def __init__(self, file: Path | str, line: int, problem: Message) -> None:
        self.file = str(file)
        self.line = line
        self.where = f"{file}:{line}" if line else str(file)
        self.problem = map_strings(problem, _one_line)  # one line whatever the rubric holds (a key may hold a line break)
        super().__init__(msg("rubric.at", where=self.where, problem=self.problem))
        self.problems: tuple[RubricProblem, ...] = (self,)

    def __reduce__(self) -> tuple[Any, ...]:  # sent back from a worker whole, its problems with it
        return _rebuilt, (self.file, self.line, self.problem, self.problems if self.problems != (self,) else ())


def _rebuilt(file: str, line: int, problem: Message, problems: tuple[RubricProblem, ...]) -> RubricProblem:
    error = RubricProblem(file, line, problem)
    error.problems = problems or (error,)
    return error


class _Doc:
    """Parsed YAML plus the line of every key and list item, so problems can point at them; the problems found."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[tuple[Any, ...], int] = {}
        self.problems: list[RubricProblem] = []
        self.data: Any = None

    def read(self, text: str) -> None:
        """Parse the YAML; a problem here stops the rubric (nothing after it can be trusted to be where it is)."""
        self._loader = yaml.SafeLoader("")
        try:
            node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            problem = verbatim(exc.problem) if exc.problem else msg("rubric.invalid_yaml")
            raise self.at_line(line, msg("rubric.yaml_error", problem=problem)) from None
        except yaml.YAMLError as exc:  # e.g. a control character (ReaderError): it has a position, not a mark
            position = getattr(exc, "position", None)
            line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 0
            problem = " ".join(str(getattr(exc, "reason", None) or exc).split())
            raise self.at_line(line, msg("rubric.yaml_encoding", problem=verbatim(problem))) from None
        except RecursionError:
            raise self.at_line(0, msg("rubric.yaml_too_deep")) from None
        if node is None:
            raise self.at_line(0, msg("rubric.empty"))
        self._budget = _MAX_NODES
        try:
            self.data = self._walk(node, ())
        except RecursionError:
            raise self.at_line(0, msg("rubric.too_deep")) from None

    def where(self, line: int) -> str:
        return f"{self.path}:{line}" if line else str(self.path)

    def line(self, at: tuple[Any, ...]) -> int:
        while at:
            if at in self.lines:
                return self.lines[at]
            at = at[:-1]
        return 1

    def at_line(self, line: int, problem: Message) -> RubricProblem:
        return RubricProblem(self.path, line, problem)

    def fail(self, at: tuple[Any, ...], problem: Message) -> RubricProblem:
        """The problem at the line of a key path (the nearest one the YAML has)."""
        return RubricProblem(self.path, self.line(at), problem)

    def add(self, at: tuple[Any, ...], problem: Message) -> None:
        """A problem noted; validation goes on with the next part."""
        self.problems.append(self.fail(at, problem))

    @contextlib.contextmanager
    def part(self) -> Iterator[None]:
        """One independent part of the rubric: its problem is kept, and the next part is read."""
        try:
            yield
        except RubricProblem as problem:
            self.problems.append(problem)
        except Exception:
            if not self.problems:
                raise
            # a part left unreadable by a problem already found (and said): fixing that one comes first

    def error(self) -> RubricProblem:
        """The first problem by line, carrying every problem (each said once)."""
        unique: dict[tuple[str, str], RubricProblem] = {}
        for problem in self.problems:
            unique.setdefault((problem.where, str(problem)), problem)
        ordered = sorted(unique.values(), key=lambda p: (p.file != str(self.path), p.line))
        first = ordered[0]
        error = RubricProblem(first.file, first.line, first.problem)
        error.problems = tuple(ordered)
        return error

    def _walk(self, node: yaml.Node, at: tuple[Any, ...]) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise self.at_line(node.start_mark.line + 1, msg("rubric.too_many_values", n=_MAX_NODES))
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = str(self._scalar(key_node)) if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                here = at + (key,)
                if key in out:  # the first one is read on
                    self.problems.append(self.at_line(key_node.start_mark.line + 1, msg("rubric.duplicate_key", key=key)))
                    continue
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
            raise self.at_line(node.start_mark.line + 1, msg("rubric.bad_value", problem=verbatim(problem))) from None


_MAX_NODES = 100_000

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _coerce(value: Any, field: _Field) -> Any:
    """YAML 1.1 reads 1e-7 as a string and 3.0 as a float: take them as the numbers they mean."""
    if float in field.types and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    if int in field.types and float not in field.types and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_fields(doc: _Doc, at: tuple[Any, ...], data: Any, fields: Mapping[str, _Field], what: Message,
                  known_keys: bool = True) -> dict[str, Any] | None:
    """The mapping's valid values, each key checked on its own: every problem is noted, and a key whose value is wrong
    is left out of what is returned, so nothing built on it is checked again. ``None``: it is not a mapping.
    ``known_keys=False`` leaves keys it does not know alone (a check of an unknown kind)."""
    if not isinstance(data, dict):
        doc.add(at, msg("rubric.not_mapping", what=what, value=_shown(data)))
        return None
    meant: set[str] = set()  # keys an unknown key was taken for: not also said to be missing
    if known_keys:
        for key in data:
            if key not in fields:
                fix = did_you_mean(key, list(fields))
                if fix.id == "rubric.did_you_mean":
                    meant.add(fix.params["name"])
                doc.add(at + (key,), msg("rubric.unknown_key", what=what, key=_shown(key), fix=fix))
    good: dict[str, Any] = {}
    for key, field in fields.items():
        if key not in data:
            if field.required and key not in meant:
                doc.add(at, msg("rubric.missing_key", what=what, key=key))
            continue
        with doc.part():
            good[key] = _checked(doc, at, data, key, field, what)
    return good


def _checked(doc: _Doc, at: tuple[Any, ...], data: dict[str, Any], key: str, field: _Field, what: Message) -> Any:
    value = data[key] = _coerce(data[key], field)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _finite(value):
        raise doc.fail(at + (key,), msg("rubric.not_finite", what=what, key=key, value=_shown(value),
                                        fix=_type_fix(key, field.types)))
    ok = isinstance(value, field.types) and not (isinstance(value, bool) and bool not in field.types)
    if not ok:
        raise doc.fail(at + (key,), msg("rubric.wrong_type", what=what, key=key, type=_type_name(field.types),
                                        value=_shown(value), fix=_type_fix(key, field.types)))
    if field.types == _TEXT and isinstance(value, dict):
        _check_languages(doc, at + (key,), value, msg("rubric.what.key", what=what, key=key))
    if field.choices and value not in field.choices:
        raise doc.fail(at + (key,), msg("rubric.not_known", what=what, key=key, value=str(value),
                                        fix=did_you_mean(value, field.choices)))
    return value


def _check_languages(doc: _Doc, at: tuple[Any, ...], value: dict[Any, Any], what: Message) -> None:
    """``{en: …, es: …}``: known languages, each a non-empty text."""
    from grader.i18n import LANGUAGES

    for lang, text in value.items():
        if lang not in LANGUAGES:
            raise doc.fail(at + (lang,), msg("rubric.not_a_language", what=what, lang=_shown(lang), languages=list(LANGUAGES),
                                             fix=did_you_mean(str(lang), LANGUAGES)))
        if not isinstance(text, str) or not text.strip():
            raise doc.fail(at + (lang,), msg("rubric.empty_language_text", what=what, lang=lang, value=_shown(text)))
    if not value:
        raise doc.fail(at, msg("rubric.no_text", what=what))


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
    """A value quoted in a message (data, as Python writes it): one line, not too long."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _load_reference(doc: _Doc, name: str, key: str = "reference", aliases: dict[str, ModuleType] | None = None) -> ModuleType:
    """The trusted module beside the rubric (its reference, or the helpers a learner kit may ship, which the reference
    imports by their file's name); when it is missing or fails to import, the rubric stops here."""
    try:
        path = (doc.path.parent / name).resolve()
        found = path.is_file() and path.suffix == ".py"
    except (OSError, ValueError, RuntimeError):
        path, found = doc.path.parent / name, False
    if not found:
        raise doc.fail((key,), msg("rubric.reference_not_found" if key == "reference" else "rubric.helpers_not_found",
                                   name=_shown(name), path=str(path)))
    module_name = f"_grader_{key}_{abs(hash(str(path)))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = {alias: sys.modules.get(alias) for alias in aliases or {}}
    sys.modules.update(aliases or {})
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise RubricProblem(path, exc.lineno or 0, msg("rubric.reference_syntax", error=verbatim(str(exc.msg)))) from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - trusted code, but a broken one must still read as one line
        lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == str(path)]
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise RubricProblem(path, lines[-1] if lines and lines[-1] else 0,
                            msg("rubric.reference_raised", error=verbatim(reason))) from None
    finally:
        for alias, before in saved.items():
            if before is None:
                sys.modules.pop(alias, None)
            else:
                sys.modules[alias] = before
    sys.modules[module_name] = module
    return module


def _reference_callable(doc: _Doc, module: ModuleType, name: str, at: tuple[Any, ...], role: Message | str) -> Callable[..., Any]:
    """``role``: what the function is for (a message, or the rubric key naming it: ``transform``)."""
    fn = getattr(module, name, None)
    if not callable(fn):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        file = Path(module.__file__ or module.__name__).name
        fix = did_you_mean(name, names) if names else verbatim("")
        raise doc.fail(at, msg("rubric.not_in_reference", role=role, name=_shown(name), file=file,
                               fix=fix or msg("rubric.define_in", file=file)))
    return fn


def _to_arg(value: Any) -> Any:
    """Lists become float arrays (as a learner's numpy code expects); numbers stay numbers."""
    import numpy as np

    if isinstance(value, np.generic):  # np.int64(2) is a class index, not an array
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=np.float64)  # ValueError, TypeError or OverflowError: the caller says where
    return value


def _input_set(doc: _Doc, module: ModuleType, name: str, data: Any) -> InputSet | None:
    """One input set; ``None`` when its keys are wrong (said), and its first problem raised otherwise."""
    at = ("inputs", name)
    what = msg("rubric.what.input_set", name=name)
    before = len(doc.problems)
    good = _check_fields(doc, at, data, _INPUT, what)
    if good is None or len(doc.problems) > before:
        return None
    forms = [k for k in ("args", "product", "cases", "generate") if k in good]
    if len(forms) != 1:
        raise doc.fail(at, msg("rubric.input_forms", name=name, forms=forms or msg("rubric.none")))
    form = forms[0]
    cases: list[tuple[Any, ...]]
    names: tuple[str, ...] = ()
    if form == "args":
        cases = [tuple(good["args"].values())]
        names = tuple(good["args"])
    elif form == "product":
        for key, values in good["product"].items():
            if not isinstance(values, list) or not values:
                raise doc.fail(at + ("product", key), msg("rubric.product_not_list", what=what, key=key))
        cases = list(itertools.product(*good["product"].values()))
        names = tuple(good["product"])
    elif form == "cases":
        cases = []
        for i, case in enumerate(good["cases"]):
            if not isinstance(case, dict):
                raise doc.fail(at + ("cases", i), msg("rubric.case_not_mapping", what=what, example="- {z: [1.0, 2.0]}"))
            names = names or tuple(case)
            if set(case) != set(names):
                raise doc.fail(at + ("cases", i), msg("rubric.case_names", what=what, names=list(names), these=list(case)))
            cases.append(tuple(case[n] for n in names))
    else:
        fn = _reference_callable(doc, module, good["generate"], at + ("generate",), msg("rubric.role.generator"))
        names = ()
        try:
            produced = fn()
            cases = [tuple(case) if isinstance(case, (list, tuple)) else (case,) for case in produced]
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            raise doc.fail(at + ("generate",), msg("rubric.generator_failed", name=good["generate"], error=verbatim(reason),
                                                   file=Path(module.__file__ or "").name)) from None
    if not cases:
        raise doc.fail(at, msg("rubric.no_cases", name=name))
    arity = {len(case) for case in cases}
    if len(arity) != 1:
        raise doc.fail(at, msg("rubric.case_arity", what=what))
    try:
        converted = tuple(tuple(_to_arg(v) for v in case) for case in cases)
    except (ValueError, TypeError, OverflowError) as exc:
        raise doc.fail(at, msg("rubric.not_rectangular", what=what, error=verbatim(" ".join(str(exc).split())[:120]))) from None
    return InputSet(
        name=name,
        cases=converted,
        hidden=bool(good.get("hidden", False)),
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
        raise doc.fail(at, msg("rubric.no_signature", name=name)) from None


def _names_in(doc: _Doc, at: tuple[Any, ...], values: list[Any], known: Sequence[str] | None, what: str) -> tuple[str, ...]:
    """Names of lab functions (``what="function"``) or input sets; ``known=None``: they could not be read, so are not
    checked."""
    for i, value in enumerate(values):
        if known is not None and (not isinstance(value, str) or value not in known):
            fix = did_you_mean(str(value), list(known)) if known else verbatim("")
            raise doc.fail(at + (i,), msg("rubric.unknown_function" if what == "function" else "rubric.unknown_input_set",
                                          name=_shown(value), fix=fix or msg("rubric.define_first")))
    return tuple(values)


def _causes(doc: _Doc, module: ModuleType, at: tuple[Any, ...], items: list[Any], what: Message,
            cause_what: Message) -> tuple[Cause, ...]:
    """Each cause on its own; those with a problem are left out (and said)."""
    causes = []
    for j, cause in enumerate(items):
        with doc.part():
            before = len(doc.problems)
            good = _check_fields(doc, at + ("causes", j), cause, _CAUSE, cause_what)
            if good is None or "when" not in good:
                continue
            when = good["when"]
            builtin = builtin_causes()
            if when not in builtin:
                if not hasattr(module, when):
                    predicates = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
                    raise doc.fail(at + ("causes", j, "when"), msg("rubric.unknown_cause", what=what, when=when,
                                                                   fix=did_you_mean(when, [*builtin, *predicates])))
                _reference_callable(doc, module, when, at + ("causes", j, "when"), msg("rubric.role.cause"))
            if len(doc.problems) == before:
                causes.append(Cause(when=when, say=rubric_text(good.get("say"))))
    return tuple(causes)


@dataclass(frozen=True)
class _Known:
    """The names a check may refer to; ``None`` where they could not be read (so they are not checked)."""

    functions: Sequence[str] | None
    inputs: Sequence[str] | None
    results: Sequence[str] | None


def _check(doc: _Doc, module: ModuleType, i: int, data: Any, known: _Known, seen: dict[str, int]) -> Check | None:
    """One check, every problem of it noted; ``None`` when it has one."""
    at = ("checks", i)
    if not isinstance(data, dict):
        doc.add(at, msg("rubric.check_not_mapping"))
        return None
    before = len(doc.problems)
    kind = data.get("kind")
    known_kind = isinstance(kind, str) and kind in KINDS
    if not known_kind and "kind" in data:  # a missing one is said as a missing key
        doc.add(at + ("kind",), msg("rubric.unknown_kind", kind=_shown(kind) if not isinstance(kind, str) else repr(kind),
                                    fix=did_you_mean(str(kind), list(KINDS))))
    check_label = str(data.get("id", i + 1))
    what = msg("rubric.what.check", id=check_label)
    # an unknown kind's own keys are not judged, nor is its kind said twice
    fields = {**_COMMON, **KINDS[kind]} if known_kind else {k: f for k, f in _COMMON.items() if k != "kind" or "kind" not in data}
    good = _check_fields(doc, at, data, fields, what, known_keys=known_kind)
    assert good is not None
    check_id = good.get("id")
    if check_id is not None:
        if not _ID.match(check_id):
            doc.add(at + ("id",), msg("rubric.bad_id", what=what))
        if check_id in seen:
            doc.add(at + ("id",), msg("rubric.duplicate_id", what=what, line=seen[check_id]))
        else:
            seen[check_id] = doc.line(at)  # known to the checks after it, even when this one has a problem
    if "points" in good and good["points"] < 0:
        doc.add(at + ("points",), msg("rubric.negative_points", what=what))
    for key in ("inputs", "functions", "headings"):
        if key in good and not good[key]:
            doc.add(at + (key,), msg("rubric.empty_list", what=what, key=key))
    spec = {k: v for k, v in good.items() if known_kind and k in KINDS[kind]}
    if "function" in spec:
        with doc.part():
            spec["function"] = _names_in(doc, at + ("function",), [spec["function"]], known.functions, "function")[0]
    if spec.get("functions"):
        with doc.part():
            spec["functions"] = _names_in(doc, at + ("functions",), spec["functions"], known.functions, "function")
            if kind == "agree" and len(spec["functions"]) != 2:
                raise doc.fail(at + ("functions",), msg("rubric.agree_two", what=what))
    if spec.get("inputs"):
        with doc.part():
            spec["inputs"] = _names_in(doc, at + ("inputs",), spec["inputs"], known.inputs, "input set")
    for j, value in enumerate(spec.get("headings", [])):
        if not isinstance(value, str) or not value.strip():
            doc.add(at + ("headings", j), msg("rubric.empty_heading", what=what))
            break
    for key in ("result", "steps_of"):
        if key in spec and known.results is not None and spec[key] not in known.results:
            fix = did_you_mean(spec[key], list(known.results)) if known.results else msg("rubric.define_result")
            doc.add(at + (key,), msg("rubric.not_a_result", what=what, key=key, name=_shown(spec[key]), fix=fix))
    if "code_block" in spec:
        spec["output"] = spec.pop("code_block") or spec.get("output", False)
    if "code_pattern" in spec:
        try:
            re.compile(spec["code_pattern"])
        except re.error as exc:
            doc.add(at + ("code_pattern",), msg("rubric.bad_pattern", what=what, error=verbatim(str(exc))))
    for key in ("transform", "relate"):
        if key in spec:
            with doc.part():
                _reference_callable(doc, module, spec[key], at + (key,), key)
    for key in ("atol", "rtol"):
        if key in spec and spec[key] < 0:
            doc.add(at + (key,), msg("rubric.negative_tolerance", what=what, key=key))
    causes = _causes(doc, module, at, good.get("causes", []), what, msg("rubric.what.check_cause", id=check_label))
    requires = good.get("requires", [])
    for j, req in enumerate(requires):
        if not isinstance(req, str) or req not in seen or req == check_id:
            earlier = [name for name in seen if name != check_id]
            fix = did_you_mean(str(req), earlier) if earlier else msg("rubric.list_after")
            doc.add(at + ("requires", j), msg("rubric.not_earlier", what=what, name=_shown(req), fix=fix))
    if not known_kind or len(doc.problems) > before:
        return None
    spec["requires"] = tuple(requires)
    return Check(
        id=good["id"],
        kind=kind,
        title=rubric_text(good["title"]),
        points=float(good["points"]),
        acceptance=good["acceptance"],
        spec=spec,
        causes=causes,
        hidden=bool(good.get("hidden", False)),
        line=doc.line(at),
    )


def _function(doc: _Doc, module: ModuleType, name: str, data: Any, names: Sequence[str]) -> tuple[FunctionSpec, int] | None:
    """One learner function and its reference's number of arguments; ``None`` when it has a problem (said)."""
    at = ("functions", name)
    what = msg("rubric.what.function", name=name)
    data = data if data is not None else {}
    before = len(doc.problems)
    good = _check_fields(doc, at, data, _FUNCTION, what)
    if good is None:
        return None
    ref = good.get("reference", name) if "reference" in good or "reference" not in data else None
    needed = None
    if ref is not None:
        with doc.part():
            fn = _reference_callable(doc, module, ref, at, msg("rubric.role.reference"))
            needed = _arity(doc, at, fn, ref)
    step = good.get("step_arg")
    if step is not None and needed is not None and not 0 <= step <= needed:
        doc.add(at + ("step_arg",), msg("rubric.step_arg_range", what=what, step=step, n=needed, ref=ref))
    causes = _causes(doc, module, at, good.get("causes", []), what, msg("rubric.what.function_cause", name=name))
    uses = _uses(doc, module, name, good.get("uses", []))
    differences = good.get("differences")
    for key, targets in (("differences", [differences] if differences else []), ("uses", [u for u, _ in uses])):
        for target in targets:
            if target not in names or target == name:
                doc.add(at + (key,), msg("rubric.not_another_function", what=what, key=key, name=_shown(target),
                                         fix=did_you_mean(str(target), names)))
    if differences and "step_arg" not in data:
        doc.add(at + ("differences",), msg("rubric.needs_step_arg", what=what))
    if needed is None or len(doc.problems) > before:
        return None
    return FunctionSpec(
        name=name,
        reference=ref or name,
        step_arg=step,
        default_step=good.get("default_step"),
        causes=causes,
        differences=differences,
        wrt=int(good.get("wrt", 0)),
        uses=uses,
    ), needed


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RubricProblem(path, 0, msg("rubric.not_found")) from None
    except UnicodeDecodeError as exc:
        raise RubricProblem(path, 0, msg("rubric.not_utf8", offset=exc.start)) from None
    except OSError as exc:
        raise RubricProblem(path, 0, msg("rubric.unreadable", error=verbatim(str(exc.strerror or exc)))) from None


def load_rubric(path: Path) -> Rubric:
    """Parse, validate and resolve one rubric. On any problem raises ``RubricProblem`` (a RubricError naming file and
    line): the first problem by line, with every problem found in ``problems``."""
    doc = _Doc(path)
    try:
        rubric = _load(doc, _read(path))
    except RubricProblem as stop:  # a problem after which nothing more can be read (the YAML, the reference module)
        doc.problems.append(stop)
        rubric = None
    if doc.problems or rubric is None:
        raise doc.error() from None
    return rubric


def _load(doc: _Doc, text: str) -> Rubric | None:
    doc.read(text)
    top = _check_fields(doc, (), doc.data, _TOP, msg("rubric.what.rubric"))
    if top is None:
        return None
    lab, phase = top.get("lab"), top.get("phase_dir")
    if lab is not None and not LAB_NAME.match(lab):
        doc.add(("lab",), msg("rubric.bad_lab", lab=_shown(lab)))
    elif lab is not None and phase is not None and lab.split("/")[0] != phase:
        doc.add(("phase_dir",), msg("rubric.phase_mismatch", phase_dir=phase, lab=lab))
    deliverable = top.get("deliverable")
    if deliverable is not None and ("/" in deliverable or "\\" in deliverable or deliverable in ("", ".", "..")):
        doc.add(("deliverable",), msg("rubric.deliverable_path", name=_shown(deliverable),
                                      phase_dir=phase if phase is not None else "phase-NN"))
    patterns = top.get("implementation")
    if patterns is not None and not patterns:
        doc.add(("implementation",), msg("rubric.no_patterns"))
    for j, pattern in enumerate(patterns or []):
        if not isinstance(pattern, str) or "/" in pattern:
            doc.add(("implementation", j), msg("rubric.not_a_pattern", pattern=_shown(pattern)))
    if "reference" not in top:  # said: everything below is computed by it
        return None
    helpers = _load_reference(doc, top["helpers"], "helpers") if "helpers" in top else None
    module = _load_reference(doc, top["reference"], aliases={Path(top["helpers"]).stem: helpers} if helpers else {})

    functions_data = top.get("functions")
    names = list(functions_data) if functions_data is not None else None
    functions: dict[str, FunctionSpec] = {}
    arities: dict[str, int] = {}
    if functions_data is not None and not functions_data:
        doc.add(("functions",), msg("rubric.no_functions"))
    for name, fdata in (functions_data or {}).items():
        with doc.part():
            built = _function(doc, module, name, fdata, names or [])
            if built is not None:
                functions[name], arities[name] = built

    inputs_data = top.get("inputs")
    inputs: dict[str, InputSet] = {}
    for name, idata in (inputs_data or {}).items():
        with doc.part():
            built_set = _input_set(doc, module, name, idata)
            if built_set is not None:
                inputs[name] = built_set

    notation = None
    results: list[str] | None = [] if "notation" not in doc.data else None
    if "notation" in top:
        with doc.part():
            notation = _notation(doc, top["notation"], module)
            results = list(notation.results) if notation is not None else []

    known = _Known(names, list(inputs_data) if inputs_data is not None else None, results)
    checks_data = top.get("checks")
    if checks_data is not None and not checks_data:
        doc.add(("checks",), msg("rubric.no_checks"))
    seen: dict[str, int] = {}
    checks: list[tuple[int, Check]] = []
    for i, cdata in enumerate(checks_data or []):
        with doc.part():
            check = _check(doc, module, i, cdata, known, seen)
            if check is not None:
                checks.append((i, check))
    for i, check in checks:
        if check.kind not in ("compare", "agree", "relation") and check.spec.get("property") != "symmetric":
            continue
        called = [check.spec["function"]] if "function" in check.spec else list(check.spec["functions"])
        for name in (n for n in called if n in arities):
            for set_name in (s for s in check.spec["inputs"] if s in inputs):
                given = len(inputs[set_name].cases[0])
                if given != arities[name]:
                    doc.add(("checks", i, "inputs"), msg("rubric.arity_mismatch", what=msg("rubric.what.check", id=check.id),
                                                         inputs=set_name, given=given, name=name, needed=arities[name]))
    if doc.problems:
        return None
    return Rubric(
        lab=top["lab"],
        title=rubric_text(top["title"]),
        path=doc.path,
        phase_dir=top["phase_dir"],
        implementation=tuple(top["implementation"]),
        deliverable=top["deliverable"],
        functions=tuple(functions[name] for name in functions_data),
        inputs=inputs,
        checks=tuple(check for _, check in checks),
        reference=module,
        notation=notation,
        helpers=helpers,
        notation_data=top.get("notation"),
        digest=_digest(doc.path, [top["reference"], *([top["helpers"]] if helpers else [])]),
        review_points=top.get("review_points", "given"),
        given=_given(doc, top.get("given") or []),
    )


def _given(doc: _Doc, names: list[Any]) -> tuple[Path, ...]:
    """The ``given`` files, each beside the rubric."""
    found = []
    for j, name in enumerate(names):
        path = doc.path.parent / str(name)
        if not isinstance(name, str) or "/" in name or not path.is_file():
            doc.add(("given", j), msg("rubric.given_not_found", name=_shown(name), folder=str(doc.path.parent)))
            continue
        found.append(path)
    return tuple(found)


def _digest(path: Path, modules: list[str]) -> str:
    """What a kit was built from: the rubric's bytes and its modules'."""
    import hashlib

    digest = hashlib.sha256(path.read_bytes())
    for name in modules:
        digest.update(b"\0" + (path.parent / name).read_bytes())
    return digest.hexdigest()


def _uses(doc: _Doc, module: ModuleType, name: str, data: list[Any] | dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``uses: [f]``, or ``uses: {f: g_from_f}`` with a reference function rebuilding this one from that one's value,
    so the grader can tell "computed correctly from your wrong f" for sure."""
    pairs = data.items() if isinstance(data, dict) else ((item, "") for item in data)
    out = []
    for dep, builder in pairs:
        if builder:
            with doc.part():
                _reference_callable(doc, module, str(builder), ("functions", name, "uses", dep), msg("rubric.role.builder"))
        out.append((str(dep), str(builder or "")))
    return tuple(out)


def _notation(doc: _Doc, data: dict[str, Any] | None, module: ModuleType) -> Any:
    """The lab's quantities and results (``notation:``), built once; its first problem points at its line."""
    if data is None:
        return None
    from grader.maths.match import NotationError, build

    try:
        return build(data, module)
    except NotationError as exc:
        raise doc.fail(("notation", *exc.where), msg("rubric.notation", problem=exc.message)) from None


def discover_rubrics(directory: Path) -> list[Rubric]:
    """Every ``*.yaml`` under the directory (or every learner kit, ``*.kit.json``), sorted by lab id."""
    from grader.kit import is_kit, load_kit, load_zip

    if directory.is_file() and (directory.suffix in (".yaml", ".yml") or is_kit(directory)):
        return [load_kit(directory) if is_kit(directory) else load_rubric(directory)]
    if directory.is_file() and directory.suffix.lower() == ".zip":
        return sorted(load_zip(directory), key=lambda r: r.lab)
    if directory.is_file():
        raise RubricProblem(directory, 0, msg("rubric.not_a_rubric"))
    if not directory.is_dir():
        raise RubricProblem(directory, 0, msg("rubric.no_folder"))
    paths = sorted(p for p in directory.rglob("*") if p.is_file() and (p.suffix in (".yaml", ".yml") or is_kit(p))
                   and p.name not in NOT_RUBRICS)
    if not paths:
        raise RubricProblem(directory, 0, msg("rubric.no_rubric"))
    rubrics = [load_kit(p) if is_kit(p) else load_rubric(p) for p in paths]
    labs: dict[str, Path] = {}
    for rubric in rubrics:
        if rubric.lab in labs:
            raise RubricProblem(rubric.path, 0, msg("rubric.lab_twice", lab=rubric.lab, other=str(labs[rubric.lab])))
        labs[rubric.lab] = rubric.path
    return sorted(rubrics, key=lambda r: r.lab)
