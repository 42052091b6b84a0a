"""Convolution as im2col + GEMM: the column layouts, the chunking geometry, and the GEMM
epilogues (bias and activation applied where the result is stored) and prologues (the
output gradient expanded into the column layout, times the activation's derivative).

The layouts are described in ``conv.py``. Helpers only: the kernels are in ``conv.py``.
"""
import numpy as np

from ._jit import njit

from .activation import (LEAKY_RELU, NONE, RELU, activation_derivative, activation_value,
                         copy_rows)
from .blas import gemm


@njit(cache=True, nogil=True)
def _geometry(C, H, W, k, stride, padding, Ho, Wo, F, size):
    """(row length, columns per image L, padded-plane size, images per chunk)."""
    Hp = H + 2 * padding
    Wp = W + 2 * padding
    if stride == 1:
        row = Wp
        plane = C * Hp * Wp + k - 1
    else:
        row = Wo
        plane = 0
    L = Ho * row
    per_image = (C * k * k + F) * L
    if per_image == 0:
        return row, L, plane, 1
    m = (size - plane) // per_image
    if m < 1:
        raise ValueError("conv2d: the columns buffer is too small (see columns_size)")
    return row, L, plane, m


@njit(cache=True, nogil=True)
def _dims(images, weight, outputs, columns, stride, padding):
    """The sizes every kernel starts from: images (N, C, H, W) is the input or its
    gradient, weight (F, C, k, k) the weight or its gradient, outputs (N, F, Ho, Wo) the
    output or its gradient. Returns (N, C, F, k, Ho, Wo, C k k) + _geometry's four."""
    N, C, H, W = images.shape
    F = weight.shape[0]
    k = weight.shape[2]
    Ho = outputs.shape[2]
    Wo = outputs.shape[3]
    row, L, plane, m_max = _geometry(C, H, W, k, stride, padding, Ho, Wo, F, columns.size)
    return N, C, F, k, Ho, Wo, C * k * k, row, L, plane, m_max


@njit(cache=True, nogil=True)
def _copy_interior(x, xp, Hp, Wp, padding, into_plane):
    """Copy image x (C, H, W) into the interior of the flat padded plane xp (whose
    border and tail slack the caller zeroed), or, with into_plane False, that interior
    back into x."""
    C, H, W = x.shape
    for c in range(C):
        for i in range(H):
            base = (c * Hp + i + padding) * Wp + padding
            plane_row = xp[base:base + W]
            image_row = x[c, i]
            if into_plane:
                for j in range(W):
                    plane_row[j] = image_row[j]
            else:
                for j in range(W):
                    image_row[j] = plane_row[j]


@njit(cache=True, nogil=True)
def _im2col_wide(xp, cols, col0, C, Hp, Wp, k, L):
    """Stride 1: column row (c, ki, kj) is one contiguous slice of the padded plane."""
    for c in range(C):
        for ki in range(k):
            for kj in range(k):
                r = (c * k + ki) * k + kj
                start = c * Hp * Wp + ki * Wp + kj
                src = xp[start:start + L]
                dst = cols[r, col0:col0 + L]
                for j in range(L):
                    dst[j] = src[j]


@njit(cache=True, nogil=True)
def _valid_range(kj, stride, padding, W, Wo):
    """Output columns ow whose input column ow * stride - padding + kj lies in [0, W)."""
    lo = 0 if padding - kj <= 0 else (padding - kj + stride - 1) // stride
    hi = (W - 1 + padding - kj) // stride + 1
    if hi > Wo:
        hi = Wo
    if lo > Wo:
        lo = Wo
    if hi < lo:
        hi = lo
    return lo, hi


@njit(cache=True, nogil=True)
def _im2col_strided(x, cols, col0, k, stride, padding, Ho, Wo):
    """Plain im2col: cols[(c, ki, kj), col0 + oh * Wo + ow] = x[c, ih, iw] or 0."""
    C, H, W = x.shape
    for c in range(C):
        for ki in range(k):
            for kj in range(k):
                r = (c * k + ki) * k + kj
                lo, hi = _valid_range(kj, stride, padding, W, Wo)
                first = lo * stride + kj - padding
                for oh in range(Ho):
                    ih = oh * stride - padding + ki
                    dst = cols[r, col0 + oh * Wo:col0 + (oh + 1) * Wo]
                    if ih < 0 or ih >= H:
                        for j in range(Wo):
                            dst[j] = 0.0
                        continue
                    src = x[c, ih]
                    for j in range(lo):
                        dst[j] = 0.0
                    for j in range(hi - lo):
                        dst[lo + j] = src[first + j * stride]
                    for j in range(hi, Wo):
                        dst[j] = 0.0


@njit(cache=True, nogil=True)
def _fill_columns(input, cols, xp, n0, m, k, stride, padding, Ho, Wo, L):
    """im2col of images n0 .. n0 + m - 1 into cols (C k k, m L)."""
    C = input.shape[1]
    Hp = input.shape[2] + 2 * padding
    Wp = input.shape[3] + 2 * padding
    for i in range(m):
        if stride == 1:
            _copy_interior(input[n0 + i], xp, Hp, Wp, padding, True)
            _im2col_wide(xp, cols, i * L, C, Hp, Wp, k, L)
        else:
            _im2col_strided(input[n0 + i], cols, i * L, k, stride, padding, Ho, Wo)


@njit(cache=True, nogil=True)
def _chunk(columns, plane, CKK, F, m, L):
    """The chunk's views of the scratch after the padded plane: columns (C k k, m L)
    and the GEMM result / expanded gradient (F, m L)."""
    cols = columns[plane:plane + CKK * m * L].reshape((CKK, m * L))
    g = columns[plane + CKK * m * L:plane + (CKK + F) * m * L].reshape((F, m * L))
    return cols, g


