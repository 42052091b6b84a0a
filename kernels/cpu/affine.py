"""Affine (fully connected) layer: y = act(x @ W.T + b), GEMMs on BLAS with the
bias and the activation fused into the pass that touches the output anyway."""
from ._jit import njit

from .activation import (LEAKY_RELU, NONE, RELU, activation_derivative, activation_value,
                         copy_rows)
from .blas import gemm


@njit(cache=True, nogil=True)
def affine_forward(input, output, weight, bias):
    # int() keeps the code a runtime value: a literal would compile a second
    # affine_activation_forward (a cold start's compile: asv startup.Startup) instead of
    # reusing the fused one
    affine_activation_forward(input, output, output, weight, bias, int(NONE), 0.0)


@njit(cache=True, nogil=True)
def affine_activation_forward(input, preactivation, output, weight, bias, activation, alpha):
    """preactivation = input @ weight.T + bias; output = act(preactivation).
    ``preactivation`` and ``output`` may be the same array when activation is NONE."""
    gemm(False, True, 1.0, input, weight, 0.0, preactivation)
    # constant codes let the loop vectorise (see activation.py)
    if activation == NONE:
        # one store per element: two stores into the same array (affine_forward passes
        # output twice) fail LLVM's runtime overlap check and run scalar
        for i in range(preactivation.shape[0]):
            pre = preactivation[i]
            for j in range(pre.size):
                pre[j] += bias[j]
        if output.ctypes.data != preactivation.ctypes.data:
            copy_rows(preactivation, output)
    elif activation == RELU:
        _bias_activation_rows(preactivation, output, bias, RELU, alpha)
    elif activation == LEAKY_RELU:
        _bias_activation_rows(preactivation, output, bias, LEAKY_RELU, alpha)
    else:
        _bias_activation_rows(preactivation, output, bias, activation, alpha)


@njit(cache=True, nogil=True, inline="always")
def _bias_activation_rows(preactivation, output, bias, activation, alpha):
    for i in range(preactivation.shape[0]):
        pre = preactivation[i]
        out = output[i]
        for j in range(pre.size):
            z = pre[j] + bias[j]
            pre[j] = z
            out[j] = activation_value(activation, z, alpha)


@njit(cache=True, nogil=True, inline="always")
def _activation_delta_rows(gradOutput, delta, gradBias, preactivation, output, activation,
                           alpha):
    for i in range(delta.shape[0]):
        g = gradOutput[i]
        d = delta[i]
        pre = preactivation[i]
        out = output[i]
        for j in range(d.size):
            d[j] = g[j] * activation_derivative(activation, pre[j], out[j], alpha)
            gradBias[j] += d[j]  # the stored (rounded) value, as unfused


@njit(cache=True, nogil=True)
def affine_backward_input(gradOutput, gradInput, weight):
    gemm(False, False, 1.0, gradOutput, weight, 0.0, gradInput)


@njit(cache=True, nogil=True)
def affine_backward_params(input, gradOutput, gradWeight, gradBias, accumulate):
    """gradWeight (+)= gradOutput.T @ input; gradBias (+)= column sums of gradOutput."""
    gemm(True, False, 1.0, gradOutput, input, 1.0 if accumulate else 0.0, gradWeight)
    n, m = gradOutput.shape
    if not accumulate:
        gradBias[:] = 0.0
    for i in range(n):
        for j in range(m):
            gradBias[j] += gradOutput[i, j]


@njit(cache=True, nogil=True)
def affine_activation_backward(input, gradOutput, gradInput, delta, gradWeight, gradBias,
                               preactivation, output, weight, activation, alpha, accumulate,
                               need_grad_input):
    """Backward through act(x @ W.T + b) in one call:
    delta = gradOutput * act'(preactivation) (the activation's gradInput),
    gradInput = delta @ W (skipped when need_grad_input is False),
    gradWeight (+)= delta.T @ input, gradBias (+)= sum(delta)."""
    if not accumulate:
        gradBias[:] = 0.0
    if activation == RELU:
        _activation_delta_rows(gradOutput, delta, gradBias, preactivation, output, RELU, alpha)
    elif activation == LEAKY_RELU:
        _activation_delta_rows(gradOutput, delta, gradBias, preactivation, output, LEAKY_RELU,
                               alpha)
    else:
        _activation_delta_rows(gradOutput, delta, gradBias, preactivation, output, activation,
                               alpha)
    if need_grad_input:
        gemm(False, False, 1.0, delta, weight, 0.0, gradInput)
    gemm(True, False, 1.0, delta, input, 1.0 if accumulate else 0.0, gradWeight)
