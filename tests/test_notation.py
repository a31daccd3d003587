from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.notation import (
    count_sentences,
    find_formula,
    heading_matches,
    normalise_formula,
    normalise_heading,
    sentences,
)

EQUIVALENT_FORMULAS = {
    "softmax jacobian": [
        "diag(p) - p p^T",
        r"\operatorname{diag}(p) - pp^\top",
        "diag(p) − p pᵀ",
        r"\mathrm{diag}(\mathbf{p}) - \mathbf{p}\mathbf{p}^{\top}",
        "diag(p) - p·pᵀ",
        r"\text{diag}(\boldsymbol{p}) - \boldsymbol{p} \cdot \boldsymbol{p}^{\intercal}",
        "diag(p) – p ⋅ p⊤",
        r"\operatorname{diag}\left(p\right) - p\,p^{T}",
    ],
    "softmax derivative": [
        r"p_i(\delta_{ij} - p_j)",
        "pᵢ(δᵢⱼ − pⱼ)",
        "p_i (delta_ij - p_j)",
        r"p_{i}\left(\delta_{ij}-p_{j}\right)",
        r"p\_i(\delta\_{ij} - p\_j)",
    ],
    "cross-entropy gradient": [
        r"p_j - \mathbb{1}[j = y]",
        "p_j − 𝟙[j=y]",
        "p_j - 1_{j=y}",
        "p_j - 1{j=y}",
        r"p_j - \mathbb 1\{j = y\}",
    ],
    "softmax minus one-hot": [
        "softmax(z) - one_hot(y)",
        "softmax(z) − onehot(y)",
        r"\text{softmax}(z) - \text{one\_hot}(y)",
        "softmax(z) - one-hot(y)",
        "Softmax(z) — One-Hot(y)",
        r"\mathrm{softmax}(\mathbf{z}) - \mathrm{one\_hot}(y)",
    ],
    "partial derivative": [
        r"\frac{\partial L}{\partial z_j}",
        "∂L/∂z_j",
        r"\dfrac{\partial L}{\partial z_{j}}",
    ],
    "sum": [r"\sum_k \exp(z_k)", "Σ_k exp(z_k)", "∑ₖ exp(zₖ)"],
}

EQUIVALENT_PAIRS = [
    pytest.param(first, other, id=f"{name}-{index}")
    for name, forms in EQUIVALENT_FORMULAS.items()
    for index, (first, other) in enumerate(itertools.combinations(forms, 2))
]

DIFFERENT_PAIRS = [
    ("diag(p) - p", "diag(p)-pp^T"),
    ("diag(p) + p p^T", "diag(p) - p p^T"),
    ("p_j + 1[j=y]", "p_j - 1[j=y]"),
    ("p_i(delta_ij + p_j)", "p_i(delta_ij - p_j)"),
    ("softmax(z) + one_hot(y)", "softmax(z) - one_hot(y)"),
    (r"\sigma(z)", r"\sum(z)"),
    (r"\pi", "p_i"),
    ("a <= b", "a < b"),
]


@pytest.mark.parametrize(("first", "other"), EQUIVALENT_PAIRS)
def test_notations_of_one_formula_normalise_alike(first: str, other: str) -> None:
    assert normalise_formula(first) == normalise_formula(other)


@pytest.mark.parametrize(("first", "other"), DIFFERENT_PAIRS)
def test_different_formulas_stay_different(first: str, other: str) -> None:
    assert normalise_formula(first) != normalise_formula(other)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("diag(p) - p p^T", "diagp-ppt"),
        ("p - onehot", "p-onehot"),
        ("a − b", "a-b"),
        (r"\exp(z) \leq 1", "expz≤1"),
        ("$x$ and $$y$$", "xandy"),
        ("", ""),
    ],
)
def test_canonical_form(text: str, expected: str) -> None:
    assert normalise_formula(text) == expected


