"""Learner kits: a rubric's public checks, with every value its reference would give them stored as data.

A kit holds no reference code and no hidden input: the public input sets as numbers, the reference's values on
them (expected outputs, the inputs a relation's transform makes), the signatures the checks read, and the
rubric's ``helpers`` module — what its author declared safe to ship (the lab page's own forward functions, the
detectors of mistakes). Grading with a kit takes the same code path as grading with the rubric: a
``KitReference`` stands in for the reference module, answering from the helpers or from the stored values.
What needs the reference on a learner's own values (an answer rebuilt from another of their functions) is said
only when the instructor grades. The kit names the rubric it came from by its digest, so a stale one is refused.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib.util
import inspect
import json
import math
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from grader import __version__
from grader.atomicio import atomic_write_text
from grader.errors import KitMissing, RubricError
from grader.i18n import Message, Texts, msg, verbatim
from grader.model import Cause, Check, FunctionSpec, InputSet, Rubric

SCHEMA = 1
KIND = "grader-learner-kit"
SUFFIX = ".kit.json"
MAX_BYTES = 64 << 20


def public_rubric(rubric: Rubric) -> Rubric:
    """The rubric as a learner may run it: no hidden check, no hidden input set; a check left with no input, or
    needing a check left out, is left out too (and counted)."""
    public = {name: s for name, s in rubric.inputs.items() if not s.hidden}
    kept: list[Check] = []
    left_out: set[str] = set()
    narrowed = 0
    for check in rubric.checks:
        names = check.spec.get("inputs")
        inputs = None if names is None else [n for n in names if n in public]
        if check.hidden or inputs == [] or any(r in left_out for r in check.spec.get("requires", ())):
            left_out.add(check.id)
            continue
        if inputs is not None and len(inputs) < len(names):
            narrowed += 1
            check = dataclasses.replace(check, spec={**check.spec, "inputs": tuple(inputs)})
        kept.append(check)
    return dataclasses.replace(rubric, inputs=public, checks=tuple(kept), held_back=len(left_out), narrowed=narrowed)


def shipped(rubric: Rubric, name: str) -> bool:
    return rubric.helpers is not None and callable(getattr(rubric.helpers, name, None))


def reference_names(rubric: Rubric) -> dict[str, str]:
    """Every reference function the rubric's checks may call, and what for: ``answer`` (called on the rubric's own
    inputs, stored as values) or ``learner`` (called on a learner's values: only a helper can answer in a kit)."""
    names = {f.reference: "answer" for f in rubric.functions}
    for f in rubric.functions:
        names.update({c.when: "learner" for c in f.causes if callable(getattr(rubric.reference, c.when, None))})
        names.update({builder: "learner" for _, builder in f.uses if builder})
        if f.differences:  # differenced at points near the inputs, at steps the diagnosis chooses
            names.setdefault(rubric.function(f.differences).reference, "learner")
    for check in rubric.checks:
        names.update({c.when: "learner" for c in check.causes if callable(getattr(rubric.reference, c.when, None))})
        if check.kind == "relation":
            names[check.spec["transform"]] = "answer"
            names[check.spec["relate"]] = "learner"
    return {n: role for n, role in names.items() if callable(getattr(rubric.reference, n, None))}


def _cases(rubric: Rubric) -> list[tuple[Any, ...]]:
    return [case for s in rubric.inputs.values() for case in s.cases]


def _record(rubric: Rubric) -> dict[str, list[tuple[tuple[Any, ...], Any]]]:
    """The reference's values on every public input (and the inputs its relation transforms make), truncated to
    each function's arity — every call a check makes on the rubric's own inputs."""
    from grader.rubric import arity

    table: dict[str, dict[str, tuple[tuple[Any, ...], Any]]] = {}

    def record(name: str, args: tuple[Any, ...]) -> Any:
        fn = getattr(rubric.reference, name)
        call = tuple(args[: arity(fn)])
        key = _key(call)
        if key not in table.setdefault(name, {}):
            try:
                value = fn(*(a.copy() if isinstance(a, np.ndarray) else a for a in call))
            except Exception:  # noqa: BLE001 - a point the reference cannot take: the grader treats it the same way
                return None
            table[name][key] = (call, value)
        return table[name][key][1]

    cases = _cases(rubric)
    for check in (c for c in rubric.checks if c.kind == "relation"):
        for name in check.spec["inputs"]:
            for case in rubric.inputs[name].cases:
                moved = record(check.spec["transform"], case) if not shipped(rubric, check.spec["transform"]) else \
                    getattr(rubric.helpers, check.spec["transform"])(*case)
                if moved is not None:
                    cases.append(tuple(moved))
    for name, role in reference_names(rubric).items():
        if role == "answer" and not shipped(rubric, name):
            for case in cases:
                if len(case) >= _arity_of(rubric.reference, name):
                    record(name, case)
    return {name: list(values.values()) for name, values in table.items()}


def _arity_of(module: Any, name: str) -> int:
    from grader.rubric import arity

    return arity(getattr(module, name))


def build_kit(rubric: Rubric, out: Path) -> tuple[Path, list[Message]]:
    """Write ``<out>/<phase>/<lab>.kit.json`` (and the helpers beside it); the notes say what the kit cannot say."""
    public = public_rubric(rubric)
    names = reference_names(public)
    notes = [msg("kit.not_shipped", name=n) for n, role in sorted(names.items()) if role == "learner" and not shipped(public, n)]
    helpers_file = Path(public.helpers.__file__ or "") if public.helpers is not None else None
    data = {
        "kind": KIND, "schema": SCHEMA, "grader": __version__, "lab": public.lab, "source": _relative(rubric.path),
        "digest": rubric.digest, "held_back": public.held_back, "narrowed": public.narrowed,
        "title": _texts(public.title), "phase_dir": public.phase_dir, "implementation": list(public.implementation),
        "deliverable": public.deliverable, "helpers": helpers_file.name if helpers_file else None,
        "review_points": public.review_points,
        "functions": [_function(f) for f in public.functions],
        "inputs": [{"name": s.name, "arg_names": list(s.arg_names), "cases": [encode(c) for c in s.cases]}
                   for s in public.inputs.values()],
        "checks": [_check(c) for c in public.checks],
        "notation": encode(public.notation_data),
        "signatures": {n: _arity_of(public.reference, n) for n, role in names.items() if role == "answer" and not shipped(public, n)},
        "values": {n: [[encode(args), encode(value)] for args, value in calls] for n, calls in _record(public).items()},
    }
    folder = out / public.phase_dir
    path = folder / f"{public.lab.split('/')[1]}{SUFFIX}"
    if helpers_file is not None:
        atomic_write_text(folder / helpers_file.name, helpers_file.read_text(encoding="utf-8"), hint=msg("write.hint.kit"))
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False) + "\n", hint=msg("write.hint.kit"))
    load_kit(path)  # what was written reads back: a kit that cannot is never handed out
    return path, notes


