"""What a learner handed in for one lab, found by what the files hold, not only by their names.

The implementation is the file matching the rubric's patterns, else the ``.py`` (or notebook) of the phase
folder that defines most of the lab's functions; the deliverable is the lab's ``.md``, else the only
Markdown file there (or the one whose content is the lab's), else a notebook's Markdown cells. Whatever
was found by content is graded, and the learner is told which file and what name the rubric expects.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.i18n import Message, any_of, joined, msg
from grader.errors import SubmissionError
from grader.learnerfiles import inside, read_bytes, size
from grader.model import Rubric

_PHASE = re.compile(r"^(?:phase|fase)[-_ ]?0*(\d+)$", re.IGNORECASE)
_STALE = re.compile(r"old|copy|copia|backup|bak|draft|borrador|stub|tmp|~|\(\d+\)", re.IGNORECASE)
SCAN_BYTES = 2 << 20  # of a candidate source file, for the names it defines
MAX_NOTEBOOKS = 4  # notebooks read to choose among (each is parsed and validated in the grader's own process)


def phase_number(name: str) -> int | None:
    match = _PHASE.match(name.strip())
    return int(match[1]) if match else None


def linked_out(phase_dir: str) -> Message:
    """The phase folder is a link out of the learner's folder: nothing of it is read."""
    return msg("path.linked_out", name=phase_dir)


def phase_folder(learner: Path, phase_dir: str) -> tuple[Path, Message | str]:
    """The learner's folder for a phase, and a note when it is only a near miss (phase-4, Fase-04)."""
    exact = learner / phase_dir
    wanted = phase_number(phase_dir)
    if os.path.lexists(exact) and not inside(exact, learner):
        return exact, linked_out(phase_dir)
    if exact.is_dir():
        others = [p.name for p in learner.iterdir() if p.is_dir() and p != exact and phase_number(p.name) == wanted]
        return exact, (msg("sub.phase_others", others=", ".join(sorted(others)), phase=phase_dir) if others else "")
    if wanted is not None and learner.is_dir():
        for candidate in sorted(learner.iterdir()):
            if candidate.is_dir() and phase_number(candidate.name) == wanted and inside(candidate, learner):
                return candidate, msg("sub.phase_near", found=candidate.name, phase=phase_dir)
    return exact, ""


@dataclass(frozen=True)
class Submission:
    phase: Path
    phase_note: Message | str
    files: tuple[str, ...]  # every file in the phase folder
    implementation: Path | None
    others: tuple[str, ...]  # further candidates, not graded
    implementation_note: Message | str = ""  # found by content, or a notebook's left-out cells
    implementation_error: Message | str = ""  # a notebook that cannot be read
    module_source: str | None = None  # a notebook's code cells: the module to load
    module_files: tuple[tuple[str, str], ...] = ()  # files its %%writefile cells write beside that module
    deliverable: Path | None = None
    deliverable_note: Message | str = ""
    markdown: str | None = None  # a notebook's Markdown cells, standing for the deliverable
    cells: tuple[tuple[int, int], ...] = ()
    refused: Message | str = ""  # the phase folder is a link out of the learner's folder: why nothing of it is graded


def _listing(phase: Path) -> list[str]:
    """The regular files of a folder (a link loop or an unreadable entry is not one)."""
    names = []
    with os.scandir(phase) as entries:
        for entry in entries:
            try:
                if entry.is_file():
                    names.append(entry.name)
            except OSError:
                continue
    return sorted(names)


