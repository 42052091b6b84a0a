"""Device-side target handling for the GPU criterions (no CPU twins: the CPU
criterions check labels and build one-hot rows on the host, where that is free).

``check_targets`` latches the ClassNLL/CrossEntropy input errors into a small int64
status array, so a training step needs no host round trip; the criterion reads the
status with its loss and raises the CPU criterion's message. ``classify_scores`` (the
CPU twin's name, re-exported by ``softmax_nll``) tells log-probabilities, probabilities
and raw scores apart; ``one_hot`` expands labels into rows on the device.
"""
import math

import numpy as np
from numba import cuda, int64

from ..codes import LOG_PROBABILITIES, PROBABILITIES, RAW_SCORES
from . import config
from ._reduce import SHARED, block_sum
from ._typed import like

#: ``check_targets`` status words (int64): raw-scores flag, its (N, C); bad-label flag,
#: the label, its (N, C).
STATUS_SIZE = 7
_CONSTANTS = {}


def constant_int_array(key, values):
    """A small int64 device array made once per process (launch arguments that a host
    flag stands in for)."""
    a = _CONSTANTS.get(key)
    if a is None:
        a = _CONSTANTS[key] = cuda.to_device(np.array(values, np.int64))
    return a


@cuda.jit(cache=True)
def _classify_scores(x, result, tolerance):
    sh = cuda.shared.array(SHARED, x.dtype)
    n, c = x.shape
    zero = like(x, 0.0)
    one = like(x, 1.0)
    positives = zero  # entries > 0 (any -> not log-probabilities)
    bad_rows = zero   # rows that are not a probability distribution
    i = cuda.threadIdx.x
    while i < n:
        s = zero
        has_positive = False
        negative = False
        for j in range(c):
            v = x[i, j]
            if v > zero:
                positives += one
                has_positive = True
            elif v < zero:
                negative = True
            s += v
        if negative or not has_positive or not abs(s - one) <= tolerance:
            bad_rows += one
        i += cuda.blockDim.x
    positives = block_sum(sh, positives)
    bad_rows = block_sum(sh, bad_rows)
    if cuda.threadIdx.x == 0:
        if positives == zero:
            result[0] = LOG_PROBABILITIES
        elif bad_rows == zero:
            result[0] = PROBABILITIES
        else:
            result[0] = RAW_SCORES


def classify_scores(input, result, tolerance):
    """result[0] = LOG_PROBABILITIES if no entry is positive; PROBABILITIES if every
    row is non-negative, has a positive entry and sums to 1 within tolerance;
    RAW_SCORES otherwise. NaN rows count as neither, so NaN reaches the loss."""
    _classify_scores[1, config.THREADS_PER_BLOCK](input, result, config.typed(input, tolerance))


@cuda.jit(cache=True)
def _check_targets(target, n_classes, kind, status):
    sh = cuda.shared.array(SHARED, int64)
    n = target.shape[0]
    first = n  # the first bad row of this block's threads
    i = cuda.threadIdx.x
    while i < n:
        t = target[i]
        if (t < 0 or t >= n_classes) and i < first:
            first = i
        i += cuda.blockDim.x
    tid = cuda.threadIdx.x
    sh[tid] = first
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s and sh[tid + s] < sh[tid]:
            sh[tid] = sh[tid + s]
        cuda.syncthreads()
        s //= 2
    if tid == 0:
        if kind[0] == RAW_SCORES and status[0] == 0:
            status[0] = 1
            status[1] = n
            status[2] = n_classes
        if sh[0] < n and status[3] == 0:
            status[3] = 1
            status[4] = target[sh[0]]
            status[5] = n
            status[6] = n_classes


def check_targets(target, n_classes, kind, status):
    """The ClassNLL/CrossEntropy input checks on the device (no CPU twin: the CPU
    criterion checks on the host): latch the first error into ``status`` (int64,
    ``STATUS_SIZE``), keeping an earlier one: [raw-scores flag, N, C, bad-label flag,
    the first bad label, N, C]. ``kind``: the ``classify_scores`` result, or None;
    ``target``: 1-D labels, or None for dense targets. One small block: labels are
    one per row."""
    if kind is None:
        kind = constant_int_array("kind", [LOG_PROBABILITIES])
    if target is None:
        target = constant_int_array("no labels", [])
    _check_targets[1, config.THREADS_PER_BLOCK](target, int(n_classes), kind, status)


@cuda.jit(cache=True)
def _one_hot(target, out):
    n, c = out.shape
    e = cuda.grid(1)
    while e < n * c:
        i = e // c
        j = e - i * c
        t = target[i]
        if t < 0 or t >= c:
            out[i, j] = like(out, math.nan)  # bad label: check_targets reports it
        else:
            out[i, j] = like(out, 1.0) if j == t else like(out, 0.0)
        e += cuda.gridsize(1)


def one_hot(target, output):
    """output[i] = the one-hot row of label target[i] (NaN for a label outside [0, C));
    no CPU twin: the CPU criterion builds one-hot rows with NumPy."""
    if output.size:
        blocks, tpb = config.grid_1d(output.size)
        _one_hot[blocks, tpb](target, output)


@cuda.jit(cache=True)
def _argmax_rows(x, result):
    n, c = x.shape
    i = cuda.grid(1)
    while i < n:
        best = x[i, 0]
        arg = 0
        for j in range(1, c):
            if x[i, j] > best:  # the first maximum, as np.argmax (NaN rows: see below)
                best = x[i, j]
                arg = j
        result[i] = arg
        i += cuda.gridsize(1)


def argmax_rows(input, result):
    """result[i] = the column of row i's first maximum (``fit``'s accuracy on the
    device, read with the loss). Unlike np.argmax a NaN is never the maximum."""
    if input.shape[0] and input.shape[1]:
        blocks, tpb = config.grid_1d(input.shape[0])
        _argmax_rows[blocks, tpb](input, result)
