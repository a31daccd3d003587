"""Numbers for an expression tree, once each symbol is bound to one of the lab's quantities.

Two kinds of value meet here, because learners mix two notations: index notation (``p_i(δ_ij − p_j)``,
whose free indices become named axes) and linear algebra (``diag(p) − p pᵀ``, where a vector is a column,
or a row when the learner says so). Anything a notation does not define — a vector plus a matrix, an
unbound letter, a derivative — is an :class:`EvalError`, so a candidate that means nothing never matches.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.maths.syntax import ONES, Call, Deriv, Indicator, Node, Num, Op, Sum, Sym

FREE = "free"  # an index letter ranging over the classes
SAMPLE = "sample"  # an index over examples of a batch: one example here, so it is dropped
LABEL = "label:"  # prefix: the letter is this class quantity's value (y in p_y, δ_jy, 1[j = y])
DEFINED = "defined"  # the document defines the symbol (S = Σ_k e^{z_k})


class EvalError(ValueError):
    """The expression has no value under this binding."""


@dataclass(frozen=True)
class Value:
    """Index form: ``axes`` names the free indices of ``data``. Linear algebra: ``axes`` is None, ``data`` 2-D."""

    data: np.ndarray
    axes: tuple[str, ...] | None


@dataclass(frozen=True)
class Sample:
    """One draw of the lab's quantities: vectors by name, and class indices (an int) by name."""

    n: int
    vectors: Mapping[str, np.ndarray]
    classes: Mapping[str, int]


@dataclass(frozen=True)
class Binding:
    """What each symbol means: a quantity's name (or DEFINED), and each index letter's role."""

    symbols: tuple[tuple[str, str], ...] = ()
    indices: tuple[tuple[str, str], ...] = ()
    orientation: str = "col"

    def symbol(self, key: str) -> str | None:
        for name, role in self.symbols:
            if name == key:
                return role
        return None

    def index(self, letter: str) -> str | None:
        for name, role in self.indices:
            if name == letter:
                return role
        return None

    def with_index(self, letter: str, role: str) -> Binding:
        kept = tuple((n, r) for n, r in self.indices if n != letter)
        return Binding(self.symbols, (*kept, (letter, role)), self.orientation)


@dataclass(frozen=True)
class Function:
    """A rubric's own function (from its reference module): of a vector, or of a class index and the size."""

    name: str
    call: Callable[..., Any] = field(compare=False)
    takes: str = "vector"  # or "class"
    origin: str = ""  # the reference module's file, so two rubrics' functions of one name never meet in a cache


@dataclass
class Scope:
    """A sample, a binding and the document's definitions: everything a symbol's value depends on."""

    sample: Sample
    binding: Binding
    definitions: Mapping[str, tuple[Node, Binding]] = field(default_factory=dict)
    depth: int = 0
    functions: Mapping[str, Function] = field(default_factory=dict)


def evaluate(node: Node, scope: Scope) -> Value:
    with np.errstate(all="ignore"):
        return _eval(node, scope)


def _scalar(x: float) -> Value:
    return Value(np.asarray(float(x)), ())


def _vector(data: np.ndarray, orientation: str) -> Value:
    return Value(data.reshape(-1, 1) if orientation == "col" else data.reshape(1, -1), None)


def _eval(node: Node, scope: Scope) -> Value:
    if isinstance(node, Num):
        return _scalar(node.value)
    if isinstance(node, Sym):
        return _symbol(node, scope)
    if isinstance(node, Op):
        return _op(node, scope)
    if isinstance(node, Call):
        return _call(node, scope)
    if isinstance(node, Indicator):
        value = _kronecker(_atom(node.left, scope), _atom(node.right, scope), scope.sample.n)
        return value if node.equal else Value(1.0 - value.data, value.axes)
    if isinstance(node, Sum):
        return _sum(node, scope)
    if isinstance(node, Deriv):
        raise EvalError("a derivative")
    raise EvalError(type(node).__name__)


