"""Similar submissions across a class (issue 14, part 2): information for the instructor, never a grade change.

The planted copies model what copy-detection papers and MOSS/JPlag users report as the usual disguises: local
names renamed, functions moved around, comments rewritten, and the reflection reworded sentence by sentence.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader import similarity
from grader.grading import find_learners
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from make_class import make_class  # noqa: E402

RUBRICS = [load_rubric(p) for p in sorted((ROOT / "rubrics").glob("*/*.yaml"))]
RENAMES = {"z": "logits", "p": "probs", "y": "label", "h": "eps", "n": "size", "e": "bump", "g": "grad",
           "J": "jac", "x": "scores", "m": "top"}
REWORDS = [("felt", "seemed"), ("mechanical", "routine"), ("I got stuck", "I was stuck"), ("insightful", "revealing"),
           ("the ", "this "), ("derivation", "working"), ("because", "since"), ("which", "that")]


def _rename(source: str) -> str:
    """Local names renamed and comments rewritten: what a copier does first."""
    source = re.sub(r"#.*", "# my own notes", source)
    return re.sub(r"\b(" + "|".join(RENAMES) + r")\b", lambda m: RENAMES[m.group()], source)


def _reorder(source: str) -> str:
    """Top-level functions in the reverse order, the rest where it was."""
    head, *defs = re.split(r"\n(?=def )", source)
    main = ""
    if defs and "\nif __name__" in defs[-1]:
        defs[-1], main = defs[-1].split("\nif __name__", 1)
        main = "\nif __name__" + main
    return "\n".join([head, *reversed(defs)]) + main


def _reword(markdown: str) -> str:
    """The reflection reworded (a few words swapped per sentence); the derivation kept."""
    head, _, reflection = markdown.partition("## Reflection")
    for old, new in REWORDS:
        reflection = reflection.replace(old, new)
    return head + "## Reflection" + reflection if _ else markdown


def _copy(klass: Path, source: str, copier: str, how: str) -> None:
    shutil.copytree(klass / source, klass / copier, ignore=shutil.ignore_patterns("EXPECTED.yaml"))
    for path in (klass / copier).rglob("*"):
        if path.suffix == ".py" and how == "renamed":
            path.write_text(_rename(path.read_text(encoding="utf-8")), encoding="utf-8")
        elif path.suffix == ".py" and how == "reordered":
            path.write_text(_reorder(path.read_text(encoding="utf-8")), encoding="utf-8")
        elif path.suffix == ".md" and how == "reworded":
            path.write_text(_reword(path.read_text(encoding="utf-8")), encoding="utf-8")


def _pairs(klass: Path, **kwargs: float) -> list[similarity.Pair]:
    learners = find_learners([klass])
    return similarity.similar_pairs(similarity.read_class(learners, RUBRICS), **kwargs)


SAME_BOOK = "mlfs-diagonal"  # modelled on the same book's code as mlfs-call-gradient: not independent work (58 %)
PLANTED = {("cs231n-gradient-check", "zz-copy-a"): "renamed", ("nnfs-classes", "zz-copy-b"): "reordered",
           ("en-matrix-calculus-quotient", "zz-copy-c"): "reworded"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real-styles corpus (code modelled on course solutions and books, deliverables on blogs and notes), 81
    learners with distinct work, plus one copy of three of them, each disguised one way."""
    klass = tmp_path_factory.mktemp("planted") / "class"
    for part in ("code", "deliverables"):
        for learner in (ROOT / "tests" / "fixtures" / "styles" / part).iterdir():
            if learner.is_dir() and learner.name != SAME_BOOK:
                shutil.copytree(learner, klass / learner.name, ignore=shutil.ignore_patterns("EXPECTED.yaml"))
    for (source, copier), how in PLANTED.items():
        _copy(klass, source, copier, how)
    return klass


def test_three_planted_copies_are_exactly_the_pairs_flagged(planted: Path) -> None:
    pairs = _pairs(planted)
    assert {(p.first, p.second) for p in pairs} == set(PLANTED)
    shares = {p.second: (p.code, p.prose) for p in pairs}
    assert shares["zz-copy-a"][0] >= 0.9 and shares["zz-copy-b"][0] >= 0.9  # names and order changed nothing
    assert shares["zz-copy-c"][1] >= 0.6  # the reflection reworded, the rest as it was


def test_the_shared_passages_are_marked_in_both_texts(planted: Path) -> None:
    pair = next(p for p in _pairs(planted) if p.second == "zz-copy-a")
    assert pair.first_lines["code"] and pair.second_lines["code"]
    assert set(pair.first_lines["code"]) <= set(range(1, len(pair.first_text["code"]) + 1))
    assert any("def " in pair.second_text["code"][n - 1] for n in pair.second_lines["code"])


def test_a_class_of_distinct_generated_learners_has_no_pair(tmp_path: Path) -> None:
    klass = tmp_path / "class"
    make_class(klass, 200, seed=5, buggy_every=0)
    assert _pairs(klass) == []


def test_the_threshold_decides(planted: Path) -> None:
    assert len(_pairs(planted, threshold=1.0)) <= len(_pairs(planted)) <= len(_pairs(planted, threshold=0.3))


