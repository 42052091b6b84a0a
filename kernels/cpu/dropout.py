"""Dropout: a Bernoulli keep-mask scaled by 1/(1-p), drawn from Numba's RNG
(seeded through ``seed``) so that mask generation never leaves compiled code."""
import numpy as np
from numba import njit


@njit(cache=True)
def seed(value):
    np.random.seed(value)


@njit(cache=True)
def dropout_forward(input, output, mask, p):
    x = input.reshape(input.size)
    y = output.reshape(output.size)
    m = mask.reshape(mask.size)
    scale = 1.0 / (1.0 - p)
    for i in range(x.size):
        keep = scale if np.random.random() >= p else 0.0
        m[i] = keep
        y[i] = x[i] * keep


@njit(cache=True)
def dropout_backward(gradOutput, gradInput, mask):
    g = gradOutput.reshape(gradOutput.size)
    gi = gradInput.reshape(gradInput.size)
    m = mask.reshape(mask.size)
    for i in range(g.size):
        gi[i] = g[i] * m[i]
