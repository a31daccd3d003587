"""Rubric validation: every bad rubric gets one line naming the file, the line and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.errors import RubricError
from grader.rubric import discover_rubrics, load_rubric

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "rubrics" / "phase-04" / "lab-00.yaml"


@pytest.fixture
def rubric_dir(tmp_path: Path) -> Path:
    shutil.copy(GOOD, tmp_path / "lab-00.yaml")
    for module in ("lab_00_reference.py", "lab_00_helpers.py", "lab_00_given.py"):
        shutil.copy(GOOD.parent / module, tmp_path / module)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    """The last line holding the needle (a duplicate is reported where it repeats)."""
    lines = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if needle in line]
    assert lines, needle
    return lines[-1]


# (old text, new text, the line to point at (text on it), words the message must contain)
CASES = [
    ("    atol: 1.0e-12\n    rtol: 1.0e-9\n    sums_to", "    tolerance: 1.0e-12\n    rtol: 1.0e-9\n    sums_to", "tolerance:",
     ["unknown key 'tolerance'", "did you mean 'atol'"]),
    ("    kind: compare\n    title: {en: \"softmax matches", "    kind: compair\n    title: {en: \"softmax matches", "kind: compair",
     ["unknown check kind 'compair'", "did you mean 'compare'"]),
    ("    points: 2\n    acceptance: true\n\n  - id: jacobian-symmetric", "    points: two\n    acceptance: true\n\n  - id: jacobian-symmetric",
     "points: two", ["'points' must be a number", "'two'"]),
    ("  ce_grad_fd: {reference: ce_grad,", "  ce_grad_fd: {reference: ce_gard,", "ce_grad_fd: {reference: ce_gard",
     ["'ce_gard' is not a function in the reference module", "did you mean 'ce_grad'"]),
    ("    function: softmax_jacobian\n", "    function: softmax_jacobain\n", "function: softmax_jacobain",
     ["unknown function 'softmax_jacobain'", "did you mean 'softmax_jacobian'"]),
    ("    inputs: [seed, random]\n    atol: 1.0e-7\n    points: 2", "    inputs: [seed, randum]\n    atol: 1.0e-7\n    points: 2",
     "[seed, randum]", ["unknown input set 'randum'", "did you mean 'random'"]),
    ("  - id: softmax-stable", "  - id: softmax-correct", "id: softmax-correct", ["duplicate id", "first at line"]),
    ("    inputs: [seed-y, random-y]\n    atol: 1.0e-12", "    inputs: [seed, random-y]\n    atol: 1.0e-12",
     "inputs: [seed, random-y]", ["input set 'seed' gives 1 argument(s) but ce_loss takes 2"]),
    ("    generate: hidden_logits\n", "    generate: hidden_logitz\n", "generate: hidden_logitz",
     ["'hidden_logitz' is not a function", "did you mean 'hidden_logits'"]),
    ("      - when: scalar_outer", "      - when: scaler_outer", "when: scaler_outer", ["cause 'scaler_outer'"]),
    ("    property: symmetric", "    property: symmetrical", "property: symmetrical", ["'property: symmetrical' is not known", "did you mean 'symmetric'"]),
    ("    min_sentences: 3", "    min_sentences: 3\n    min_sentences: 4", "min_sentences: 4", ["duplicate key 'min_sentences'"]),
    ("reference: lab_00_reference.py", "reference: missing.py", "reference: missing.py", ["reference module 'missing.py' not found"]),
    ("  - id: jacobian-fd\n", "  - id: Jacobian FD\n", "id: Jacobian FD", ["ids are lower-case words"]),
    ("    atol: 1.0e-7\n    points: 2", "    atol: .nan\n    points: 2", "atol: .nan", ["'atol' must be a finite number"]),
    ("step_arg: 1,", "step_arg: 5,", "step_arg: 5", ["step_arg 5 must be between 0 and 1"]),
    ("phase_dir: phase-04", "phase_dir: phase-05", "phase_dir: phase-05", ["does not match lab 'phase-04/lab-00'"]),
    ("deliverable: lab-00-softmax-gradient.md", "deliverable: ../../etc/hostname", "deliverable: ../", ["must be a file name"]),
    ("      - when: scalar_outer", "      - when: *nowhere", "when: *nowhere", ["YAML error", "undefined alias"]),
    ('    headings: [reflection, reflect, reflex, lesson, leccion, takeaway, conclu, learn, aprend, thought, pensamiento,\n               remark, comment, comentario, discussion, discusion, retro, "post mortem", postmortem, "what i learn",\n               "lo que aprend", "looking back", "mirando atras", "en retrospectiva", hindsight, afterthought, insight,\n               opinion, cierre, "wrap up", experience, experiencia, dudas, "mis notas", impresion]',
     "    headings: []", "headings: []", ["'headings' is empty"]),
    ("    result: softmax-jacobian\n", "    result: softmax-jacobain\n", "result: softmax-jacobain",
     ["'softmax-jacobain' is not a result", "did you mean 'softmax-jacobian'"]),
    ('      expression: "p_i (delta_ij - p_j)"', '      expression: "p_i (delta_ij - q_j)"', 'expression: "p_i (delta_ij - q_j)"',
     ["cannot be computed from the quantities", "free index letters"]),
    ("    softmax: {reference: softmax, spellings:", "    softmax: {reference: softmaxx, spellings:", "reference: softmaxx",
     ["'softmaxx' is not a function of the reference module"]),
    ("      sample: class\n", "      sample: klass\n", "sample: klass", ["sample must be 'vector' or 'class'"]),
    ("    result: ce-gradient\n", "    formulas: [\"p_j - 1[j=y]\"]\n", "formulas: [", ["unknown key 'formulas'", "did you mean 'result'"]),
    ("    inputs: [seed]\n    atol: 1.0e-7\n    points: 2", "    inputs: []\n    atol: 1.0e-7\n    points: 2", "inputs: []", ["'inputs' is empty"]),
    ("      - {z: [-1000.0, -999.0, -998.0]}\n", "      - {y: 1, z: [-1000.0, -999.0, -998.0]}\n", "{y: 1, z:", ["every case names the same arguments"]),
]


@pytest.mark.parametrize(("old", "new", "at", "words"), CASES, ids=[c[3][0][:40] for c in CASES])
def test_bad_rubric_names_file_line_and_fix(rubric_dir: Path, old: str, new: str, at: str, words: list[str]) -> None:
    path = rubric_dir / "lab-00.yaml"
    _edit(path, old, new)
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{_line_of(path, at)}:"), message
    for word in words:
        assert word in message, message


def test_yaml_syntax_error_points_at_the_line(rubric_dir: Path) -> None:
    path = rubric_dir / "lab-00.yaml"
    _edit(path, "  seed:\n", "  seed: [\n")
    with pytest.raises(RubricError, match=r"lab-00\.yaml:\d+: YAML error"):
        load_rubric(path)


def test_reference_module_that_fails_is_one_line(rubric_dir: Path) -> None:
    (rubric_dir / "lab_00_reference.py").write_text("def softmax(:\n", encoding="utf-8")
    with pytest.raises(RubricError, match=r"lab_00_reference\.py:1: syntax error in the reference module"):
        load_rubric(rubric_dir / "lab-00.yaml")


def test_missing_required_key(rubric_dir: Path) -> None:
    path = rubric_dir / "lab-00.yaml"
    _edit(path, "deliverable: lab-00-softmax-gradient.md\n", "")
    with pytest.raises(RubricError, match="missing required key 'deliverable'"):
        load_rubric(path)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match="no rubric"):
        discover_rubrics(tmp_path)
    with pytest.raises(RubricError, match="no such rubrics folder"):
        discover_rubrics(tmp_path / "nope")
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    with pytest.raises(RubricError, match="empty"):
        discover_rubrics(tmp_path)


def test_the_first_lab_holds_what_its_page_asks() -> None:
    """Every shipped rubric loads (tests/test_labs.py finds them all); this one is pinned to the lab page."""
    rubrics = [r for r in discover_rubrics(ROOT / "rubrics") if r.lab == "phase-04/lab-00"]
    ids = [c.id for c in rubrics[0].checks]
    assert ids == [
        "implementation-found", "softmax-correct", "softmax-stable", "jacobian-analytic", "jacobian-symmetric",
        "jacobian-fd", "jacobian-matches-fd", "ce-loss-correct", "ce-loss-stable", "ce-grad-analytic", "ce-grad-fd",
        "ce-grad-matches-fd", "no-input-mutation", "deliverable-found", "derivation-softmax", "derivation-softmax-steps",
        "derivation-ce", "derivation-ce-steps", "verification-output", "output-rerun", "reflection",
    ]
    acceptance = {c.id for c in rubrics[0].checks if c.acceptance}
    assert acceptance == {"implementation-found", "jacobian-analytic", "jacobian-matches-fd", "ce-grad-analytic",
                          "ce-grad-matches-fd", "deliverable-found", "derivation-softmax", "derivation-ce", "reflection"}
    hidden_sets = {name for name, s in rubrics[0].inputs.items() if s.hidden}
    assert hidden_sets == {"random", "random-y", "extreme", "extreme-y"}
    lengths = {len(case[0]) for case in rubrics[0].inputs["random"].cases}
    assert min(lengths) == 2 and max(lengths) == 12


def test_numbers_as_people_write_them(rubric_dir: Path) -> None:
    path = rubric_dir / "lab-00.yaml"
    _edit(path, "    atol: 1.0e-7\n    points: 2", "    atol: 1e-7\n    points: 2")
    _edit(path, "    min_sentences: 3", "    min_sentences: 3.0")
    rubric = load_rubric(path)
    jacobian = next(c for c in rubric.checks if c.id == "jacobian-analytic")
    assert jacobian.spec["atol"] == 1e-7
    assert next(c for c in rubric.checks if c.id == "reflection").spec["min_sentences"] == 3


def test_yml_files_and_a_single_rubric_file(rubric_dir: Path) -> None:
    (rubric_dir / "lab-00.yaml").rename(rubric_dir / "lab-00.yml")
    assert [r.lab for r in discover_rubrics(rubric_dir)] == ["phase-04/lab-00"]
    assert [r.lab for r in discover_rubrics(rubric_dir / "lab-00.yml")] == ["phase-04/lab-00"]


def test_a_reference_that_fails_when_called_is_a_rubric_error(rubric_dir: Path) -> None:
    from grader.grading import grade

    reference = rubric_dir / "lab_00_reference.py"
    reference.write_text(reference.read_text(encoding="utf-8").replace(
        "def ce_grad(z, y):\n", "def ce_grad(z, y):\n    raise KeyError('oops')\n"), encoding="utf-8")
    with pytest.raises(RubricError, match=r"reference function 'ce_grad' failed on .*KeyError: 'oops' — fix the reference module"):
        grade([ROOT / "learners" / "borja"], rubrics_dir=rubric_dir)


def test_class_indices_from_a_generator_stay_integers(rubric_dir: Path) -> None:
    reference = rubric_dir / "lab_00_reference.py"
    reference.write_text(reference.read_text(encoding="utf-8").replace(
        "for y in range(len(z))]", "for y in map(np.int64, range(len(z)))]"), encoding="utf-8")
    rubric = load_rubric(rubric_dir / "lab-00.yaml")
    z, y = rubric.inputs["random-y"].cases[0]
    assert type(y) is int and z.dtype == np.float64


def test_every_problem_is_found_and_the_first_by_line_is_the_error(rubric_dir: Path) -> None:
    """Each part is validated on its own: a problem in a check does not hide one in an input set or a function; the
    error is the first problem by line (one line for ``grade``) and carries them all (for ``grade lint``)."""
    path = rubric_dir / "lab-00.yaml"
    _edit(path, "    atol: 1.0e-12\n    rtol: 1.0e-9\n    sums_to", "    tolerance: 1.0e-12\n    rtol: 1.0e-9\n    sums_to")
    _edit(path, "    generate: hidden_logits\n", "    generate: hidden_logitz\n")
    _edit(path, "  ce_grad_fd: {reference: ce_grad,", "  ce_grad_fd: {reference: ce_gard,")
    _edit(path, "    points: 2\n", "    pionts: 2\n")
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    problems = info.value.problems  # type: ignore[attr-defined]
    assert [p.line for p in problems] == sorted([_line_of(path, "tolerance:"), _line_of(path, "generate: hidden_logitz"),
                                                 _line_of(path, "reference: ce_gard"), _line_of(path, "pionts:")])
    assert str(info.value) == str(problems[0]) and str(info.value).startswith(f"{path}:{_line_of(path, 'reference: ce_gard')}:")
    pionts = next(str(p) for p in problems if "pionts" in str(p))
    assert "unknown key 'pionts' — did you mean 'points'?" in pionts  # and not also "missing required key 'points'"
    assert info.value.said("es").endswith("la función de referencia 'ce_gard' no es una función del módulo de referencia "
                                          "lab_00_reference.py — ¿querías decir 'ce_grad'?")


def test_a_rubric_error_is_said_in_spanish_with_its_fix(rubric_dir: Path) -> None:
    path = rubric_dir / "lab-00.yaml"
    _edit(path, "    points: 2\n    acceptance: true\n\n  - id: jacobian-symmetric", "    points: two\n    acceptance: true\n\n  - id: jacobian-symmetric")
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    assert "'points' must be a number, not 'two' — write a plain number without quotes, e.g. 'points: 2'" in str(info.value)
    assert info.value.said("es") == (f"{path}:{_line_of(path, 'points: two')}: comprobación 'jacobian-analytic': 'points' tiene "
                                     "que ser un número, no 'two' — escribe un número sin comillas, p. ej. 'points: 2'")


def test_every_rubric_key_is_documented_in_the_readme() -> None:
    """A key the grader reads but the README does not name is one no author can find."""
    import re

    from grader import rubric

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Rubric format"):readme.index("## Layout")]
    keys = {key for part in rubric.schema_keys().values() for key in part}
    notation = {"functions", "quantities", "results", "reference", "spellings", "takes", "sample", "value", "symbols",
                "words", "say", "expression", "without", "with", "anchor", "steps", "any", "inside"}
    missing = sorted(k for k in keys | notation  # named in the prose (`key`), or written in an example (key: …)
                     if not re.search(rf"`{re.escape(k)}[`:]|(^|[\s{{,\[-]){re.escape(k)}:(\s|$)", section, re.M))
    assert not missing, f"rubric keys the README's Rubric format does not document: {missing}"
