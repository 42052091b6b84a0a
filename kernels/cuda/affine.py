"""Affine (fully connected) layer on the GPU: y = act(x @ W.T + b). The forward is
one tiled GEMM whose epilogue adds the bias and applies the activation; the
backward computes delta = gradOutput * act'(z) and the bias gradient in one pass (a
parallel column reduction), then two GEMMs (gradInput, gradWeight)."""
from numba import cuda

from ..codes import NONE
from . import config
from ._reduce import COLUMN_SHARED, column_block_sum, column_grid
from ._typed import like
from .activation import activation_derivative
from .blas import gemm, gemm_bias_activation


@cuda.jit(cache=True)
def _column_sums(g, grad_bias, accumulate):
    """grad_bias[j] (+)= sum_i g[i, j]: a block per group of columns (a warp reads one
    row's consecutive columns), its row groups stride over the rows, a shared tree sums."""
    sh = cuda.shared.array(COLUMN_SHARED, g.dtype)
    n, m = g.shape
    ty = cuda.threadIdx.y
    j0 = cuda.blockIdx.x * cuda.blockDim.x
    while j0 < m:  # block-uniform: every thread reaches the barriers
        j = j0 + cuda.threadIdx.x
        s = like(g, 0.0)
        if j < m:
            i = ty
            while i < n:
                s += g[i, j]
                i += cuda.blockDim.y
        total = column_block_sum(sh, s)
        if ty == 0 and j < m:
            grad_bias[j] = grad_bias[j] + total if accumulate else total
        j0 += cuda.gridDim.x * cuda.blockDim.x


@cuda.jit(cache=True)
def _delta_column_sums(grad_output, delta, grad_bias, preactivation, output, code, alpha,
                       accumulate):
    """delta = gradOutput * act'(z), grad_bias[j] (+)= sum_i delta[i, j] (the layout of
    ``_column_sums``)."""
    sh = cuda.shared.array(COLUMN_SHARED, delta.dtype)
    n, m = delta.shape
    ty = cuda.threadIdx.y
    j0 = cuda.blockIdx.x * cuda.blockDim.x
    while j0 < m:
        j = j0 + cuda.threadIdx.x
        s = like(delta, 0.0)
        if j < m:
            i = ty
            while i < n:
                d = grad_output[i, j] * activation_derivative(code, preactivation[i, j],
                                                              output[i, j], alpha)
                delta[i, j] = d
                s += delta[i, j]  # the stored (rounded) value, as unfused (and the CPU twin)
                i += cuda.blockDim.y
        total = column_block_sum(sh, s)
        if ty == 0 and j < m:
            grad_bias[j] = grad_bias[j] + total if accumulate else total
        j0 += cuda.gridDim.x * cuda.blockDim.x


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
        blocks, block = column_grid(m)
        _column_sums[blocks, block](gradOutput, gradBias, bool(accumulate))


def affine_activation_backward(input, gradOutput, gradInput, delta, gradWeight, gradBias,
                               preactivation, output, weight, activation, alpha, accumulate,
                               need_grad_input):
    """Backward through act(x @ W.T + b): delta = gradOutput * act'(preactivation),
    gradInput = delta @ W (skipped when need_grad_input is False),
    gradWeight (+)= delta.T @ input, gradBias (+)= sum(delta)."""
    m = delta.shape[1]
    if m:
        blocks, block = column_grid(m)
        _delta_column_sums[blocks, block](gradOutput, delta, gradBias, preactivation, output,
                                        int(activation), config.typed(delta, alpha),
                                        bool(accumulate))
    if need_grad_input:
        gemm(False, False, 1.0, delta, weight, 0.0, gradInput)
    gemm(True, False, 1.0, delta, input, 1.0 if accumulate else 0.0, gradWeight)