def _symbol(node: Sym, scope: Scope) -> Value:
    n = scope.sample.n
    role = scope.binding.symbol(node.key)
    if node.name == ONES:
        return _vector(np.ones(n), scope.binding.orientation)
    if node.name == "I" and role is None and not node.sub and not node.deco:
        return Value(np.eye(n), None)  # the identity matrix
    if node.name == "δ" and not node.deco or node.name == "I" and role is None and len(node.sub) == 2:
        if len(node.sub) != 2:
            raise EvalError("δ needs two indices")
        return _kronecker(_atom(node.sub[0], scope), _atom(node.sub[1], scope), n)
    if role is None and node.name == "e" and not node.deco and not node.tags:
        if not node.sub:
            return _scalar(np.e)
        atoms = _kept(node.sub, scope)
        if len(atoms) == 1 and atoms[0][0] == "int":
            return _vector(_one_hot(int(atoms[0][1]), n), scope.binding.orientation)
        raise EvalError("a basis vector e_j")
    if role == DEFINED:
        return _defined(node, scope)
    if role is None:
        raise EvalError(f"unbound {node.key}")
    vector = _quantity(role, scope.sample)
    atoms = _kept(node.sub, scope)
    if not atoms:
        return _vector(vector, scope.binding.orientation)
    if len(atoms) > 1:
        raise EvalError("too many indices")
    kind, what = atoms[0]
    if kind == "axis":
        return Value(vector, (str(what),))
    position = int(what)
    return _scalar(vector[position])


def _quantity(name: str, sample: Sample) -> np.ndarray:
    if name in sample.vectors:
        return sample.vectors[name]
    if name in sample.classes:
        return _one_hot(sample.classes[name], sample.n)
    raise EvalError(f"no quantity {name}")


def _defined(node: Sym, scope: Scope) -> Value:
    if node.sub and _kept(node.sub, scope):
        raise EvalError("an indexed definition")
    if scope.depth > 4 or node.key not in scope.definitions:
        raise EvalError("definition")
    tree, binding = scope.definitions[node.key]
    inner = Scope(scope.sample, Binding(binding.symbols, binding.indices, scope.binding.orientation), scope.definitions,
                  scope.depth + 1, scope.functions)
    value = _eval(tree, inner)
    if value.axes:
        raise EvalError("an indexed definition")
    return value


