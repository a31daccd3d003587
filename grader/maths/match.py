"""The lab's mathematics, and where a deliverable states it.

A rubric names its quantities once (``z`` sampled, ``y`` a class, ``p = f(z)``) with the symbols
learners conventionally use for each, and states each result and step once as an expression over them.
A learner's formula holds when some binding of its symbols to those quantities makes it equal, entry by
entry, to the true result on random samples of different sizes. Bindings are not free: a symbol keeps one
meaning across the document, given by the learner's own definitions (``S_i = e^{z_i}/Σ_k e^{z_k}``,
"t is the one-hot target"), else by the symbol an *anchor* result is written in (a lab's first result
names the quantity it is written in), else by convention — so ``y − p`` never passes by reading p as
the label.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.i18n import Message, msg, verbatim
from grader.maths import extract
from grader.maths.evaluate import (
    DEFINED,
    FREE,
    LABEL,
    SAMPLE,
    Binding,
    EvalError,
    Function,
    Sample,
    Scope,
    Value,
    as_arrays,
    evaluate,
    upper_index,
)
from grader.maths.syntax import (
    EMPTY,
    ONES,
    Call,
    Deriv,
    Indicator,
    Node,
    Num,
    Op,
    ParseError,
    Sum,
    Sym,
    Vocabulary,
    has_derivative,
    parse,
    parses,
    walk,
)

MAX_BINDINGS = 256  # per candidate expression
SECONDS = 3.0  # a document's formulas are read within this; a real one takes a few tens of ms
SIZES = (3, 4, 6)  # sample dimensions: a coincidence of one size does not survive the others


class NotationError(ValueError):
    """A rubric's notation block is wrong: ``message`` says what (a catalogue message, ``str``: its English);
    ``where`` is the key path for the rubric loader's file:line."""

    def __init__(self, message: Message, where: tuple[Any, ...]) -> None:
        super().__init__(message.english())
        self.message = message
        self.where = where


@dataclass(frozen=True)
class Quantity:
    name: str
    sample: str  # "vector" or "class" (a class index; as a vector, its one-hot), "" when derived
    value: Node | None
    symbols: frozenset[str]  # symbol keys learners conventionally use for it
    words: tuple[str, ...]  # how prose names it ("one-hot", "target"), folded


@dataclass(frozen=True)
class Form:
    """One way a result or step may be written: its true values on every sample, and what it must (not) use."""

    text: str
    rank: int
    targets: tuple[np.ndarray, ...] = field(compare=False)
    tree: Node | None = field(default=None, compare=False)
    needs: frozenset[str] = frozenset()
    refuses: frozenset[str] = frozenset()
    inside: bool = False  # may be a part of a larger expression (−1/p_y inside the chain rule)


@dataclass(frozen=True)
class Step:
    say: Any  # text for the learner (a string or a per-language mapping)
    forms: tuple[Form, ...]


@dataclass(frozen=True)
class Result:
    name: str
    forms: tuple[Form, ...]
    anchor: bool = False
    steps: tuple[Step, ...] = ()
    say: Any = ""  # what the result is, in words, for a message that must not hand the answer over


@dataclass(frozen=True)
class Notation:
    quantities: tuple[Quantity, ...]
    results: Mapping[str, Result] = field(compare=False)
    samples: tuple[Sample, ...] = field(compare=False)
    vocabulary: Vocabulary = EMPTY
    functions: tuple[Function, ...] = ()
    screen: Mapping[int, np.ndarray] = field(default_factory=dict, compare=False)  # what is worth a look, stacked

    def quantity(self, name: str) -> Quantity:
        return next(q for q in self.quantities if q.name == name)

    def scope(self, sample: Sample, binding: Binding, definitions: Mapping[str, tuple[Node, Binding]] | None = None) -> Scope:
        return Scope(sample, binding, definitions or {}, 0, {f.name: f for f in self.functions})


# --- building the notation from a rubric -----------------------------------------------------------


def fold(text: str) -> str:
    """Caseless and accentless, for matching words of prose."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def symbol_key(text: str, vocabulary: Vocabulary = EMPTY) -> str:
    """The key of a symbol written in a rubric (``\\hat{y}``, ``y_{pred}``, ``S``)."""
    try:
        node = parse(text, vocabulary=vocabulary)
    except (ParseError, RecursionError):
        node = None
    if not isinstance(node, Sym) or node.sub:
        raise ValueError(text)
    return node.key


def build(data: Mapping[str, Any], reference: Any = None) -> Notation:
    """A rubric's ``notation:`` block, validated; raises NotationError naming the key."""
    try:
        return _build(data, reference)
    except NotationError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed block is the rubric's error, said in one line
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
        raise NotationError(msg("notation.unreadable", error=verbatim(reason)), ()) from None


