"""Paper before code: when a learner's folder is in a git repository, which came first in its history.

The lab's first acceptance line is "both derivations completed on paper before any code is written". The
history can say when the deliverable first held a derivation (a section under the rubric's derivation
headings with a formula or a few sentences) and when the implementation first defined one of the lab's
functions. Information for the instructor only: commit dates are the learner's to set, so it never changes
a grade. The repository is the learner's, so git runs as a separate process with no configuration of its own
(no system or global file, no hooks, no pager, no fsmonitor), a time limit and a memory limit, and only reads.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.model import Rubric
from grader.submission import Submission

MAX_LOG = 20_000  # commits of the log read, newest first: a class's history, bounded for a hostile repository
MAX_LOG_BYTES = 32 << 20
MAX_VERSIONS = 40  # versions of a file read, oldest first
MAX_BLOB = 512 << 10
MAX_BLOBS = 400  # versions read per repository: at 512 KiB each at most, one bounded cat-file --batch
SECONDS = 5.0
MEMORY = 1 << 30
MIN_WORDS = 15  # a derivation section with no formula needs at least this many words to count as written
_FORMULA = re.compile(r"[\w)}\]][^\n=]{0,80}=[^\n=]{1,80}[\w(\\]")  # "a = b": a formula, not a heading
_SAFE = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.pager=cat",
         "-c", "safe.directory=*", "-c", "diff.external=", "-c", "core.sshCommand=false", "--no-pager")


@dataclass(frozen=True)
class Provenance:
    """What a learner's history says about one lab; ``kind`` is its message's last part."""

    learner: str
    lab: str
    kind: str  # paper_first, code_first, together, no_history, never_committed, no_code, no_derivation,
    # no_derivation_or_code
    derivation: int | None = None  # commit time (Unix seconds)
    code: int | None = None

    @property
    def hours(self) -> float | None:
        if self.derivation is None or self.code is None:
            return None
        return abs(self.code - self.derivation) / 3600


def find_repository(folder: Path, levels: int = 40) -> Path | None:
    """The nearest enclosing folder with a ``.git`` folder. A ``.git`` file (a worktree's pointer) may point anywhere,
    another learner's repository included, so it is not followed: that folder has no history to read."""
    here = folder.resolve()
    for _ in range(levels):
        marker = here / ".git"
        if marker.is_dir() and not marker.is_symlink():
            return here
        if marker.exists() or marker.is_symlink():
            return None
        if here.parent == here:
            return None
        here = here.parent
    return None


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    os.setsid()


def git(repository: Path, *args: str, stdin: bytes | None = None, limit: int = MAX_BLOB,
        seconds: float = SECONDS) -> bytes | None:
    """One read-only git command in ``repository``; None when it fails, is too slow or says too much."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    with tempfile.TemporaryDirectory(prefix="grader-git-") as home:
        env.update(HOME=home, XDG_CONFIG_HOME=home, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
                   GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_ASKPASS="true", LC_ALL="C")
        try:
            done = subprocess.run(["git", *_SAFE, "-C", str(repository), *args], capture_output=True, env=env,
                                  timeout=seconds, preexec_fn=_limits, input=stdin if stdin is not None else b"",
                                  check=False)
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
    if done.returncode != 0 or len(done.stdout) > limit:
        return None
    return done.stdout


class Repository:
    """One repository's history of the files asked for, read with one ``git log`` and one ``cat-file --batch``."""

    def __init__(self, root: Path, paths: Sequence[str]) -> None:
        self.root = root
        self._versions: dict[str, list[tuple[int, str]]] | None = None
        self.commits: dict[str, list[tuple[str, int]]] = {p: [] for p in paths}  # path -> (commit, time), oldest first
        common = os.path.commonpath(paths) if paths else ""
        if common in paths:  # one file: its folder
            common = os.path.dirname(common)
        out = git(root, "log", f"--max-count={MAX_LOG}", "--format=@%H %ct", "--name-only", "--no-renames", "--",
                  common or ".", limit=MAX_LOG_BYTES) if paths else None
        sha, when = "", 0
        for line in (out or b"").decode("utf-8", "replace").splitlines():
            if line.startswith("@"):
                head, _, stamp = line[1:].partition(" ")
                sha, when = (head, int(stamp)) if re.fullmatch(r"[0-9a-f]{40,64}", head) and stamp.isdigit() else ("", 0)
            elif sha and line in self.commits and len(self.commits[line]) < MAX_VERSIONS * 5:
                self.commits[line].append((sha, when))
        for versions in self.commits.values():
            versions.reverse()

    def versions(self, path: str) -> list[tuple[int, str]]:
        """(time, text) of the file's first MAX_VERSIONS versions, oldest first; a version too large is left out. Every
        file's versions are read at the first call, with one ``--batch-check`` and one ``--batch`` for them all."""
        if self._versions is None:
            self._versions = self._read_all()
        return self._versions.get(path, [])

    def _read_all(self) -> dict[str, list[tuple[int, str]]]:
        wanted = [(path, sha, when) for path, commits in self.commits.items() for sha, when in commits[:MAX_VERSIONS]]
        if not wanted:
            return {}
        seconds = SECONDS + 0.01 * len(wanted)
        names = "".join(f"{sha}:{path}\n" for path, sha, _ in wanted).encode()
        sizes = git(self.root, "cat-file", "--batch-check", stdin=names, limit=len(wanted) * 200, seconds=seconds) or b""
        small = []
        for item, line in zip(wanted, sizes.decode("ascii", "replace").splitlines()):
            fields = line.split()
            if len(fields) == 3 and fields[1] == "blob" and fields[2].isdigit() and int(fields[2]) <= MAX_BLOB:
                small.append(item)
        small = small[:MAX_BLOBS]
        if not small:
            return {}
        data = git(self.root, "cat-file", "--batch", stdin="".join(f"{sha}:{path}\n" for path, sha, _ in small).encode(),
                   limit=len(small) * (MAX_BLOB + 200), seconds=seconds) or b""
        out: dict[str, list[tuple[int, str]]] = {}
        at = 0
        for path, _, when in small:
            end = data.find(b"\n", at)
            header = data[at:end].split() if end >= 0 else []
            if len(header) != 3 or not header[2].isdigit():
                break
            size = int(header[2])
            out.setdefault(path, []).append((when, data[end + 1:end + 1 + size].decode("utf-8", "replace")))
            at = end + 1 + size + 1
        return out

    def first(self, path: str, holds) -> int | None:  # noqa: ANN001 - a predicate on the file's text
        return next((when for when, text in self.versions(path) if holds(text)), None)


def _defines(functions: Sequence[str]):  # noqa: ANN202
    pattern = re.compile(r"^[ \t]*def[ \t]+(" + "|".join(map(re.escape, functions)) + r")[ \t]*\(", re.MULTILINE)
    return lambda text: pattern.search(text[:MAX_BLOB]) is not None


def _derives(headings: Sequence[str], path: Path, root: Path):  # noqa: ANN202
    from grader.deliverable import parse_text

    def holds(text: str) -> bool:
        try:
            document = parse_text(text[:MAX_BLOB], path, root)
        except Exception:  # noqa: BLE001 - a version that cannot be read holds no derivation
            return False
        return any(section.images or _FORMULA.search(section.formula_text[:20_000])  # a photo of the paper counts
                   or len(section.prose.split()) >= MIN_WORDS for section in document.find(headings))

    return holds


def derivation_headings(rubric: Rubric) -> tuple[str, ...]:
    """The headings of the rubric's derivation checks (those that look for a result or its steps)."""
    out: list[str] = []
    for check in rubric.checks:
        if check.kind == "section" and ("result" in check.spec or "steps_of" in check.spec):
            out += [h for h in check.spec.get("headings", ()) if h not in out]
    return tuple(out)


def class_provenance(learners: Sequence[Path], rubrics: Sequence[Rubric],
                     handed: Sequence[tuple[Path, Rubric, Submission]] | None = None) -> list[Provenance]:
    """Every learner's finding for every lab they handed in (``handed``: already found), each repository read once
    for all its learners."""
    from grader.submission import handed_in

    wanted: dict[Path | None, list[tuple[Path, Rubric, Path | None, Path | None]]] = {}
    for learner, rubric, found in handed if handed is not None else handed_in(learners, rubrics):
        if not derivation_headings(rubric) or (found.implementation is None and found.deliverable is None):
            continue
        wanted.setdefault(find_repository(learner), []).append((learner, rubric, found.implementation,
                                                                found.deliverable))
    out: list[Provenance] = []
    for root, items in wanted.items():
        if root is None:
            out += [Provenance(learner.name, rubric.lab, "no_history") for learner, rubric, _, _ in items]
            continue

        def relative(path: Path | None) -> str | None:
            try:
                return None if path is None else path.resolve().relative_to(root).as_posix()
            except ValueError:
                return None

        paths = sorted({r for _, _, code, text in items for r in (relative(code), relative(text)) if r})
        repository = Repository(root, paths)
        for learner, rubric, code_path, text_path in items:
            code_at, text_at = relative(code_path), relative(text_path)
            code = repository.first(code_at, _defines([f.name for f in rubric.functions])) if code_at else None
            derivation = repository.first(text_at, _derives(derivation_headings(rubric), text_path, learner)) \
                if text_at and text_path is not None else None
            out.append(_finding(learner.name, rubric.lab, code, derivation,
                                any(repository.commits.get(p) for p in (code_at, text_at) if p)))
    return sorted(out, key=lambda p: (p.learner, p.lab))


def _finding(learner: str, lab: str, code: int | None, derivation: int | None, committed: bool) -> Provenance:
    if code is None and derivation is None:
        return Provenance(learner, lab, "no_derivation_or_code" if committed else "never_committed")
    if code is None:
        return Provenance(learner, lab, "no_code", derivation, None)
    if derivation is None:
        return Provenance(learner, lab, "no_derivation", None, code)
    kind = "together" if code == derivation else "paper_first" if derivation < code else "code_first"
    return Provenance(learner, lab, kind, derivation, code)
