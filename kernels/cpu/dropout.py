"""Dropout: a Bernoulli keep-mask scaled by 1/(1-p).

Each call takes one 64-bit key from Numba's generator (seeded through ``seed``, so
``fastnn.manual_seed`` reproduces the masks) and gives element i the uniform
``splitmix64(key + i * golden) >> 32``. A counter-based hash has no state carried from
one element to the next, so the loop vectorises, where a Mersenne Twister draw per
element (``np.random.random()``) does not (asv ``dropout.DropoutModule``).
"""
import numpy as np
from ._jit import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_32 = 4294967296.0


@njit(cache=True, nogil=True)
def seed(value):
    np.random.seed(value)


@njit(cache=True, nogil=True, inline="always")
def _uniform32(key, i):
    """splitmix64's output function on key + i * golden; the high 32 bits."""
    z = key + np.uint64(i) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return z >> np.uint64(32)


@njit(cache=True, nogil=True)
def dropout_forward(input, output, mask, p):
    x = input.reshape(input.size)
    y = output.reshape(output.size)
    m = mask.reshape(mask.size)
    scale = 1.0 / (1.0 - p)
    key = np.uint64(np.random.randint(0, 2 ** 62)) * np.uint64(4) + np.uint64(
        np.random.randint(0, 4))
    # keep when u >= p 2^32: P(keep) = 1 - p to within 2^-32
    threshold = np.uint64(p * _TWO_32)
    for i in range(x.size):
        keep = scale if _uniform32(key, i) >= threshold else 0.0
        m[i] = keep
        y[i] = x[i] * keep


@njit(cache=True, nogil=True)
def dropout_backward(gradOutput, gradInput, mask):
    g = gradOutput.reshape(gradOutput.size)
    gi = gradInput.reshape(gradInput.size)
    m = mask.reshape(mask.size)
    for i in range(g.size):
        gi[i] = g[i] * m[i]
