"""Reading a learner's files in the grader's own process, where a hostile file must cost nothing.

Every read of a submission file by the grader goes through :func:`read_bytes`: a link out of the learner's
folder, a FIFO, a device or a file of another file system (``/proc/kmsg`` behind a link) is refused before
it is opened, the open never blocks and never follows a link, and at most ``limit`` bytes are read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from grader.errors import SubmissionError

CLUTTER_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache",
                          ".venv", "venv", "node_modules"})  # never part of a submission; a venv can be 100,000 files
CLUTTER_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})  # a file browser's, not the learner's work


def left_out(folder: str, names: list[str]) -> set[str]:
    """The names in ``folder`` that are not part of the submission: clutter, and anything that is not a file,
    folder or link (a FIFO would block a copy for ever). The copy for the sandbox, the content key and the
    cluster's bundle all ask this one question, so a result is reused only when what the code saw is the same."""
    skipped: set[str] = set()
    for name in names:
        if name in CLUTTER_DIRS or name in CLUTTER_FILES or name.endswith(".pyc"):
            skipped.add(name)
            continue
        try:
            mode = os.lstat(os.path.join(folder, name)).st_mode
        except OSError:
            skipped.add(name)
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            skipped.add(name)
    return skipped


def inside(path: Path, root: Path) -> bool:
    """``path``, links resolved, lies in ``root``."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        return False


def read_bytes(path: Path, root: Path, limit: int, shown: str | None = None) -> bytes:
    """At most ``limit + 1`` bytes of a regular file inside ``root`` (so a caller can tell it was cut)."""
    name = shown or path.name
    try:
        resolved = path.resolve()
        base = root.resolve()
    except (OSError, RuntimeError) as exc:
        raise SubmissionError(f"{name}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if not resolved.is_relative_to(base):
        raise SubmissionError(f"{name}: a link to a file outside your folder; hand in the file itself")
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SubmissionError(f"{name}: a link the grader does not follow; hand in the file itself") from None
        raise SubmissionError(f"{name}: cannot be read ({exc.strerror or exc}); check it exists and is readable") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionError(f"{name}: not a regular file; hand in a regular file")
        if info.st_dev != os.stat(base).st_dev:
            raise SubmissionError(f"{name}: on another file system than your folder; hand in the file itself")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except BlockingIOError:
        raise SubmissionError(f"{name}: not a regular file; hand in a regular file") from None
    except OSError as exc:
        raise SubmissionError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def size(path: Path) -> int:
    """A file's size without following a link (0 when it cannot be told)."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0
