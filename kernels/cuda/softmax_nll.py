"""Softmax, log-softmax and the losses built on them, on the GPU; the twin of
``fastnn.kernels.cpu.softmax_nll`` (same functions, arguments and NaN behaviour).

Row-wise ops give each thread one row (grid-stride over rows); elementwise
backwards give each thread one element. Losses are two-pass parallel reductions
(``_reduce.loss_grid`` / ``finish_loss``): a grid of blocks strides over the rows and
each block's shared-memory tree writes one partial sum, then one block sums the
partials into ``loss[0]``; deterministic (no atomics) for a given launch
configuration. All math is in the input's dtype (``like``): a float32 loss does no
float64 math.

Device-side checks (no host round trip): ``is_probability`` may be the 1-element
``classify_scores`` result on the device instead of a host flag, and a label outside
[0, C) makes the loss NaN instead of reading out of bounds; ``targets.check_targets``
latches both errors into a status array that the criterion reads with its loss.
"""
import math

from numba import cuda

from . import config
from ._reduce import SHARED, block_sum, finish_loss, loss_grid
from ._typed import like
from ..codes import LOG_PROBABILITIES, PROBABILITIES, RAW_SCORES  # noqa: F401 (re-exported)
from .targets import classify_scores, constant_int_array  # noqa: F401 (the CPU twin's name)

# Probabilities are clamped to this floor before log and division, as the homework's
# ClassNLLCriterionUnstable clips them: a SoftMax saturated by large inputs gives exact
# zeros, and -log(0) / -1/0 would make the loss infinite (the CPU twin's rule).
PROBABILITY_FLOOR = 1e-15


@cuda.jit(device=True)
def _floored(p):
    """max(p, PROBABILITY_FLOOR) in p's type, keeping NaN (the comparison is False)."""
    floor = like(p, PROBABILITY_FLOOR)
    return floor if p < floor else p


def _probability_args(is_probability):
    """(flag, kind): flag 0/1 from a host value, or -1 and the device ``classify_scores``
    result (read by the kernel: no host round trip)."""
    if hasattr(is_probability, "shape"):
        return -1, is_probability
    return (1 if is_probability else 0), constant_int_array("kind", [LOG_PROBABILITIES])


@cuda.jit(device=True)
def _is_probability(flag, kind):
    if flag < 0:
        return kind[0] == PROBABILITIES
    return flag == 1


@cuda.jit(device=True)
def _clip(v, eps):
    """min(max(v, eps), 1 - eps) with the CPU twin's NaN behaviour (NaN stays NaN),
    without the builtins (numba 0.68's built-in CUDA target cannot compile their
    vararg overloads)."""
    p = v
    if eps > p:
        p = eps
    hi = like(v, 1.0) - eps
    if hi < p:
        p = hi
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
    s = like(x, 0.0)
    for j in range(c):
        e = math.exp(x[i, j] - mx)
        y[i, j] = e
        s += e
    inv = like(x, 1.0) / s
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
        dot = like(y, 0.0)
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
        s = like(x, 0.0)
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
        s = like(g, 0.0)
        for j in range(c):
            s += g[i, j]
        for j in range(c):
            gi[i, j] = g[i, j] - math.exp(y[i, j]) * s
        i += cuda.gridsize(1)


def softmax_forward(input, output):
    if input.shape[0] and input.shape[1]:
        blocks, tpb = config.grid_1d(input.shape[0])
        _softmax_forward[blocks, tpb](input, output)


def softmax_backward(gradOutput, gradInput, output):
    if output.shape[0] and output.shape[1]:
        blocks, tpb = config.grid_1d(output.shape[0])
        _softmax_backward[blocks, tpb](gradOutput, gradInput, output)


def log_softmax_forward(input, output):
    if input.shape[0] and input.shape[1]:
        blocks, tpb = config.grid_1d(input.shape[0])
        _log_softmax_forward[blocks, tpb](input, output)


def log_softmax_backward(gradOutput, gradInput, output):
    if output.shape[0] and output.shape[1]:
        blocks, tpb = config.grid_1d(output.shape[0])
        _log_softmax_backward[blocks, tpb](gradOutput, gradInput, output)


