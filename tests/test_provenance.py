"""Paper before code, from a learner's git history (issue 14, part 3): information for the instructor only.

The repositories model how learners really commit: a derivation notes file committed days before the code
(the order the lab asks for), code first and the write-up the night before the deadline, everything in one
"final submission" commit, a starter stub committed first, and a folder that is no repository at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from grader.provenance import class_provenance, find_repository
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parent.parent
LAB00 = load_rubric(ROOT / "rubrics" / "phase-04" / "lab-00.yaml")
GOOD = ROOT / "tests" / "fixtures" / "deliverable-spanish" / "phase-04"
DAY = 86_400
START = 1_767_000_000  # 2025-12-29


def _git(folder: Path, *args: str, when: int = START) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="L", GIT_AUTHOR_EMAIL="l@example.org", GIT_COMMITTER_NAME="L",
               GIT_COMMITTER_EMAIL="l@example.org", GIT_AUTHOR_DATE=f"@{when} +0000",
               GIT_COMMITTER_DATE=f"@{when} +0000", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, env=env)


def _learner(root: Path, name: str, steps: list[tuple[str, int]], repo: bool = True) -> Path:
    """A learner folder whose history commits ``steps``: ("md", day), ("py", day), ("stub", day) or ("both", day)."""
    learner = root / name
    phase = learner / "phase-04"
    phase.mkdir(parents=True)
    if repo:
        _git(learner, "init", "-q")
    for what, day in steps:
        if what in ("md", "both"):
            shutil.copy(GOOD / "lab-00-softmax-gradient.md", phase)
        if what in ("py", "both"):
            shutil.copy(GOOD / "lab-00-softmax-gradient.py", phase)
        if what == "photo":  # the derivation as a photo of the paper, the page's other way to hand it in
            (phase / "lab-00-softmax-gradient.md").write_text("# Lab 00\n\n## Derivation\n\n![on paper](paper.jpg)\n",
                                                              encoding="utf-8")
            (phase / "paper.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
        if what == "stub":
            (phase / "lab-00-softmax-gradient.py").write_text("# TODO: softmax and friends\nimport numpy as np\n",
                                                              encoding="utf-8")
        if repo:
            _git(learner, "add", "-A")
            _git(learner, "commit", "-q", "-m", what, when=START + day * DAY)
    return learner


@pytest.mark.parametrize("steps, kind, days", [
    ([("md", 0), ("py", 2)], "paper_first", 2),             # the lab's order: derivation, two days later the code
    ([("py", 0), ("md", 3)], "code_first", 3),              # code first, write-up before the deadline
    ([("both", 0)], "together", 0),                          # one "final submission" commit
    ([("stub", 0), ("md", 1), ("py", 2)], "paper_first", 1),  # a stub with no lab function does not count as code
    ([("md", 0)], "no_code", None),                          # the code was never committed
    ([("photo", 0), ("py", 1)], "paper_first", 1),          # a photographed derivation, then the code
])
def test_the_history_says_which_came_first(tmp_path: Path, steps: list[tuple[str, int]], kind: str,
                                           days: int | None) -> None:
    learner = _learner(tmp_path, "ana", steps)
    if kind == "no_code":
        shutil.copy(GOOD / "lab-00-softmax-gradient.py", learner / "phase-04")  # handed in, never committed
    (finding,) = class_provenance([learner], [LAB00])
    assert finding.kind == kind
    if days is not None:
        assert finding.hours == days * 24


def test_a_folder_with_no_history_says_so(tmp_path: Path) -> None:
    learner = _learner(tmp_path / "outside", "ben", [("both", 0)], repo=False)
    if find_repository(learner) is not None:
        pytest.skip("the temporary folder is inside a git repository")
    (finding,) = class_provenance([learner], [LAB00])
    assert finding.kind == "no_history"


def test_one_repository_for_a_whole_class_is_read_once_per_learner(tmp_path: Path) -> None:
    """A class folder that is one repository (a course fork): each learner's own files decide."""
    klass = tmp_path / "class"
    klass.mkdir()
    _git(klass, "init", "-q")
    for name, first, second in (("ana", "md", "py"), ("ben", "py", "md")):
        _learner(klass, name, [], repo=False)
        for what, day in ((first, 0), (second, 1)):
            shutil.copy(GOOD / f"lab-00-softmax-gradient.{what}", klass / name / "phase-04")
            _git(klass, "add", "-A")
            _git(klass, "commit", "-q", "-m", f"{name} {what}", when=START + day * DAY + (0 if name == "ana" else 60))
    found = {p.learner: p.kind for p in class_provenance([klass / "ana", klass / "ben"], [LAB00])}
    assert found == {"ana": "paper_first", "ben": "code_first"}


def test_a_hostile_repository_configuration_runs_nothing(tmp_path: Path) -> None:
    learner = _learner(tmp_path, "eve", [("md", 0), ("py", 1)])
    marker = tmp_path / "PWNED"
    hook = f"sh -c 'touch {marker}'"
    with (learner / ".git" / "config").open("a", encoding="utf-8") as config:
        config.write(f"[core]\n\tfsmonitor = {hook}\n\tpager = {hook}\n\thooksPath = {tmp_path}\n"
                     f"[diff]\n\texternal = {hook}\n[alias]\n\tlog = !{hook}\n")
    (tmp_path / "post-checkout").write_text(f"#!/bin/sh\ntouch {marker}\n", encoding="utf-8")
    (finding,) = class_provenance([learner], [LAB00])
    assert finding.kind == "paper_first" and not marker.exists()


def test_the_class_page_says_it_and_the_learner_reports_do_not(tmp_path: Path) -> None:
    from grader.batch import Options, grade_class
    from grader.sandbox import Limits

    klass = tmp_path / "class"
    _learner(klass, "ana", [("py", 0), ("md", 3)])
    _learner(klass, "ben", [("md", 0), ("py", 1)], repo=True)
    out = tmp_path / "out"
    grade_class([klass], Options(out=out, jobs=1), rubrics_dir=ROOT / "rubrics", limits=Limits(call_seconds=2.0))
    page = (out / "index.html").read_text(encoding="utf-8")
    section = page[page.index('<section class="provenance"'):]
    assert "code committed 3 days before any derivation" in section and "derivation first committed 24 hours before" in section
    import csv

    rows = {r["learner"]: r for r in csv.DictReader((out / "gradebook.csv").read_text(encoding="utf-8-sig").splitlines())}
    assert rows["ana"]["paper first"] == "phase-04/lab-00 code_first 72h"
    for report in (out / "ana").iterdir():
        assert "committed" not in report.read_text(encoding="utf-8")
    spanish = tmp_path / "es"
    grade_class([klass], Options(out=spanish, jobs=1, lang="es"), rubrics_dir=ROOT / "rubrics",
                limits=Limits(call_seconds=2.0))
    assert "código confirmado 3 días antes" in (spanish / "index.html").read_text(encoding="utf-8")
