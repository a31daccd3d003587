"""Write files so a reader never sees half a report and a failed run never destroys the last good one."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
from pathlib import Path

from grader.errors import GraderError
from grader.i18n import Message, as_message, msg, verbatim

DEFAULT_HINT = msg("write.hint.out")


def atomic_write_text(path: Path, text: str, *, hint: Message | str = DEFAULT_HINT, durable: bool = True) -> None:
    """Write UTF-8 text exactly as given (no newline translation), atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), hint=hint, durable=durable)


def atomic_write_bytes(path: Path, data: bytes, *, hint: Message | str = DEFAULT_HINT, durable: bool = True) -> None:
    """Replace ``path`` in one step: until ``os.replace`` succeeds the old file is untouched.

    ``hint`` says what to do instead when the file cannot be written (a catalogue message; a plain text is shown
    as it is). ``durable=False`` skips the fsync: still atomic against a killed grader, and a class run writing
    thousands of per-learner files syncs once at its end instead.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    except OSError as exc:
        raise _error(path, exc, hint) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _error(path, exc, hint) from exc
        raise


# ".<name>.<pid>-<random>.tmp": atomic_write_bytes's, and the CLI's write test (".grade-probe.<pid>-<random>.tmp")
_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")


def remove_stale_temps(folder: Path, depth: int = 2) -> list[Path]:
    """Remove the temporary files a killed writer left in ``folder`` (and ``depth - 1`` levels below).

    Only a file whose writer process is gone is removed, so a grader writing to the same folder right now
    keeps its files. Returns what was removed; a folder that cannot be read is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if depth > 1:
                    removed.extend(remove_stale_temps(Path(entry.path), depth - 1))
                continue
            match = _TEMP.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            if process_alive(int(match["pid"])):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process that may have left files behind could still be writing them."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a number that is no pid): leave the file
    try:  # a killed writer whose parent has not reaped it yet is a zombie: it writes nothing any more
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b") ")[2][:1] not in (b"Z", b"X")
    except OSError:
        return True


def _final_mode(path: Path) -> int:
    """mkstemp makes 0600 files; keep an existing file's mode, else what ``open()`` would give."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _error(path: Path, exc: OSError, hint: Message | str) -> GraderError:
    reason = " ".join((exc.strerror or str(exc) or type(exc).__name__).split())  # the system's words: data
    return GraderError(msg("write.cannot", path=str(path), reason=verbatim(reason), hint=as_message(hint)))
