"""2-D max pooling on the GPU (NCHW, square windows, no padding, floor output size);
twin of ``fastnn.kernels.cpu.pool``: same arg-max convention (flat ih * W + iw in the
(H, W) plane), ties to the first element in row-major window order, NaN propagates
(the last NaN wins). The backward is a gather (each input pixel sums the gradients of
the windows whose arg-max it is, in the CPU twin's order): no atomics, deterministic."""
import math

from numba import cuda

from . import config
from ._typed import like


@cuda.jit(cache=True)
def _forward(x, out, indices, k, stride):
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    total = N * C * Ho * Wo
    e = cuda.grid(1)
    while e < total:
        nc = e // (Ho * Wo)
        r = e - nc * (Ho * Wo)
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


@cuda.jit(cache=True)
def _backward(go, gi, indices, k, stride):
    N, C, H, W = gi.shape
    Ho, Wo = go.shape[2], go.shape[3]
    total = N * C * H * W
    e = cuda.grid(1)
    while e < total:
        nc = e // (H * W)
        pos = e - nc * (H * W)
        ih = pos // W
        iw = pos - ih * W
        n = nc // C
        c = nc - n * C
        # windows oh with oh * stride <= ih < oh * stride + k
        # (no builtin min/max in kernels: numba 0.68's built-in CUDA target cannot
        # compile their vararg overloads)
        oh_lo = 0 if ih < k else (ih - k) // stride + 1
        oh_hi = ih // stride
        if oh_hi > Ho - 1:
            oh_hi = Ho - 1
        ow_lo = 0 if iw < k else (iw - k) // stride + 1
        ow_hi = iw // stride
        if ow_hi > Wo - 1:
            ow_hi = Wo - 1
        acc = like(gi, 0.0)
        for oh in range(oh_lo, oh_hi + 1):
            for ow in range(ow_lo, ow_hi + 1):
                if indices[n, c, oh, ow] == pos:
                    acc += go[n, c, oh, ow]
        gi[n, c, ih, iw] = acc
        e += cuda.gridsize(1)


def maxpool2d_forward(input, output, indices, kernel_size, stride):
    """output[n, c, oh, ow] = max of input[n, c, oh*s : oh*s+k, ow*s : ow*s+k];
    indices (same shape as output, int64) = flat arg-max in the (H, W) plane."""
    if output.size == 0:
        return
    blocks, tpb = config.grid_1d(output.size)
    _forward[blocks, tpb](input, output, indices, int(kernel_size), int(stride))


def maxpool2d_backward(gradOutput, gradInput, indices, kernel_size, stride):
    """gradInput[n, c].flat[indices[n, c, oh, ow]] = sum of the gradOutput entries whose
    arg-max it is (zero elsewhere)."""
    if gradInput.size == 0:
        return
    blocks, tpb = config.grid_1d(gradInput.size)
    _backward[blocks, tpb](gradOutput, gradInput, indices, int(kernel_size), int(stride))
