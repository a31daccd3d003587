"""Phase 04 Lab 01: what a learner kit may ship — the lab page's own sigmoid and the detectors of recognisable
mistakes. The derivative and the hidden inputs stay in lab_01_reference.py, which imports these."""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    """1 / (1 + exp(-z)), computed without overflow on either side."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def in_terms_of_z(observed, z):
    """z (1 − z): the derivative written with the input where the sigmoid's value belongs."""
    z = np.asarray(z, dtype=np.float64)
    return np.shape(observed) == z.shape and bool(np.allclose(observed, z * (1 - z), atol=1e-9))


def missing_one_minus(observed, z):
    """σ(z) alone: the factor (1 − σ(z)) is missing."""
    return np.shape(observed) == np.shape(z) and bool(np.allclose(observed, sigmoid(z), atol=1e-9))


def squared(observed, z):
    """σ(z)²: (1 − σ(z)) replaced by σ(z)."""
    s = sigmoid(z)
    return np.shape(observed) == s.shape and bool(np.allclose(observed, s * s, atol=1e-9))
