"""Softmax, log-softmax and the losses built on them, on the GPU; the twin of
``fastnn.kernels.cpu.softmax_nll`` (same functions, arguments and NaN behaviour).

Row-wise ops give each thread one row (grid-stride over rows); elementwise
backwards give each thread one element. Losses run in one block: threads stride
over the rows, then a shared-memory tree sums the per-thread partials (float64)
into ``loss[0]``, deterministically, without atomics.
"""
import math

from numba import cuda, float64

from . import config
from ._reduce import SHARED, block_sum

from ..codes import LOG_PROBABILITIES, PROBABILITIES, RAW_SCORES  # noqa: F401


def _rows(n):
    return config.grid_1d(n)


def _single_block():
    return 1, config.THREADS_PER_BLOCK


@cuda.jit(device=True)
def _clip(v, eps):
    """min(max(v, eps), 1 - eps) with the CPU twin's NaN behaviour (NaN stays NaN),
    without the builtins (numba 0.68's built-in CUDA target cannot compile their
    vararg overloads)."""
    p = v
    if eps > p:
        p = eps
    if 1.0 - eps < p:
        p = 1.0 - eps
    return p


@cuda.jit(device=True)
def _row_max(x, i, c):
    mx = x[i, 0]
    for j in range(1, c):
        if x[i, j] > mx or x[i, j] != x[i, j]:
            mx = x[i, j]  # NaN becomes the max, so the row turns NaN
    return mx


@cuda.jit(device=True)
def _row_softmax(x, i, y):
    """y[i] = softmax(x[i]); returns the row's log-sum-exp (the CPU twin's helper)."""
    c = x.shape[1]
    mx = _row_max(x, i, c)
    s = 0.0
    for j in range(c):
        e = math.exp(x[i, j] - mx)
        y[i, j] = e
        s += e
    inv = 1.0 / s
    for j in range(c):
        y[i, j] *= inv
    return mx + math.log(s)


# ---- softmax / log-softmax ---------------------------------------------------
@cuda.jit(cache=True)
def _softmax_forward(x, y):
    i = cuda.grid(1)
    while i < x.shape[0]:
        _row_softmax(x, i, y)
        i += cuda.gridsize(1)


@cuda.jit(cache=True)
def _softmax_backward(g, gi, y):
    n, c = y.shape
    i = cuda.grid(1)
    while i < n:
        dot = 0.0
        for j in range(c):
            dot += g[i, j] * y[i, j]
        for j in range(c):
            gi[i, j] = y[i, j] * (g[i, j] - dot)
        i += cuda.gridsize(1)


@cuda.jit(cache=True)
def _log_softmax_forward(x, y):
    n, c = x.shape
    i = cuda.grid(1)
    while i < n:
        mx = _row_max(x, i, c)
        s = 0.0
        for j in range(c):
            s += math.exp(x[i, j] - mx)
        lse = mx + math.log(s)
        for j in range(c):
            y[i, j] = x[i, j] - lse
        i += cuda.gridsize(1)


@cuda.jit(cache=True)
def _log_softmax_backward(g, gi, y):
    n, c = y.shape
    i = cuda.grid(1)
    while i < n:
        s = 0.0
        for j in range(c):
            s += g[i, j]
        for j in range(c):
            gi[i, j] = g[i, j] - math.exp(y[i, j]) * s
        i += cuda.gridsize(1)


def softmax_forward(input, output):
    if input.shape[0] and input.shape[1]:
        blocks, tpb = _rows(input.shape[0])
        _softmax_forward[blocks, tpb](input, output)


def softmax_backward(gradOutput, gradInput, output):
    if output.shape[0] and output.shape[1]:
        blocks, tpb = _rows(output.shape[0])
        _softmax_backward[blocks, tpb](gradOutput, gradInput, output)


def log_softmax_forward(input, output):
    if input.shape[0] and input.shape[1]:
        blocks, tpb = _rows(input.shape[0])
        _log_softmax_forward[blocks, tpb](input, output)


def log_softmax_backward(gradOutput, gradInput, output):
    if output.shape[0] and output.shape[1]:
        blocks, tpb = _rows(output.shape[0])
        _log_softmax_backward[blocks, tpb](gradOutput, gradInput, output)


# ---- cross-entropy on raw scores --------------------------------------------
@cuda.jit(cache=True)
def _cross_entropy_forward(x, target, loss, probs, scale):
    sh = cuda.shared.array(SHARED, float64)
    part = 0.0
    i = cuda.threadIdx.x
    while i < x.shape[0]:
        part -= x[i, target[i]] - _row_softmax(x, i, probs)
        i += cuda.blockDim.x
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        loss[0] = total * scale


