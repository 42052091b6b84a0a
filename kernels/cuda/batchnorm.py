"""Batch normalization (no affine part) and BatchMeanSubtraction on the GPU, on
(N, C, S) views like the CPU twin. Statistics: one block per channel (grid-stride
over channels), its threads stride over the N*S values and a shared-memory tree sums
them in the data's dtype (a tree, so float32 keeps ~log2(block) roundings rather than
N*S). Eval-mode passes are elementwise."""
import math

from numba import cuda

from . import config
from ._reduce import SHARED, block_sum
from ._typed import like


@cuda.jit(cache=True)
def _forward_train(x, y, mean, invstd, moving_mean, moving_variance, alpha, eps, center_only):
    sh = cuda.shared.array(SHARED, x.dtype)
    n, c, s = x.shape
    count = n * s
    fcount = like(x, count)
    zero = like(x, 0.0)
    one = like(x, 1.0)
    tid = cuda.threadIdx.x
    ch = cuda.blockIdx.x
    while ch < c:
        acc = zero
        e = tid
        while e < count:
            i = e // s
            acc += x[i, ch, e - i * s]
            e += cuda.blockDim.x
        mu = block_sum(sh, acc) / fcount
        acc = zero
        e = tid
        while e < count:
            i = e // s
            d = x[i, ch, e - i * s] - mu
            acc += d * d
            e += cuda.blockDim.x
        var = block_sum(sh, acc) / fcount
        inv = one if center_only else one / math.sqrt(var + eps)
        if tid == 0:
            mean[ch] = mu
            invstd[ch] = inv
            moving_mean[ch] = alpha * moving_mean[ch] + (one - alpha) * mu
            if not center_only:
                moving_variance[ch] = alpha * moving_variance[ch] + (one - alpha) * var
        e = tid
        while e < count:
            i = e // s
            k = e - i * s
            y[i, ch, k] = (x[i, ch, k] - mu) * inv
            e += cuda.blockDim.x
        ch += cuda.gridDim.x


@cuda.jit(cache=True)
def _forward_eval(x, y, moving_mean, moving_variance, eps, center_only):
    n, c, s = x.shape
    e = cuda.grid(1)
    while e < n * c * s:
        i = e // (c * s)
        r = e - i * (c * s)
        ch = r // s
        k = r - ch * s
        mu = moving_mean[ch]
        one = like(x, 1.0)
        inv = one if center_only else one / math.sqrt(moving_variance[ch] + eps)
        y[i, ch, k] = (x[i, ch, k] - mu) * inv
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _backward_train(g, gi, y, invstd, center_only):
    sh = cuda.shared.array(SHARED, g.dtype)
    n, c, s = g.shape
    count = n * s
    fcount = like(g, count)
    tid = cuda.threadIdx.x
    ch = cuda.blockIdx.x
    while ch < c:
        gs = like(g, 0.0)
        gx = like(g, 0.0)
        e = tid
        while e < count:
            i = e // s
            k = e - i * s
            gv = g[i, ch, k]
            gs += gv
            gx += gv * y[i, ch, k]
            e += cuda.blockDim.x
        gmean = block_sum(sh, gs) / fcount
        gxmean = block_sum(sh, gx) / fcount
        if center_only:
            gxmean = like(g, 0.0)
        inv = invstd[ch]
        e = tid
        while e < count:
            i = e // s
            k = e - i * s
            gi[i, ch, k] = inv * (g[i, ch, k] - gmean - y[i, ch, k] * gxmean)
            e += cuda.blockDim.x
        ch += cuda.gridDim.x


@cuda.jit(cache=True)
def _backward_eval(g, gi, moving_variance, eps, center_only):
    n, c, s = g.shape
    e = cuda.grid(1)
    while e < n * c * s:
        i = e // (c * s)
        r = e - i * (c * s)
        ch = r // s
        k = r - ch * s
        one = like(g, 1.0)
        inv = one if center_only else one / math.sqrt(moving_variance[ch] + eps)
        gi[i, ch, k] = g[i, ch, k] * inv
        e += cuda.gridsize(1)


def batchnorm_forward_train(input, output, mean, invstd, moving_mean, moving_variance,
                            alpha, eps, center_only):
    """Normalize with the batch statistics (biased variance), store them for
    backward, and update moving = alpha * moving + (1 - alpha) * batch."""
    c = input.shape[1]
    if c == 0:
        return
    blocks, tpb = config.grid_rows(c)
    _forward_train[blocks, tpb](input, output, mean, invstd, moving_mean, moving_variance,
                                config.typed(input, alpha), config.typed(input, eps),
                                bool(center_only))


def batchnorm_forward_eval(input, output, moving_mean, moving_variance, eps, center_only):
    if input.size == 0:
        return
    blocks, tpb = config.grid_1d(input.size)
    _forward_eval[blocks, tpb](input, output, moving_mean, moving_variance,
                               config.typed(input, eps), bool(center_only))


def batchnorm_backward_train(gradOutput, gradInput, output, invstd, center_only):
    """gradInput = invstd * (g - mean(g) - xhat * mean(g * xhat)), xhat = output."""
    c = gradOutput.shape[1]
    if c == 0:
        return
    blocks, tpb = config.grid_rows(c)
    _backward_train[blocks, tpb](gradOutput, gradInput, output, invstd, bool(center_only))


def batchnorm_backward_eval(gradOutput, gradInput, moving_variance, eps, center_only):
    if gradOutput.size == 0:
        return
    blocks, tpb = config.grid_1d(gradOutput.size)
    _backward_eval[blocks, tpb](gradOutput, gradInput, moving_variance,
                                config.typed(gradOutput, eps), bool(center_only))