def _defined(path: Path, root: Path) -> set[str]:
    """Names a module defines: ``def`` at any indentation, and at the top level ``name = …`` (``f = layer.forward``,
    a partial, an alias) and ``from … import name``. One pass over the lines, nothing that backtracks."""
    try:
        data = read_bytes(path, root, SCAN_BYTES)
    except SubmissionError:
        return set()
    names = set()
    for line in data.split(b"\n"):
        stripped = line.lstrip()
        if stripped.startswith((b"def ", b"async def ")):
            rest = stripped.split(b"def ", 1)[1].lstrip()
            names.add(rest.split(b"(", 1)[0].strip().decode("utf-8", "replace"))
        elif line[:1].isalpha() or line[:1] == b"_":
            if line.startswith(b"from ") and b" import " in line:
                for item in line.split(b" import ", 1)[1].strip(b" ()\\\r").split(b","):
                    names.add(item.split(b" as ")[-1].strip().decode("utf-8", "replace"))
            else:
                head, equals, rest = line.partition(b"=")
                if equals and not rest.startswith(b"=") and not head.rstrip().endswith((b"!", b"<", b">")):
                    for target in head.split(b":")[0].split(b","):  # a, b = …; name: Callable = …
                        names.add(target.strip().decode("utf-8", "replace"))
    return {n for n in names if n.isidentifier()}


def rank(candidates: Sequence[Path], functions: Iterable[str], root: Path) -> list[tuple[Path, int]]:
    """Candidates with how many of the lab's functions each defines, most first; among equals, not an old copy
    or a draft, then the fuller one (a stub of the same names must not win by name order)."""
    wanted = set(functions)
    counted = [(p, len(wanted & _defined(p, root))) for p in candidates]
    return sorted(counted, key=lambda pc: (-pc[1], bool(_STALE.search(pc[0].stem)), -size(pc[0]), pc[0].name))


def _patterns(rubric: Rubric, suffix: str) -> list[str]:
    return [p[: -len(".py")] + suffix if p.endswith(".py") else p for p in rubric.implementation]


def matching(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    patterns = list(patterns)
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]


def find_submission(rubric: Rubric, learner: Path) -> Submission:
    phase, phase_note = phase_folder(learner, rubric.phase_dir)
    if phase_note == linked_out(rubric.phase_dir):  # never listed, never read: nothing of it is graded
        return Submission(phase, "", (), None, (), implementation_error=phase_note, refused=phase_note)
    try:
        files = _listing(phase) if phase.is_dir() else []
    except OSError:
        files = []
    functions = [f.name for f in rubric.functions]
    by_name = matching(files, rubric.implementation)
    notebooks = [f for f in files if f.endswith(".ipynb")]
    sources = [f for f in files if f.endswith(".py")]
    implementation: Path | None = None
    others: list[str] = []
    note: Message | str = ""
    notebook = None
    error: Message | str = ""
    if by_name:
        ranked = rank([phase / f for f in by_name], functions, learner)
        implementation, others = ranked[0][0], [p.name for p, _ in ranked[1:]]
    else:
        named_notebooks = matching(notebooks, _patterns(rubric, ".ipynb"))
        ranked_py = [pc for pc in rank([phase / f for f in sources], functions, learner) if pc[1] > 0]
        read: list[tuple[Path, object, int]] = []
        for name in sorted(named_notebooks or notebooks, key=lambda n: (bool(_STALE.search(n)), n))[:MAX_NOTEBOOKS]:
            try:
                from grader.notebook import read_notebook

                nb = read_notebook(phase / name, learner, f"{phase.name}/{name}")
            except SubmissionError as exc:
                error = error or exc.message
                continue
            read.append((phase / name, nb, len(set(functions) & set(nb.functions))))
        read.sort(key=lambda item: -item[2])
        best_notebook = read[0] if read and (named_notebooks or read[0][2] > 0) else None
        if best_notebook is not None and (not ranked_py or best_notebook[2] >= ranked_py[0][1] or named_notebooks):
            implementation, notebook = best_notebook[0], best_notebook[1]
            error = ""
        elif ranked_py:  # the others may be helpers it imports: they are not "also found" copies
            implementation, count = ranked_py[0]
            patterns = any_of(rubric.implementation)
            note = msg("sub.by_content", count=count, total=len(functions), patterns=patterns)
            error = ""
    module_source = None
    module_files: tuple[tuple[str, str], ...] = ()
    if notebook is not None:
        module_source = notebook.source  # type: ignore[attr-defined]
        module_files = notebook.files  # type: ignore[attr-defined]
        left = notebook.left_out  # type: ignore[attr-defined]
        written = [name for name, _ in notebook.files]  # type: ignore[attr-defined]
        dropped = msg("sub.left_out.more", cells=list(left[:6]), n=len(left) - 6) if len(left) > 6 else \
            msg("sub.left_out", cells=list(left[:6]))
        note = joined(msg("sub.notebook"), msg("sub.writefile", files=", ".join(written[:4])) if written else None,
                      dropped if left else None, sep="; ")
    deliverable, deliverable_note, markdown, cells = _deliverable(rubric, phase, files, learner, notebook, implementation)
    return Submission(phase, phase_note, tuple(files), implementation, tuple(others), note, error, module_source,
                      module_files, deliverable, deliverable_note, markdown, cells)