@cuda.jit(cache=True)
def _cross_entropy_backward(target, gi, probs, scale):
    n, c = probs.shape
    e = cuda.grid(1)
    while e < n * c:
        i = e // c
        j = e - i * c
        v = probs[i, j] * scale
        if j == target[i]:
            v -= scale
        gi[i, j] = v
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _cross_entropy_dense_forward(x, target, loss, probs, scale):
    sh = cuda.shared.array(SHARED, float64)
    n, c = x.shape
    part = 0.0
    i = cuda.threadIdx.x
    while i < n:
        lse = _row_softmax(x, i, probs)
        for j in range(c):
            if target[i, j] != 0:
                part -= target[i, j] * (x[i, j] - lse)
        i += cuda.blockDim.x
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        loss[0] = total * scale


@cuda.jit(cache=True)
def _cross_entropy_dense_backward(target, gi, probs, scale):
    n, c = probs.shape
    i = cuda.grid(1)
    while i < n:
        tsum = 0.0
        for j in range(c):
            tsum += target[i, j]
        for j in range(c):
            gi[i, j] = (probs[i, j] * tsum - target[i, j]) * scale
        i += cuda.gridsize(1)


def cross_entropy_forward(input, target, loss, probabilities, scale):
    """loss = -scale * sum_i log_softmax(input)[i, target[i]]; keeps softmax for backward."""
    blocks, tpb = _single_block()
    _cross_entropy_forward[blocks, tpb](input, target, loss, probabilities, float(scale))


def cross_entropy_backward(target, gradInput, probabilities, scale):
    if probabilities.size:
        blocks, tpb = config.grid_1d(probabilities.size)
        _cross_entropy_backward[blocks, tpb](target, gradInput, probabilities, float(scale))


def cross_entropy_dense_forward(input, target, loss, probabilities, scale):
    """Soft/one-hot targets: loss = -scale * sum(target * log_softmax(input))."""
    blocks, tpb = _single_block()
    _cross_entropy_dense_forward[blocks, tpb](input, target, loss, probabilities, float(scale))


def cross_entropy_dense_backward(target, gradInput, probabilities, scale):
    if probabilities.shape[0]:
        blocks, tpb = _rows(probabilities.shape[0])
        _cross_entropy_dense_backward[blocks, tpb](target, gradInput, probabilities,
                                                   float(scale))


# ---- input classification for ClassNLLCriterion --------------------------------
@cuda.jit(cache=True)
def _classify_scores(x, result, tolerance):
    sh = cuda.shared.array(SHARED, float64)
    n, c = x.shape
    positives = 0.0   # entries > 0 (any -> not log-probabilities)
    bad_rows = 0.0    # rows that are not a probability distribution
    i = cuda.threadIdx.x
    while i < n:
        s = 0.0
        has_positive = False
        negative = False
        for j in range(c):
            v = x[i, j]
            if v > 0:
                positives += 1.0
                has_positive = True
            elif v < 0:
                negative = True
            s += v
        if negative or not has_positive or not abs(s - 1.0) <= tolerance:
            bad_rows += 1.0
        i += cuda.blockDim.x
    positives = block_sum(sh, positives)
    bad_rows = block_sum(sh, bad_rows)
    if cuda.threadIdx.x == 0:
        if positives == 0:
            result[0] = LOG_PROBABILITIES
        elif bad_rows == 0:
            result[0] = PROBABILITIES
        else:
            result[0] = RAW_SCORES


def classify_scores(input, result, tolerance):
    """result[0] = LOG_PROBABILITIES if no entry is positive; PROBABILITIES if every
    row is non-negative, has a positive entry and sums to 1 within tolerance;
    RAW_SCORES otherwise. NaN rows count as neither, so NaN reaches the loss."""
    blocks, tpb = _single_block()
    _classify_scores[blocks, tpb](input, result, float(tolerance))


# ---- NLL on (log-)probabilities -------------------------------------------------
@cuda.jit(cache=True)
def _class_nll_forward(x, target, loss, is_probability, scale):
    sh = cuda.shared.array(SHARED, float64)
    n = x.shape[0]
    part = 0.0
    i = cuda.threadIdx.x
    while i < n:
        v = x[i, target[i]]
        part -= math.log(v) if is_probability else v
        i += cuda.blockDim.x
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        loss[0] = total * scale