@pytest.mark.parametrize(
    ("text", "alternatives", "expected"),
    [
        ("so J = diag(p) − p pᵀ, as claimed", ["diag(p) - pp^T"], "diag(p) - pp^T"),
        (
            r"We get $\frac{\partial L}{\partial z_j} = p_j - \mathbb{1}[j=y]$.",
            ["softmax(z) - one_hot(y)", "p_j - 1[j = y]"],
            "p_j - 1[j = y]",
        ),
        ("J = diag(p) - p", ["diag(p) - pp^T"], None),
        ("g = p_j + 1[j=y]", ["p_j - 1[j=y]"], None),
        ("nothing here", [], None),
        ("anything", ["", "   ", "{}"], None),
        ("p - onehot(y)", ["p-onehot"], None),  # a fragment of an expression is not the expression
        ("the gradient is p - onehot(y).", ["p - onehot(y)"], "p - onehot(y)"),
        ("so it is log p_j - 1[j=y]", ["p_j - 1[j=y]"], None),
        # index letters are names: any consistent renaming is the same result
        (r"$p_k - \mathbb{1}[k = y]$", ["p_j - 1[j=y]"], "p_j - 1[j=y]"),
        (r"$p_i - \mathbb{I}(i=y)$", ["p_j - 1[j=y]"], "p_j - 1[j=y]"),
        (r"$p_j - 1[y = j]$", ["p_j - 1[j=y]"], "p_j - 1[j=y]"),
        (r"$p_j(\delta_{ij} - p_i)$", [r"p_i(\delta_{ij} - p_j)"], r"p_i(\delta_{ij} - p_j)"),
        (r"$p_k(\delta_{kl} - p_l)$", [r"p_i(\delta_{ij} - p_j)"], r"p_i(\delta_{ij} - p_j)"),
        (r"$p_j - \delta_{j,y}$", [r"p_j - \delta_{yj}"], r"p_j - \delta_{yj}"),
        # grouping is meaning: these are wrong answers that only look alike
        (r"$p_i \delta_{ij} - p_j$", [r"p_i(\delta_{ij} - p_j)"], None),
        (r"$\operatorname{diag}(p - p p^T)$", ["diag(p) - p p^T"], None),
        (r"$p_i(\delta_{ij} - p_i)$", [r"p_i(\delta_{ij} - p_j)"], None),
        # a whole expression, not a piece of a wrong one
        (r"$\partial L/\partial z_j = -(p_j - \mathbb{1}[j=y])$", ["p_j - 1[j=y]"], None),
        (r"$2p_j - 1[j=y]$", ["p_j - 1[j=y]"], None),
        (r"$(p_j - 1[j=y])/p_y$", ["p_j - 1[j=y]"], None),
        (r"$g=\log p - e_y$", ["p - e_y"], None),
        (r"$J=\operatorname{diag}(p)-pp^T-I$", ["diag(p) - pp^T"], None),
        (r"$p_i(\delta_{ij}-p_j)^2$", [r"p_i(\delta_{ij} - p_j)"], None),
        (r"$\partial p_i/\partial z_j = -p_i(\delta_{ij}-p_j)$", [r"p_i(\delta_{ij} - p_j)"], None),
        (r"$p_j - \mathbb{1}_{\{j=y\}}$", ["p_j - 1[j=y]"], "p_j - 1[j=y]"),
        (r"$p_c - \mathbb{1}[c=y]$", ["p_j - 1[j=y]"], "p_j - 1[j=y]"),
        (r"$$\boxed{J = \operatorname{diag}(p) - p\,p^{\top}}\qquad\text{(symmetric)}$$", ["diag(p) - pp^T"], "diag(p) - pp^T"),
    ],
)
def test_find_formula(text: str, alternatives: list[str], expected: str | None) -> None:
    assert find_formula(text, alternatives) == expected


formula_pieces = st.sampled_from(
    [
        "\\frac", "{", "}", "^", "_", "\\delta", "delta", "del", "ta", " ", "\\", "\\\\",
        "one", "-", "hot", "one-hot", "−", "ᵀ", "\\top", "\\mathbb", "𝟙", "[", "]", "(", ")",
        "p", "i", "j", "=", "<", ">", "!", "|", "\\|", "\\,", "\\left", ".", "\\right",
        "Σ", "\\Sigma", "\\sum", "e\u0301", "\u0301", "İ", "$", "\\text", "ﬁ", "\\begin{a}",
    ]
)  # fmt: skip


@settings(max_examples=400, database=None, deadline=None)
@given(st.lists(formula_pieces, max_size=20).map("".join) | st.text(max_size=40))
def test_normalise_formula_is_idempotent(text: str) -> None:
    once = normalise_formula(text)
    assert normalise_formula(once) == once


