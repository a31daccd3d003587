"""Trusted reference for Phase 04 Lab 00 (softmax Jacobian and cross-entropy gradient).

Loaded only by the grader's own process; never by a learner's worker, never shipped in a learner kit. It holds
the true graded functions, the hidden input generators and the functions that rebuild an answer from a learner's
own softmax; what a kit may ship (the forward functions, the mistake detectors) is in lab_00_helpers.py.
"""

from __future__ import annotations

import numpy as np

from lab_00_helpers import *  # noqa: F403 - the shippable half: softmax, the loss, the mistake detectors
from lab_00_helpers import softmax

SEED_Z = [2.0, 1.0, 0.5, -1.0, 0.0]


def softmax_jacobian(z):
    p = softmax(z)
    return np.diag(p) - np.outer(p, p)


def ce_grad(z, y):
    g = softmax(z)
    g[int(y)] -= 1.0
    return g


def hidden_logits():
    """Seeded random logits of lengths 2 to 12 (same every run, not on the lab page)."""
    rng = np.random.default_rng(20260404)
    return [(rng.normal(0.0, 3.0, size=n),) for n in (2, 3, 4, 6, 9, 12)]


def hidden_logits_with_class():
    return [(z, y) for (z,) in hidden_logits() for y in range(len(z))]


def jacobian_from_probabilities(p):
    """The Jacobian from the softmax's values: a learner's Jacobian equal to this of their own softmax is right
    but for that softmax."""
    return np.diag(p) - np.outer(p, p)


def gradient_from_probabilities(p, y):
    g = np.array(p, dtype=np.float64)
    g[int(y)] -= 1.0
    return g
