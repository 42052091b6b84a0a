"""Elementwise activations, forward and backward, plus the scalar functions the
fused affine kernels inline. Every branch is written so that NaN propagates
(``z <= 0`` is False for NaN, so ReLU(NaN) = NaN)."""
import math

from ._jit import njit

from ..codes import NONE, RELU, LEAKY_RELU, ELU, SOFTPLUS, SIGMOID, TANH  # noqa: F401


# Twin of kernels/cuda/activation.py's device functions, not shared with it: the GPU's
# constants are typed like z (float32 math, no f64 instructions), these keep Numba's
# float64 literals so the CPU's results stay as they are.
@njit(cache=True, nogil=True, inline="always")
def _sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # NaN lands here and stays NaN
    return e / (1.0 + e)


@njit(cache=True, nogil=True, inline="always")
def activation_value(code, z, alpha):
    if code == RELU:
        return 0.0 if z <= 0 else z
    if code == LEAKY_RELU:
        return alpha * z if z <= 0 else z
    if code == ELU:
        return alpha * math.expm1(z) if z <= 0 else z
    if code == SOFTPLUS:
        # log(1 + e^z) without overflow: max(z, 0) + log1p(e^-|z|)
        return (z if z > 0 else 0.0) + math.log1p(math.exp(-abs(z)))
    if code == SIGMOID:
        return _sigmoid(z)
    if code == TANH:
        return math.tanh(z)
    return z


@njit(cache=True, nogil=True, inline="always")
def activation_derivative(code, z, y, alpha):
    """d y / d z from the pre-activation z and the output y."""
    if code == RELU:
        return 1.0 if z > 0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if z > 0 else alpha
    if code == ELU:
        return 1.0 if z > 0 else y + alpha
    if code == SOFTPLUS:
        return _sigmoid(z)
    if code == SIGMOID:
        return y * (1.0 - y)
    if code == TANH:
        return 1.0 - y * y
    return 1.0


# Specialising on a constant code matters: with ``code`` a runtime value every element
# walks the branch chain above and nothing vectorises (asv
# activations.ActivationKernels). The exp-based activations cost their exp either way,
# so they share the generic loop.

@njit(cache=True, nogil=True, inline="always")
def copy_rows(src, dst):
    """dst[i, j] = src[i, j] for 2-D arrays of one shape (the NONE activation's second
    output). An explicit loop because Numba compiles ``dst[...] = src`` with its
    shape-mismatch error message, string formatting and all, into every cold start
    (asv ``startup.Startup`` with an empty cache)."""
    for i in range(src.shape[0]):
        s = src[i]
        d = dst[i]
        for j in range(s.size):
            d[j] = s[j]


@njit(cache=True, nogil=True, inline="always")
def _forward_loop(x, y, code, alpha):
    for i in range(x.size):
        y[i] = activation_value(code, x[i], alpha)


@njit(cache=True, nogil=True, inline="always")
def _backward_loop(x, g, gi, y, code, alpha):
    for i in range(x.size):
        gi[i] = g[i] * activation_derivative(code, x[i], y[i], alpha)


@njit(cache=True, nogil=True)
def activation_forward(input, output, code, alpha):
    x = input.reshape(input.size)
    y = output.reshape(output.size)
    if code == RELU:
        _forward_loop(x, y, RELU, alpha)
    elif code == LEAKY_RELU:
        _forward_loop(x, y, LEAKY_RELU, alpha)
    else:
        _forward_loop(x, y, code, alpha)


@njit(cache=True, nogil=True)
def activation_backward(input, gradOutput, gradInput, output, code, alpha):
    x = input.reshape(input.size)
    g = gradOutput.reshape(gradOutput.size)
    gi = gradInput.reshape(gradInput.size)
    y = output.reshape(output.size)
    if code == RELU:
        _backward_loop(x, g, gi, y, RELU, alpha)
    elif code == LEAKY_RELU:
        _backward_loop(x, g, gi, y, LEAKY_RELU, alpha)
    else:
        _backward_loop(x, g, gi, y, code, alpha)
