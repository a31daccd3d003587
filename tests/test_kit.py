"""Learner kits: no answer inside, the same verdicts as the rubric's public checks, stale kits refused."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.errors import RubricError
from grader.grading import grade_lab
from grader.i18n import Message
from grader.kit import build_kit, load_kit, public_rubric, shipped
from grader.model import Rubric
from grader.rubric import load_rubric
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
LABS = sorted((ROOT / "rubrics").glob("*/*.yaml"))
FAST = Limits(call_seconds=2.0, learner_seconds=60.0)


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Rubric, Path]]:
    out = tmp_path_factory.mktemp("kit")
    built = {}
    for path in LABS:
        rubric = load_rubric(path)
        built[rubric.lab] = (rubric, build_kit(rubric, out)[0])
    return built


def _numbers(value: Any) -> set[float]:
    if isinstance(value, bool):
        return set()
    if isinstance(value, (int, float)):
        return {float(value)}
    if isinstance(value, np.ndarray):
        return {float(x) for x in value.ravel()}
    if isinstance(value, (list, tuple)):
        return set().union(*map(_numbers, value)) if value else set()
    if isinstance(value, dict):
        return set().union(*map(_numbers, value.values())) if value else set()
    return set()


@pytest.mark.parametrize("lab", [load_rubric(p).lab for p in LABS])
def test_a_kit_holds_no_function_of_the_reference_and_no_hidden_input(kits: dict[str, tuple[Rubric, Path]], lab: str) -> None:
    rubric, path = kits[lab]
    helpers = Path(rubric.helpers.__file__).name  # type: ignore[union-attr,arg-type]
    files = [path, path.parent / helpers]
    mine = {p.name for p in path.parent.iterdir() if p.name.startswith((path.name.split(".")[0], helpers.split("_helpers")[0]))}
    assert mine == {path.name, helpers}, "a kit is its data and the rubric's helpers, nothing else"
    text = "\n".join(p.read_text(encoding="utf-8") for p in files)
    reference_file = Path(rubric.reference.__file__)  # type: ignore[arg-type]
    own = [fn for _, fn in inspect.getmembers(rubric.reference, inspect.isfunction)
           if Path(fn.__code__.co_filename) == reference_file]
    assert own, "the reference defines the answers"
    for fn in own:
        body = inspect.getsource(fn)
        assert f"def {fn.__name__}(" not in text, fn.__name__
        assert all(line.strip() not in text for line in body.splitlines()[1:] if len(line.strip()) > 25), fn.__name__
    public = _numbers([s.cases for s in rubric.inputs.values() if not s.hidden])
    hidden = {x for x in _numbers([s.cases for s in rubric.inputs.values() if s.hidden]) - public
              if not x.is_integer() or abs(x) >= 100}  # small whole numbers are class labels, points, counts
    assert hidden, "the rubric has hidden inputs to keep out"
    stored = _numbers(json.loads(path.read_text(encoding="utf-8")))
    assert not hidden & stored
    held = {c.id for c in rubric.checks} - {c["id"] for c in json.loads(path.read_text(encoding="utf-8"))["checks"]}
    assert held == {c.id for c in rubric.checks if all(rubric.inputs[n].hidden for n in c.spec.get("inputs", ["x"])
                                                         if n in rubric.inputs) and c.spec.get("inputs")}


def _learners(rubric: Rubric) -> list[Path]:
    roots = [*(ROOT / "tests" / "fixtures").iterdir(), *(ROOT / "learners").iterdir(),
             *(ROOT / "tests" / "fixtures" / "styles" / "code").iterdir(),
             *(ROOT / "tests" / "fixtures" / "styles" / "deliverables").iterdir()]
    return sorted(p for p in roots if (p / rubric.phase_dir).is_dir())


def _as_kit_says(message: Any, rubric: Rubric) -> Any:
    """What the kit says where the full rubric proves a dependency with a builder the kit cannot ship."""
    if isinstance(message, Message):
        params = {k: _as_kit_says(v, rubric) for k, v in message.params.items()}
        if message.id == "dep.built_on":
            fn = rubric.function(str(params["fn"]))
            if any(name == params["name"] and builder and not shipped(rubric, builder) for name, builder in fn.uses):
                return Message("dep.also_wrong", params)
        return Message(message.id, params)
    if isinstance(message, (list, tuple)):
        return [_as_kit_says(v, rubric) for v in message]
    return message


@pytest.mark.slow
@pytest.mark.parametrize("lab", [load_rubric(p).lab for p in LABS])
def test_grading_with_the_kit_gives_the_public_checks_verdicts(kits: dict[str, tuple[Rubric, Path]], lab: str) -> None:
    """Every fixture learner of the lab (ours and the real-styles ones): the same statuses, scores and messages as
    the rubric's own public checks with the real reference — but for the proof that needs an unshipped answer."""
    rubric, path = kits[lab]
    public, kit = public_rubric(rubric), load_kit(path)
    learners = _learners(rubric)
    assert len(learners) >= 8
    for learner in learners:
        want, got = grade_lab(public, learner, FAST), grade_lab(kit, learner, FAST)
        assert [c.id for c in got.checks] == [c.id for c in want.checks]
        for w, g in zip(want.checks, got.checks):
            assert (g.status, g.score) == (w.status, w.score), (learner.name, w.id)
            assert g.message.to_dict() == _as_kit_says(w.message, public).to_dict(), (learner.name, w.id)
            assert (g.evidence is None) == (w.evidence is None), (learner.name, w.id)
        assert (got.held_back, got.narrowed) == (public.held_back, public.narrowed) and got.passed == want.passed