@cuda.jit(cache=True)
def _class_nll_backward(x, target, gi, is_probability, scale):
    n, c = x.shape
    e = cuda.grid(1)
    while e < n * c:
        i = e // c
        j = e - i * c
        t = target[i]
        if j == t:
            gi[i, j] = -scale / x[i, t] if is_probability else -scale
        else:
            gi[i, j] = 0.0
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _class_nll_dense_forward(x, target, loss, is_probability, scale):
    sh = cuda.shared.array(SHARED, float64)
    n, c = x.shape
    part = 0.0
    i = cuda.threadIdx.x
    while i < n:
        for j in range(c):
            if target[i, j] != 0:
                part -= target[i, j] * (math.log(x[i, j]) if is_probability else x[i, j])
        i += cuda.blockDim.x
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        loss[0] = total * scale


@cuda.jit(cache=True)
def _class_nll_dense_backward(x, target, gi, is_probability, scale):
    n, c = x.shape
    e = cuda.grid(1)
    while e < n * c:
        i = e // c
        j = e - i * c
        t = target[i, j]
        gi[i, j] = -scale * t / x[i, j] if is_probability and t != 0 else -scale * t
        e += cuda.gridsize(1)


def class_nll_forward(input, target, loss, is_probability, scale):
    """loss = -scale * sum_i log p[i, t_i] (input: probabilities) or
    -scale * sum_i input[i, t_i] (input: log-probabilities)."""
    blocks, tpb = _single_block()
    _class_nll_forward[blocks, tpb](input, target, loss, bool(is_probability), float(scale))


def class_nll_backward(input, target, gradInput, is_probability, scale):
    if input.size:
        blocks, tpb = config.grid_1d(input.size)
        _class_nll_backward[blocks, tpb](input, target, gradInput, bool(is_probability),
                                         float(scale))


def class_nll_dense_forward(input, target, loss, is_probability, scale):
    blocks, tpb = _single_block()
    _class_nll_dense_forward[blocks, tpb](input, target, loss, bool(is_probability),
                                          float(scale))


def class_nll_dense_backward(input, target, gradInput, is_probability, scale):
    if input.size:
        blocks, tpb = config.grid_1d(input.size)
        _class_nll_dense_backward[blocks, tpb](input, target, gradInput, bool(is_probability),
                                               float(scale))


# ---- clipped NLL (ClassNLLCriterionUnstable) ----------------------------------------
@cuda.jit(cache=True)
def _clipped_nll_forward(x, target, loss, eps, scale):
    sh = cuda.shared.array(SHARED, float64)
    n, c = x.shape
    part = 0.0
    i = cuda.threadIdx.x
    while i < n:
        for j in range(c):
            if target[i, j] != 0:
                p = _clip(x[i, j], eps)
                part -= target[i, j] * math.log(p)
        i += cuda.blockDim.x
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        loss[0] = total * scale


@cuda.jit(cache=True)
def _clipped_nll_backward(x, target, gi, eps, scale):
    n, c = x.shape
    e = cuda.grid(1)
    while e < n * c:
        i = e // c
        j = e - i * c
        p = _clip(x[i, j], eps)
        gi[i, j] = -scale * target[i, j] / p
        e += cuda.gridsize(1)


def clipped_nll_forward(input, target, loss, eps, scale):
    """ClassNLLCriterionUnstable: -scale * sum(target * log(clip(p, eps, 1 - eps)))."""
    blocks, tpb = _single_block()
    _clipped_nll_forward[blocks, tpb](input, target, loss, float(eps), float(scale))


def clipped_nll_backward(input, target, gradInput, eps, scale):
    if input.size:
        blocks, tpb = config.grid_1d(input.size)
        _clipped_nll_backward[blocks, tpb](input, target, gradInput, float(eps), float(scale))


# ---- MSE -------------------------------------------------------------------------
@cuda.jit(cache=True)
def _mse_forward(x, t, loss, scale):
    sh = cuda.shared.array(SHARED, float64)
    part = 0.0
    i = cuda.threadIdx.x
    while i < x.size:
        d = x[i] - t[i]
        part += d * d
        i += cuda.blockDim.x
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        loss[0] = total * scale


@cuda.jit(cache=True)
def _mse_backward(x, t, g, scale):
    i = cuda.grid(1)
    while i < x.size:
        g[i] = 2.0 * scale * (x[i] - t[i])
        i += cuda.gridsize(1)


def mse_forward(input, target, loss, scale):
    blocks, tpb = _single_block()
    _mse_forward[blocks, tpb](config.flat(input), config.flat(target), loss, float(scale))


def mse_backward(input, target, gradInput, scale):
    if input.size:
        blocks, tpb = config.grid_1d(input.size)
        _mse_backward[blocks, tpb](config.flat(input), config.flat(target),
                                   config.flat(gradInput), float(scale))
