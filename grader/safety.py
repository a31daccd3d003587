"""Where an instructor's file may come from, and text that reaches a person inert.

Rubrics run their reference module in the grader's own process and overrides set grades, so neither is ever
taken from inside a folder being graded, nor picked up implicitly. Learner text printed to a terminal is stripped of control sequences
(a learner must not clear the instructor's screen, forge lines or write the clipboard).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path


def _resolved(path: Path) -> Path | None:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return None


def inside_any(path: Path, roots: Sequence[Path]) -> Path | None:
    """The root among ``roots`` that ``path`` is or lies within, else None."""
    target = _resolved(path)
    if target is None:
        return None
    return next((Path(given) for given, root in zip(roots, map(_resolved, roots))
                 if root is not None and (target == root or target.is_relative_to(root))), None)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Control characters (ESC, C1, bidirectional overrides) shown as ``\\x1b``-style escapes; lines and tabs kept."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)