def _deliverable(rubric: Rubric, phase: Path, files: Sequence[str], learner: Path, notebook: object,
                 implementation: Path | None) -> tuple[Path | None, Message | str, str | None, tuple[tuple[int, int], ...]]:
    if rubric.deliverable in files:
        return phase / rubric.deliverable, "", None, ()
    markdown = [f for f in files if f.lower().endswith((".md", ".markdown"))]
    chosen = None
    if len(markdown) == 1:
        chosen = markdown[0]
    elif markdown:
        chosen = max(markdown, key=lambda f: (_lab_words(phase / f, learner, rubric), f.lower() == "readme.md"))
    if chosen is not None:
        others = ", ".join(m for m in markdown if m != chosen)
        note = msg("sub.deliverable_others" if len(markdown) > 1 else "sub.deliverable", chosen=chosen,
                   want=rubric.deliverable, others=others)
        return phase / chosen, note, None, ()
    if notebook is not None and implementation is not None:
        note = msg("sub.deliverable_cells", name=implementation.name)
        return implementation, note, notebook.markdown, notebook.cells  # type: ignore[attr-defined]
    return None, "", None, ()


def _lab_words(path: Path, root: Path, rubric: Rubric) -> int:
    """How much a Markdown file reads like this lab's deliverable: the heading words of its section checks."""
    try:
        text = read_bytes(path, root, 64 * 1024).decode("utf-8", "replace").casefold()
    except SubmissionError:
        return -1
    words = {str(w).casefold() for c in rubric.checks for w in c.spec.get("headings", ())}
    return sum(1 for w in words if w in text) + (5 if rubric.lab.split("/")[1] in text.replace(" ", "-") else 0)


def handed_in(learners: Sequence[Path], rubrics: Sequence[Rubric], lab: str | None = None
              ) -> list[tuple[Path, Rubric, Submission]]:
    """Every (learner, lab) graded — ``lab`` only, else each lab the learner handed in — with what was found: found
    once for a class's similarity and history passes."""
    return [(learner, rubric, find_submission(rubric, learner)) for learner in learners for rubric in rubrics
            if (rubric.lab == lab if lab else applies(rubric, learner, rubrics))]


def applies(rubric: Rubric, learner: Path, rubrics: Sequence[Rubric] = ()) -> bool:
    """A lab is graded for a learner who handed in a file of it: by its name, or — when no other lab of the
    phase claims the folder by name — any Python, notebook or Markdown file there."""
    phase = learner / rubric.phase_dir
    if not phase.is_dir() or not inside(phase, learner):
        phase, note = phase_folder(learner, rubric.phase_dir)
        if note == linked_out(rubric.phase_dir):
            return True  # graded, to say why nothing of it counts — never listed
    try:
        files = _listing(phase)
    except OSError:
        return False
    if rubric.deliverable in files or matching(files, rubric.implementation) or matching(files, _patterns(rubric, ".ipynb")):
        return True
    rivals = [r for r in rubrics if r is not rubric and r.phase_dir == rubric.phase_dir]
    if any(r.deliverable in files or matching(files, r.implementation) for r in rivals):
        return False
    return any(f.endswith((".py", ".ipynb", ".md")) for f in files)
