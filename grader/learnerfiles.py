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
from typing import Any

from grader.errors import SubmissionError
from grader.i18n import msg

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
    """``path``, links resolved, lies in ``root``. A path written below ``root`` through no link is inside whatever
    ``root`` resolves to: that is answered with a few ``lstat`` calls, not two full resolutions (every learner's
    phase folders are asked about on every run)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = ("..",)
    if ".." not in parts:
        current, linked = root, False
        for part in parts:
            current = current / part
            if os.path.islink(current):
                linked = True
                break
        if not linked:
            return True
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
        raise SubmissionError(msg("file.unreadable", name=name, error=getattr(exc, "strerror", None) or str(exc))) from None
    if not resolved.is_relative_to(base):
        raise SubmissionError(msg("file.link_out", name=name))
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SubmissionError(msg("file.link", name=name)) from None
        raise SubmissionError(msg("file.cannot_open", name=name, error=exc.strerror or str(exc))) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionError(msg("file.not_regular", name=name))
        if _secret(info):
            raise SubmissionError(msg("file.hard_link", name=name))
        if info.st_dev != os.stat(base).st_dev:
            raise SubmissionError(msg("file.other_fs", name=name))
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
        raise SubmissionError(msg("file.not_regular", name=name)) from None
    except OSError as exc:
        raise SubmissionError(msg("file.unreadable", name=name, error=exc.strerror or str(exc))) from None
    finally:
        os.close(fd)


def size(path: Path) -> int:
    """A file's size without following a link (0 when it cannot be told)."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


# --- one walk of a submission: the content key, and the copy for the sandbox --------------------------------------

COPY_BYTES = 512 << 20  # what one learner's folder may hold to be copied for grading (sizes as listed, sparse or not)
COPY_FILES = 20_000
MAX_DEPTH = 64  # folders inside folders; deeper ones are left out (a path that long is never a submission's)


class TooLarge(SubmissionError):
    """The folder is larger than the grader copies: the learner's to fix (the message says what)."""


def _kept(dir_fd: int, names: list[str]) -> list[tuple[str, os.stat_result]]:
    """The entries of a folder that are part of the submission, with their ``lstat``, by name."""
    out = []
    for name in sorted(names):
        if name in CLUTTER_DIRS or name in CLUTTER_FILES or name.endswith(".pyc"):
            continue
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode):
            out.append((name, info))
    return out


def _secret(info: os.stat_result) -> bool:
    """A hard link to a file its owner keeps private (``/etc/shadow`` linked in): never read for a learner."""
    return info.st_nlink > 1 and not info.st_mode & stat.S_IROTH


def walk(root: Path, hasher: Any, copy: Path | None = None, limit_bytes: int = COPY_BYTES,
         limit_files: int = COPY_FILES) -> tuple[str, ...]:
    """Hash the submission under ``root`` into ``hasher`` — and, with ``copy``, copy it there while reading it, so the
    key is of exactly the bytes that were copied. Folders are opened one below the other without following links
    (``os.fwalk``), files with ``O_NOFOLLOW``: a folder swapped for a link mid-walk is never entered. Links stay
    links inside the copy when they lead inside the folder; links out, FIFOs and devices, and hard links to private
    files are never copied. Returns the links out (relative to ``root``). Raises TooLarge past the caps."""
    top = os.fspath(root)
    real = os.path.realpath(top)
    outside: list[str] = []
    total = files = 0
    for folder, dirs, names, dir_fd in os.fwalk(top, follow_symlinks=False):
        relative_folder = os.path.relpath(folder, top)
        kept = _kept(dir_fd, dirs + names)
        dirs[:] = [n for n, info in kept if stat.S_ISDIR(info.st_mode)]
        if dirs and relative_folder.count(os.sep) >= MAX_DEPTH - 1:
            hasher.update(b"E-deep")  # folders below this depth are neither hashed nor copied: no code needs them
            dirs[:] = []
        target = None if copy is None else os.path.normpath(os.path.join(copy, relative_folder))
        if target is not None:
            os.makedirs(target, mode=0o700, exist_ok=True)
        for name, info in kept:
            if stat.S_ISDIR(info.st_mode):
                continue
            relative = os.path.normpath(os.path.join(relative_folder, name)).replace(os.sep, "/")
            encoded = relative.encode("utf-8", "surrogateescape")
            hasher.update(b"F" + len(encoded).to_bytes(4, "little") + encoded)
            files += 1
            if copy is not None and files > limit_files:
                raise TooLarge(msg("file.too_many", n=limit_files))
            if stat.S_ISLNK(info.st_mode):
                _link(folder, name, dir_fd, relative, real, copy, target, hasher, outside)
                continue
            total += info.st_size
            if copy is None and info.st_size > limit_bytes:
                hasher.update(b"S" + str(info.st_size).encode())  # too large to copy: its size is what decides
                continue
            if copy is not None and total > limit_bytes:
                raise TooLarge(msg("file.too_large", mib=limit_bytes >> 20, file=relative, size=info.st_size / (1 << 20)))
            if _secret(info):
                hasher.update(b"H")
                outside.append(relative)
                continue
            _file(name, dir_fd, target, info, hasher)
    return tuple(outside)


def _link(folder: str, name: str, dir_fd: int, relative: str, real: str, copy: Path | None, target: str | None,
          hasher: Any, outside: list[str]) -> None:
    try:
        pointed = os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        hasher.update(f"E{exc.errno}".encode())
        return
    hasher.update(b"L" + pointed.encode("utf-8", "surrogateescape"))
    resolved = os.path.realpath(os.path.join(folder, name))
    if not (resolved == real or resolved.startswith(real + os.sep)):
        outside.append(relative)
        return
    if copy is not None and target is not None:
        inside = os.path.join(os.fspath(copy), os.path.relpath(resolved, real))
        os.symlink(os.path.relpath(inside, target), os.path.join(target, name))


def _file(name: str, dir_fd: int, target: str | None, info: os.stat_result, hasher: Any) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        hasher.update(f"E{exc.errno}".encode())
        return
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            hasher.update(b"E-changed")  # replaced between the listing and the open: not what was listed
            return
        hasher.update(b"D")
        out = -1
        if target is not None:
            out = os.open(os.path.join(target, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                          stat.S_IMODE(opened.st_mode) & 0o755 | 0o600)
        try:
            while chunk := os.read(fd, 1 << 20):  # streamed: a 50 MB file costs 1 MB of memory
                hasher.update(chunk)
                if out >= 0:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view):]
        finally:
            if out >= 0:
                os.close(out)
    finally:
        os.close(fd)