def _relative(path: Path) -> str:
    """The rubric's path from where the kit was built: how a stale kit is recognised in the course repository,
    without handing learners the instructor's own folders."""
    import os

    try:
        return os.path.relpath(path.resolve(), Path.cwd().resolve())
    except (OSError, ValueError):
        return path.name


def _texts(value: str | Texts | None) -> Any:
    return value.to_dict() if isinstance(value, Texts) else value


def _untexts(value: Any) -> str | Texts | None:
    return Texts.of({("" if k == "*" else k): v for k, v in value.items()}) if isinstance(value, dict) else value


def _cause(c: Cause) -> dict[str, Any]:
    return {"when": c.when, "say": _texts(c.say)}


def _function(f: FunctionSpec) -> dict[str, Any]:
    return {"name": f.name, "reference": f.reference, "step_arg": f.step_arg, "default_step": f.default_step,
            "causes": [_cause(c) for c in f.causes], "differences": f.differences, "wrt": f.wrt,
            "uses": [list(u) for u in f.uses]}


def _check(c: Check) -> dict[str, Any]:
    return {"id": c.id, "kind": c.kind, "title": _texts(c.title), "points": c.points, "acceptance": c.acceptance,
            "spec": encode(c.spec), "causes": [_cause(x) for x in c.causes], "line": c.line}


