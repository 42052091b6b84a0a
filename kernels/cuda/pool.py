"""2-D max pooling on the GPU (NCHW, square windows, no padding, floor output size);
twin of ``fastnn.kernels.cpu.pool``: same arg-max convention (flat ih * W + iw in the
(H, W) plane), ties to the first element in row-major window order, NaN propagates
(the last NaN wins). The backward is a gather (each input pixel sums the gradients of
the windows whose arg-max it is, in the CPU twin's order): no atomics, deterministic."""
import math

import numpy as np
from numba import cuda

from . import config
from ._typed import index_like, like


@cuda.jit(cache=True)
def _forward(x, out, indices, k, stride, C, H, W, Ho, Wo):
    # integer arguments and every dividend in the launcher's index type (uint32 where
    # the sizes allow: 32-bit divides; see conv._im2col)
    HoWo = index_like(Wo, Ho * Wo)
    e = cuda.grid(1)
    while e < out.size:
        u = index_like(Wo, e)
        nc = u // HoWo
        r = index_like(Wo, u - nc * HoWo)
        oh = r // Wo
        ow = r - oh * Wo
        n = nc // C
        c = nc - n * C
        h0 = oh * stride
        w0 = ow * stride
        best = like(x, -math.inf)
        arg = h0 * W + w0
        for di in range(k):
            for dj in range(k):
                v = x[n, c, h0 + di, w0 + dj]
                if v > best or v != v:
                    best = v
                    arg = (h0 + di) * W + w0 + dj
        out[n, c, oh, ow] = best
        indices[n, c, oh, ow] = arg
        e += cuda.gridsize(1)


@cuda.jit(device=True)
def _windows(i, k, stride, n_out, like_index):
    """First and last output window (along one axis, ``n_out`` of them) holding input
    position ``i``: o * stride <= i < o * stride + k. ``i - k`` only when i >= k (indices
    may be unsigned); no builtin min/max: numba 0.68's CUDA target cannot compile their
    vararg overloads. ``like_index`` gives the index type."""
    one = index_like(like_index, 1)
    lo = index_like(like_index, 0)
    if i >= k:
        lo = index_like(like_index, i - k) // stride + one
    hi = i // stride
    if hi >= n_out:
        hi = n_out - one
    return lo, hi


@cuda.jit(cache=True)
def _backward(go, gi, indices, k, stride, C, H, W, Ho, Wo):
    HW = index_like(W, H * W)
    one = index_like(W, 1)
    e = cuda.grid(1)
    while e < gi.size:
        u = index_like(W, e)
        nc = u // HW
        pos = index_like(W, u - nc * HW)
        ih = pos // W
        iw = index_like(W, pos - ih * W)
        n = nc // C
        c = nc - n * C
        oh_lo, oh_hi = _windows(ih, k, stride, Ho, W)
        ow_lo, ow_hi = _windows(iw, k, stride, Wo, W)
        acc = like(gi, 0.0)
        for oh in range(oh_lo, oh_hi + one):
            for ow in range(ow_lo, ow_hi + one):
                if indices[n, c, oh, ow] == pos:
                    acc += go[n, c, oh, ow]
        gi[n, c, ih, iw] = acc
        e += cuda.gridsize(1)


def _ints(size, *values):
    t = np.uint32 if size + max(values) < 2 ** 31 else np.int64
    return tuple(t(v) for v in values)


def maxpool2d_forward(input, output, indices, kernel_size, stride):
    """output[n, c, oh, ow] = max of input[n, c, oh*s : oh*s+k, ow*s : ow*s+k];
    indices (same shape as output, int64) = flat arg-max in the (H, W) plane."""
    if output.size == 0:
        return
    blocks, tpb = config.grid_1d(output.size)
    N, C, H, W = input.shape
    _forward[blocks, tpb](input, output, indices,
                          *_ints(input.size, kernel_size, stride, C, H, W, output.shape[2],
                                 output.shape[3]))


def maxpool2d_backward(gradOutput, gradInput, indices, kernel_size, stride):
    """gradInput[n, c].flat[indices[n, c, oh, ow]] = sum of the gradOutput entries whose
    arg-max it is (zero elsewhere)."""
    if gradInput.size == 0:
        return
    blocks, tpb = config.grid_1d(gradInput.size)
    N, C, H, W = gradInput.shape
    _backward[blocks, tpb](gradOutput, gradInput, indices,
                           *_ints(gradInput.size, kernel_size, stride, C, H, W,
                                  gradOutput.shape[2], gradOutput.shape[3]))


# ---- average pooling: twin of the CPU's avgpool2d_*, backward a gather as above ----
@cuda.jit(cache=True)
def _avg_forward(x, out, k, stride, C, H, W, Ho, Wo):
    HoWo = index_like(Wo, Ho * Wo)
    area = like(x, k * k)
    e = cuda.grid(1)
    while e < out.size:
        u = index_like(Wo, e)
        nc = u // HoWo
        r = index_like(Wo, u - nc * HoWo)
        oh = r // Wo
        ow = r - oh * Wo
        n = nc // C
        c = nc - n * C
        h0 = oh * stride
        w0 = ow * stride
        acc = x[n, c, h0, w0]  # the CPU twin's order: row-major, from the first tap
        for dj in range(1, k):
            acc += x[n, c, h0, w0 + dj]
        for di in range(1, k):
            for dj in range(k):
                acc += x[n, c, h0 + di, w0 + dj]
        out[n, c, oh, ow] = acc / area
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _avg_backward(go, gi, k, stride, C, H, W, Ho, Wo):
    HW = index_like(W, H * W)
    one = index_like(W, 1)
    area = like(gi, k * k)
    e = cuda.grid(1)
    while e < gi.size:
        u = index_like(W, e)
        nc = u // HW
        pos = index_like(W, u - nc * HW)
        ih = pos // W
        iw = index_like(W, pos - ih * W)
        n = nc // C
        c = nc - n * C
        oh_lo, oh_hi = _windows(ih, k, stride, Ho, W)
        ow_lo, ow_hi = _windows(iw, k, stride, Wo, W)
        acc = like(gi, 0.0)
        for oh in range(oh_lo, oh_hi + one):
            for ow in range(ow_lo, ow_hi + one):
                acc += go[n, c, oh, ow] / area
        gi[n, c, ih, iw] = acc
        e += cuda.gridsize(1)


def avgpool2d_forward(input, output, kernel_size, stride):
    """output[n, c, oh, ow] = mean of input[n, c, oh*s : oh*s+k, ow*s : ow*s+k]."""
    if output.size == 0:
        return
    blocks, tpb = config.grid_1d(output.size)
    N, C, H, W = input.shape
    _avg_forward[blocks, tpb](input, output,
                              *_ints(input.size, kernel_size, stride, C, H, W,
                                     output.shape[2], output.shape[3]))


def avgpool2d_backward(gradOutput, gradInput, kernel_size, stride):
    """gradInput[n, c, ih, iw] = sum over the windows that hold it of
    gradOutput / (k * k): a gather, so no atomics."""
    if gradInput.size == 0:
        return
    blocks, tpb = config.grid_1d(gradInput.size)
    N, C, H, W = gradInput.shape
    _avg_backward[blocks, tpb](gradOutput, gradInput,
                               *_ints(gradInput.size, kernel_size, stride, C, H, W,
                                      gradOutput.shape[2], gradOutput.shape[3]))