# ---- cross-entropy on raw scores --------------------------------------------
@cuda.jit(cache=True)
def _cross_entropy_forward(x, target, partial, probs):
    sh = cuda.shared.array(SHARED, x.dtype)
    n, c = x.shape
    part = like(x, 0.0)
    i = cuda.grid(1)
    while i < n:
        lse = _row_softmax(x, i, probs)
        t = target[i]
        if t < 0 or t >= c:
            part = like(x, math.nan)  # bad label: check_targets reports it
        else:
            part -= x[i, t] - lse
        i += cuda.gridsize(1)
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


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
def _cross_entropy_dense_forward(x, target, partial, probs):
    sh = cuda.shared.array(SHARED, x.dtype)
    n, c = x.shape
    zero = like(x, 0.0)
    part = zero
    i = cuda.grid(1)
    while i < n:
        lse = _row_softmax(x, i, probs)
        for j in range(c):
            if target[i, j] != zero:
                part -= target[i, j] * (x[i, j] - lse)
        i += cuda.gridsize(1)
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


@cuda.jit(cache=True)
def _cross_entropy_dense_backward(target, gi, probs, scale):
    n, c = probs.shape
    i = cuda.grid(1)
    while i < n:
        tsum = like(probs, 0.0)
        for j in range(c):
            tsum += target[i, j]
        for j in range(c):
            gi[i, j] = (probs[i, j] * tsum - target[i, j]) * scale
        i += cuda.gridsize(1)


def cross_entropy_forward(input, target, loss, probabilities, scale):
    """loss = -scale * sum_i log_softmax(input)[i, target[i]]; keeps softmax for backward."""
    blocks, tpb, partial = loss_grid(input.shape[0], loss)
    _cross_entropy_forward[blocks, tpb](input, target, partial, probabilities)
    finish_loss(partial, blocks, loss, scale)


def cross_entropy_backward(target, gradInput, probabilities, scale):
    if probabilities.size:
        blocks, tpb = config.grid_1d(probabilities.size)
        _cross_entropy_backward[blocks, tpb](target, gradInput, probabilities,
                                             config.typed(probabilities, scale))


def cross_entropy_dense_forward(input, target, loss, probabilities, scale):
    """Soft/one-hot targets: loss = -scale * sum(target * log_softmax(input))."""
    blocks, tpb, partial = loss_grid(input.shape[0], loss)
    _cross_entropy_dense_forward[blocks, tpb](input, target, partial, probabilities)
    finish_loss(partial, blocks, loss, scale)


def cross_entropy_dense_backward(target, gradInput, probabilities, scale):
    if probabilities.shape[0]:
        blocks, tpb = config.grid_1d(probabilities.shape[0])
        _cross_entropy_dense_backward[blocks, tpb](target, gradInput, probabilities,
                                                   config.typed(probabilities, scale))


# ---- NLL on (log-)probabilities -------------------------------------------------
@cuda.jit(cache=True)
def _class_nll_forward(x, target, partial, flag, kind):
    sh = cuda.shared.array(SHARED, x.dtype)
    n, c = x.shape
    is_probability = _is_probability(flag, kind)
    part = like(x, 0.0)
    i = cuda.grid(1)
    while i < n:
        t = target[i]
        if t < 0 or t >= c:
            part = like(x, math.nan)  # bad label: check_targets reports it
        else:
            v = x[i, t]
            part -= math.log(_floored(v)) if is_probability else v
        i += cuda.gridsize(1)
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


@cuda.jit(cache=True)
def _class_nll_backward(x, target, gi, flag, kind, scale):
    n, c = x.shape
    is_probability = _is_probability(flag, kind)
    e = cuda.grid(1)
    while e < n * c:
        i = e // c
        j = e - i * c
        t = target[i]
        if j == t:
            gi[i, j] = -scale / _floored(x[i, t]) if is_probability else -scale
        else:
            gi[i, j] = like(gi, 0.0)
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _class_nll_dense_forward(x, target, partial, flag, kind):
    sh = cuda.shared.array(SHARED, x.dtype)
    n, c = x.shape
    is_probability = _is_probability(flag, kind)
    zero = like(x, 0.0)
    part = zero
    i = cuda.grid(1)
    while i < n:
        for j in range(c):
            if target[i, j] != zero:
                v = math.log(_floored(x[i, j])) if is_probability else x[i, j]
                part -= target[i, j] * v
        i += cuda.gridsize(1)
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


