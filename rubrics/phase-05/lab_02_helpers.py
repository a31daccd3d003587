"""Phase 05 Lab 02: what a learner kit may ship — the shift-invariance relation's transform and its expected
relations (no graded answer is computed here)."""

from __future__ import annotations

import numpy as np

SHIFT = 37.5


def shift(z):
    """f(z + c) computed on the shifted logits z + 37.5"""
    return (np.asarray(z, dtype=np.float64) + SHIFT,)


def plus_shift(value, z):
    return value + SHIFT


def unchanged(value, z):
    return value