def _functions(data: Any, reference: Any) -> tuple[Vocabulary, tuple[Function, ...]]:
    """The lab's own functions, computed by its reference module, and the ways learners spell them."""
    if data is None:
        return EMPTY, ()
    if not isinstance(data, dict):
        raise NotationError(msg("notation.functions_not_mapping", keys="{reference, takes, spellings}"), ("functions",))
    spellings: list[tuple[str, str]] = []
    functions: list[Function] = []
    classes: set[str] = set()
    for name, spec in data.items():
        where = ("functions", name)
        if not isinstance(spec, dict) or not str(name).isidentifier():
            raise NotationError(msg("notation.function_not_mapping", name=str(name), example="f: {reference: f}"), where)
        unknown = set(spec) - {"reference", "takes", "spellings"}
        if unknown:
            raise NotationError(msg("notation.function_unknown_key", name=str(name), key=sorted(unknown)[0]), where)
        target = getattr(reference, str(spec.get("reference", name)), None)
        if not callable(target):
            raise NotationError(msg("notation.function_not_in_reference", name=str(name),
                                    reference=str(spec.get("reference", name))), (*where, "reference"))
        takes = spec.get("takes", "vector")
        if takes not in ("vector", "class"):
            raise NotationError(msg("notation.function_takes", name=str(name), value=repr(takes)), (*where, "takes"))
        if takes == "class":
            classes.add(str(name))
        for spelling in [name, *(spec.get("spellings") or [])]:
            if not isinstance(spelling, str) or not spelling.strip():
                raise NotationError(msg("notation.function_spellings", name=str(name)), (*where, "spellings"))
            spellings.append((spelling.strip(), str(name)))
        functions.append(Function(str(name), target, takes, str(getattr(reference, "__file__", ""))))
    return Vocabulary(tuple(dict.fromkeys(spellings)), frozenset(classes)), tuple(functions)


def _build(data: Mapping[str, Any], reference: Any) -> Notation:
    if not isinstance(data, Mapping):
        raise NotationError(msg("notation.not_mapping"), ())
    unknown_top = set(data) - {"quantities", "results", "functions"}
    if unknown_top:
        raise NotationError(msg("notation.unknown_key", key=sorted(unknown_top)[0]), ())
    vocabulary, functions = _functions(data.get("functions"), reference)
    quantities_data = data.get("quantities")
    if not isinstance(quantities_data, dict) or not quantities_data:
        raise NotationError(msg("notation.no_quantities"), ("quantities",))
    quantities: list[Quantity] = []
    for name, spec in quantities_data.items():
        where = ("quantities", name)
        if not isinstance(spec, dict):
            raise NotationError(msg("notation.quantity_not_mapping", name=str(name)), where)
        unknown = set(spec) - {"sample", "value", "symbols", "words"}
        if unknown:
            raise NotationError(msg("notation.quantity_unknown_key", name=str(name), key=sorted(unknown)[0]), where)
        sample = spec.get("sample", "")
        if sample not in ("", "vector", "class", "scalar"):
            raise NotationError(msg("notation.quantity_sample", name=str(name), value=repr(sample)), (*where, "sample"))
        value = None
        if "value" in spec:
            try:
                value = parse(str(spec["value"]), vocabulary=vocabulary)
            except ParseError as exc:
                raise NotationError(msg("notation.quantity_value", name=str(name), value=repr(spec["value"]), error=verbatim(str(exc))),
                                    (*where, "value")) from None
        if bool(sample) == (value is not None):
            raise NotationError(msg("notation.quantity_one_of", name=str(name)), where)
        symbols = {str(name)}
        for k, text in enumerate(spec.get("symbols", []) or []):
            try:
                symbols.add(symbol_key(str(text), vocabulary))
            except ValueError:
                raise NotationError(msg("notation.not_a_symbol", name=str(name), text=repr(text), decorated="\\\\hat{y}",
                                        named="y_{pred}"), (*where, "symbols", k)) from None
        words = tuple(fold(str(w)) for w in spec.get("words", []) or [])
        quantities.append(Quantity(str(name), sample, value, frozenset(symbols), words))
    samples = _samples(quantities, vocabulary, functions)
    notation = Notation(tuple(quantities), {}, samples, vocabulary, functions)
    results: dict[str, Result] = {}
    results_data = data.get("results") or {}
    if not isinstance(results_data, dict):
        raise NotationError(msg("notation.results_not_mapping"), ("results",))
    for name, spec in results_data.items():
        results[str(name)] = _result(notation, str(name), spec)
    return Notation(notation.quantities, results, samples, vocabulary, functions, _screen(quantities, results, samples[0]))


def _screen(quantities: Sequence[Quantity], results: Mapping[str, Result], first: Sample) -> dict[int, np.ndarray]:
    """Every value on the first sample that could make a candidate worth evaluating on the others: each form's
    true value, its negative, a matrix's diagonal (the near misses said), and each quantity's vector (definitions)."""
    screen: dict[int, list[np.ndarray]] = {1: [_quantity_vector(q, first) for q in quantities], 2: []}
    for result in results.values():
        for form in [*result.forms, *(f for s in result.steps for f in s.forms)]:
            target = form.targets[0]
            screen.setdefault(form.rank, []).extend((target, -target))
            if form.rank == 2:
                screen[1].append(np.diag(target).copy())
    return {rank: np.stack(values) for rank, values in screen.items() if values}


