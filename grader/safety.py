"""Where an instructor's file may come from, and text that reaches a person inert.

Rubrics run their reference module in the grader's own process and overrides set grades, so neither is ever
taken from inside a learner's folder. Learner text printed to a terminal is stripped of control sequences
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


def inside_any(path: Path, roots: Sequence[Path]) -> bool:
    """``path`` is one of ``roots`` or lies within one of them."""
    target = _resolved(path)
    if target is None:
        return False
    return any(root is not None and (target == root or target.is_relative_to(root)) for root in map(_resolved, roots))


def inside_a_learner(path: Path, roots: Sequence[Path]) -> Path | None:
    """The learner folder (one with phase-NN/ inside) among ``roots`` and their children that holds ``path``."""
    from grader.grading import is_learner

    target = _resolved(path)
    if target is None:
        return None
    for root in map(_resolved, roots):
        if root is None or not (target == root or target.is_relative_to(root)):
            continue
        for folder in [target, *target.parents]:
            if folder != root and not folder.is_relative_to(root):
                break
            try:
                if folder.is_dir() and is_learner(folder):
                    return folder
            except OSError:
                continue
    return None


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Control characters (ESC, C1, bidirectional overrides) shown as ``\\x1b``-style escapes; lines and tabs kept."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)