def encode(value: Any) -> Any:
    """Plain JSON that reads back to the same Python value: arrays keep dtype and shape, tuples stay tuples,
    non-finite floats are spelled out."""
    if isinstance(value, np.ndarray):
        return {"__array__": [encode(float(x)) if value.dtype.kind == "f" else x.item() for x in value.ravel()],
                "shape": list(value.shape), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return {"__scalar__": encode(value.item()), "dtype": value.dtype.str}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"a kit stores plain data, not {type(value).__name__}")


def decode(data: Any) -> Any:
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__array__" in data:
        return np.array([decode(v) for v in data["__array__"]], dtype=np.dtype(data["dtype"])).reshape(data["shape"])
    if "__scalar__" in data:
        return np.dtype(data["dtype"]).type(decode(data["__scalar__"]))
    if "__float__" in data:
        return float(data["__float__"])
    if "__tuple__" in data:
        return tuple(decode(v) for v in data["__tuple__"])
    if "__dict__" in data:
        return {decode(k): decode(v) for k, v in data["__dict__"]}
    raise ValueError(f"not a kit value: {sorted(data)[:5]}")


def _key(args: Iterable[Any]) -> str:
    return json.dumps(encode(tuple(args)), sort_keys=True, separators=(",", ":"))


class Recorded:
    """A reference function in a kit: the values it gave on the rubric's own inputs, and nothing else."""

    def __init__(self, name: str, arity: int, values: dict[str, Any]) -> None:
        self.__name__ = name
        self.__signature__ = inspect.Signature([inspect.Parameter(f"arg{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                                for i in range(arity)])
        self._values = values

    def __call__(self, *args: Any) -> Any:
        key = _key(args)
        if key not in self._values:
            raise KitMissing(msg("kit.missing", name=self.__name__))
        value = self._values[key]
        return value.copy() if isinstance(value, np.ndarray) else value


class KitReference:
    """Stands in for the reference module: the helpers answer for themselves, the rest from stored values."""

    def __init__(self, path: Path, helpers: ModuleType | None, functions: dict[str, Recorded]) -> None:
        self.__file__ = str(path)
        self._helpers = helpers
        self._functions = functions

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._helpers is not None and hasattr(self._helpers, name):
            return getattr(self._helpers, name)
        if name in self._functions:
            return self._functions[name]
        raise AttributeError(name)


def is_kit(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


MAX_ZIP_ENTRIES = 200


def write_zip(folder: Path, out: Path) -> None:
    """A built kit folder as one file to hand out (temporary file, then rename)."""
    import io
    import zipfile

    from grader.atomicio import atomic_write_bytes

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    atomic_write_bytes(out, buffer.getvalue(), hint=msg("write.hint.kit"))


def load_zip(path: Path) -> list[Rubric]:
    """The kits inside a kit zip, read from a private temporary folder: plain files only, no path out of it, bounded."""
    import tempfile
    import zipfile

    tmp = tempfile.mkdtemp(prefix="grader-kit-")  # kept while this process grades with it (its files are read again)
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ZIP_ENTRIES or sum(i.file_size for i in infos) > MAX_BYTES:
                raise ValueError("too large")
            root = Path(tmp).resolve()
            for info in infos:
                target = (root / info.filename).resolve()
                if info.is_dir() or not target.is_relative_to(root) or (info.external_attr >> 16) & 0o170000 == 0o120000:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
            kits = [load_kit(p) for p in sorted(root.rglob(f"*{SUFFIX}"))]
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError) as exc:
        raise RubricError(msg("kit.unreadable", path=str(path), error=verbatim(" ".join(str(exc).split())[:200]))) from None
    if not kits:
        raise RubricError(msg("kit.not_a_kit", path=str(path)))
    return kits


def load_kit(path: Path) -> Rubric:
    """A kit as a rubric; a kit that is not one, from another grader version, or stale, is one line saying so."""
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_BYTES:
            raise ValueError("too large")
        data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RubricError(msg("kit.unreadable", path=str(path), error=verbatim(" ".join(str(exc).split())[:200]))) from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise RubricError(msg("kit.not_a_kit", path=str(path)))
    if data.get("schema") != SCHEMA or data.get("grader") != __version__:
        raise RubricError(msg("kit.other_version", path=str(path), version=str(data.get("grader")), ours=__version__))
    source = Path(str(data.get("source", "")))
    if source.is_file() and source.suffix in (".yaml", ".yml"):
        _refuse_if_stale(path, source, str(data.get("digest", "")))
    try:
        return _rubric(path, data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise RubricError(msg("kit.broken", path=str(path), error=verbatim(" ".join(str(exc).split())[:200]))) from None


def _refuse_if_stale(path: Path, source: Path, digest: str) -> None:
    """The instructor's rubric is here too (a course repository): a kit built from an older version of it is refused."""
    from grader.rubric import load_rubric

    try:
        now = load_rubric(source).digest
    except RubricError:
        return  # the rubric itself is broken: grading with it would say so; the kit is what was published
    if now != digest:
        raise RubricError(msg("kit.stale", path=str(path), source=str(source)))


def _helpers(path: Path, name: str | None) -> ModuleType | None:
    if not name:
        return None
    file = path.parent / name
    module_name = f"_grader_kit_helpers_{abs(hash(str(file.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None or not file.is_file():
        raise RubricError(msg("kit.no_helpers", path=str(path), helpers=name))
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the kit's own file, broken: one line
        raise RubricError(msg("kit.broken", path=str(file), error=verbatim(f"{type(exc).__name__}: {exc}"[:200]))) from None
    sys.modules[module_name] = module
    return module


def _rubric(path: Path, data: dict[str, Any]) -> Rubric:
    helpers = _helpers(path, data.get("helpers"))
    functions = {}
    for name, arity in data["signatures"].items():
        values = {_key(decode(args)): decode(value) for args, value in data["values"].get(name, [])}
        functions[name] = Recorded(name, int(arity), values)
    reference = KitReference(path, helpers, functions)
    notation_data = decode(data["notation"])
    notation = None
    if notation_data is not None:
        from grader.maths.match import build

        notation = build(notation_data, reference)
    return Rubric(
        lab=data["lab"], title=_untexts(data["title"]), path=path, phase_dir=data["phase_dir"],
        implementation=tuple(data["implementation"]), deliverable=data["deliverable"],
        functions=tuple(FunctionSpec(name=f["name"], reference=f["reference"], step_arg=f["step_arg"],
                                     default_step=f["default_step"], causes=tuple(Cause(c["when"], _untexts(c["say"]))
                                                                                  for c in f["causes"]),
                                     differences=f["differences"], wrt=f["wrt"], uses=tuple(tuple(u) for u in f["uses"]))
                        for f in data["functions"]),
        inputs={s["name"]: InputSet(name=s["name"], cases=tuple(decode(c) for c in s["cases"]), hidden=False,
                                    arg_names=tuple(s["arg_names"])) for s in data["inputs"]},
        checks=tuple(Check(id=c["id"], kind=c["kind"], title=_untexts(c["title"]), points=c["points"],
                           acceptance=c["acceptance"], spec=decode(c["spec"]),
                           causes=tuple(Cause(x["when"], _untexts(x["say"])) for x in c["causes"]), line=c["line"])
                     for c in data["checks"]),
        reference=reference, notation=notation, helpers=helpers, notation_data=notation_data,
        digest=str(data["digest"]), held_back=int(data["held_back"]), narrowed=int(data["narrowed"]),
        review_points=str(data.get("review_points") or "given"),
    )
