"""Trusted reference for Phase 05 Lab 02 (log-sum-exp and stable cross-entropy from logits)."""

from __future__ import annotations

import numpy as np

from lab_02_helpers import *  # noqa: F403 - the shift relation's transforms, which a learner kit may ship



def logsumexp(z):
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z)
    return m + np.log(np.sum(np.exp(z - m)))


def log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    return z - logsumexp(z)


def cross_entropy_from_logits(z, y_star):
    return -log_softmax(z)[int(y_star)]


def hidden_logits():
    rng = np.random.default_rng(20260502)
    return [(rng.normal(0.0, 5.0, size=n),) for n in (2, 4, 7, 11)]