def _samples(quantities: Sequence[Quantity], vocabulary: Vocabulary, functions: tuple[Function, ...]) -> tuple[Sample, ...]:
    rng = np.random.default_rng(20261201)
    rubric = _rubric_binding(quantities)
    named = {f.name: f for f in functions}
    samples = []
    scalar = all(q.sample in ("", "scalar") for q in quantities)  # a lab of one number: σ(z), tanh(x)
    for n in (1,) * len(SIZES) if scalar else SIZES:
        vectors: dict[str, np.ndarray] = {}
        classes: dict[str, int] = {}
        for q in quantities:
            if q.sample in ("vector", "scalar"):
                vectors[q.name] = rng.normal(0.0, 1.5, size=n)
            elif q.sample == "class":
                classes[q.name] = int(rng.integers(0, n))
        sample = Sample(n, vectors, classes)
        for q in quantities:
            if q.value is not None:
                try:
                    value = evaluate(q.value, Scope(sample, rubric, {}, 0, named))
                except EvalError as exc:
                    raise NotationError(msg("notation.value_not_computable", name=q.name, error=verbatim(str(exc))),
                                        ("quantities", q.name, "value")) from None
                arrays = as_arrays(value, 1, n)
                if not arrays:
                    raise NotationError(msg("notation.value_not_vector", name=q.name), ("quantities", q.name, "value"))
                vectors[q.name] = arrays[0]
                sample = Sample(n, vectors, classes)
        samples.append(sample)
    return tuple(samples)


def _rubric_binding(quantities: Sequence[Quantity]) -> Binding:
    """How a rubric writes its own expressions: each quantity by its name; every other letter is an index."""
    symbols = tuple((q.name, q.name) for q in quantities)
    indices = tuple((c, FREE) for c in "abcdefghijklmnopqrstuvwxyz" if c not in {q.name for q in quantities})
    return Binding(symbols, indices)


_KINDS = ("exp", "sum", "log", "derivative")


def _form(notation: Notation, spec: Any, where: tuple[Any, ...]) -> Form:
    if isinstance(spec, str):
        spec = {"expression": spec}
    if not isinstance(spec, dict) or "expression" not in spec:
        raise NotationError(msg("notation.form_shape"), where)
    unknown = set(spec) - {"expression", "with", "without", "inside"}
    if unknown:
        raise NotationError(msg("notation.form_unknown_key", key=sorted(unknown)[0]), where)
    text = str(spec["expression"])
    readings = parses(text, notation.vocabulary)
    if not readings:
        raise NotationError(msg("notation.not_an_expression", text=repr(text)), (*where, "expression"))
    binding = _rubric_binding(notation.quantities)
    problem = ""
    for tree in readings:  # the LaTeX reading first, then ASCII's (delta_ij as one subscript)
        targets = []
        rank = -1
        try:
            for sample in notation.samples:
                value = evaluate(tree, notation.scope(sample, binding))
                rank = len(value.axes) if value.axes is not None else (0 if value.data.shape == (1, 1) else 1 if 1 in value.data.shape else 2)
                targets.append(as_arrays(value, rank, sample.n)[0])
            break
        except EvalError as exc:
            problem = str(exc)
    else:
        raise NotationError(msg("notation.not_computable", text=repr(text), error=verbatim(problem)), (*where, "expression"))
    kinds = []
    for key in ("with", "without"):
        listed = spec.get(key, [])
        listed = [listed] if isinstance(listed, str) else list(listed)
        for item in listed:
            if item not in _KINDS and item not in notation.vocabulary.names:
                raise NotationError(msg("notation.unknown_kind", key=key, item=str(item), kinds=list(_KINDS)), (*where, key))
        kinds.append(frozenset(listed))
    return Form(text, rank, tuple(targets), tree, kinds[0], kinds[1] | {"derivative"}, bool(spec.get("inside", False)))


def _result(notation: Notation, name: str, spec: Any) -> Result:
    where = ("results", name)
    if isinstance(spec, str):
        spec = {"expression": spec}
    if not isinstance(spec, dict):
        raise NotationError(msg("notation.result_shape", name=name), where)
    unknown = set(spec) - {"expression", "any", "anchor", "steps", "with", "without", "say"}
    if unknown:
        raise NotationError(msg("notation.result_unknown_key", name=name, key=sorted(unknown)[0]), where)
    if "any" in spec:
        forms = tuple(_form(notation, f, (*where, "any", k)) for k, f in enumerate(spec["any"]))
    else:
        forms = (_form(notation, {k: spec[k] for k in ("expression", "with", "without") if k in spec}, where),)
    steps = []
    for k, step in enumerate(spec.get("steps", []) or []):
        at = (*where, "steps", k)
        if not isinstance(step, dict) or "any" not in step or "say" not in step:
            raise NotationError(msg("notation.step_shape", name=name), at)
        steps.append(Step(step["say"], tuple(_form(notation, f, (*at, "any", j)) for j, f in enumerate(step["any"]))))
    return Result(name, forms, bool(spec.get("anchor", False)), tuple(steps), spec.get("say", ""))


# --- reading a document ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    line: int
    text: str


@dataclass
class Analysis:
    """Where a document states each result and step, and the near misses worth telling the learner."""

    results: dict[str, list[Match]] = field(default_factory=dict)
    steps: dict[tuple[str, int], list[Match]] = field(default_factory=dict)
    near: dict[str, list[tuple[Match, str]]] = field(default_factory=dict)
    read: int = 0
    total: int = 0
    complete: bool = True


