"""Softmax, log-softmax, and the losses built on them: fused softmax + NLL
(cross-entropy on raw scores), NLL on log-probabilities or probabilities, MSE.
Losses are written into a one-element ``loss`` array (kernels return nothing);
``scale`` is 1/batch, applied here because criterions are the only place that
divides by the batch size. Labels are validated by the caller (``first_bad_label``)."""
import math

import numpy as np
from ._jit import njit

# classify_scores result codes
from ..codes import LOG_PROBABILITIES, PROBABILITIES, RAW_SCORES  # noqa: F401

# Probabilities are clamped to this floor before log and division, as the homework's
# ClassNLLCriterionUnstable clips them: a SoftMax saturated by large inputs gives exact
# zeros, and -log(0) / -1/0 would make the loss infinite or raise ZeroDivisionError.
PROBABILITY_FLOOR = 1e-15


@njit(cache=True, nogil=True, inline="always")
def _floored(p):
    """max(p, PROBABILITY_FLOOR), keeping NaN (the comparison is False for NaN)."""
    return PROBABILITY_FLOOR if p < PROBABILITY_FLOOR else p


@njit(cache=True, nogil=True, inline="always")
def _row_softmax(input, i, output):
    """output[i] = softmax(input[i]); returns log-sum-exp of the row. NaN becomes the
    max, so a row with NaN turns NaN instead of hiding it."""
    c = input.shape[1]
    mx = input[i, 0]
    for j in range(1, c):
        if input[i, j] > mx or input[i, j] != input[i, j]:
            mx = input[i, j]
    s = 0.0
    for j in range(c):
        e = math.exp(input[i, j] - mx)
        output[i, j] = e
        s += e
    inv = 1.0 / s
    for j in range(c):
        output[i, j] *= inv
    return mx + math.log(s)


@njit(cache=True, nogil=True)
def softmax_forward(input, output):
    for i in range(input.shape[0]):
        _row_softmax(input, i, output)


@njit(cache=True, nogil=True)
def softmax_backward(gradOutput, gradInput, output):
    n, c = output.shape
    for i in range(n):
        dot = 0.0
        for j in range(c):
            dot += gradOutput[i, j] * output[i, j]
        for j in range(c):
            gradInput[i, j] = output[i, j] * (gradOutput[i, j] - dot)


@njit(cache=True, nogil=True)
def log_softmax_forward(input, output):
    n, c = input.shape
    for i in range(n):
        mx = input[i, 0]
        for j in range(1, c):
            if input[i, j] > mx or input[i, j] != input[i, j]:
                mx = input[i, j]
        s = 0.0
        for j in range(c):
            s += math.exp(input[i, j] - mx)
        lse = mx + math.log(s)
        for j in range(c):
            output[i, j] = input[i, j] - lse


@njit(cache=True, nogil=True)
def log_softmax_backward(gradOutput, gradInput, output):
    n, c = output.shape
    for i in range(n):
        s = 0.0
        for j in range(c):
            s += gradOutput[i, j]
        for j in range(c):
            gradInput[i, j] = gradOutput[i, j] - math.exp(output[i, j]) * s


@njit(cache=True, nogil=True)
def cross_entropy_forward(input, target, loss, probabilities, scale):
    """loss = -scale * sum_i log_softmax(input)[i, target[i]]; keeps softmax for backward."""
    total = 0.0
    for i in range(input.shape[0]):
        lse = _row_softmax(input, i, probabilities)
        total -= input[i, target[i]] - lse
    loss[0] = total * scale


@njit(cache=True, nogil=True)
def cross_entropy_backward(target, gradInput, probabilities, scale):
    n, c = probabilities.shape
    for i in range(n):
        for j in range(c):
            gradInput[i, j] = probabilities[i, j] * scale
        gradInput[i, target[i]] -= scale


@njit(cache=True, nogil=True)
def cross_entropy_dense_forward(input, target, loss, probabilities, scale):
    """Soft/one-hot targets: loss = -scale * sum(target * log_softmax(input))."""
    n, c = input.shape
    total = 0.0
    for i in range(n):
        lse = _row_softmax(input, i, probabilities)
        for j in range(c):
            if target[i, j] != 0:
                total -= target[i, j] * (input[i, j] - lse)
    loss[0] = total * scale


