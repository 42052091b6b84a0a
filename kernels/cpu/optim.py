"""Fused optimizer updates: one pass over a flat parameter buffer and its flat
gradient buffer (or over one array on the per-array path). Homework semantics:
SGD-momentum keeps v = momentum * v + lr * g, then p -= v."""
import numpy as np
from ._jit import njit


@njit(cache=True, nogil=True)
def sgd_momentum_update(grad, param, velocity, learning_rate, momentum):
    g = grad.reshape(grad.size)
    p = param.reshape(param.size)
    v = velocity.reshape(velocity.size)
    for i in range(p.size):
        vi = momentum * v[i] + learning_rate * g[i]
        v[i] = vi
        p[i] -= vi


@njit(cache=True, nogil=True)
def adam_update(grad, param, m, v, learning_rate_t, beta1, beta2, epsilon):
    """Bias-corrected Adam, the correction folded into learning_rate_t =
    lr * sqrt(1 - beta2^t) / (1 - beta1^t) (the homework's formulation)."""
    g = grad.reshape(grad.size)
    p = param.reshape(param.size)
    mf = m.reshape(m.size)
    vf = v.reshape(v.size)
    for i in range(p.size):
        # (g - beta * g) rather than (1.0 - beta) * g: a float64 literal would pull
        # the whole float32 loop into float64 (asv optim.OptimKernels)
        gi = g[i]
        g2 = gi * gi
        mi = beta1 * mf[i] + (gi - beta1 * gi)
        vi = beta2 * vf[i] + (g2 - beta2 * g2)
        mf[i] = mi
        vf[i] = vi
        p[i] -= learning_rate_t * mi / (np.sqrt(vi) + epsilon)
