"""Phase 04 Lab 00: what a learner kit may ship — the lab page's own forward functions (softmax, the loss,
one-hot) and the detectors of recognisable mistakes. None of them computes a graded answer: the Jacobian,
the gradient and the hidden inputs stay in lab_00_reference.py, which imports these."""

from __future__ import annotations

import numpy as np


def logsumexp(z):
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z)
    return m + np.log(np.sum(np.exp(z - m)))


def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - np.max(z))
    return e / e.sum()


def ce_loss(z, y):
    z = np.asarray(z, dtype=np.float64)
    return logsumexp(z) - z[int(y)]


def one_hot(y, n):
    """The class y as a vector of n entries (for formulas in the deliverable: onehot(y), e_y)."""
    out = np.zeros(n)
    out[int(y)] = 1.0
    return out


def loss_from_probabilities(p, y):
    return -np.log(p[int(y)])


def shift_after_exp(observed, z):
    """exp(z) − max(z), normalised: the max is subtracted after exp, not before."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(all="ignore"):
        e = np.exp(z) - np.max(z)
        wrong = e / e.sum()
    return np.shape(observed) == z.shape and bool(np.all(np.isfinite(wrong))) and np.allclose(observed, wrong, atol=1e-9)


def scalar_outer(observed, z):
    """diag(p) - p @ p: the dot product (a scalar) where the outer product p pᵀ belongs."""
    p = softmax(z)
    return np.shape(observed) == (len(p), len(p)) and np.allclose(observed, np.diag(p) - p @ p, atol=1e-9)


def elementwise_outer(observed, z):
    """diag(p) - p * p.T (on a 1-D array .T does nothing) or (I - p) * p: p_j² broadcast, not p_i p_j."""
    p = softmax(z)
    return np.shape(observed) == (len(p), len(p)) and np.allclose(observed, np.diag(p) - p * p, atol=1e-9)


def row_broadcast(observed, z):
    """p[:, None] * (eye - p[:, None]): p_i where p_j belongs, so row i holds -p_i² off the diagonal."""
    p = softmax(z)
    return np.shape(observed) == (len(p), len(p)) and np.allclose(observed, p[:, None] * (np.eye(len(p)) - p[:, None]),
                                                                  atol=1e-9)


def diagonal_only(observed, z):
    p = softmax(z)
    return np.shape(observed) == (len(p), len(p)) and np.allclose(observed, np.diag(p * (1 - p)), atol=1e-9)


def label_shifted(observed, z, y):
    """The loss of a neighbouring class, -log p[y - 1] (labels read as 1-based) or -log p[y + 1]: the same wrong
    index on every input."""
    n = len(np.asarray(z))
    if np.shape(observed) not in ((), (1,)):
        return False
    value = float(np.ravel(observed)[0])
    if not np.isfinite(value):
        return False
    return any(abs(value - ce_loss(z, (int(y) + k) % n)) <= 1e-9 * max(1.0, abs(value)) for k in (-1, 1)) and \
        abs(value - ce_loss(z, y)) > 1e-9


def one_hot_wrong_index(observed, z, y):
    """softmax(z) - one_hot(k) for some k other than y."""
    p = softmax(z)
    if np.shape(observed) != p.shape:
        return False
    for k in range(len(p)):
        if k != int(y):
            wrong = p.copy()
            wrong[k] -= 1.0
            if np.allclose(observed, wrong, atol=1e-9):
                return True
    return False


def missing_one_hot(observed, z, y):
    return np.shape(observed) == np.shape(z) and np.allclose(observed, softmax(z), atol=1e-9)
