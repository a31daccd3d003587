"""Formulas read as mathematics: every notation of a result matches it, and no wrong one does.

The matcher is tried on one formula at a time, with the shipped Phase 04 rubric's notation (its quantities
z, y, p = softmax(z), its results and steps). Each row is a formula as some learner writes it, the results it
states and the steps it shows. Wrong answers that only look like right ones are rows too.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.maths.evaluate import Binding, EvalError, Scope, evaluate
from grader.maths.extract import Piece, candidates
from grader.maths.match import Analysis, NotationError, analyse, build
from grader.maths.syntax import ParseError, parse, parses
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = load_rubric(ROOT / "rubrics" / "phase-04" / "lab-00.yaml")
NOTATION = RUBRIC.notation
JACOBIAN, GRADIENT = "softmax-jacobian", "ce-gradient"
CASE_EQ, CASE_NE, DLDP = ("softmax-jacobian", 0), ("softmax-jacobian", 1), ("ce-gradient", 0)


def read(text: str, kind: str = "math") -> Analysis:
    return analyse([Piece(1, kind, text)], NOTATION)


# (formula, math or text, results it states, steps it shows)
ROWS = [
    # the softmax Jacobian, in component, matrix and mixed notations
    (r"\frac{\partial p_i}{\partial z_j} = p_i(\delta_{ij} - p_j)", "math", {JACOBIAN}, set()),
    (r"\operatorname{diag}(p) - p p^T", "math", {JACOBIAN}, set()),
    (r"\operatorname{diag}(\mathbf{s}) - \mathbf{s}\mathbf{s}^\top", "math", {JACOBIAN}, set()),
    (r"\mathrm{diag}(\mathbf{p}) - \mathbf{p}\mathbf{p}^{\top}", "math", {JACOBIAN}, set()),
    (r"\text{diag}(\boldsymbol{p}) - \boldsymbol{p} \cdot \boldsymbol{p}^{\intercal}", "math", {JACOBIAN}, set()),
    (r"\operatorname{diag}\left(p\right) - p\,p^{T}", "math", {JACOBIAN}, set()),
    (r"diag(p) - p \otimes p", "math", {JACOBIAN}, set()),
    ("diag(p) − p pᵀ", "text", {JACOBIAN}, set()),
    ("diag(p) – p ⋅ p⊤", "text", {JACOBIAN}, set()),
    ("pᵢ(δᵢⱼ − pⱼ)", "text", {JACOBIAN}, set()),
    ("p_i (delta_ij - p_j)", "text", {JACOBIAN}, set()),
    ("p_i*(delta_ij - p_j)", "text", {JACOBIAN}, set()),
    (r"p_{i}\left(\delta_{ij}-p_{j}\right)", "math", {JACOBIAN}, set()),
    (r"S_{i,j}\delta_{j,k} - S_{i,j}S_{i,k}", "math", {JACOBIAN}, set()),
    (r"D_j S_i = S_i(\delta_{ij} - S_j)", "math", {JACOBIAN}, set()),
    (r"\delta_{ij} p_i - p_i p_j", "math", {JACOBIAN}, set()),
    (r"p_j(\delta_{ij} - p_i)", "math", {JACOBIAN}, set()),
    (r"p_k(\delta_{kl} - p_l)", "math", {JACOBIAN}, set()),
    (r"y_k\left(I_{kj} - y_j\right)", "math", {JACOBIAN}, set()),
    ("∂pᵢ/∂zⱼ = pᵢ(δᵢⱼ − pⱼ) (both cases at once)", "text", {JACOBIAN}, set()),
    (r"\boxed{J = \operatorname{diag}(p) - p\,p^{\top}}\qquad\text{(symmetric)}", "math", {JACOBIAN}, set()),
    ("so J = diag(p) − p pᵀ, as claimed", "text", {JACOBIAN}, set()),
    ("Matrix form: J = diag(p) - p p^T", "text", {JACOBIAN}, set()),
    # its steps: the two cases, the quotient rule in exponentials, the log-derivative
    (r"p_i (1 - p_i)", "math", set(), {CASE_EQ}),
    (r"p_i - p_i^2", "math", set(), {CASE_EQ}),
    ("pᵢ(1 − pᵢ)", "text", set(), {CASE_EQ}),
    (r"-p_ip_j", "math", set(), {CASE_NE}),
    (r"-S_i S_j", "math", set(), {CASE_NE}),
    (r"\frac{\delta_{ij} e^{z_i} \sum_k e^{z_k} - e^{z_i} e^{z_j}}{(\sum_k e^{z_k})^2}", "math", set(), {CASE_EQ, CASE_NE}),
    (r"\frac{\partial \log p_i}{\partial z_j} = \delta_{ij} - p_j", "math", set(), {CASE_EQ, CASE_NE}),
    # the cross-entropy gradient, as a component, a vector, with indicators, Kronecker deltas or one-hots
    (r"\frac{\partial L}{\partial z_j} = p_j - \mathbb{1}[j = y]", "math", {GRADIENT}, set()),
    ("p_j − 𝟙[j=y]", "text", {GRADIENT}, set()),
    ("p_j - 1_{j=y}", "text", {GRADIENT}, set()),
    (r"p_j - \mathbb 1\{j = y\}", "math", {GRADIENT}, set()),
    (r"p_j - \mathbb{1}_{\{j=y\}}", "math", {GRADIENT}, set()),
    (r"p_j - \delta_{jy}", "math", {GRADIENT}, set()),
    (r"p_j - \delta_{j,y}", "math", {GRADIENT}, set()),
    (r"p_k - \mathbb{1}[k = y]", "math", {GRADIENT}, set()),
    (r"p_i - \mathbb{I}(i=y)", "math", {GRADIENT}, set()),
    (r"p_j - 1[y = j]", "math", {GRADIENT}, set()),
    (r"p_c - \mathbb{1}[c=y]", "math", {GRADIENT}, set()),
    ("the gradient is p - onehot(y).", "text", {GRADIENT}, set()),
    ("softmax(z) - one_hot(y)", "text", {GRADIENT}, set()),
    ("Softmax(z) — One-Hot(y)", "text", {GRADIENT}, set()),
    (r"\text{softmax}(z) - \text{one\_hot}(y)", "math", {GRADIENT}, set()),
    (r"\mathrm{softmax}(\mathbf{z}) - \mathrm{one\_hot}(y)", "math", {GRADIENT}, set()),
    (r"\sigma(z)_i - y_i", "math", {GRADIENT}, set()),
    (r"S_i - y_i", "math", {GRADIENT}, set()),
    (r"o_j - t_j", "math", {GRADIENT}, set()),
    (r"\hat{y}_i - y_i", "math", {GRADIENT}, set()),
    (r"y_{pred} - y_{true}", "math", {GRADIENT}, set()),
    (r"p - e_y", "math", {GRADIENT}, set()),
    (r"p_i - \delta_{ic}", "math", {GRADIENT}, set()),
    (r"p_{i,k} - \mathbb{1}(y_i = k)", "math", {GRADIENT}, set()),
    (r"-\frac{1}{p_y} p_y (\delta_{yj} - p_j)", "math", {GRADIENT}, {DLDP}),
    ("dL/dz_j = p_j - 1[j = y]", "text", {GRADIENT}, set()),
    (r"\nabla_z L = \operatorname{softmax}(z) - \operatorname{one\_hot}(y)", "math", {GRADIENT}, set()),
    # its steps
    (r"\begin{cases} -\dfrac{1}{p_y} & i = y \\[4pt] 0 & i \neq y \end{cases}", "math", set(), {DLDP}),
    (r"\frac{\partial L}{\partial p_k} = -\frac{y_k}{p_k}", "math", set(), {DLDP}),
    (r"L = -z_y + \log \sum_k e^{z_k}", "math", set(), {DLDP}),
    (r"-\delta_{jk} + \frac{e^{z_j}}{\sum_m e^{z_m}}", "math", set(), {DLDP}),  # in exponentials: a step, not the result
    # notations of other fields: conditional probabilities, layer labels, upper indices, MATLAB indexing, typesetting
    (r"p(k \mid \mathbf z)\bigl(\delta_{km} - p(m \mid \mathbf z)\bigr)", "math", {JACOBIAN}, set()),
    (r"p(m \mid \mathbf x) - \delta_{mg}", "math", {GRADIENT}, set()),
    ("P(y=j|x) - 1[j = y]", "text", {GRADIENT}, set()),
    (r"a^{[L]}_i (\delta_{ij} - a^{[L]}_j)", "math", {JACOBIAN}, set()),
    (r"\text{diag}(a^{[L]}) - a^{[L]} a^{[L]T}", "math", {JACOBIAN}, set()),
    (r"\operatorname{diag}(\mathbf{p}) - \mathbf{p}\mathbf{p}^{\mathsf{T}}", "math", {JACOBIAN}, set()),
    (r"\operatorname{diag}(p) - p\,p^{\mathrm T}", "math", {JACOBIAN}, set()),
    (r"diag(p) - p p^{\rm T}", "math", {JACOBIAN}, set()),
    (r"\operatorname{diag}(p) - p p^\mathsf{T}", "math", {JACOBIAN}, set()),
    (r"q^a\left(\delta^a_c - q^c\right)", "math", {JACOBIAN}, set()),
    (r"q^c - \delta^y_c", "math", {GRADIENT}, set()),
    (r"p^i(1 - p^i)", "math", set(), {CASE_EQ}),
    ("p(i)*(delta(i,j) - p(j))", "text", {JACOBIAN}, set()),
    ("p(j) - delta(j,y)", "text", {GRADIENT}, set()),
    ("dL/dp(y) = -1/p(y)", "text", set(), {DLDP}),
    (r"\sigma_j(\mathbf z) - \delta_{jc}", "math", {GRADIENT}, set()),
    (r"\sigma_i(1 - \sigma_i)", "math", set(), {CASE_EQ}),  # σ_i times (1 − σ_i), not σ applied to it
    (r"p - \mathbf{1}_y", "math", {GRADIENT}, set()),
    (r"\frac{\partial L}{\partial \mu_c} = -\mu_c^{-1}", "math", set(), {DLDP}),
    (r"L = -z_y + \log\sum\limits_{k=1}^{K} e^{z_k}", "math", set(), {DLDP}),
    (r"\phi_b - [b = y^\star]", "math", {GRADIENT}, set()),
    (r"-\tfrac{1}{\phi_{y^*}}", "math", set(), {DLDP}),
    # steps said in words
    ("for i ≠ j it is minus p_i times p_j.", "text", set(), {CASE_NE}),
    ("its derivative with respect to p_y is minus one over p_y", "text", set(), {DLDP}),
    ("la derivada respecto de p_y es menos uno entre p_y", "text", set(), {DLDP}),
    # wrong answers that only look like right ones
    ("it is p_i times p_j", "text", set(), set()),  # said in words, the sign is still missing
    (r"p - \mathbf{1}_K", "math", set(), set()),  # K ones, not the one-hot of y
    (r"p(k \mid \mathbf z)\bigl(\delta_{km} - p(k \mid \mathbf z)\bigr)", "math", set(), set()),
    (r"y - p", "math", set(), set()),
    (r"diag(p - pp^T)", "math", set(), set()),
    (r"-(p_j - 1[j=y])", "math", set(), set()),
    (r"2p_j - 1[j=y]", "math", set(), set()),
    (r"S_i(1 - S_i)", "math", set(), {CASE_EQ}),  # the diagonal alone is a step, not the Jacobian
    (r"p_i \delta_{ij} - p_j", "math", set(), set()),
    (r"p_i(\delta_{ij} - p_i)", "math", set(), set()),
    (r"(p_j - 1[j=y])/p_y", "math", set(), set()),
    (r"g=\log p - e_y", "math", set(), set()),
    (r"J=\operatorname{diag}(p)-pp^T-I", "math", set(), set()),
    (r"p_i(\delta_{ij}-p_j)^2", "math", set(), set()),
    (r"\partial p_i/\partial z_j = -p_i(\delta_{ij}-p_j)", "math", set(), set()),
    (r"diag(p) - p^T p", "math", set(), set()),  # a scalar where the outer product belongs (column vectors)
    ("so it is log p_j - 1[j=y]", "text", set(), set()),
    (r"\frac{\partial L}{\partial z_j}", "math", set(), set()),  # the question is not the answer
    (r"L = -\log p_y", "math", set(), set()),  # the loss itself is not a step of its derivative
]


@pytest.mark.parametrize(("text", "kind", "results", "steps"), ROWS, ids=[r[0][:50] for r in ROWS])
def test_a_formula_states_what_it_means(text: str, kind: str, results: set[str], steps: set[tuple[str, int]]) -> None:
    found = read(text, kind)
    assert set(found.results) == results, found.results
    assert set(found.steps) == steps, found.steps


def test_near_misses_are_named() -> None:
    """A flipped sign, a step with its sign flipped, and a wrong answer given as one (the end of an equation)."""
    assert [kind for _, kind in read("y - p").near[GRADIENT]] == ["sign"]
    assert [kind for _, kind in read(r"\frac{\partial p_i}{\partial z_j} = p_i p_j").near[f"{JACOBIAN}#1"]] == ["sign"]
    assert [kind for _, kind in read(r"J = \operatorname{diag}(p) + p p^\top").near[JACOBIAN]] == ["other"]
    # a correct line whose equation ends elsewhere is not the learner's result
    ends_wrong = read(r"\frac{\partial L}{\partial z_j} = -\frac{1}{p_y} p_y (\delta_{yj} - p_j) = p_j - 1")
    assert GRADIENT not in ends_wrong.results and [k for _, k in ends_wrong.near[GRADIENT]] == ["other"]
    assert DLDP in ends_wrong.steps
    assert DLDP not in read(r"\frac{1}{p_y} p_y (\delta_{yj} - p_j)").steps  # the sign of a step counts
    # an intermediate derivative in exponentials is a step on the way, never a wrong answer
    assert GRADIENT not in read(r"\partial Z / \partial z_j = \exp(z_j)").near


@pytest.mark.parametrize(("document", "states"), [
    # the learner's own definitions decide what a letter means
    ([("math", r"o = \operatorname{softmax}(z)"), ("math", r"o_j - t_j")], True),
    ([("math", r"S_i = \frac{e^{z_i}}{\sum_k e^{z_k}}"), ("math", r"S_i - y_i")], True),
    ([("text", "where $t$ is the one-hot target and $a$ the output"), ("math", "a_j - t_j")], True),
    # y is the softmax output in some books: the Jacobian written in y says so, and t is then the label
    ([("math", r"\operatorname{diag}(y) - y y^T"), ("math", "y - t")], True),
    # p is the softmax output, by the Jacobian: y − p is the sign flipped, whatever y could otherwise be
    ([("math", r"\operatorname{diag}(p) - p p^T"), ("math", "y - p")], False),
    ([("math", "y - p")], False),
    # a row vector only when the text says so
    ([("text", "Here $s$ is a row vector (1 × n)."), ("math", r"\operatorname{diag}(s) - s^T s")], True),
])
def test_bindings_follow_the_document(document: list[tuple[str, str]], states: bool) -> None:
    pieces = [Piece(k + 1, kind, text) for k, (kind, text) in enumerate(document)]
    prose = " ".join(text for kind, text in document if kind == "text")
    found = analyse(pieces, NOTATION, prose)
    wanted = GRADIENT if any("t" in t or "y - p" in t or "y_i" in t for _, t in document[-1:]) else JACOBIAN
    if document[-1][1].startswith(r"\operatorname{diag}(s)"):
        wanted = JACOBIAN
    assert (wanted in found.results) is states, (found.results, found.near)


def test_the_row_vector_convention_needs_the_text() -> None:
    assert JACOBIAN not in read(r"\operatorname{diag}(s) - s^T s").results


@pytest.mark.parametrize("text", [
    "1.1e-11", "z = [2, 1, 0.5, -1, 0]", "i = j", "", "$", r"\frac{", "((((", "a" * 500, r"\unknown{x}",
])
def test_what_is_not_a_formula_is_skipped_quietly(text: str) -> None:
    found = read(text)
    assert not found.results and not found.steps


def test_a_hostile_document_is_read_in_bounded_time() -> None:
    """1 MB of nested braces, 10,000 formulas, very long lines: the reading stops within its budget."""
    hostile = [
        Piece(1, "math", "{" * 500_000 + "}" * 500_000),
        Piece(2, "text", " ".join(f"$p_{{{k}}} - y_{{{k}}}$" for k in range(10_000))),
        Piece(3, "text", "p" * 300_000),
        Piece(4, "math", r"\frac{" * 20_000),
        Piece(5, "math", "(" * 100_000),
    ]
    started = time.perf_counter()
    found = analyse(hostile, NOTATION, seconds=2.0)
    assert time.perf_counter() - started < 8.0
    assert found.read <= found.total


def test_candidate_extraction_is_linear() -> None:
    def cost(n: int) -> float:
        text = "$a$ " * n + "\\(" * n + "`" * n
        started = time.perf_counter()
        candidates([Piece(1, "text", text)])
        return time.perf_counter() - started

    cost(2_000)  # twice the input, less than three times the time; sizes past the warm-up that made 4,000 noisy
    small, large = min(cost(8_000) for _ in range(3)), min(cost(16_000) for _ in range(3))
    assert large < 3 * small + 0.05


formula_pieces = st.sampled_from(
    [
        "\\frac", "{", "}", "^", "_", "\\delta", "delta", " ", "\\", "\\\\", "one", "-", "hot", "one-hot", "−", "ᵀ",
        "\\top", "\\mathbb", "𝟙", "[", "]", "(", ")", "p", "i", "j", "y", "z", "=", "<", "!", "|", "\\,", "\\left",
        "\\right", "Σ", "\\sum", "\\text", "\\begin{cases}", "&", "e^", "\\log", "softmax", "diag", "ᵢ", "*", "/",
    ]
)  # fmt: skip


@settings(max_examples=300, database=None, deadline=None)
@given(st.lists(formula_pieces, max_size=25).map("".join) | st.text(max_size=60))
def test_any_text_is_read_or_skipped(text: str) -> None:
    for kind in ("math", "text"):
        found = read(text, kind)
        assert found.read <= found.total
    for tree in parses(text, NOTATION.vocabulary):
        assert tree is not None


def test_a_notation_error_names_its_key() -> None:
    with pytest.raises(NotationError) as error:
        build({"quantities": {"z": {"sample": "vector"}}, "results": {"r": "q_i"}}, RUBRIC.reference)
    assert error.value.where == ("results", "r", "expression") and " — " in str(error.value)


def test_a_rubric_function_is_called_on_plain_numbers() -> None:
    tree = parse("softmax(z)", vocabulary=NOTATION.vocabulary)
    sample = NOTATION.samples[0]
    value = evaluate(tree, NOTATION.scope(sample, Binding((("z", "z"),))))
    assert np.allclose(value.data.ravel(), RUBRIC.reference.softmax(sample.vectors["z"]))
    with pytest.raises(EvalError):
        evaluate(parse("q_i"), Scope(sample, Binding()))
    with pytest.raises(ParseError):
        parse("p_i (")


@pytest.mark.parametrize(("formula", "reads"), [
    ("σ'(z) = σ(z)(1 − σ(z))", True), ("s(1-s)", True), ("y(1-y)", True), ("$$\\frac{d}{dx}\\sigma(x) = \\sigma(x)(1-\\sigma(x))$$", True),
    # what only collapses to σ(1 − σ) on a single number: a softmax Jacobian's forms
    ("$$p_i - p_i \\sum_j p_j$$", False), ("$$p_i(\\delta_{ij} - p_j)$$", False), ("$$\\operatorname{diag}(p) - p\\,p^{\\top}$$", False),
    ("$$\\sigma(z)^2$$", False),
])
def test_a_lab_of_one_number_reads_its_formulas_as_numbers(formula: str, reads: bool) -> None:
    """``sample: scalar`` (the sigmoid lab): products of the value read elementwise; vector forms are no reading."""
    from grader.deliverable import parse_text
    from grader.maths.match import analyse
    from grader.rubric import load_rubric

    rubric = load_rubric(Path(__file__).resolve().parent.parent / "rubrics" / "phase-04" / "lab-01.yaml")
    document = parse_text("# Derivation\n\n" + formula + "\n", Path("lab.md"), Path("."))
    found = analyse(document.pieces, rubric.notation, document.prose).results
    assert bool(found.get("sigmoid-derivative")) is reads
