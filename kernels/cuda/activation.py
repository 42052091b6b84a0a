"""Elementwise activations on the GPU: the device functions the fused GEMM epilogue
inlines, plus forward/backward launchers. Same codes and NaN behaviour as
``fastnn.kernels.cpu.activation`` (``z <= 0`` is False for NaN, so ReLU(NaN) = NaN)."""
import math

from numba import cuda

from . import config

from ..codes import NONE, RELU, LEAKY_RELU, ELU, SOFTPLUS, SIGMOID, TANH  # noqa: F401


@cuda.jit(device=True)
def _sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # NaN lands here and stays NaN
    return e / (1.0 + e)


@cuda.jit(device=True)
def activation_value(code, z, alpha):
    if code == RELU:
        return 0.0 if z <= 0 else z
    if code == LEAKY_RELU:
        return alpha * z if z <= 0 else z
    if code == ELU:
        return alpha * math.expm1(z) if z <= 0 else z
    if code == SOFTPLUS:
        return (z if z > 0 else 0.0) + math.log1p(math.exp(-abs(z)))
    if code == SIGMOID:
        return _sigmoid(z)
    if code == TANH:
        return math.tanh(z)
    return z


@cuda.jit(device=True)
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


@cuda.jit(cache=True)
def _forward(x, y, code, alpha):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < x.size:
        y[i] = activation_value(code, x[i], alpha)
        i += stride


@cuda.jit(cache=True)
def _backward(x, g, gi, y, code, alpha):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < x.size:
        gi[i] = g[i] * activation_derivative(code, x[i], y[i], alpha)
        i += stride


def activation_forward(input, output, code, alpha):
    if input.size == 0:
        return
    blocks, tpb = config.grid_1d(input.size)
    _forward[blocks, tpb](config.flat(input), config.flat(output), code, alpha)


def activation_backward(input, gradOutput, gradInput, output, code, alpha):
    if input.size == 0:
        return
    blocks, tpb = config.grid_1d(input.size)
    _backward[blocks, tpb](config.flat(input), config.flat(gradOutput), config.flat(gradInput),
                           config.flat(output), code, alpha)
