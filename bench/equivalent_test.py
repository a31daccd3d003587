"""The two rubrics' checks written as a plain pytest file: the thing the grader is compared with.

Same functions, same inputs (seed, extreme values, the references' hidden generators), the same
tolerances, numpy.testing against the trusted modules in rubrics/, plus simple deliverable checks.
No sandbox, no diagnosis, no reports: the cheapest honest way to run these checks with pytest.

    LEARNER=learners/borja pytest -q -p no:cacheprovider bench/equivalent_test.py
        mode a: one learner per pytest process
    LEARNERS_DIR=/tmp/class pytest -q -p no:cacheprovider bench/equivalent_test.py
        mode b: every test parametrised over every learner folder, all in this one process; each
        learner's module is imported under a unique name (no isolation: a hang or sys.exit in
        learner code would take the session down)

With neither variable set, everything is skipped.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

sys.dont_write_bytecode = True  # never leave __pycache__ in a learner's folder (it would be content)

ROOT = Path(__file__).resolve().parent.parent


def _learners() -> list[Path]:
    if os.environ.get("LEARNER"):
        return [Path(os.environ["LEARNER"]).resolve()]
    if os.environ.get("LEARNERS_DIR"):
        folder = Path(os.environ["LEARNERS_DIR"]).resolve()
        return sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("phase-*")))
    return []


LEARNERS = _learners()
if not LEARNERS:
    pytest.skip("set LEARNER=folder (mode a) or LEARNERS_DIR=folder (mode b)", allow_module_level=True)

each_learner = pytest.mark.parametrize("learner", LEARNERS, ids=[p.name for p in LEARNERS])


# ----------------------------------------------------------------------------- loading

def _load_file(path: Path, name: str) -> ModuleType:
    """A reference imports its rubric's helpers module by name (``from lab_00_helpers import *``), as the grader allows."""
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


REF04 = _load_file(ROOT / "rubrics" / "phase-04" / "lab_00_reference.py", "_bench_ref_p04")
REF05 = _load_file(ROOT / "rubrics" / "phase-05" / "lab_02_reference.py", "_bench_ref_p05")

P04 = ("phase-04", ("lab-00*.py", "lab_00*.py"), "lab-00-softmax-gradient.md",
       ("softmax", "softmax_jacobian", "softmax_jacobian_fd", "ce_loss", "ce_grad", "ce_grad_fd"))
P05 = ("phase-05", ("lab-02*.py", "lab_02*.py"), "lab-02-logsumexp.md",
       ("logsumexp", "log_softmax", "cross_entropy_from_logits"))

_MODULES: dict[tuple[Path, str], ModuleType | BaseException] = {}


def _implementation(learner: Path, lab: tuple) -> Path | None:
    phase, patterns = learner / lab[0], lab[1]
    found = sorted({p for pattern in patterns for p in phase.glob(pattern)})
    return found[0] if found else None


def module(learner: Path, lab: tuple) -> ModuleType:
    """The learner's module for this lab, imported once under a unique name; a failure is re-raised."""
    key = (learner, lab[0])
    if key not in _MODULES:
        path = _implementation(learner, lab)
        name = "_bench_" + re.sub(r"\W", "_", f"{learner.name}_{lab[0]}")
        modules_before, path_before = set(sys.modules), list(sys.path)
        try:
            if path is None:
                raise FileNotFoundError(f"no {' or '.join(lab[1])} in {learner / lab[0]}")
            with contextlib.redirect_stdout(io.StringIO()):  # a script at module level prints
                _MODULES[key] = _load_file(path, name)
        except BaseException as exc:  # SystemExit at import is a learner failure too
            if isinstance(exc, KeyboardInterrupt):
                raise
            _MODULES[key] = exc
        finally:
            # what this learner imported by plain name (lab_02_logsumexp) must not serve the next one
            for extra in set(sys.modules) - modules_before - {name}:
                del sys.modules[extra]
            sys.path[:] = path_before
    loaded = _MODULES[key]
    if isinstance(loaded, BaseException):
        raise AssertionError(f"{learner.name}/{lab[0]}: the implementation did not load: {loaded!r}") from loaded  # noqa: TRY004
    return loaded