def _node_kinds(tree: Node) -> frozenset[str]:
    kinds = set()
    for node in walk(tree):
        if isinstance(node, Call) and node.fn == "exp" or isinstance(node, Op) and node.op == "pow" and \
                isinstance(node.args[0], Sym) and node.args[0].name == "e" and not node.args[0].sub:
            kinds.add("exp")
        elif isinstance(node, Sum):
            kinds.add("sum")
        elif isinstance(node, Call) and node.fn in ("log", "ln"):
            kinds.add("log")
        elif isinstance(node, Call):
            kinds.add(node.fn)  # a rubric function by name: a form may ask to be written with it
        elif isinstance(node, Deriv):
            kinds.add("derivative")
    return frozenset(kinds)


def _of_vectors(tree: Node) -> bool:
    """Built with what only vectors and matrices have: a sum over an index, a transpose, diag, the identity."""
    for node in walk(tree):
        if isinstance(node, Sum) or isinstance(node, Op) and node.op == "transpose" or \
                isinstance(node, Call) and node.fn in ("diag", "outer") or \
                isinstance(node, Sym) and node.name in ("I", ONES) and not node.deco:
            return True
    return False


@dataclass(frozen=True)
class _Roles:
    bases: tuple[str, ...]  # symbol keys that stand for a quantity
    letters: tuple[str, ...]  # index letters
    batch: frozenset[str]  # letters that may index examples of a batch


def _roles(tree: Node, classes: frozenset[str] = frozenset()) -> _Roles:
    bases: dict[str, None] = {}
    letters: dict[str, None] = {}
    batch: set[str] = set()
    summed: set[str] = set()
    stack: list[tuple[Node, bool]] = [(tree, False)]
    while stack:
        node, index = stack.pop()
        if isinstance(node, Sym):
            if (node.name == "δ" or node.name == "I" and len(node.sub) == 2) and not node.deco:
                stack.extend((s, True) for s in node.sub)  # Kronecker's delta, or the identity's entries I_kj
                continue
            if index and not node.sub and not node.deco and not node.tags and len(node.name) == 1:
                letters[node.name] = None
                continue
            if node.name == "e" and not node.deco and not node.tags:
                stack.extend((s, True) for s in node.sub)
                continue
            if node.name == ONES or node.name == "I" and not node.sub and not node.deco:
                continue  # constants: the ones vector, the identity
            bases[node.key] = None
            for s in node.sub:
                if isinstance(s, Sym) and not s.sub and (len(node.sub) > 1 or index):
                    batch.add(s.name)
                stack.append((s, True))
        elif isinstance(node, Call):
            stack.extend((a, node.fn in classes) for a in node.args)
            stack.extend((s, True) for s in node.sub)
        elif isinstance(node, Op):
            upper = upper_index(node) if node.op == "pow" else None
            stack.extend((a, a is upper) for a in node.args)
        elif isinstance(node, Indicator):
            stack.extend(((node.left, True), (node.right, True)))
        elif isinstance(node, Sum):
            summed.add(node.index)
            stack.append((node.body, False))
            if node.exclude is not None:
                stack.append((node.exclude, True))
    for key in list(letters):
        if key in bases or key in summed:
            del letters[key]
    return _Roles(tuple(bases), tuple(letters), frozenset(batch))


@dataclass(frozen=True)
class _Context:
    """What constrains a document's bindings: fixed meanings, its definitions, the vector convention."""

    fixed: tuple[tuple[str, str], ...]
    definitions: tuple[tuple[str, Node, Binding], ...]
    orientations: tuple[str, ...]
    free: bool  # an anchor result may bind any symbol to any quantity (within the fixed meanings)
    strict: bool = False  # only conventional meanings (for reading definitions): an unknown letter means nothing


def _bare(key: str) -> str:
    return key[key.index("(") + 1 : key.index(")")] if "(" in key else key.split("_")[0]


def _symbol_options(notation: Notation, key: str, context: _Context, fixed: Mapping[str, str]) -> list[str]:
    if key in fixed:
        return [fixed[key]]
    if any(name == key for name, _, _ in context.definitions):
        return [DEFINED]
    everything = [q.name for q in notation.quantities]
    if context.free:
        return everything
    conventional = [q.name for q in notation.quantities if key in q.symbols]
    if not conventional:
        conventional = [q.name for q in notation.quantities if _bare(key) in q.symbols]
    return conventional or ([] if context.strict else everything)


def _letter_options(notation: Notation, letter: str, roles: _Roles, context: _Context, fixed: Mapping[str, str]) -> list[str]:
    own_class = any(q.sample == "class" and q.name == letter for q in notation.quantities)
    options = [] if own_class and not context.free else [FREE]
    if letter in roles.batch:
        options.append(SAMPLE)
    for q in notation.quantities:  # a letter no free index needs is a fixed value: the class (-z_k + log Σ_m e^{z_m})
        if q.sample == "class" and (fixed.get(letter) == q.name or letter not in fixed):
            options.append(LABEL + q.name)
    return options


def _bindings(notation: Notation, roles: _Roles, context: _Context) -> list[Binding]:
    fixed = dict(context.fixed)
    choices: list[list[tuple[str, str, str]]] = []
    for key in roles.bases:
        choices.append([("symbol", key, role) for role in _symbol_options(notation, key, context, fixed)])
    for letter in roles.letters:
        choices.append([("index", letter, role) for role in _letter_options(notation, letter, roles, context, fixed)])
    out = []
    for orientation in context.orientations:
        for combo in itertools.product(*choices):
            symbols = tuple((k, r) for kind, k, r in combo if kind == "symbol")
            indices = tuple((k, r) for kind, k, r in combo if kind == "index")
            out.append(Binding(symbols, indices, orientation))
            if len(out) >= MAX_BINDINGS:
                return out
    return out


