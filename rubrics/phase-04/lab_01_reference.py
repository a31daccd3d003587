"""Trusted reference for Phase 04 Lab 01 (the sigmoid's derivative).

Loaded only by the grader's own process; never by a learner's worker, never shipped in a learner kit. It holds
the graded derivative and the hidden inputs; what a kit may ship is in lab_01_helpers.py.
"""

from __future__ import annotations

import numpy as np

from lab_01_helpers import *  # noqa: F403 - the shippable half: the sigmoid, the mistake detectors
from lab_01_helpers import sigmoid


def sigmoid_grad(z):
    s = sigmoid(z)
    return s * (1.0 - s)


def hidden_inputs():
    """Seeded random inputs of lengths 2 to 9 (same every run, not on the lab page)."""
    rng = np.random.default_rng(20260411)
    return [(rng.normal(0.0, 4.0, size=n),) for n in (2, 5, 9)]