def fn(learner: Path, lab: tuple, name: str):
    mod = module(learner, lab)
    assert hasattr(mod, name), f"{learner.name}/{lab[0]}: no function {name}"
    return getattr(mod, name)


def call(f, *args):
    """Call with fresh copies, so a learner that mutates its input cannot corrupt the next case."""
    return f(*(np.array(a, dtype=np.float64) if isinstance(a, (list, np.ndarray)) else a for a in args))


# ----------------------------------------------------------------------------- the inputs of the rubrics

SEED = [np.array(REF04.SEED_Z)]
SEED_Y = [(SEED[0], y) for y in range(5)]
RANDOM04 = [args[0] for args in REF04.hidden_logits()]
RANDOM04_Y = list(REF04.hidden_logits_with_class())
EXTREME04 = [np.array(z) for z in ([1000.0, 1001.0, 1002.0], [-1000.0, -999.0, -998.0], [1000.0, 0.0, -1000.0])]
EXTREME04_Y = [(z, y) for z in EXTREME04 for y in range(3)]

PAGE05 = [np.array([0.0, 0.0, 0.0]), np.array([1.0, 2.0, 3.0])]
EXTREME05 = [np.array([1000.0, 1001.0, 1002.0]), np.array([-1000.0, -999.0, -998.0])]
RANDOM05 = [args[0] for args in REF05.hidden_logits()]
PAGE05_Y = [(z, y) for z in PAGE05 + EXTREME05 for y in range(3)]

FD_STEPS = (1e-3, 1e-4)  # a finite difference must change with its step


# ----------------------------------------------------------------------------- phase-04 / lab-00

@each_learner
def test_p04_implementation_found(learner):
    mod = module(learner, P04)
    missing = [name for name in P04[3] if not callable(getattr(mod, name, None))]
    assert not missing, f"missing functions: {missing}"


@each_learner
def test_p04_softmax_correct(learner):
    f = fn(learner, P04, "softmax")
    for z in SEED + RANDOM04:
        p = call(f, z)
        assert_allclose(p, REF04.softmax(z), atol=1e-12, rtol=1e-9)
        assert_allclose(np.sum(p), 1.0, atol=1e-12)


@each_learner
def test_p04_softmax_stable(learner):
    f = fn(learner, P04, "softmax")
    for z in EXTREME04:
        assert_allclose(call(f, z), REF04.softmax(z), atol=1e-12, rtol=1e-9)


@each_learner
def test_p04_jacobian_analytic(learner):
    f = fn(learner, P04, "softmax_jacobian")
    for z in SEED + RANDOM04:
        assert_allclose(call(f, z), REF04.softmax_jacobian(z), atol=1e-7, rtol=0)


@each_learner
def test_p04_jacobian_symmetric(learner):
    f = fn(learner, P04, "softmax_jacobian")
    for z in SEED + RANDOM04:
        J = np.asarray(call(f, z), dtype=np.float64)
        assert J.ndim == 2 and J.shape[0] == J.shape[1]
        assert_allclose(J, J.T, atol=1e-12, rtol=0)


@each_learner
def test_p04_jacobian_fd(learner):
    f = fn(learner, P04, "softmax_jacobian_fd")
    for z in SEED + RANDOM04:
        assert_allclose(call(f, z), REF04.softmax_jacobian(z), atol=1e-7, rtol=0)
    at = [np.asarray(call(f, SEED[0], h), dtype=np.float64) for h in FD_STEPS]
    assert not np.array_equal(at[0], at[1]), "softmax_jacobian_fd does not change with its step"


