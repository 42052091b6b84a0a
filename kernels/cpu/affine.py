"""Affine (fully connected) layer: y = act(x @ W.T + b), GEMMs on BLAS with the
bias and the activation fused into the pass that touches the output anyway."""
from numba import njit

from .activation import NONE, activation_derivative, activation_value
from .blas import gemm


@njit(cache=True)
def affine_forward(input, output, weight, bias):
    affine_activation_forward(input, output, output, weight, bias, NONE, 0.0)


@njit(cache=True)
def affine_activation_forward(input, preactivation, output, weight, bias, activation, alpha):
    """preactivation = input @ weight.T + bias; output = act(preactivation).
    ``preactivation`` and ``output`` may be the same array when activation is NONE."""
    gemm(False, True, 1.0, input, weight, 0.0, preactivation)
    n, m = preactivation.shape
    for i in range(n):
        for j in range(m):
            z = preactivation[i, j] + bias[j]
            preactivation[i, j] = z
            output[i, j] = activation_value(activation, z, alpha)


@njit(cache=True)
def affine_backward_input(gradOutput, gradInput, weight):
    gemm(False, False, 1.0, gradOutput, weight, 0.0, gradInput)


@njit(cache=True)
def affine_backward_params(input, gradOutput, gradWeight, gradBias, accumulate):
    """gradWeight (+)= gradOutput.T @ input; gradBias (+)= column sums of gradOutput."""
    gemm(True, False, 1.0, gradOutput, input, 1.0 if accumulate else 0.0, gradWeight)
    n, m = gradOutput.shape
    if not accumulate:
        gradBias[:] = 0.0
    for i in range(n):
        for j in range(m):
            gradBias[j] += gradOutput[i, j]


@njit(cache=True)
def affine_activation_backward(input, gradOutput, gradInput, delta, gradWeight, gradBias,
                               preactivation, output, weight, activation, alpha, accumulate,
                               need_grad_input):
    """Backward through act(x @ W.T + b) in one call:
    delta = gradOutput * act'(preactivation) (the activation's gradInput),
    gradInput = delta @ W (skipped when need_grad_input is False),
    gradWeight (+)= delta.T @ input, gradBias (+)= sum(delta)."""
    n, m = delta.shape
    if not accumulate:
        gradBias[:] = 0.0
    for i in range(n):
        for j in range(m):
            d = gradOutput[i, j] * activation_derivative(activation, preactivation[i, j],
                                                         output[i, j], alpha)
            delta[i, j] = d
            gradBias[j] += delta[i, j]  # the stored (rounded) value, as unfused
    if need_grad_input:
        gemm(False, False, 1.0, delta, weight, 0.0, gradInput)
    gemm(True, False, 1.0, delta, input, 1.0 if accumulate else 0.0, gradWeight)
