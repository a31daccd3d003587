# The code the lab page (shared/seed/phase-04-lab-00-softmax-gradient.txt) gives every learner, as it
# reads there: `grade similar` leaves it out, since two learners who typed it in did not copy each other.
import numpy as np


def softmax_jacobian_fd(z, h=1e-5):
    n = len(z)
    J = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n); e[j] = h
        J[:, j] = (softmax(z + e) - softmax(z - e)) / (2 * h)
    return J


z = [2.0, 1.0, 0.5, -1.0, 0.0]
J_analytical = softmax_jacobian(z)
J_numerical = softmax_jacobian_fd(z)
max_err = np.max(np.abs(J_analytical - J_numerical))
assert max_err < 1e-7, f"Jacobian mismatch: {max_err}"


def ce_loss(z, y):
    return -np.log(softmax(z)[y])


def ce_grad(z, y):
    p = softmax(z)
    g = p.copy()
    g[y] -= 1.0
    return g


def ce_grad_fd(z, y, h=1e-5):
    g = np.zeros(len(z))
    for j in range(len(z)):
        e = np.zeros(len(z)); e[j] = h
        g[j] = (ce_loss(z + e, y) - ce_loss(z - e, y)) / (2 * h)
    return g


for y in range(5):
    diff = np.max(np.abs(ce_grad(z, y) - ce_grad_fd(z, y)))
    assert diff < 1e-7