Evaluated = tuple[tuple[Binding, tuple[Value, ...]], ...]


@functools.lru_cache(maxsize=16384)
def _evaluated(notation: Notation, tree: Node, context: _Context) -> Evaluated:
    """Every binding under which ``tree`` has a value on all samples, with those values (cached for the class)."""
    roles = _roles(tree, notation.vocabulary.classes)
    if not roles.bases:
        return ()
    if notation.samples[0].n == 1 and (len(roles.letters) > 1 or _of_vectors(tree)):
        return ()  # a lab of one number: a sum, a second index (p_i(δ_ij − p_j)), diag or pᵀ only collapse there
    definitions = {name: (node, binding) for name, node, binding in context.definitions}
    out = []
    first, rest = notation.samples[0], notation.samples[1:]
    for binding in _bindings(notation, roles, context):
        try:
            value = evaluate(tree, notation.scope(first, binding, definitions))
            if not _worth(notation, value, first.n):
                out.append((binding, (value,)))  # like no result on the first sample: kept for its shape only
                continue
            values = (value, *(evaluate(tree, notation.scope(sample, binding, definitions)) for sample in rest))
        except (EvalError, IndexError, ValueError, FloatingPointError, OverflowError):
            continue
        out.append((binding, values))
    return tuple(out)


def _worth(notation: Notation, value: Value, n: int) -> bool:
    if not notation.screen or value.axes == () or value.axes is None and value.data.shape == (1, 1):
        return True  # a scalar may define a symbol (S = Σ_k e^{z_k}); they are cheap
    for rank in (1, 2):
        stacked = notation.screen.get(rank)
        for layout in as_arrays(value, rank, n) if stacked is not None else ():
            with np.errstate(invalid="ignore"):
                gap = np.abs(stacked - layout).reshape(len(stacked), -1).max(axis=1)
            if np.any(gap <= 1e-9 + 1e-7 * np.abs(layout).max()):
                return True
    return False


def _equal(values: tuple[Value, ...], form: Form, samples: Sequence[Sample], sign: float = 1.0) -> bool:
    if len(values) != len(samples):
        return False  # screened out on the first sample
    layouts = [as_arrays(v, form.rank, s.n) for v, s in zip(values, samples)]
    if not all(layouts):
        return False
    for k in range(len(layouts[0])):
        if all(k < len(layout) and _close(sign * layout[k], target) for layout, target in zip(layouts, form.targets)):
            return True
    return False


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    with np.errstate(invalid="ignore"):
        gap = np.abs(a - b)
        worst = float(gap.max()) if gap.size else 0.0
    return worst == worst and worst <= 1e-9 + 1e-7 * (float(np.abs(b).max()) if b.size else 0.0)


def _matches(form: Form, kinds: frozenset[str], evaluated: Evaluated, samples: Sequence[Sample]) -> Binding | None:
    if not form.needs <= kinds or form.refuses & kinds:
        return None
    for binding, values in evaluated:
        if _equal(values, form, samples):
            return binding
    return None


_ROW_WORDS = ("row vector", "vector fila", "vector renglon", "vectores fila", "row vectors", "1 \\times n", "1×n", "1 x n")