@each_learner
def test_p04_jacobian_matches_fd(learner):
    analytic, fd = fn(learner, P04, "softmax_jacobian"), fn(learner, P04, "softmax_jacobian_fd")
    for z in SEED:
        assert_allclose(call(analytic, z), call(fd, z), atol=1e-7, rtol=0)


@each_learner
def test_p04_ce_loss_correct(learner):
    f = fn(learner, P04, "ce_loss")
    for z, y in SEED_Y + RANDOM04_Y:
        assert_allclose(call(f, z, y), REF04.ce_loss(z, y), atol=1e-12, rtol=1e-9)


@each_learner
def test_p04_ce_loss_stable(learner):
    f = fn(learner, P04, "ce_loss")
    for z, y in EXTREME04_Y:
        assert_allclose(call(f, z, y), REF04.ce_loss(z, y), atol=1e-9, rtol=1e-9)


@each_learner
def test_p04_ce_grad_analytic(learner):
    f = fn(learner, P04, "ce_grad")
    for z, y in SEED_Y + RANDOM04_Y:
        assert_allclose(call(f, z, y), REF04.ce_grad(z, y), atol=1e-7, rtol=0)


@each_learner
def test_p04_ce_grad_fd(learner):
    f = fn(learner, P04, "ce_grad_fd")
    for z, y in SEED_Y + RANDOM04_Y:
        assert_allclose(call(f, z, y), REF04.ce_grad(z, y), atol=1e-7, rtol=0)
    at = [np.asarray(call(f, SEED[0], 0, h), dtype=np.float64) for h in FD_STEPS]
    assert not np.array_equal(at[0], at[1]), "ce_grad_fd does not change with its step"


@each_learner
def test_p04_ce_grad_matches_fd(learner):
    analytic, fd = fn(learner, P04, "ce_grad"), fn(learner, P04, "ce_grad_fd")
    for z, y in SEED_Y:
        assert_allclose(call(analytic, z, y), call(fd, z, y), atol=1e-7, rtol=0)


@each_learner
def test_p04_no_input_mutation(learner):
    for name in P04[3]:
        f = fn(learner, P04, name)
        for args in ([(z,) for z in SEED] if name.startswith("softmax") else SEED_Y):
            mine = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) else a for a in args]
            f(*mine)
            for before, after in zip(args, mine):
                assert_array_equal(after, before, err_msg=f"{name} changed its argument")


# ----------------------------------------------------------------------------- phase-05 / lab-02

@each_learner
def test_p05_implementation_found(learner):
    mod = module(learner, P05)
    missing = [name for name in P05[3] if not callable(getattr(mod, name, None))]
    assert not missing, f"missing functions: {missing}"


@each_learner
def test_p05_logsumexp_correct(learner):
    f = fn(learner, P05, "logsumexp")
    for z in PAGE05 + RANDOM05:
        assert_allclose(call(f, z), REF05.logsumexp(z), atol=1e-12, rtol=1e-12)


@each_learner
def test_p05_logsumexp_stable(learner):
    f = fn(learner, P05, "logsumexp")
    for z in EXTREME05:
        assert_allclose(call(f, z), REF05.logsumexp(z), atol=1e-9, rtol=1e-12)


@each_learner
def test_p05_log_softmax_correct(learner):
    f = fn(learner, P05, "log_softmax")
    for z in PAGE05 + EXTREME05 + RANDOM05:
        assert_allclose(call(f, z), REF05.log_softmax(z), atol=1e-9, rtol=1e-12)


@each_learner
def test_p05_cross_entropy_correct(learner):
    f = fn(learner, P05, "cross_entropy_from_logits")
    for z, y in PAGE05_Y:
        assert_allclose(call(f, z, y), REF05.cross_entropy_from_logits(z, y), atol=1e-9, rtol=1e-12)


@each_learner
def test_p05_logsumexp_shift(learner):
    f = fn(learner, P05, "logsumexp")
    for z in PAGE05 + RANDOM05:
        (shifted,) = REF05.shift(z)
        assert_allclose(call(f, shifted), REF05.plus_shift(call(f, z), z), atol=1e-9, rtol=1e-12)