@njit(cache=True, nogil=True)
def cross_entropy_dense_backward(target, gradInput, probabilities, scale):
    n, c = probabilities.shape
    for i in range(n):
        tsum = 0.0
        for j in range(c):
            tsum += target[i, j]
        for j in range(c):
            gradInput[i, j] = (probabilities[i, j] * tsum - target[i, j]) * scale


@njit(cache=True, nogil=True)
def first_bad_label(target, n_classes, result):
    """result[0] = index of the first class label outside [0, n_classes), or -1. One
    pass instead of NumPy's min and max, whose Python overhead is large on the
    criterion's path right after the forward, where the interpreter's caches are cold
    (``asv_bench/step_phases.py`` shows the criterion's Python share)."""
    result[0] = -1
    for i in range(target.size):
        if target[i] < 0 or target[i] >= n_classes:
            result[0] = i
            return


@njit(cache=True, nogil=True)
def classify_scores(input, result, tolerance):
    """result[0] = LOG_PROBABILITIES if no entry is positive; PROBABILITIES if every
    row is non-negative, has a positive entry and sums to 1 within tolerance;
    RAW_SCORES otherwise. NaN rows count as neither, so NaN reaches the loss."""
    n, c = input.shape
    nonpositive = True
    probabilities = True
    for i in range(n):
        s = 0.0
        has_positive = False
        for j in range(c):
            v = input[i, j]
            if v > 0:
                nonpositive = False
                has_positive = True
            elif v < 0:
                probabilities = False
            s += v
        if not has_positive or not abs(s - 1.0) <= tolerance:
            probabilities = False
    if nonpositive:
        result[0] = LOG_PROBABILITIES
    elif probabilities:
        result[0] = PROBABILITIES
    else:
        result[0] = RAW_SCORES


@njit(cache=True, nogil=True)
def class_nll_forward(input, target, loss, is_probability, scale):
    """loss = -scale * sum_i log p[i, t_i] (input: probabilities) or
    -scale * sum_i input[i, t_i] (input: log-probabilities)."""
    n = input.shape[0]
    total = 0.0
    for i in range(n):
        v = input[i, target[i]]
        total -= math.log(_floored(v)) if is_probability else v
    loss[0] = total * scale


@njit(cache=True, nogil=True)
def class_nll_backward(input, target, gradInput, is_probability, scale):
    gradInput[:] = 0.0
    n = input.shape[0]
    for i in range(n):
        t = target[i]
        gradInput[i, t] = -scale / _floored(input[i, t]) if is_probability else -scale


@njit(cache=True, nogil=True)
def class_nll_dense_forward(input, target, loss, is_probability, scale):
    n, c = input.shape
    total = 0.0
    for i in range(n):
        for j in range(c):
            if target[i, j] != 0:
                v = math.log(_floored(input[i, j])) if is_probability else input[i, j]
                total -= target[i, j] * v
    loss[0] = total * scale


@njit(cache=True, nogil=True)
def class_nll_dense_backward(input, target, gradInput, is_probability, scale):
    n, c = input.shape
    for i in range(n):
        for j in range(c):
            t = target[i, j]
            gradInput[i, j] = (-scale * t / _floored(input[i, j]) if is_probability and t != 0
                               else -scale * t)


@njit(cache=True, nogil=True)
def clipped_nll_forward(input, target, loss, eps, scale):
    """ClassNLLCriterionUnstable: -scale * sum(target * log(clip(p, eps, 1 - eps)))."""
    n, c = input.shape
    total = 0.0
    for i in range(n):
        for j in range(c):
            if target[i, j] != 0:
                p = min(max(input[i, j], eps), 1.0 - eps)
                total -= target[i, j] * math.log(p)
    loss[0] = total * scale


@njit(cache=True, nogil=True)
def clipped_nll_backward(input, target, gradInput, eps, scale):
    n, c = input.shape
    for i in range(n):
        for j in range(c):
            p = min(max(input[i, j], eps), 1.0 - eps)
            gradInput[i, j] = -scale * target[i, j] / p


@njit(cache=True, nogil=True)
def mse_forward(input, target, loss, scale):
    x = input.reshape(input.size)
    t = target.reshape(target.size)
    total = 0.0
    for i in range(x.size):
        d = x[i] - t[i]
        total += d * d
    loss[0] = total * scale


@njit(cache=True, nogil=True)
def mse_backward(input, target, gradInput, scale):
    x = input.reshape(input.size)
    t = target.reshape(target.size)
    g = gradInput.reshape(gradInput.size)
    for i in range(x.size):
        g[i] = 2.0 * scale * (x[i] - t[i])
