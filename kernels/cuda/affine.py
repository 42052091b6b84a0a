"""Affine (fully connected) layer on the GPU: y = act(x @ W.T + b). The forward is
one tiled GEMM whose epilogue adds the bias and applies the activation; the
backward computes delta = gradOutput * act'(z) and the bias gradient in one pass,
then two GEMMs (gradInput, gradWeight)."""
from numba import cuda

from . import config
from ._typed import like
from .activation import NONE, activation_derivative
from .blas import gemm, gemm_bias_activation


@cuda.jit(cache=True)
def _column_sums(g, grad_bias, accumulate):
    """grad_bias[j] (+)= sum_i g[i, j]; one thread per column (coalesced rows)."""
    j = cuda.grid(1)
    stride = cuda.gridsize(1)
    n, m = g.shape
    while j < m:
        s = grad_bias[j] if accumulate else like(g, 0.0)
        for i in range(n):
            s += g[i, j]
        grad_bias[j] = s
        j += stride


@cuda.jit(cache=True)
def _delta_column_sums(grad_output, delta, grad_bias, preactivation, output, code, alpha,
                       accumulate):
    """delta = gradOutput * act'(z), grad_bias[j] (+)= sum_i delta[i, j]."""
    j = cuda.grid(1)
    stride = cuda.gridsize(1)
    n, m = delta.shape
    while j < m:
        s = grad_bias[j] if accumulate else like(delta, 0.0)
        for i in range(n):
            delta[i, j] = grad_output[i, j] * activation_derivative(code, preactivation[i, j],
                                                                    output[i, j], alpha)
            s += delta[i, j]  # the stored (rounded) value, as unfused (and as the CPU twin)
        grad_bias[j] = s
        j += stride


def affine_forward(input, output, weight, bias):
    affine_activation_forward(input, output, output, weight, bias, NONE, 0.0)


def affine_activation_forward(input, preactivation, output, weight, bias, activation, alpha):
    """preactivation = input @ weight.T + bias; output = act(preactivation).
    ``preactivation`` and ``output`` may be the same array when activation is NONE."""
    gemm_bias_activation(input, weight, bias, preactivation, output, activation, alpha)


def affine_backward_input(gradOutput, gradInput, weight):
    gemm(False, False, 1.0, gradOutput, weight, 0.0, gradInput)


def affine_backward_params(input, gradOutput, gradWeight, gradBias, accumulate):
    """gradWeight (+)= gradOutput.T @ input; gradBias (+)= column sums of gradOutput."""
    gemm(True, False, 1.0, gradOutput, input, 1.0 if accumulate else 0.0, gradWeight)
    m = gradOutput.shape[1]
    if m:
        blocks, tpb = config.grid_1d(m)
        _column_sums[blocks, tpb](gradOutput, gradBias, bool(accumulate))


def affine_activation_backward(input, gradOutput, gradInput, delta, gradWeight, gradBias,
                               preactivation, output, weight, activation, alpha, accumulate,
                               need_grad_input):
    """Backward through act(x @ W.T + b): delta = gradOutput * act'(preactivation),
    gradInput = delta @ W (skipped when need_grad_input is False),
    gradWeight (+)= delta.T @ input, gradBias (+)= sum(delta)."""
    m = delta.shape[1]
    if m:
        blocks, tpb = config.grid_1d(m)
        _delta_column_sums[blocks, tpb](gradOutput, delta, gradBias, preactivation, output,
                                        int(activation), config.typed(delta, alpha),
                                        bool(accumulate))
    if need_grad_input:
        gemm(False, False, 1.0, delta, weight, 0.0, gradInput)
    gemm(True, False, 1.0, delta, input, 1.0 if accumulate else 0.0, gradWeight)
