"""The built-in cause detectors, one row per recognisable mistake (and rows where none applies)."""

from __future__ import annotations

import numpy as np
import pytest

from grader.diagnose import compare, likely_cause
from grader.model import Cause
from grader.runner import Observed

P = np.array([0.1, 0.2, 0.3, 0.4])
J = np.diag(P) - np.outer(P, P)
A = np.arange(9.0).reshape(3, 3)


def _cause(expected: np.ndarray, observed: np.ndarray, dtype: str = "float64", causes: tuple[Cause, ...] = ()) -> str | None:
    diff = compare(expected, observed, 1e-9, 0.0)
    assert not diff.ok
    return likely_cause(causes, None, expected, Observed(observed, dtype), diff, ())


CASES = [
    ("overflow to NaN", P, np.array([np.nan, 0.2, 0.3, 0.4]), "float64", "is NaN where the true value is finite"),
    ("log of zero", P, np.array([-np.inf, 0.2, 0.3, 0.4]), "float64", "is infinite where the true value is finite"),
    ("diagonal only", J, np.diag(J).copy(), "float64", "only the diagonal of the matrix is there"),
    ("divided by n", P, P / 4, "float64", "divided by n = 4 (a factor of 1/n)"),
    ("scalar for matrix", J, np.array(0.3), "float64", "a single number where an array of shape (4, 4) belongs"),
    ("column vector", P, P.reshape(4, 1), "float64", "only the shape differs"),
    ("other shape", P, np.ones(3), "float64", "shape (3,), but shape (4,)"),
    ("float32 dtype", P, P.astype(np.float32).astype(np.float64), "float32", "computed in float32"),
    ("float32 values", P * 1.2345678, (P * 1.2345678).astype(np.float32).astype(np.float64), "float64", "float32 arithmetic"),
    ("sign", P - np.eye(4)[1], -(P - np.eye(4)[1]), "float64", "sign is flipped"),
    ("transposed", A, A.T, "float64", "transposed"),
    ("not symmetric", J, J + np.triu(np.full((4, 4), 0.01), 1), "float64", "not symmetric"),
    ("scaled", P, 2 * P, "float64", "same factor ≈ 2"),
    ("offset", P, P + 3.0, "float64", "same constant ≈ 3"),
    ("index shift", P - np.eye(4)[1], P - np.eye(4)[2], "float64", "only two entries are wrong"),
]


@pytest.mark.parametrize(("name", "expected", "observed", "dtype", "words"), CASES, ids=[c[0] for c in CASES])
def test_builtin_detectors(name: str, expected: np.ndarray, observed: np.ndarray, dtype: str, words: str) -> None:
    cause = _cause(expected, observed, dtype)
    assert cause is not None and words in str(cause), cause


def test_no_cause_for_an_unrecognisable_error() -> None:
    rng = np.random.default_rng(0)
    assert _cause(P, P + rng.normal(0, 0.01, size=4)) is None


def test_a_rubric_cause_says_it_in_the_labs_words_and_goes_first() -> None:
    said = _cause(P, -P, causes=(Cause(when="sign-flipped", say="softmax(z) − one_hot(y), not the reverse"),))
    assert said == "softmax(z) − one_hot(y), not the reverse"


def test_compare_reports_the_worst_entry() -> None:
    diff = compare(A, A + np.array([[0, 0, 0], [0, 0, 0.5], [0, 0, 0]]), 1e-9, 0.0)
    assert diff.reason == "value" and diff.where == (1, 2) and diff.max_abs == pytest.approx(0.5)
    assert diff.expected_at == 5.0 and diff.observed_at == 5.5
    assert compare(A, A + 1e-12, 1e-9, 0.0).ok


def _many(truth: list[float], got: list[float]) -> str | None:
    failures = [(np.array(t), Observed(np.array(g), "float64")) for t, g in zip(truth, got)]
    expected, observed = failures[0]
    return likely_cause((), None, expected, observed, compare(expected, observed.array, 1e-12, 0.0), (), failures)


@pytest.mark.parametrize(("name", "truth", "got", "words"), [
    # -log(p + 1e-7) on three inputs: exp(-L) - p is the same ε every time
    ("epsilon in the log", [0.5, 2.0, 7.0], [-np.log(np.exp(-0.5) + 1e-7), -np.log(np.exp(-2.0) + 1e-7),
                                             -np.log(np.exp(-7.0) + 1e-7)], "−log(p + ε) with ε ≈ 1e-07"),
    # clip(p, 1e-7, 1 - 1e-7): a certain class costs ε, a far-behind one is capped at -log ε
    ("clipped probability", [0.0, 1000.0], [-np.log(1 - 1e-7), -np.log(1e-7)], "clipped to [ε, 1 − ε] with ε ≈ 1e-07"),
])
def test_detectors_that_read_every_failing_input(name: str, truth: list[float], got: list[float], words: str) -> None:
    cause = _many(truth, got)
    assert cause is not None and words in str(cause), cause


def test_a_loss_off_by_unrelated_amounts_is_no_epsilon() -> None:
    assert _many([0.5, 2.0, 7.0], [0.4, 2.3, 6.1]) is None
