"""Phase 04 · Lab 00 — softmax / cross-entropy gradients, checked with centred finite differences.

The derivations are in lab-00-softmax-gradient.md; this file only verifies them.
softmax and the loss reuse the stable log-sum-exp from Phase 05 (lab_02_logsumexp.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "phase-05"))
from lab_02_logsumexp import logsumexp  # noqa: E402


def softmax(z):
    """p_i = exp(z_i - logsumexp(z)): no overflow, and the caller's array is never modified."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(z - logsumexp(z))


def softmax_jacobian(z):
    """J[i, j] = dp_i/dz_j = p_i (delta_ij - p_j), i.e. J = diag(p) - p p^T."""
    p = softmax(z)
    return np.diag(p) - np.outer(p, p)


def softmax_jacobian_fd(z, h=1e-5):
    """Centred differences, one column per input coordinate: error O(h^2)."""
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    J = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        J[:, j] = (softmax(z + e) - softmax(z - e)) / (2 * h)
    return J


def ce_loss(z, y):
    """L = -log p_y = logsumexp(z) - z_y (never takes the log of a probability)."""
    z = np.asarray(z, dtype=np.float64)
    return logsumexp(z) - z[y]


def ce_grad(z, y):
    """dL/dz = softmax(z) - one_hot(y)."""
    g = softmax(z)  # a fresh array, safe to modify
    g[y] -= 1.0
    return g


def ce_grad_fd(z, y, h=1e-5):
    """Centred differences of ce_loss along each coordinate."""
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    g = np.zeros(n)
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        g[j] = (ce_loss(z + e, y) - ce_loss(z - e, y)) / (2 * h)
    return g


if __name__ == "__main__":
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    z = np.array([2.0, 1.0, 0.5, -1.0, 0.0])

    J_analytical = softmax_jacobian(z)
    J_numerical = softmax_jacobian_fd(z)
    max_err = np.max(np.abs(J_analytical - J_numerical))
    print(f"softmax Jacobian: max_err = {max_err:.1e}")
    assert max_err < 1e-7, f"Jacobian mismatch: {max_err}"
    assert np.allclose(J_analytical, J_analytical.T), "Jacobian should be symmetric"

    for y in range(len(z)):
        diff = np.max(np.abs(ce_grad(z, y) - ce_grad_fd(z, y)))
        print(f"CE gradient, y = {y}: max_err = {diff:.1e}")
        assert diff < 1e-7, f"CE gradient mismatch for y={y}: {diff}"

    p = softmax(z)
    print("p = softmax(z) =", p, " sum =", p.sum())
    print("J_analytical =")
    print(J_analytical)
    print("diagonal      =", np.diag(J_analytical))
    print("p * (1 - p)   =", p * (1 - p))
    print("row sums      =", J_analytical.sum(axis=1))

    # paper sanity check: z = [2, 1, 0], y = 0
    print("sanity check z = [2, 1, 0], y = 0: grad =", ce_grad(np.array([2.0, 1.0, 0.0]), 0))
    print("all checks passed")
