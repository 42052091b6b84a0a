"""Elementwise activations on the GPU: the device functions the fused GEMM epilogue
inlines, plus forward/backward launchers. Same codes and NaN behaviour as
``fastnn.kernels.cpu.activation`` (``z <= 0`` is False for NaN, so ReLU(NaN) = NaN).
Constants and ``alpha`` take z's type (``like``): a float32 activation is float32 math."""
import math

from numba import cuda

from ..codes import NONE, RELU, LEAKY_RELU, ELU, SOFTPLUS, SIGMOID, TANH  # noqa: F401
from . import config
from ._typed import like


@cuda.jit(device=True)
def _sigmoid(z):
    one = like(z, 1.0)
    if z >= like(z, 0.0):
        return one / (one + math.exp(-z))
    e = math.exp(z)  # NaN lands here and stays NaN
    return e / (one + e)


@cuda.jit(device=True)
def activation_value(code, z, alpha):
    zero = like(z, 0.0)
    a = like(z, alpha)
    if code == RELU:
        return zero if z <= zero else z
    if code == LEAKY_RELU:
        return a * z if z <= zero else z
    if code == ELU:
        return a * math.expm1(z) if z <= zero else z
    if code == SOFTPLUS:
        return (z if z > zero else zero) + math.log1p(math.exp(-abs(z)))
    if code == SIGMOID:
        return _sigmoid(z)
    if code == TANH:
        return math.tanh(z)
    return z


@cuda.jit(device=True)
def activation_derivative(code, z, y, alpha):
    """d y / d z from the pre-activation z and the output y."""
    zero = like(z, 0.0)
    one = like(z, 1.0)
    a = like(z, alpha)
    if code == RELU:
        return one if z > zero else zero
    if code == LEAKY_RELU:
        return one if z > zero else a
    if code == ELU:
        return one if z > zero else y + a
    if code == SOFTPLUS:
        return _sigmoid(z)
    if code == SIGMOID:
        return y * (one - y)
    if code == TANH:
        return one - y * y
    return one


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
    _forward[blocks, tpb](config.flat(input), config.flat(output), int(code),
                          config.typed(input, alpha))


def activation_backward(input, gradOutput, gradInput, output, code, alpha):
    if input.size == 0:
        return
    blocks, tpb = config.grid_1d(input.size)
    _backward[blocks, tpb](config.flat(input), config.flat(gradOutput), config.flat(gradInput),
                           config.flat(output), int(code), config.typed(input, alpha))