def test_a_kit_built_from_an_older_rubric_is_refused_by_name(tmp_path: Path) -> None:
    rubrics = tmp_path / "rubrics"
    shutil.copytree(ROOT / "rubrics", rubrics)
    source = rubrics / "phase-04" / "lab-00.yaml"
    path, _ = build_kit(load_rubric(source), tmp_path / "kit")
    assert load_kit(path).lab == "phase-04/lab-00"
    source.write_text(source.read_text(encoding="utf-8").replace("atol: 1.0e-7", "atol: 1.0e-6", 1), encoding="utf-8")
    with pytest.raises(RubricError, match="stale learner kit — .*lab-00.yaml changed since the kit was built"):
        load_kit(path)


@pytest.mark.parametrize(("edit", "words"), [
    (lambda d: {**d, "kind": "something-else"}, "not a learner kit made by grade kit"),
    (lambda d: {**d, "grader": "0.0.1"}, "was made by grader 0.0.1"),
    (lambda d: {**d, "checks": [{"id": "x"}]}, "this learner kit is damaged"),
    (lambda d: "[" * 100_000, "cannot read this learner kit"),
])
def test_a_kit_that_is_not_one_gets_one_line(kits: dict[str, tuple[Rubric, Path]], tmp_path: Path, edit: Any, words: str) -> None:
    _, path = kits["phase-05/lab-02"]
    shutil.copytree(path.parent, tmp_path / "phase-05")
    copy = tmp_path / "phase-05" / path.name
    data = json.loads(copy.read_text(encoding="utf-8"))
    data.pop("source")
    edited = edit(data)
    copy.write_text(edited if isinstance(edited, str) else json.dumps(edited), encoding="utf-8")
    with pytest.raises(RubricError, match=words) as caught:
        load_kit(copy)
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_a_learner_grades_with_the_kit_where_there_is_no_rubric(tmp_path: Path) -> None:
    """The README's loop: the instructor builds the kit, a learner who has only the kit grades their folder."""
    instructor, learner = tmp_path / "instructor", tmp_path / "learner"
    instructor.mkdir()
    made = subprocess.run([sys.executable, "-m", "grader", "kit", str(ROOT / "rubrics" / "phase-04" / "lab-00.yaml"),
                           "--out", "kit"], capture_output=True, text=True, timeout=120, cwd=instructor)
    assert made.returncode == 0, made.stderr
    assert "19 public checks; 2 held back" in made.stdout and "jacobian_from_probabilities" in made.stderr
    shutil.copytree(instructor / "kit", learner / "kit")
    shutil.copytree(ROOT / "learners" / "borja", learner / "borja")
    proc = subprocess.run([sys.executable, "-m", "grader", "borja", "--rubrics", "kit", "--out", "out"],
                          capture_output=True, text=True, timeout=180, cwd=learner)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED  28.0/28.0" in proc.stdout and "2 more checks run when your instructor grades" in proc.stdout
    report = (learner / "out" / "borja" / "phase-04-lab-00.md").read_text(encoding="utf-8")
    assert "2 more checks run when your instructor grades" in report
    zipped = subprocess.run([sys.executable, "-m", "grader", "kit", str(ROOT / "rubrics" / "phase-04" / "lab-00.yaml"),
                             "--out", str(learner / "kit.zip")], capture_output=True, text=True, timeout=120, cwd=instructor)
    assert zipped.returncode == 0, zipped.stderr
    proc = subprocess.run([sys.executable, "-m", "grader", "borja", "--rubrics", "kit.zip", "--out", "out-zip"],
                          capture_output=True, text=True, timeout=180, cwd=learner)
    assert proc.returncode == 0 and "PASSED  28.0/28.0" in proc.stdout, proc.stdout + proc.stderr
    (learner / "junk.zip").write_bytes(b"not a zip")
    proc = subprocess.run([sys.executable, "-m", "grader", "borja", "--rubrics", "junk.zip"], capture_output=True,
                          text=True, timeout=60, cwd=learner)
    assert proc.returncode == 2 and "cannot read this learner kit" in proc.stderr and "Traceback" not in proc.stderr
