"""Fuzzing with hypothesis: the rubric loader and the deliverable checks never fail with anything but their
documented errors.

``load_rubric`` either returns a Rubric or raises RubricError whose text is one line naming the file and
saying what to do; it is fed the bundled rubric with random edits (values replaced by random YAML values,
keys removed, unknown keys added), random YAML documents and random bytes. The deliverable is parsed from
random Markdown and Unicode and every check of the real rubric is run on it: each returns a result (never
raises) with a score between 0 and its points; parsing raises nothing but SubmissionError.

The runs are derandomised (the same examples every run, no example database), so CI is reproducible.
"""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.checks import Context, run_check
from grader.deliverable import parse_deliverable
from grader.errors import RubricError, SubmissionError
from grader.model import Rubric, Status
from grader.rubric import KINDS, load_rubric

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "rubrics" / "phase-04" / "lab-00.yaml"
BASE = yaml.safe_load(GOOD.read_text(encoding="utf-8"))

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Words the loader looks for, so random edits often reach deep validation rather than stop at the first key.
WORDS = sorted({
    *BASE, *KINDS, "id", "kind", "title", "points", "acceptance", "hidden", "requires", "causes", "when", "say",
    "function", "functions", "inputs", "atol", "rtol", "sums_to", "partial", "property", "transform", "relate",
    "headings", "formulas", "min_sentences", "code_block", "code_pattern", "images", "args", "product", "cases",
    "generate", "reference", "step_arg", "default_step", "softmax", "softmax_jacobian", "ce_grad", "seed", "seed-y",
    "random", "hidden_logits", "symmetric", "finite", "unmutated", "review", "nonfinite", "phase-04/lab-00",
    "phase-04", "lab_00_reference.py", "1.0e-7", "", "..", "[", "*", "(", "reflection", "jacobian-analytic",
})

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300) | st.floats()
           | st.text(max_size=12) | st.sampled_from(WORDS))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), inner, max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def rubric_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-rubric")
    for module in ("lab_00_reference.py", "lab_00_helpers.py", "lab_00_given.py"):
        shutil.copy(GOOD.parent / module, folder / module)
    return folder


def _places(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside the document, the root included."""
    found = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _places(value, at + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _places(value, at + (i,))
    return found


def _get(node: Any, at: tuple[Any, ...]) -> Any:
    for key in at:
        node = node[key]
    return node


@st.composite
def edited_rubrics(draw: st.DrawFn) -> Any:
    """The bundled rubric with one to four random edits."""
    document = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        places = _places(document)
        at = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if not at:
            if action == "replace":
                document = draw(values)
            continue
        parent, key = _get(document, at[:-1]), at[-1]
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(WORDS) | st.text(max_size=6))] = draw(values)
        else:
            parent.insert(key, draw(values))
    return document


def _loads_or_says_where(path: Path) -> Rubric | None:
    try:
        return load_rubric(path)
    except RubricError as error:
        message = str(error)
        assert "\n" not in message and message.startswith(str(path)), message
        assert " — " in message, f"no 'what to do' in: {message}"
        return None


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


@FUZZ
@given(document=edited_rubrics())
def test_an_edited_rubric_loads_or_is_one_rubric_error(rubric_dir: Path, document: Any) -> None:
    path = rubric_dir / "lab-00.yaml"
    path.write_text(_dump(document), encoding="utf-8")
    rubric = _loads_or_says_where(path)
    if rubric is not None:
        assert all(math.isfinite(c.points) and c.points >= 0 for c in rubric.checks)


@FUZZ
@given(document=values)
def test_any_yaml_document_loads_or_is_one_rubric_error(rubric_dir: Path, document: Any) -> None:
    path = rubric_dir / "random.yaml"
    path.write_text(_dump(document), encoding="utf-8")
    _loads_or_says_where(path)


yaml_pieces = st.sampled_from([
    "lab: ", "checks:", "\n", "  ", "- ", ": ", "{", "}", "[", "]", "&a ", "*a", "*b", "!!python/object:os.system ",
    "!!binary ", "? ", "|", ">", "'", '"', "#", "---", "...", "%YAML 1.1", "\t", "\x00", "\x85", "\ufeff", "é", "1e-7",
    ".nan", "~", "<<: *a", "kind: compare", "points: 2", "id: x",
])  # fmt: skip


@FUZZ
@given(content=st.lists(yaml_pieces, max_size=30).map(lambda p: "".join(p).encode("utf-8", "surrogatepass"))
       | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))
       | st.binary(max_size=300))
def test_any_bytes_load_or_are_one_rubric_error(rubric_dir: Path, content: bytes) -> None:
    path = rubric_dir / "bytes.yaml"
    path.write_bytes(content)
    _loads_or_says_where(path)


def test_an_alias_bomb_is_refused_quickly(rubric_dir: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = rubric_dir / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RubricError, match="more than 100000 values"):
        load_rubric(path)


# ----------------------------------------------------------------------------- the deliverable checks

@pytest.fixture(scope="module")
def rubric() -> Rubric:
    return load_rubric(GOOD)


markdown_pieces = st.sampled_from([
    "# ", "## ", "### ", "Derivation", "Derivación", "Reflection", "Reflexión", "Verification", "Part B",
    "\n", "\n\n", " ", "    ", "*", "_", "`", "```", "```math", "```text\n", "~~~", "$", "$$", "\\frac{a}{b}",
    "p_i(\\delta_{ij} - p_j)", "diag(p) - p p^T", "p_j - 1[j=y]", "softmax(z) - onehot(y)", "∂", "ᵀ", "−", "δᵢⱼ",
    "[", "]", "(", ")", "!", "![a](", "photo.jpg", "../", "<img src=", '"', "'", ">", "<", "|", "---", "-", "1.",
    "\\", "&amp;", "<!--", "-->", "\r\n", "\r", "e.g.", "i.e.", "1.5e-11", "np.exp", "TODO", "...", "It works.",
    "The gradient is correct. ", "max_err = 1e-11", "def f():", "é", "\ufeff", "\u200b", "\t", "%00", "=",
])  # fmt: skip


@pytest.fixture(scope="module")
def learner_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-learner")
    (root / "phase-04").mkdir()
    (root / "phase-04" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not much of a jpeg")
    return root


@FUZZ
@given(content=st.lists(markdown_pieces, max_size=60).map(lambda p: "".join(p).encode())
       | st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass"))
       | st.binary(max_size=300))
def test_every_check_of_the_lab_runs_on_any_deliverable(rubric: Rubric, learner_root: Path, content: bytes) -> None:
    path = learner_root / "phase-04" / rubric.deliverable
    path.write_bytes(content)
    document, error = None, ""
    try:
        document = parse_deliverable(path, learner_root)
    except SubmissionError as exc:
        error = str(exc)
        assert "\n" not in error
    ctx = Context(rubric=rubric, learner="fuzz", root=learner_root, implementation=None,
                  phase_files=(rubric.deliverable, "photo.jpg"), other_implementations=(), run=None, deliverable=path,
                  markdown_files=(rubric.deliverable,), document=document, document_error=error)
    for check in rubric.checks:
        result = ctx.results[check.id] = run_check(check, ctx)
        assert isinstance(result.status, Status) and result.message
        assert 0 <= result.score <= check.points
