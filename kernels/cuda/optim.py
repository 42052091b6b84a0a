"""Fused optimizer updates on the GPU, one grid-stride pass over a parameter array
and its gradient (twin of ``fastnn.kernels.cpu.optim``; homework semantics:
v = momentum * v + lr * g, p -= v)."""
import math

from numba import cuda

from . import config
from ._typed import like


@cuda.jit(cache=True)
def _sgd_momentum(g, p, v, learning_rate, momentum):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < p.size:
        vi = momentum * v[i] + learning_rate * g[i]
        v[i] = vi
        p[i] -= vi
        i += stride


@cuda.jit(cache=True)
def _adam(g, p, m, v, learning_rate_t, beta1, beta2, epsilon):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < p.size:
        gi = g[i]
        one = like(p, 1.0)
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= learning_rate_t * mi / (math.sqrt(vi) + epsilon)
        i += stride


def sgd_momentum_update(grad, param, velocity, learning_rate, momentum):
    if param.size == 0:
        return
    blocks, tpb = config.grid_1d(param.size)
    _sgd_momentum[blocks, tpb](config.flat(grad), config.flat(param), config.flat(velocity),
                               config.typed(param, learning_rate), config.typed(param, momentum))


def adam_update(grad, param, m, v, learning_rate_t, beta1, beta2, epsilon):
    """Bias-corrected Adam, the correction folded into learning_rate_t =
    lr * sqrt(1 - beta2^t) / (1 - beta1^t) (the homework's formulation)."""
    if param.size == 0:
        return
    blocks, tpb = config.grid_1d(param.size)
    _adam[blocks, tpb](config.flat(grad), config.flat(param), config.flat(m), config.flat(v),
                       config.typed(param, learning_rate_t), config.typed(param, beta1),
                       config.typed(param, beta2), config.typed(param, epsilon))