def _one_hot(index: int, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[index] = 1.0
    return out


Atom = tuple[str, object]  # ("axis", letter) | ("int", class index) | ("drop", letter)


def _atom(node: Node, scope: Scope) -> Atom:
    """A subscript, an argument of δ or a side of 1[…]: an index letter, or a class label."""
    if isinstance(node, Sym) and not node.deco:
        symbol_role = scope.binding.symbol(node.key)
        if symbol_role is not None and symbol_role in scope.sample.classes:
            if any(kind != "drop" for kind, _ in (_atom(s, scope) for s in node.sub)):
                raise EvalError("an indexed label")
            return ("int", scope.sample.classes[symbol_role])
        if node.sub or node.tags:
            raise EvalError("an indexed index")
        role = scope.binding.index(node.name)
        if role == FREE:
            return ("axis", node.name)
        if role == SAMPLE:
            return ("drop", node.name)
        if role is not None and role.startswith(LABEL):
            return ("int", scope.sample.classes[role[len(LABEL):]])
        raise EvalError(f"unbound index {node.name}")
    raise EvalError("not an index")


def _kept(sub: tuple[Node, ...], scope: Scope) -> list[Atom]:
    return [atom for atom in (_atom(s, scope) for s in sub) if atom[0] != "drop"]


def _kronecker(a: Atom, b: Atom, n: int) -> Value:
    if a[0] == "drop" or b[0] == "drop":
        raise EvalError("a sample index in δ")
    if a[0] == "int" and b[0] == "int":
        return _scalar(1.0 if a[1] == b[1] else 0.0)
    if a[0] == "axis" and b[0] == "axis":
        if a[1] == b[1]:
            return Value(np.ones(n), (str(a[1]),))
        return Value(np.eye(n), (str(a[1]), str(b[1])))
    axis, label = (a, b) if a[0] == "axis" else (b, a)
    return Value(_one_hot(int(label[1]), n), (str(axis[1]),))  # type: ignore[call-overload]


def _align(a: Value, b: Value) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    assert a.axes is not None and b.axes is not None
    axes = a.axes + tuple(x for x in b.axes if x not in a.axes)
    return _expand(a, axes), _expand(b, axes), axes


def _expand(value: Value, axes: tuple[str, ...]) -> np.ndarray:
    assert value.axes is not None
    have = list(value.axes)
    missing = [x for x in axes if x not in have]
    data = value.data.reshape(value.data.shape + (1,) * len(missing))
    order = have + missing
    return data.transpose([order.index(x) for x in axes])


def _as_scalar(value: Value) -> float | None:
    if value.axes == ():
        return float(value.data)
    if value.axes is None and value.data.shape == (1, 1):
        return float(value.data[0, 0])
    return None


def _combine(a: Value, b: Value, operation: str) -> Value:
    """+, − and elementwise ·, / where the notations agree; a vector plus a matrix is not mathematics."""
    fn = {"add": np.add, "mul": np.multiply, "div": np.divide}[operation]
    sa, sb = _as_scalar(a), _as_scalar(b)
    if a.axes is not None and b.axes is not None:
        x, y, axes = _align(a, b)
        return Value(fn(x, y), axes)
    if sa is not None and sb is not None:
        return _scalar(fn(sa, sb))
    if sb is not None:
        return Value(fn(a.data, sb), a.axes)
    if sa is not None:
        return Value(fn(sa, b.data), b.axes)
    if a.axes is None and b.axes is None and a.data.shape == b.data.shape and operation != "mul":
        return Value(fn(a.data, b.data), None)
    raise EvalError("shapes do not combine")


def _product(a: Value, b: Value) -> Value:
    sa, sb = _as_scalar(a), _as_scalar(b)
    if a.axes is not None and b.axes is not None:
        return _combine(a, b, "mul")
    if sa is not None or sb is not None:
        return _combine(a, b, "mul")
    if a.axes is None and b.axes is None:
        if a.data.shape[1] == b.data.shape[0]:
            out = a.data @ b.data
            return _scalar(out[0, 0]) if out.shape == (1, 1) else Value(out, None)
        raise EvalError("shapes do not multiply")
    raise EvalError("index and matrix notation mixed")


def _op(node: Op, scope: Scope) -> Value:
    if node.op == "neg":
        value = _eval(node.args[0], scope)
        return Value(-value.data, value.axes)
    if node.op == "add":
        total = _eval(node.args[0], scope)
        for arg in node.args[1:]:
            total = _combine(total, _eval(arg, scope), "add")
        return total
    if node.op in ("dot", "mul"):
        return _product(_eval(node.args[0], scope), _eval(node.args[1], scope))
    if node.op == "div":
        top, bottom = _eval(node.args[0], scope), _eval(node.args[1], scope)
        if bottom.axes is None and top.axes is None and top.data.shape != bottom.data.shape and _as_scalar(bottom) is None:
            raise EvalError("matrix division")
        return _combine(top, bottom, "div")
    if node.op == "pow":
        return _power(node, scope)
    if node.op == "transpose":
        if isinstance(node.args[0], Num) and node.args[0].value == 1:  # 1ᵀ: the row of ones
            ones = _vector(np.ones(scope.sample.n), scope.binding.orientation)
            return Value(ones.data.T, None)
        value = _eval(node.args[0], scope)
        return value if value.axes is not None else Value(value.data.T, None)
    if node.op == "outer":
        a, b = _eval(node.args[0], scope), _eval(node.args[1], scope)
        if a.axes is None and b.axes is None:
            return Value(np.outer(a.data.ravel(), b.data.ravel()), None)
        return _product(a, b)
    if node.op == "hadamard":
        a, b = _eval(node.args[0], scope), _eval(node.args[1], scope)
        if a.axes is None and b.axes is None:
            if a.data.shape != b.data.shape:
                raise EvalError("hadamard of different shapes")
            return Value(a.data * b.data, None)
        return _combine(a, b, "mul")
    raise EvalError(node.op)


def upper_index(node: Op) -> Sym | None:
    """``p^i``, ``δ^i_j``: a lone index letter up on a symbol may be an upper index (Einstein's notation);
    the binding decides — only a letter bound as an index is one."""
    base, exponent = node.args
    if node.op == "pow" and isinstance(base, Sym) and base.name not in ("e", ONES) and not base.deco and \
            isinstance(exponent, Sym) and len(exponent.name) == 1 and not exponent.sub and not exponent.deco and not exponent.tags:
        return exponent
    return None


def _power(node: Op, scope: Scope) -> Value:
    base_node, exponent_node = node.args
    upper = upper_index(node)
    if upper is not None and scope.binding.index(upper.name) is not None and scope.binding.symbol(upper.key) is None:
        assert isinstance(base_node, Sym)
        return _eval(Sym(base_node.name, base_node.deco, (*base_node.sub, upper), base_node.tags), scope)
    exponent = _eval(exponent_node, scope)
    if isinstance(base_node, Sym) and base_node.name == "e" and not base_node.sub and scope.binding.symbol(base_node.key) is None:
        return Value(np.exp(exponent.data), exponent.axes)
    power = _as_scalar(exponent)
    if power is None:
        raise EvalError("a power that is not a number")
    base = _eval(base_node, scope)
    if base.axes is None and _as_scalar(base) is None:
        raise EvalError("a power of a matrix")
    return Value(np.power(base.data, power), base.axes)


def _elementwise(fn: str, value: Value) -> Value:
    ufunc = {"exp": np.exp, "log": np.log, "ln": np.log, "sqrt": np.sqrt}[fn]
    return Value(ufunc(value.data), value.axes)


def _call(node: Call, scope: Scope) -> Value:
    fn = node.fn
    if len(node.args) != 1:
        raise EvalError("arguments")
    if fn in scope.functions:
        value = _rubric_function(scope.functions[fn], node.args[0], scope)
    else:
        arg = _eval(node.args[0], scope)
        if fn in ("exp", "log", "ln", "sqrt"):
            value = _elementwise(fn, arg)
        elif fn == "max":
            data = arg.data if arg.axes is None or len(arg.axes) == 1 else None
            if data is None:
                raise EvalError("a reduction over several indices")
            value = _scalar(float(np.max(data)))
        elif fn == "diag":
            value = _diag(arg, scope.binding.orientation)
        else:
            raise EvalError(fn)
    if not node.sub:
        return value
    atoms = _kept(node.sub, scope)
    if len(atoms) != 1 or value.axes is not None or 1 not in value.data.shape:
        raise EvalError("indexing")
    flat = value.data.ravel()
    kind, what = atoms[0]
    return Value(flat, (str(what),)) if kind == "axis" else _scalar(flat[int(what)])  # type: ignore[call-overload]


def _rubric_function(function: Function, arg: Node, scope: Scope) -> Value:
    """Call the rubric's trusted function on plain numbers; its answer keeps the shape of the argument."""
    n = scope.sample.n
    if function.takes == "class":
        kind, what = _atom(arg, scope)
        if kind != "int":
            raise EvalError(f"{function.name} of an index")
        out = _called(function, int(what), n)  # type: ignore[call-overload]
        if out.shape != (n,):
            raise EvalError(f"{function.name} gave shape {out.shape}")
        return _vector(out, scope.binding.orientation)
    value = _eval(arg, scope)
    if not (value.axes is not None and len(value.axes) == 1 or value.axes is None and 1 in value.data.shape):
        raise EvalError(f"{function.name} of this shape")
    out = _called(function, value.data.ravel().copy())
    if out.shape == ():
        return _scalar(float(out))
    if out.shape != (value.data.size,):
        raise EvalError(f"{function.name} gave shape {out.shape}")
    return Value(out.reshape(value.data.shape), value.axes)


def _diag(value: Value, orientation: str) -> Value:
    if value.axes is None:
        if 1 in value.data.shape:
            return Value(np.diag(value.data.ravel()), None)
        if value.data.shape[0] == value.data.shape[1]:
            return _vector(np.diag(value.data).copy(), orientation)
    raise EvalError("diag of this")


def _sum(node: Sum, scope: Scope) -> Value:
    inner = Scope(scope.sample, scope.binding.with_index(node.index, FREE), scope.definitions, scope.depth, scope.functions)
    body = _eval(node.body, inner)
    if body.axes is None:
        raise EvalError("a sum of vectors")
    data, axes = body.data, body.axes
    n = scope.sample.n
    if node.exclude is not None:
        excluded = _kronecker(("axis", node.index), _atom(node.exclude, scope), n)
        mask = Value(1.0 - excluded.data, excluded.axes)
        product = _combine(body, mask, "mul")
        data, axes = product.data, product.axes
        assert axes is not None
    if node.index not in axes:
        count = n - 1 if node.exclude is not None else n
        return Value(data * count, axes)
    position = axes.index(node.index)
    return Value(data.sum(axis=position), axes[:position] + axes[position + 1 :])


def _called(function: Function, *args: Any) -> np.ndarray:
    try:
        return np.asarray(function.call(*args), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - trusted code, but an argument it cannot take means no value here
        raise EvalError(f"{function.name}: {type(exc).__name__}") from None


def as_arrays(value: Value, rank: int, n: int) -> list[np.ndarray]:
    """The value in the layout of a result of this rank (every order of its free indices), or nothing."""
    if value.axes is None:
        data = value.data
        if rank == 0 and data.shape == (1, 1):
            return [data.reshape(())]
        if rank == 1 and data.shape in ((n, 1), (1, n)):
            return [data.ravel()]
        if rank == 2 and data.shape == (n, n):
            return [data]
        return []
    if rank == 1 and n == 1 and value.axes == ():  # a lab of one number (``sample: scalar``): σ(z)(1 − σ(z)) is s_i(1 − s_i)
        return [value.data.reshape(1)]
    if len(value.axes) != rank:
        return []
    if rank <= 1:
        return [value.data]
    return [value.data.transpose(order) for order in itertools.permutations(range(rank))]