def analyse(pieces: Sequence[extract.Piece], notation: Notation, prose: str = "", seconds: float = SECONDS) -> Analysis:
    """Every result and step of the notation, looked for in every candidate of the document."""
    deadline = time.monotonic() + seconds
    candidates = extract.candidates(list(pieces), notation.vocabulary.words())
    trees = [(c, _parsed(c.text, notation.vocabulary)) for c in candidates]
    folded = fold(prose)
    orientations = ("col", "row") if any(word in folded for word in _ROW_WORDS) else ("col",)
    fixed: dict[str, str] = {}
    definitions = _definitions(notation, trees, fixed, orientations)
    for key, role in _prose_meanings(notation, [p for p in pieces if p.kind == "text"]).items():
        fixed.setdefault(key, role)
    analysis = Analysis(total=len(candidates))
    base = _Context(tuple(sorted(fixed.items())), definitions, orientations, False)

    for result in notation.results.values():  # the symbol an anchor result is written in names its quantity
        if not result.anchor:
            continue
        free = _Context(base.fixed, definitions, orientations, True)
        for candidate, found in trees:
            if time.monotonic() > deadline:
                break
            binding = _first(result.forms, found, notation, free)
            if binding is not None:
                for key, role in binding.symbols:
                    fixed.setdefault(key, role)
                break
    context = _Context(tuple(sorted(fixed.items())), definitions, orientations, False)

    inside_forms = [(name, f) for name, r in notation.results.items() for s in r.steps for f in s.forms if f.inside]
    chains: dict[int, list[tuple[int, extract.Candidate, tuple[Node, ...]]]] = {}
    for candidate, found in trees:
        if candidate.equation >= 0:
            chains.setdefault(candidate.equation, []).append((candidate.position, candidate, found))
    for candidate, found in trees:
        if time.monotonic() > deadline:
            analysis.complete = False
            break
        analysis.read += 1
        where = Match(candidate.line, candidate.text)
        for tree in found:
            if isinstance(tree, Sym):
                continue  # a symbol alone states nothing (L, J, or a letter the document defined)
            kinds = _node_kinds(tree)
            evaluated = _evaluated(notation, tree, context) if "derivative" not in kinds else ()
            hit = False
            for name, result in notation.results.items():
                binding = next((b for f in result.forms if (b := _matches(f, kinds, evaluated, notation.samples)) is not None), None)
                if binding is not None:
                    hit = True
                    if _conclusion_departs(notation, result, chains.get(candidate.equation, []), candidate, binding, context):
                        continue  # "… = p_j − 1": the chain ends somewhere else; that end is the learner's answer
                    _add(analysis.results.setdefault(name, []), where)
                for k, step in enumerate(result.steps):
                    if any(_matches(f, kinds, evaluated, notation.samples) is not None for f in step.forms if not f.inside):
                        hit = True
                        _add(analysis.steps.setdefault((name, k), []), where)
            labels = {q.name for q in notation.quantities if q.sample == "class"}
            telling = tuple((b, v) for b, v in evaluated if any(role not in labels for _, role in b.symbols))
            if not hit and telling:  # near misses: what a formula that states nothing right is close to — one that reads
                evaluated = telling  # only a class label ("1e-5 y", y the Spanish "and") states no derivative
                for name, result in notation.results.items():
                    miss = _near_miss(result, evaluated, notation.samples)
                    if miss:
                        analysis.near.setdefault(name, []).append((where, miss))
                    elif _is_conclusion(chains.get(candidate.equation, []), candidate, context) \
                            and _states_a_derivative(tree, chains.get(candidate.equation, []), notation) \
                            and _has_rank(result, evaluated, notation.samples) \
                            and any(not (f.refuses & kinds) for f in result.forms):  # ∂S/∂z_j = e^{z_j} is a step, not an answer
                        analysis.near.setdefault(name, []).append((where, "other"))
                    for k, step in enumerate(result.steps):
                        if any(_equal(v, f, notation.samples, -1.0) for f in step.forms if not f.inside and not f.needs - kinds
                               for _, v in evaluated):
                            analysis.near.setdefault(f"{name}#{k}", []).append((where, "sign"))
            if inside_forms:
                _inside(analysis, notation, tree, context, where)
    return analysis


def _is_conclusion(chain: Sequence[tuple[int, extract.Candidate, tuple[Node, ...]]], candidate: extract.Candidate,
                   context: _Context | None = None) -> bool:
    """The last side of an equation whose first side asks for something (∂L/∂z_j = …, J = …): an answer given.
    A symbol the document gives a meaning to (φ = f(θ), o = …) is being defined, not asked for."""
    if candidate.equation < 0 or candidate.position == 0 or not chain:
        return False
    first = next((found for position, _, found in chain if position == 0), ())
    meant = {key for key, _ in context.fixed} | {name for name, _, _ in context.definitions} if context else set()
    asks = any(isinstance(t, Deriv) or isinstance(t, Sym) and t.key not in meant or has_derivative(t) for t in first)
    return asks and candidate.position == max(position for position, _, _ in chain)


def _states_a_derivative(tree: Node, chain: Sequence[tuple[int, extract.Candidate, tuple[Node, ...]]],
                         notation: Notation) -> bool:
    """A wrong answer is said to be one only when it reads like one: its equation writes a derivative, or it combines
    two quantities — "h = 1e-5 y" (a step, and the Spanish "and") is no attempt at ∂L/∂z."""
    if any(has_derivative(node) for _, _, found in chain for node in found):
        return True
    return len(_roles(tree, notation.vocabulary.classes).bases) >= 2 or _occurrences(tree) >= 2


def _occurrences(tree: Node) -> int:
    """How many symbols (and function calls) it is made of: ``diag(p) + p pᵀ`` three, ``1e-5 y`` one."""
    count, stack = 0, [tree]
    while stack and count < 2:
        node = stack.pop()
        if isinstance(node, Sym):
            count += 1
        elif isinstance(node, Op):
            stack.extend(node.args)
        elif hasattr(node, "args"):
            count += 1
            stack.extend(getattr(node, "args"))
    return count


def _has_rank(result: Result, evaluated: Evaluated, samples: Sequence[Sample]) -> bool:
    """Some reading of it has the result's shape (a matrix for a matrix) on the first sample."""
    return any(as_arrays(values[0], form.rank, samples[0].n) for form in result.forms for _, values in evaluated)


def _conclusion_departs(notation: Notation, result: Result, chain: Sequence[tuple[int, extract.Candidate, tuple[Node, ...]]],
                        candidate: extract.Candidate, binding: Binding, context: _Context) -> bool:
    """A later side of the same equation, read with the same meanings, has the result's shape but other values."""
    definitions = {name: (node, b) for name, node, b in context.definitions}
    for position, later, found in chain:
        if position <= candidate.position:
            continue
        for tree in found:
            if has_derivative(tree) or isinstance(tree, Sym):
                continue
            try:
                values = tuple(evaluate(tree, notation.scope(s, binding, definitions)) for s in notation.samples)
            except (EvalError, IndexError, ValueError, FloatingPointError, OverflowError):
                continue
            for form in result.forms:
                if all(as_arrays(v, form.rank, s.n) for v, s in zip(values, notation.samples)):
                    if not _equal(values, form, notation.samples):
                        return True
                    break
    return False