@njit(cache=True, nogil=True)
def _expand_grad(gradOutput, g, n0, m, row, L):
    """g (F, m L) <- gradOutput[n0 : n0 + m] in the column layout, junk columns 0."""
    F = gradOutput.shape[1]
    Ho = gradOutput.shape[2]
    Wo = gradOutput.shape[3]
    for f in range(F):
        for i in range(m):
            for oh in range(Ho):
                dst = g[f, i * L + oh * row:i * L + (oh + 1) * row]
                src = gradOutput[n0 + i, f, oh]
                for j in range(Wo):
                    dst[j] = src[j]
                for j in range(Wo, row):
                    dst[j] = 0.0


@njit(cache=True, nogil=True, inline="always")
def _store_plane(src, src0, row, b, pre, out, code, alpha):
    for oh in range(pre.shape[0]):
        s = src[src0 + oh * row:src0 + oh * row + pre.shape[1]]
        p = pre[oh]
        o = out[oh]
        for j in range(p.size):
            z = s[j] + b
            p[j] = z
            o[j] = activation_value(code, z, alpha)


@njit(cache=True, nogil=True)
def _store_activated(src, src0, row, b, pre, out, activation, alpha):
    """One (Ho, Wo) output plane from the column layout (flat src, rows ``row`` apart
    from src0): pre = src + b, out = act(pre). ``pre`` and ``out`` may be the same
    array for NONE. Constant codes let the loop vectorise (see activation.py)."""
    if activation == NONE:
        # one store per element: two stores to the same array fail LLVM's runtime
        # overlap check and run scalar (asv conv.Conv2dModule, MNIST's first layer)
        for oh in range(pre.shape[0]):
            s = src[src0 + oh * row:src0 + oh * row + pre.shape[1]]
            p = pre[oh]
            for j in range(p.size):
                p[j] = s[j] + b
        if out.ctypes.data != pre.ctypes.data:
            copy_rows(pre, out)
    elif activation == RELU:
        _store_plane(src, src0, row, b, pre, out, RELU, alpha)
    elif activation == LEAKY_RELU:
        _store_plane(src, src0, row, b, pre, out, LEAKY_RELU, alpha)
    else:
        _store_plane(src, src0, row, b, pre, out, activation, alpha)


@njit(cache=True, nogil=True, inline="always")
def _expand_plane(go, pre, out, delta, g, g0, row, code, alpha):
    for oh in range(go.shape[0]):
        dst = g[g0 + oh * row:g0 + (oh + 1) * row]
        src = go[oh]
        p = pre[oh]
        o = out[oh]
        d = delta[oh]
        Wo = src.size
        for j in range(Wo):
            v = src[j] * activation_derivative(code, p[j], o[j], alpha)
            d[j] = v
            dst[j] = v
        for j in range(Wo, row):
            dst[j] = 0.0


@njit(cache=True, nogil=True)
def _expand_activated(gradOutput, preactivation, output, delta, g, n0, m, row, L, activation,
                      alpha):
    """delta[n0 : n0 + m] = gradOutput * act'(preactivation) (the activation's
    gradInput), and g (F, m L) <- the same values in the column layout, junk columns 0:
    one pass for what the activation's backward and _expand_grad would do in two."""
    for f in range(gradOutput.shape[1]):
        gf = g[f]
        for i in range(m):
            go, pre, out, d = (gradOutput[n0 + i, f], preactivation[n0 + i, f],
                               output[n0 + i, f], delta[n0 + i, f])
            if activation == RELU:
                _expand_plane(go, pre, out, d, gf, i * L, row, RELU, alpha)
            elif activation == LEAKY_RELU:
                _expand_plane(go, pre, out, d, gf, i * L, row, LEAKY_RELU, alpha)
            else:
                _expand_plane(go, pre, out, d, gf, i * L, row, activation, alpha)


@njit(cache=True, nogil=True)
def _sum_lanes(v):
    """Sum of a 1-D array: 64 interleaved partial sums in a small array added
    elementwise (vectorises; a running scalar sum is one long dependency chain and
    does not vectorise without fastmath), then summed."""
    n = v.size
    part = np.zeros(64, v.dtype)
    full = n - n % 64
    for j in range(0, full, 64):
        for lane in range(64):
            part[lane] += v[j + lane]
    total = 0.0
    for lane in range(64):
        total += part[lane]
    for j in range(full, n):
        total += v[j]
    return total


@njit(cache=True, nogil=True)
def _params_chunk(input, cols, g, xp, gw2, gradBias, n0, m, k, stride, padding, Ho, Wo, L,
                  beta):
    """gradWeight (gw2 = (F, C k k)) = beta gw2 + g (x) im2col(chunk); gradBias += row
    sums of g, taken while the expanded rows are in cache (junk columns are 0)."""
    _fill_columns(input, cols, xp, n0, m, k, stride, padding, Ho, Wo, L)
    gemm(False, True, 1.0, g, cols, beta, gw2)
    for f in range(g.shape[0]):
        gradBias[f] += _sum_lanes(g[f])


@njit(cache=True, nogil=True)
def _start_param_grads(gradWeight, gradBias, N, accumulate):
    """Overwrite mode zeroes the gradients the chunks add into (gradWeight only when no
    GEMM will overwrite it); returns the first chunk's GEMM beta."""
    if not accumulate:
        gradBias[:] = 0.0
        if N == 0:
            gradWeight[...] = 0.0
    return 1.0 if accumulate else 0.0
