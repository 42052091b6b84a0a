"""Batch normalization (no affine part) and BatchMeanSubtraction on the GPU, on
(N, C, S) views like the CPU twin. Statistics: one block per channel (grid-stride
over channels), its threads stride over the N*S values (consecutive threads,
consecutive positions s: coalesced) and a shared-memory tree sums
them in the data's dtype (a tree, so float32 keeps ~log2(block) roundings rather than
N*S). With S == 1 (after a Linear) that layout would read with a stride of C, so a
block takes a group of channels instead, a warp reading one row's consecutive
channels (``_forward_train_rows``). Eval-mode passes are elementwise."""
import math

from numba import cuda

from . import config
from ._reduce import COLUMN_SHARED, SHARED, block_sum, column_block_sum, column_grid
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


@cuda.jit(cache=True)
def _forward_train_rows(x, y, mean, invstd, moving_mean, moving_variance, alpha, eps,
                        center_only):
    """_forward_train for (N, C, 1) data (a BatchNorm after a Linear): a block per group
    of channels, so a warp reads one row's consecutive channels (coalesced), where a
    block per channel would read with a stride of C."""
    sh = cuda.shared.array(COLUMN_SHARED, x.dtype)
    n, c = x.shape[0], x.shape[1]
    fcount = like(x, n)
    one = like(x, 1.0)
    ty = cuda.threadIdx.y
    c0 = cuda.blockIdx.x * cuda.blockDim.x
    while c0 < c:  # block-uniform
        ch = c0 + cuda.threadIdx.x
        live = ch < c
        acc = like(x, 0.0)
        i = ty
        while live and i < n:
            acc += x[i, ch, 0]
            i += cuda.blockDim.y
        mu = column_block_sum(sh, acc) / fcount
        acc = like(x, 0.0)
        i = ty
        while live and i < n:
            d = x[i, ch, 0] - mu
            acc += d * d
            i += cuda.blockDim.y
        var = column_block_sum(sh, acc) / fcount
        inv = one if center_only else one / math.sqrt(var + eps)
        if live and ty == 0:
            mean[ch] = mu
            invstd[ch] = inv
            moving_mean[ch] = alpha * moving_mean[ch] + (one - alpha) * mu
            if not center_only:
                moving_variance[ch] = alpha * moving_variance[ch] + (one - alpha) * var
        i = ty
        while live and i < n:
            y[i, ch, 0] = (x[i, ch, 0] - mu) * inv
            i += cuda.blockDim.y
        c0 += cuda.gridDim.x * cuda.blockDim.x


@cuda.jit(cache=True)
def _backward_train_rows(g, gi, y, invstd, center_only):
    """_backward_train for (N, C, 1) data, in the layout of _forward_train_rows."""
    sh = cuda.shared.array(COLUMN_SHARED, g.dtype)
    n, c = g.shape[0], g.shape[1]
    fcount = like(g, n)
    ty = cuda.threadIdx.y
    c0 = cuda.blockIdx.x * cuda.blockDim.x
    while c0 < c:
        ch = c0 + cuda.threadIdx.x
        live = ch < c
        gs = like(g, 0.0)
        gx = like(g, 0.0)
        i = ty
        while live and i < n:
            gv = g[i, ch, 0]
            gs += gv
            gx += gv * y[i, ch, 0]
            i += cuda.blockDim.y
        gmean = column_block_sum(sh, gs) / fcount
        gxmean = column_block_sum(sh, gx) / fcount
        if center_only:
            gxmean = like(g, 0.0)
        if live:
            inv = invstd[ch]
            i = ty
            while i < n:
                gi[i, ch, 0] = inv * (g[i, ch, 0] - gmean - y[i, ch, 0] * gxmean)
                i += cuda.blockDim.y
        c0 += cuda.gridDim.x * cuda.blockDim.x


def batchnorm_forward_train(input, output, mean, invstd, moving_mean, moving_variance,
                            alpha, eps, center_only):
    """Normalize with the batch statistics (biased variance), store them for
    backward, and update moving = alpha * moving + (1 - alpha) * batch."""
    c = input.shape[1]
    if c == 0:
        return
    if input.shape[2] == 1:
        blocks, block = column_grid(c)
        _forward_train_rows[blocks, block](input, output, mean, invstd, moving_mean,
                                           moving_variance, config.typed(input, alpha),
                                           config.typed(input, eps), bool(center_only))
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
    if gradOutput.shape[2] == 1:
        blocks, block = column_grid(c)
        _backward_train_rows[blocks, block](gradOutput, gradInput, output, invstd,
                                            bool(center_only))
        return
    blocks, tpb = config.grid_rows(c)
    _backward_train[blocks, tpb](gradOutput, gradInput, output, invstd, bool(center_only))


def batchnorm_backward_eval(gradOutput, gradInput, moving_variance, eps, center_only):
    if gradOutput.size == 0:
        return
    blocks, tpb = config.grid_1d(gradOutput.size)
    _backward_eval[blocks, tpb](gradOutput, gradInput, moving_variance,
                                config.typed(gradOutput, eps), bool(center_only))