def _add(found: list[Match], where: Match) -> None:
    if where not in found:
        found.append(where)


def _first(forms: Iterable[Form], trees: tuple[Node, ...], notation: Notation, context: _Context) -> Binding | None:
    for tree in trees:
        kinds = _node_kinds(tree)
        if "derivative" in kinds or isinstance(tree, Sym):
            continue
        evaluated = _evaluated(notation, tree, context)
        for form in forms:
            binding = _matches(form, kinds, evaluated, notation.samples)
            if binding is not None:
                return binding
    return None


def _near_miss(result: Result, evaluated: Evaluated, samples: Sequence[Sample]) -> str:
    """A result written with its sign flipped, or a matrix given only by its diagonal: said, not just failed."""
    for form in result.forms:
        for _, values in evaluated:
            if _equal(values, form, samples, sign=-1.0):
                return "sign"
            if form.rank == 2 and all(v.axes is not None and len(v.axes) == 1 or v.axes is None and 1 in v.data.shape
                                      for v in values):
                diagonal = Form(form.text, 1, tuple(np.diag(t).copy() for t in form.targets))
                if _equal(values, diagonal, samples):
                    return "diagonal"
    return ""


def _inside(analysis: Analysis, notation: Notation, tree: Node, context: _Context, where: Match) -> None:
    """Forms that may be part of a larger expression, looked for in its sub-expressions, each with the sign the
    products around it give it (in −(1/p_y)·p_y(…) the quotient counts as −1/p_y)."""
    roots = {_root(f.tree) for r in notation.results.values() for s in r.steps for f in s.forms if f.inside}
    subtrees = [(n, sign) for n, sign in _signed(tree) if _root(n) in roots and not has_derivative(n)][:20]
    for name, result in notation.results.items():
        for k, step in enumerate(result.steps):
            forms = [f for f in step.forms if f.inside]
            if not forms or where in analysis.steps.get((name, k), []):
                continue
            for sub, sign in subtrees:
                kinds = _node_kinds(sub)
                evaluated = _evaluated(notation, sub, context)
                if any(not f.needs - kinds and not f.refuses & kinds and any(
                        _equal(v, f, notation.samples, sign) for _, v in evaluated) for f in forms):
                    _add(analysis.steps.setdefault((name, k), []), where)
                    break


def _signed(tree: Node) -> list[tuple[Node, float]]:
    """Every sub-expression with the sign it carries as a factor: a minus in front of a product is its factors'."""
    out: list[tuple[Node, float]] = []
    stack: list[tuple[Node, float]] = [(tree, 1.0)]
    while stack and len(out) < 80:
        node, sign = stack.pop()
        out.append((node, sign))
        if isinstance(node, Op):
            if node.op == "neg":
                stack.append((node.args[0], -sign))
            elif node.op in ("dot", "mul", "outer", "hadamard"):
                stack.extend((a, sign) for a in node.args)
            elif node.op == "div":
                stack.append((node.args[0], sign))
                stack.append((node.args[1], 1.0))
            else:
                stack.extend((a, 1.0) for a in node.args)
        elif isinstance(node, Call):
            stack.extend((a, 1.0) for a in node.args)
    return out


def _root(node: Node) -> str:
    """What an expression is at its top, its sign aside (−1/p_y is a quotient)."""
    while isinstance(node, Op) and node.op == "neg":
        node = node.args[0]
    if isinstance(node, Op) and node.op == "pow" and _negative(node.args[1]):
        return "div"  # μ_c^{-1} is 1/μ_c
    return node.op if isinstance(node, Op) else type(node).__name__


def _negative(node: Node) -> bool:
    return isinstance(node, Op) and node.op == "neg" or isinstance(node, Num) and node.value < 0


@functools.lru_cache(maxsize=32768)
def _parsed(text: str, vocabulary: Vocabulary) -> tuple[Node, ...]:
    return parses(text, vocabulary)


def _definitions(notation: Notation, trees: Sequence[tuple[extract.Candidate, tuple[Node, ...]]], fixed: dict[str, str],
                 orientations: tuple[str, ...]) -> tuple[tuple[str, Node, Binding], ...]:
    """The document's own definitions: ``o = f(z)`` names a quantity; ``S = Σ_k e^{z_k}`` a value."""
    by_equation: dict[int, dict[int, tuple[Node, ...]]] = {}
    for candidate, found in trees:
        if candidate.equation >= 0 and found:
            by_equation.setdefault(candidate.equation, {})[candidate.position] = found
    defined: list[tuple[str, Node, Binding]] = []
    for chain in by_equation.values():
        if 0 not in chain or 1 not in chain:
            continue
        left = chain[0][0]
        if not isinstance(left, Sym) or left.name in ("δ", "e") or left.key in fixed or any(d[0] == left.key for d in defined):
            continue
        context = _Context(tuple(sorted(fixed.items())), tuple(defined), orientations, False, strict=True)
        for right in chain[1]:
            if isinstance(right, Sym) or has_derivative(right) or left.key in _roles(right, notation.vocabulary.classes).bases:
                continue  # "k = j" renames; it defines nothing
            meaning = _meaning(notation, right, context)
            if meaning is None:
                continue
            kind, what = meaning
            if kind == "quantity":
                fixed[left.key] = str(what)
            elif not left.sub:
                defined.append((left.key, right, what))  # type: ignore[arg-type]
            break
    return tuple(defined)