@each_learner
def test_p05_log_softmax_shift(learner):
    f = fn(learner, P05, "log_softmax")
    for z in PAGE05 + RANDOM05:
        (shifted,) = REF05.shift(z)
        assert_allclose(call(f, shifted), REF05.unchanged(call(f, z), z), atol=1e-9, rtol=1e-12)


@each_learner
def test_p05_no_input_mutation(learner):
    for name in P05[3]:
        f = fn(learner, P05, name)
        for args in ([(z,) for z in PAGE05] if name != "cross_entropy_from_logits" else PAGE05_Y[:6]):
            mine = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) else a for a in args]
            f(*mine)
            for before, after in zip(args, mine):
                assert_array_equal(after, before, err_msg=f"{name} changed its argument")


# ----------------------------------------------------------------------------- deliverables

_NOT_AN_END = re.compile(r"\b(?:e\.g|i\.e|etc|vs|p\. ej|np|cf)\.$", re.IGNORECASE)


def sentences(text: str) -> int:
    """Sentences in prose: code, formulas and TODOs removed; e.g./i.e./1.5e-11/np.exp do not end one."""
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    text = re.sub(r"\$\$.*?\$\$", " X ", text, flags=re.DOTALL)
    text = re.sub(r"\$[^$]*\$|`[^`]*`", " X ", text)
    text = re.sub(r"^\s*TODO.*$", " ", text, flags=re.MULTILINE)
    count, start = 0, 0
    for match in re.finditer(r"[.!?](?=\s|$)", text):
        piece = text[start:match.end()].strip()
        if _NOT_AN_END.search(piece):
            continue
        if re.search(r"[A-Za-zÁÉÍÓÚáéíóúñ]{2,}", piece):
            count += 1
        start = match.end()
    return count


def section(text: str, words: tuple[str, ...]) -> str | None:
    """The body of the first '## …' section whose heading contains one of ``words`` (up to the next '## ')."""
    parts = re.split(r"^(##\s+.*)$", text, flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2]):
        if any(w in heading.lower() for w in words):
            return body
    return None


def deliverable(learner: Path, lab: tuple) -> str:
    path = learner / lab[0] / lab[2]
    assert path.is_file(), f"{path} is missing"
    return path.read_text(encoding="utf-8")


@each_learner
def test_p04_deliverable_found(learner):
    deliverable(learner, P04)


@each_learner
def test_p04_derivation(learner):
    body = section(deliverable(learner, P04), ("derivation", "derivación", "derivacion"))
    assert body is not None, "no ## Derivation / ## Derivación heading"
    assert re.search(r"diag", body) and re.search(r"one.?hot|mathbb\{1\}|1\[|𝟙|delta_\{?y", body), \
        "the derivation does not reach diag(p) - p p^T and p - one_hot(y)"


@each_learner
def test_p04_reflection(learner):
    body = section(deliverable(learner, P04), ("reflection", "reflexión", "reflexion"))
    assert body is not None, "no ## Reflection / ## Reflexión heading"
    assert sentences(body) >= 3, f"reflection has {sentences(body)} sentences, needs 3"


@each_learner
def test_p05_deliverable_found(learner):
    deliverable(learner, P05)


@each_learner
def test_p05_verification(learner):
    body = section(deliverable(learner, P05), ("verification", "verificación", "verificacion", "output", "salida"))
    assert body is not None, "no ## Verification heading"
    assert re.search(r"```.*?\d+\.\d+.*?```", body, flags=re.DOTALL), "no fenced block with the printed values"


@each_learner
def test_p05_reflection(learner):
    body = section(deliverable(learner, P05), ("reflection", "reflexión", "reflexion"))
    assert body is not None, "no ## Reflection / ## Reflexión heading"
    assert sentences(body) >= 3, f"reflection has {sentences(body)} sentences, needs 3"