def test_the_page_code_typed_in_by_two_learners_is_not_a_copy(tmp_path: Path) -> None:
    """Two learners whose code is the lab page's snippets (page-copy style) plus their own softmax."""
    page = (ROOT / "rubrics" / "phase-04" / "lab_00_given.py").read_text(encoding="utf-8")
    klass = tmp_path / "class"
    own = {"ana": "def softmax(z):\n    z = np.asarray(z, float)\n    e = np.exp(z - z.max())\n    return e / e.sum()\n\n\n"
                  "def softmax_jacobian(z):\n    p = softmax(z)\n    return np.diag(p) - np.outer(p, p)\n",
           "ben": "def softmax(v):\n    w = np.exp(v - np.max(v))\n    s = np.sum(w)\n    return w / s\n\n\n"
                  "def softmax_jacobian(v):\n    s = softmax(v)\n    J = -np.outer(s, s)\n"
                  "    J[np.diag_indices_from(J)] += s\n    return J\n"}
    for name, code in own.items():
        folder = klass / name / "phase-04"
        folder.mkdir(parents=True)
        (folder / "lab-00-softmax-gradient.py").write_text(code + "\n" + page, encoding="utf-8")
    for i in range(4):  # a few more learners, so the class is a class
        make_class(tmp_path / f"more{i}", 1, seed=10 + i, buggy_every=0)
        shutil.copytree(tmp_path / f"more{i}" / "learner-0001", klass / f"other-{i}")
    assert [p for p in _pairs(klass) if {p.first, p.second} == {"ana", "ben"}] == []


@pytest.mark.parametrize("source", ["(" * 200_000, "def f(:\n" * 20_000, "x = '''" + "a" * 200_000,
                                    "\t" + " " * 100_000 + "pass\n"])
def test_hostile_source_is_read_in_bounded_time(source: str) -> None:
    start = time.perf_counter()
    text = similarity.code_text("x", "lab", "x.py", source)
    assert time.perf_counter() - start < 5.0 and len(text.lines) >= 1


def test_names_comments_and_layout_do_not_count() -> None:
    a = "def f(z):\n    # shift\n    e = np.exp(z - z.max())\n    return e / e.sum()\n"
    b = "def g(logits):\n\n    bump = np.exp(logits - logits.max())   # stable\n    return bump / bump.sum()\n"
    assert [t for t, _ in similarity.code_tokens(a)] == [t for t, _ in similarity.code_tokens(b)]
    c = "def f(z):\n    e = np.log(z - z.max())\n    return e / e.sum()\n"
    assert [t for t, _ in similarity.code_tokens(a)] != [t for t, _ in similarity.code_tokens(c)]


def test_grade_similar_lists_the_pairs_and_refuses_a_bad_threshold(planted: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "grader", "similar", str(planted)], capture_output=True, text=True,
                         cwd=ROOT, check=False)
    assert run.returncode == 0, run.stderr
    assert "cs231n-gradient-check · zz-copy-a" in run.stdout and "not proof of copying" in run.stdout
    spanish = subprocess.run([sys.executable, "-m", "grader", "similar", str(planted), "--lang", "es"],
                             capture_output=True, text=True, cwd=ROOT, check=False)
    assert "Entregas parecidas" in spanish.stdout
    bad = subprocess.run([sys.executable, "-m", "grader", "similar", str(planted), "--threshold", "60"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "above 0, up to 1" in bad.stderr


def test_a_class_run_shows_the_pairs_to_the_instructor_only(tmp_path: Path) -> None:
    """The class page gets the section (both texts, shared lines marked), the CSV a column; a learner's own reports
    never name the other learner."""
    from grader.batch import Options, grade_class
    from grader.sandbox import Limits

    klass = tmp_path / "class"
    for source in (ROOT / "learners" / "borja", ROOT / "tests" / "fixtures" / "deliverable-spanish",
                   ROOT / "tests" / "fixtures" / "styles" / "code" / "nnfs-classes",
                   ROOT / "tests" / "fixtures" / "styles" / "deliverables" / "en-bishop-prml"):
        shutil.copytree(source, klass / source.name, ignore=shutil.ignore_patterns("EXPECTED.yaml"))
    _copy(klass, "deliverable-spanish", "zz-copier", "renamed")
    out = tmp_path / "out"
    grade_class([klass], Options(out=out, jobs=1), rubrics_dir=ROOT / "rubrics", limits=Limits(call_seconds=2.0))
    page = (out / "index.html").read_text(encoding="utf-8")
    section = page[page.index('<section class="similar"'):]
    assert "deliverable-spanish · zz-copier" in section and "<mark>" in section and "nnfs-classes" not in section
    import csv

    text = (out / "gradebook.csv").read_text(encoding="utf-8-sig")
    rows = {r["learner"]: r for r in csv.DictReader(text.splitlines())}
    assert rows["zz-copier"]["similar to"].startswith("deliverable-spanish phase-04/lab-00 code")
    assert rows["borja"]["similar to"] == ""
    for report in (out / "zz-copier").iterdir():
        assert "deliverable-spanish" not in report.read_text(encoding="utf-8")
    off = tmp_path / "off"
    grade_class([klass], Options(out=off, jobs=1, similar=None), rubrics_dir=ROOT / "rubrics",
                limits=Limits(call_seconds=2.0))
    assert 'class="similar"' not in (off / "index.html").read_text(encoding="utf-8")
    switched_off = {r["learner"]: r for r in csv.DictReader((off / "gradebook.csv").read_text(encoding="utf-8-sig")
                                                            .splitlines())}
    assert switched_off["zz-copier"]["similar to"] == ""  # the column stays (an LMS import mapping keeps working)