def _meaning(notation: Notation, tree: Node, context: _Context) -> tuple[str, object] | None:
    """What the right-hand side of a definition is: one of the quantities, or a scalar of its own."""
    evaluated = _evaluated(notation, tree, context)
    if not evaluated:
        return None
    for q in notation.quantities:
        vectors = tuple(_quantity_vector(q, s) for s in notation.samples)
        form = Form(q.name, 1, vectors)
        for _, values in evaluated:
            if _equal(values, form, notation.samples):
                return ("quantity", q.name)
    scalars = [(b, v) for b, v in evaluated if all(x.axes == () or x.axes is None and x.data.shape == (1, 1) for x in v)]
    if len(scalars) == 1:
        return ("value", scalars[0][0])
    return None


def _quantity_vector(q: Quantity, sample: Sample) -> np.ndarray:
    if q.name in sample.vectors:
        return sample.vectors[q.name]
    out = np.zeros(sample.n)
    out[sample.classes[q.name]] = 1.0
    return out


# --- meanings given in words -----------------------------------------------------------------------

_VERBS = ("is ", "are ", "denotes ", "represents ", "stands for ", "be ", "being ", "= ", "equals ", "es ", "son ",
          "denota ", "representa ", "sea ", "siendo ", "corresponde ", "indica ")
_ARTICLES = ("the ", "a ", "an ", "el ", "la ", "los ", "las ", "un ", "una ")
_INTRODUCERS = ("where", "with", "let", "and", "donde", "con", "sea", "siendo", "y", "e", "here", "aqui")


_CONDITIONS = ("if", "when", "whenever", "unless", "si", "cuando")
_HEAD_NOUNS = ("vector", "vectors", "vectores", "matrix", "matriz", "array")


def _prose_meanings(notation: Notation, pieces: Sequence[extract.Piece]) -> dict[str, str]:
    """"where $t$ is the one-hot target", "the one-hot target $t$": a symbol named by the words next to it.
    A symbol named as two different quantities in the document is left to the other rules."""
    named_as: dict[str, set[str]] = {}
    for piece in pieces:
        text = piece.text[: extract.MAX_TEXT]
        mentions = _mentions(text, notation.vocabulary)
        for k, (start, end, key) in enumerate(mentions):
            stop = mentions[k + 1][0] if k + 1 < len(mentions) else len(text)
            after = fold(text[end : min(stop, end + 60)]).lstrip(" ,")
            begin = mentions[k - 1][1] if k else 0
            before = fold(text[max(begin, start - 40) : start])
            words_before = before.split()
            last = words_before[-1] if words_before else ""
            if last in _CONDITIONS:  # "1 if j is the true class" says when, not what j is
                continue
            linked = after.startswith(_VERBS) or last in _INTRODUCERS and after.startswith(_ARTICLES)
            named = _named(notation, _until_stop(after)) if linked else set()
            if not named and before and not before[-1:].strip() and before.rstrip()[-1:].isalpha():
                tail = words_before[-3:]
                while tail and tail[-1] in _HEAD_NOUNS:  # "the one-hot target vector t"
                    tail = tail[:-1]
                if tail and _named(notation, tail[-1]) and not any(c in " ".join(tail) for c in ",;:.="):
                    named = _named(notation, " ".join(tail))
            if len(named) == 1:
                named_as.setdefault(key, set()).update(named)
    return {key: next(iter(names)) for key, names in named_as.items() if len(names) == 1}


def _until_stop(text: str) -> str:
    for stop in (".", ";", "\n", " and ", " y ", ", "):
        if stop in text:
            text = text[: text.index(stop)]
    return text


def _named(notation: Notation, text: str) -> set[str]:
    return {q.name for q in notation.quantities if any(word in text for word in q.words)}


def _mentions(text: str, vocabulary: Vocabulary) -> list[tuple[int, int, str]]:
    """Symbols in a line of prose: short ``$…$`` spans holding one symbol, and lone letters between spaces."""
    out: list[tuple[int, int, str]] = []
    i = 0
    while found := _MENTION_START.search(text, i):
        i = found.start()
        if text[i] == "$":
            end = text.find("$", i + 1)
            if end == -1:
                break
            if end - i <= 32:
                key = _lone_symbol(text[i + 1 : end], vocabulary)
                if key:
                    out.append((i, end + 1, key))
            i = end + 1
            continue
        if text[i].isalpha() and text[i] not in "aAIoOyYe":
            out.append((i, i + 1, text[i]))
        i += 1
    return out


_MENTION_START = re.compile(r"\$|(?<![^ (]).(?![^ ,)])", re.DOTALL)  # a span, or one character standing alone


@functools.lru_cache(maxsize=4096)  # the same few spans ($p$, $z_i$) in every learner's prose: parsed once per process
def _lone_symbol(text: str, vocabulary: Vocabulary) -> str:
    try:
        node = parse(text, vocabulary=vocabulary)
    except (ParseError, RecursionError):
        return ""
    if isinstance(node, Sym) and node.name not in ("δ", "e"):
        return node.key
    return ""
