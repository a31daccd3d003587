"""Write files so a reader never sees half a report and a failed run never destroys the last good one."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path

from grader.errors import GraderError

DEFAULT_HINT = "choose another --out"


def atomic_write_text(path: Path, text: str, *, hint: str = DEFAULT_HINT) -> None:
    """Write UTF-8 text exactly as given (no newline translation), atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), hint=hint)


def atomic_write_bytes(path: Path, data: bytes, *, hint: str = DEFAULT_HINT) -> None:
    """Replace ``path`` in one step: until ``os.replace`` succeeds the old file is untouched."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _error(path, exc, hint) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _error(path, exc, hint) from exc
        raise


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


def _error(path: Path, exc: OSError, hint: str) -> GraderError:
    reason = " ".join((exc.strerror or str(exc) or type(exc).__name__).split())
    return GraderError(f"cannot write {path}: {reason} — {hint}")