@cuda.jit(cache=True)
def _class_nll_dense_backward(x, target, gi, flag, kind, scale):
    n, c = x.shape
    is_probability = _is_probability(flag, kind)
    e = cuda.grid(1)
    while e < n * c:
        i = e // c
        j = e - i * c
        t = target[i, j]
        nonzero = t != like(t, 0.0)
        gi[i, j] = (-scale * t / _floored(x[i, j]) if is_probability and nonzero
                    else -scale * t)
        e += cuda.gridsize(1)


def class_nll_forward(input, target, loss, is_probability, scale):
    """loss = -scale * sum_i log p[i, t_i] (input: probabilities) or
    -scale * sum_i input[i, t_i] (input: log-probabilities). ``is_probability``: a host
    flag, or the device ``classify_scores`` result (read on the device)."""
    blocks, tpb, partial = loss_grid(input.shape[0], loss)
    _class_nll_forward[blocks, tpb](input, target, partial, *_probability_args(is_probability))
    finish_loss(partial, blocks, loss, scale)


def class_nll_backward(input, target, gradInput, is_probability, scale):
    if input.size:
        blocks, tpb = config.grid_1d(input.size)
        _class_nll_backward[blocks, tpb](input, target, gradInput,
                                         *_probability_args(is_probability),
                                         config.typed(input, scale))


def class_nll_dense_forward(input, target, loss, is_probability, scale):
    blocks, tpb, partial = loss_grid(input.shape[0], loss)
    _class_nll_dense_forward[blocks, tpb](input, target, partial,
                                          *_probability_args(is_probability))
    finish_loss(partial, blocks, loss, scale)


def class_nll_dense_backward(input, target, gradInput, is_probability, scale):
    if input.size:
        blocks, tpb = config.grid_1d(input.size)
        _class_nll_dense_backward[blocks, tpb](input, target, gradInput,
                                               *_probability_args(is_probability),
                                               config.typed(input, scale))


# ---- clipped NLL (ClassNLLCriterionUnstable) ----------------------------------------
@cuda.jit(cache=True)
def _clipped_nll_forward(x, target, partial, eps):
    sh = cuda.shared.array(SHARED, x.dtype)
    n, c = x.shape
    zero = like(x, 0.0)
    part = zero
    i = cuda.grid(1)
    while i < n:
        for j in range(c):
            if target[i, j] != zero:
                p = _clip(x[i, j], eps)
                part -= target[i, j] * math.log(p)
        i += cuda.gridsize(1)
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


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
    blocks, tpb, partial = loss_grid(input.shape[0], loss)
    _clipped_nll_forward[blocks, tpb](input, target, partial, config.typed(input, eps))
    finish_loss(partial, blocks, loss, scale)


def clipped_nll_backward(input, target, gradInput, eps, scale):
    if input.size:
        blocks, tpb = config.grid_1d(input.size)
        _clipped_nll_backward[blocks, tpb](input, target, gradInput, config.typed(input, eps),
                                           config.typed(input, scale))


# ---- MSE -------------------------------------------------------------------------
@cuda.jit(cache=True)
def _mse_forward(x, t, partial):
    sh = cuda.shared.array(SHARED, x.dtype)
    part = like(x, 0.0)
    i = cuda.grid(1)
    while i < x.size:
        d = x[i] - t[i]
        part += d * d
        i += cuda.gridsize(1)
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


@cuda.jit(cache=True)
def _mse_backward(x, t, g, scale):
    i = cuda.grid(1)
    while i < x.size:
        g[i] = like(x, 2.0) * scale * (x[i] - t[i])
        i += cuda.gridsize(1)


def mse_forward(input, target, loss, scale):
    blocks, tpb, partial = loss_grid(input.size, loss)
    _mse_forward[blocks, tpb](config.flat(input), config.flat(target), partial)
    finish_loss(partial, blocks, loss, scale)


def mse_backward(input, target, gradInput, scale):
    if input.size:
        blocks, tpb = config.grid_1d(input.size)
        _mse_backward[blocks, tpb](config.flat(input), config.flat(target),
                                   config.flat(gradInput), config.typed(input, scale))