SENTENCE_COUNTS = [
    ("The error was 1.5e-11, i.e. tiny. I used np.exp here. TODO", 2),
    ("...", 0),
    ("…", 0),
    ("TODO. TODO. TODO.", 0),
    ("", 0),
    ("One two three.", 1),
    ("Too short. Way short.", 0),
    ("The derivation was mechanical. I got stuck on the sign. It clicked at the end.", 3),
    ("It felt mechanical! Where did I get stuck? On the i ≠ j case, mostly.", 3),
    ("I compared it with the lookup, e.g. in the slides, and it matched.", 1),
    ("We use logs (cf. Eq. 3) and exponentials (see Fig. 2) throughout.", 1),
    ("Accuracy was approx. 0.98 vs. 0.97 for the baseline model.", 1),
    ("The value 3.14 is pi and scipy.special.logsumexp helps a lot.", 1),
    ("I thought... maybe the sign was wrong. It was not wrong at all.", 2),
    ("I tried the derivation by hand… It finally worked out fine.", 2),
    ("I used numpy, scipy etc. and nothing more here. It was fine overall.", 2),
    ("I used numpy, scipy etc. It was fine overall. Really quite fine.", 3),
    ("It is the same thing. it is the same thing. IT IS THE SAME   THING!", 1),
    ("[your text here]. [Write your reflection here.] <fill this in later please>", 0),
    ("Fill in your reflection here. Lorem ipsum dolor sit amet.", 0),
    ("FIXME write the reflection. TBD later on today. xxx xxx xxx.", 0),
    ("TODO: write three sentences about it.", 0),
    ("Gradients vanish here.\n\nNo period in this paragraph\n\nAnd one more here", 3),
    ("He said “it works.” Then we checked the code again. Done it twice now.", 3),
    ("**The derivation was hard.** The code was easy to write. The rest was fine.", 3),
    # Spanish
    (
        "La derivación fue mecánica al principio. ¿Dónde me atasqué? "
        "En el signo del término cruzado, p. ej. cuando i ≠ j.",
        3,
    ),
    ("¡Fue muy revelador para mí! Me atasqué con la delta de Kronecker. Al final salió.", 3),
    ("Todo salió bien en la derivación. Todo fue muy claro al final. Nada más que decir.", 3),
    ("Me queda mucho por hacer aquí. Por hacer esto aprendí bastante hoy. Pendiente.", 2),
    ("Pendiente: escribir la reflexión. Por hacer. [escribe aquí tu reflexión]", 0),
    ("El error fue de aprox. 1e-10, es decir, mínimo. Usé np.exp y np.log en el código.", 2),
    ("Vimos la Ec. 2 y la Fig. 3 del libro. Luego lo comprobé con diferencias finitas.", 2),
]


@pytest.mark.parametrize(("text", "expected"), SENTENCE_COUNTS)
def test_count_sentences(text: str, expected: int) -> None:
    assert count_sentences(text) == expected, sentences(text)


def test_sentences_are_trimmed_and_whitespace_collapsed() -> None:
    text = "  The derivation was\n  mechanical at first.   I got stuck on the sign. "
    assert sentences(text) == [
        "The derivation was mechanical at first.",
        "I got stuck on the sign.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Part A — Derivation", "part a derivation"),
        ("  Parte A: Derivación (en papel)  ", "parte a derivacion en papel"),
        ("REFLEXIÓN", "reflexion"),
        ("🇪🇸 Reflexión…", "reflexion"),
        ("Verificación—numérica", "verificacion numerica"),
        ("", ""),
    ],
)
def test_normalise_heading(text: str, expected: str) -> None:
    assert normalise_heading(text) == expected


@pytest.mark.parametrize(
    ("heading", "synonyms", "expected"),
    [
        ("Derivations", ["derivation"], "derivation"),
        ("Parte A — Derivación", ["derivacion"], "derivacion"),
        ("Parte A — Derivación", ["derivación"], "derivación"),
        ("REFLEXIÓN", ["reflexion"], "reflexion"),
        ("Reflexiones finales", ["reflexión"], "reflexión"),
        ("Part A: paper work", ["part a"], "part a"),
        ("The part about sums", ["part a"], None),
        ("Reflections", ["derivation", "reflection"], "reflection"),
        ("Reflection", ["", "reflection"], "reflection"),
        ("Verification output", ["verify"], None),
        ("Misc", [], None),
        ("", ["reflection"], None),
    ],
)
def test_heading_matches(heading: str, synonyms: list[str], expected: str | None) -> None:
    assert heading_matches(heading, synonyms) == expected


@settings(max_examples=200, database=None, deadline=None)
@given(st.text(max_size=60))
def test_text_functions_accept_any_text(text: str) -> None:
    assert normalise_heading(normalise_heading(text)) == normalise_heading(text)
    assert count_sentences(text) == len(sentences(text)) >= 0
    heading_matches(text, [text, "a"])
    find_formula(text, [text])


@pytest.mark.parametrize(
    "text",
    ["{" * 100_000, "[" * 100_000, "<" * 100_000, "a. " * 40_000, "a... b " * 20_000,
     "p. " * 40_000, "\\frac{" * 20_000, "\\frac{a}{" * 20_000],
    ids=["braces", "brackets", "angles", "periods", "ellipses", "p-dot", "frac-open", "frac-half"],
)  # fmt: skip
def test_adversarial_text_takes_linear_time(text: str) -> None:
    started = time.perf_counter()
    count_sentences(text)
    normalise_formula(text)
    assert time.perf_counter() - started < 2.0
