"""Phase 05 · Lab 02 — Log-sum-exp and stable cross-entropy from logits.

First the naive versions (kept so I can watch them fail), then the stable ones
that subtract the maximum before exponentiating. Every function takes a 1-D
vector of logits and never modifies it.
"""

from __future__ import annotations

import numpy as np


# --- naive versions (for the demo only) -----------------------------------

def logsumexp_naive(z):
    z = np.asarray(z, dtype=np.float64)
    return np.log(np.sum(np.exp(z)))


def log_softmax_naive(z):
    z = np.asarray(z, dtype=np.float64)
    return z - logsumexp_naive(z)


# --- stable versions --------------------------------------------------------

def logsumexp(z):
    """log(sum_k exp(z_k)) computed as m + log(sum_k exp(z_k - m)), m = max(z)."""
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z)
    if not np.isfinite(m):
        # all -inf (or a +inf / nan somewhere): the shift would give nan, so don't shift
        m = 0.0
    return float(m + np.log(np.sum(np.exp(z - m))))


def log_softmax(z):
    """log p_i = z_i - logsumexp(z); never takes the log of a (possibly 0) probability."""
    z = np.asarray(z, dtype=np.float64)
    return z - logsumexp(z)


def cross_entropy_from_logits(z, y_star):
    """-log p_{y*} = logsumexp(z) - z[y*]."""
    return float(-log_softmax(z)[y_star])


if __name__ == "__main__":
    np.set_printoptions(precision=6, suppress=False)
    inputs = [
        [0.0, 0.0, 0.0],
        [1.0, 2.0, 3.0],
        [1000.0, 1001.0, 1002.0],
        [-1000.0, -999.0, -998.0],
    ]

    print("naive (expected to break on the last two):")
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        for z in inputs:
            print(f"  z = {z}: logsumexp = {logsumexp_naive(z)}, log_softmax = {log_softmax_naive(z)}")

    print("stable:")
    for z in inputs:
        print(f"  z = {z}")
        print(f"    logsumexp   = {logsumexp(z):.10f}")
        print(f"    log_softmax = {log_softmax(z)}")
        print(f"    CE(z, y*=0) = {cross_entropy_from_logits(z, 0):.10f}")

    print("shift invariance (c = 1000, -1000, 123.456):")
    base = np.array([1.0, 2.0, 3.0])
    for c in (1000.0, -1000.0, 123.456):
        d_lse = abs(logsumexp(base + c) - (logsumexp(base) + c))
        d_ls = np.max(np.abs(log_softmax(base + c) - log_softmax(base)))
        print(f"  c = {c:>9}: |lse(z+c) - (lse(z)+c)| = {d_lse:.1e}, "
              f"max|log_softmax(z+c) - log_softmax(z)| = {d_ls:.1e}")
        assert d_lse < 1e-9 and d_ls < 1e-9

