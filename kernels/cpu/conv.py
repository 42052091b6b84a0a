"""2-D convolution (NCHW, square k x k kernels, stride s, zero padding p) as
im2col + GEMM on BLAS, a chunk of images per GEMM.

Column layout. For stride 1 the column buffer uses the *wide grid*: the image is
copied once into a zero-padded plane (Hp, Wp) = (H + 2p, W + 2p), and column row
(c, ki, kj) of an image is then ONE contiguous slice of that plane,
``xpad[c].ravel()[ki * Wp + kj :][: Ho * Wp]``: output pixel (oh, ow) sits at
oh * Wp + ow, and the k - 1 columns ow >= Wo of each row are junk that is dropped
when the GEMM result is copied into ``output`` (with the bias), and multiplied by
exact zeros in the backward GEMMs. This replaces the per-output-row copies of a
plain im2col (short Wo-element loops, which cost as much as the GEMM itself at
MNIST sizes) by k*k*C long memcpys, for (Wo + k - 1) / Wo more GEMM work. Strides
> 1 use the plain compact im2col (Ho * Wo columns per image).

Chunking. The module sizes ``columns`` with ``columns_size``; each kernel carves
it into [padded plane | columns (C k k, m L) | GEMM result / expanded gradient
(F, m L)] and processes m images per GEMM. The chunk is capped at COLUMNS_BUDGET
elements (8 MiB of float32), so the columns written by im2col are still in the L3
cache when the GEMM reads them: on this machine's 512 KiB L2 / 32 MiB L3, MNIST's
32 -> 64 layer at batch 128 (forward + both backwards) takes ~46 ms in chunks of
8 images against ~70 ms as two 64-image GEMMs (19 MiB), and the 1 -> 32 layer ~19 ms
in chunks of 4-16 against ~25 ms whole-batch. Between 6 and 32 images (2 to 10 MiB)
the layer alone takes the same time on two threads, but every GEMM call ends in a join
of the BLAS threads, which waits whenever the host takes the other core away: next to
torch in one process (asv_bench/compare_torch.py --only cnn, four runs each), the
batch-128 CNN step took a median ~116 ms with 2 MiB chunks (22 per layer phase) and
~93 ms with 8 MiB ones (5).

Direct path. With few input taps (C k k <= DIRECT_MAX_CKK, e.g. the first layer of
an MNIST CNN: 1 channel, 3x3) the forward and the input gradient skip im2col and the
GEMM: each (f, c, ki, kj) tap is one axpy of length Ho * Wp over the wide grid, which
vectorises and stays in L1. The columns would be as large as the output there and the
GEMM too thin to pay for them. MNIST's 1 -> 32 layer, direct against im2col + GEMM on
two threads: batch 32 forward 0.83 vs 0.94-1.33 ms, input gradient 1.0 vs 1.25-1.75 ms;
batch 128 forward about even (4.6 vs 3.6-4.6 ms), input gradient 4.1-4.4 vs 5.1-5.8 ms.
For 3x3 kernels the nine taps are added in one pass (_add_taps_3x3; the input gradient
runs it as a gather with the kernel flipped), so the accumulator row is loaded and stored
once instead of nine times: the batch-128 forward went from 3.8 to 2.7 ms (one thread,
best of 40).
The weight gradient stays on the GEMM: its direct form is a dot product per tap, which
does not vectorise without fastmath and measured 2.3x slower even with eight partial sums.

Fusion. A Sequential runs Conv2d + activation as conv2d_activation_forward/backward:
the activation is applied where the result is stored, and its derivative where the
gradient is expanded into the column layout, which then serves both backward GEMMs
(the separate kernels expand it once each). Every module's output and gradInput are
still written, as the homework API exposes them.

Non-finite values: the junk columns hold input values (or padding zeros), so a NaN
or inf in the input can reach more entries of gradWeight than in a direct
convolution (0 * inf = NaN); finite inputs give exact results.
"""
import numpy as np
from ._jit import njit

from .activation import (LEAKY_RELU, NONE, RELU, activation_derivative, activation_value,
                         copy_rows)
from .blas import gemm

COLUMNS_BUDGET = 1 << 21   # scratch elements per chunk (8 MiB in float32): stays in L3
DIRECT_MAX_CKK = 32        # stride 1 with C k k <= this: direct loops, no im2col (see below)


def columns_size(input_shape, n_out, kernel_size, stride, padding, images=None):
    """Number of scratch elements the module should allocate for ``columns``: the
    padded plane (stride 1) plus room for ``images`` images per GEMM (clamped to
    [1, N]). By default, the whole batch if it fits in COLUMNS_BUDGET elements,
    else equal chunks that do (MNIST's CNN at batch 128: 43 images per GEMM for
    1 -> 32 at 28x28, 26 for 32 -> 64 at 14x14)."""
    n, c, h, w = (int(v) for v in input_shape)
    n = max(n, 1)
    k = int(kernel_size)
    hp, wp = h + 2 * padding, w + 2 * padding
    ho = (hp - k) // stride + 1
    wo = (wp - k) // stride + 1
    row = wp if stride == 1 else wo
    plane = c * hp * wp + k - 1 if stride == 1 else 0
    per_image = (c * k * k + n_out) * max(ho * row, 1)
    if images is None:
        fit = max(1, COLUMNS_BUDGET // per_image)
        chunks = -(-n // fit)
        images = -(-n // chunks)
    m = max(1, min(n, int(images)))
    return plane + m * per_image


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
def _col2im_wide(cols, col0, gxp, C, Hp, Wp, k, L):
    """Adjoint of _im2col_wide: scatter-add column rows into the padded plane."""
    for c in range(C):
        for ki in range(k):
            for kj in range(k):
                r = (c * k + ki) * k + kj
                start = c * Hp * Wp + ki * Wp + kj
                dst = gxp[start:start + L]
                src = cols[r, col0:col0 + L]
                for j in range(L):
                    dst[j] += src[j]


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
def _col2im_strided(cols, col0, gx, k, stride, padding, Ho, Wo):
    """Adjoint of _im2col_strided; accumulates into gx (C, H, W)."""
    C, H, W = gx.shape
    for c in range(C):
        for ki in range(k):
            for kj in range(k):
                r = (c * k + ki) * k + kj
                lo, hi = _valid_range(kj, stride, padding, W, Wo)
                first = lo * stride + kj - padding
                for oh in range(Ho):
                    ih = oh * stride - padding + ki
                    if ih < 0 or ih >= H:
                        continue
                    src = cols[r, col0 + oh * Wo:col0 + (oh + 1) * Wo]
                    dst = gx[c, ih]
                    for j in range(hi - lo):
                        dst[first + j * stride] += src[lo + j]


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
        # overlap check and run scalar (2x slower on MNIST's first layer)
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
def _direct(C, k, stride):
    return stride == 1 and C * k * k <= DIRECT_MAX_CKK


@njit(cache=True, nogil=True)
def _direct_forward(input, preactivation, output, columns, weight, bias, padding, L, plane,
                    activation, alpha):
    """Stride 1, few taps: preactivation[n, f] = bias[f] + sum of w * shifted padded
    planes, output = act(preactivation). L and plane as _geometry gives them (row
    length Wp, L = Ho Wp)."""
    N, C, H, W = input.shape
    F = weight.shape[0]
    k = weight.shape[2]
    Hp = H + 2 * padding
    Wp = W + 2 * padding
    xp = columns[:plane]
    acc = columns[plane:plane + L]
    xp[:] = 0.0
    for n in range(N):
        _copy_interior(input[n], xp, Hp, Wp, padding, True)
        for f in range(F):
            acc[:] = 0.0
            for c in range(C):
                if k == 3:
                    _add_taps_3x3(acc, xp[c * Hp * Wp:(c + 1) * Hp * Wp + 2], weight[f, c], Wp, L)
                    continue
                for ki in range(k):
                    for kj in range(k):
                        w = weight[f, c, ki, kj]
                        start = c * Hp * Wp + ki * Wp + kj
                        src = xp[start:start + L]
                        for j in range(L):
                            acc[j] += w * src[j]
            # the bias is added here, in the module's dtype (a float64 0.0 would make
            # the activation run in float64)
            _store_activated(acc, 0, Wp, bias[f], preactivation[n, f], output[n, f],
                             activation, alpha)


@njit(cache=True, nogil=True)
def _add_taps_3x3(acc, xp, w, Wp, L):
    """acc[j] += the nine taps w[ki, kj] * xp[ki Wp + kj + j], added in the generic
    loop's order but in one pass: acc is loaded and stored once instead of nine times
    (xp: the channel's padded plane plus the 2 elements after it, which the junk
    columns of the last output row read, as in the generic loop). The input gradient
    uses it too, with the kernel flipped (a scatter per tap would load and store each
    element nine times, and its overlapping writes do not vectorise)."""
    w0, w1, w2 = w[0, 0], w[0, 1], w[0, 2]
    w3, w4, w5 = w[1, 0], w[1, 1], w[1, 2]
    w6, w7, w8 = w[2, 0], w[2, 1], w[2, 2]
    r0 = xp[0:L + 2]
    r1 = xp[Wp:Wp + L + 2]
    r2 = xp[2 * Wp:2 * Wp + L + 2]
    for j in range(L):
        s = acc[j] + w0 * r0[j]
        s += w1 * r0[j + 1]
        s += w2 * r0[j + 2]
        s += w3 * r1[j]
        s += w4 * r1[j + 1]
        s += w5 * r1[j + 2]
        s += w6 * r2[j]
        s += w7 * r2[j + 1]
        s += w8 * r2[j + 2]
        acc[j] = s


@njit(cache=True, nogil=True)
def _direct_backward_input(gradOutput, gradInput, columns, weight, padding, L, plane):
    """Adjoint of _direct_forward: w * gradOutput into the padded plane, gathered by
    the forward's stencil for 3x3 kernels and scattered tap by tap otherwise."""
    N, C, H, W = gradInput.shape
    F = weight.shape[0]
    k = weight.shape[2]
    Hp = H + 2 * padding
    Wp = W + 2 * padding
    gxp = columns[:plane]
    if k == 3:
        # the expanded gradient with 2 Wp + 2 zeros on each side, for the gather form
        halo = 2 * Wp + 2
        if columns.size < plane + L + 2 * halo:  # columns_size always leaves room
            raise ValueError("conv2d: the columns buffer is too small (see columns_size)")
        gext = columns[plane:plane + L + 2 * halo]
        gext[:] = 0.0
        g = gext[halo:halo + L].reshape((1, L))
    else:
        g = columns[plane:plane + L].reshape((1, L))
    for n in range(N):
        gxp[:] = 0.0
        for f in range(F):
            _expand_grad(gradOutput[n:n + 1, f:f + 1], g, 0, 1, Wp, L)
            gw = g[0]
            for c in range(C):
                if k == 3:
                    # the adjoint as a gather: gxp[q] += w[ki, kj] g[q - ki Wp - kj]
                    # = w[2 - a, 2 - b] gext[q + a Wp + b], the forward's stencil with
                    # the kernel flipped (gext has 2 Wp + 2 zeros before g)
                    P = Hp * Wp
                    _add_taps_3x3(gxp[c * P:(c + 1) * P], gext, weight[f, c, ::-1, ::-1], Wp, P)
                    continue
                for ki in range(k):
                    for kj in range(k):
                        w = weight[f, c, ki, kj]
                        start = c * Hp * Wp + ki * Wp + kj
                        dst = gxp[start:start + L]
                        for j in range(L):
                            dst[j] += w * gw[j]
        _copy_interior(gradInput[n], gxp, Hp, Wp, padding, False)


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
def conv2d_forward(input, output, columns, weight, bias, stride, padding):
    """output[n, f] = bias[f] + sum_c weight[f, c] (*) input[n, c] (cross-correlation).

    input (N, C, H, W), output (N, F, Ho, Wo), columns: 1-D scratch of at least
    ``columns_size(input.shape, F, k, stride, padding)`` elements, weight (F, C, k, k),
    bias (F,); Ho = (H + 2 padding - k) // stride + 1, same for Wo."""
    conv2d_activation_forward(input, output, output, columns, weight, bias, stride, padding,
                              int(NONE), 0.0)  # runtime code: see affine_forward


@njit(cache=True, nogil=True)
def conv2d_activation_forward(input, preactivation, output, columns, weight, bias, stride,
                              padding, activation, alpha):
    """preactivation = conv2d_forward's output; output = act(preactivation) (codes of
    activation.py), written in the pass that stores the convolution's result."""
    N, C, F, k, Ho, Wo, CKK, row, L, plane, m_max = _dims(
        input, weight, output, columns, stride, padding)
    if _direct(C, k, stride):
        _direct_forward(input, preactivation, output, columns, weight, bias, padding, L, plane,
                        activation, alpha)
        return
    w2 = weight.reshape((F, CKK))
    xp = columns[:plane]
    xp[:] = 0.0
    for n0 in range(0, N, m_max):
        m = min(m_max, N - n0)
        cols, res = _chunk(columns, plane, CKK, F, m, L)
        _fill_columns(input, cols, xp, n0, m, k, stride, padding, Ho, Wo, L)
        gemm(False, False, 1.0, w2, cols, 0.0, res)
        flat = res.reshape(F * m * L)
        for i in range(m):
            for f in range(F):
                _store_activated(flat, f * m * L + i * L, row, bias[f], preactivation[n0 + i, f],
                                 output[n0 + i, f], activation, alpha)


@njit(cache=True, nogil=True)
def _chunk(columns, plane, CKK, F, m, L):
    """The chunk's views of the scratch after the padded plane: columns (C k k, m L)
    and the GEMM result / expanded gradient (F, m L)."""
    cols = columns[plane:plane + CKK * m * L].reshape((CKK, m * L))
    g = columns[plane + CKK * m * L:plane + (CKK + F) * m * L].reshape((F, m * L))
    return cols, g


@njit(cache=True, nogil=True)
def _col2im_chunk(cols, gradInput, gxp, n0, m, k, stride, padding, Ho, Wo, L):
    """gradInput[n0 : n0 + m] = col2im of the chunk's input-gradient columns."""
    C, H, W = gradInput.shape[1], gradInput.shape[2], gradInput.shape[3]
    Hp = H + 2 * padding
    Wp = W + 2 * padding
    for i in range(m):
        gi = gradInput[n0 + i]
        if stride == 1:
            gxp[:] = 0.0
            _col2im_wide(cols, i * L, gxp, C, Hp, Wp, k, L)
            _copy_interior(gi, gxp, Hp, Wp, padding, False)
        else:
            gi[...] = 0.0
            _col2im_strided(cols, i * L, gi, k, stride, padding, Ho, Wo)


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
def conv2d_backward_input(gradOutput, gradInput, columns, weight, stride, padding):
    """gradInput = the adjoint of the convolution applied to gradOutput (overwritten).
    Shapes as in conv2d_forward; columns sized by ``columns_size``."""
    N, C, F, k, Ho, Wo, CKK, row, L, plane, m_max = _dims(
        gradInput, weight, gradOutput, columns, stride, padding)
    if _direct(C, k, stride):
        _direct_backward_input(gradOutput, gradInput, columns, weight, padding, L, plane)
        return
    w2 = weight.reshape((F, CKK))
    gxp = columns[:plane]
    for n0 in range(0, N, m_max):
        m = min(m_max, N - n0)
        cols, g = _chunk(columns, plane, CKK, F, m, L)
        _expand_grad(gradOutput, g, n0, m, row, L)
        gemm(True, False, 1.0, w2, g, 0.0, cols)
        _col2im_chunk(cols, gradInput, gxp, n0, m, k, stride, padding, Ho, Wo, L)


@njit(cache=True, nogil=True)
def _start_param_grads(gradWeight, gradBias, N, accumulate):
    """Overwrite mode zeroes the gradients the chunks add into (gradWeight only when no
    GEMM will overwrite it); returns the first chunk's GEMM beta."""
    if not accumulate:
        gradBias[:] = 0.0
        if N == 0:
            gradWeight[...] = 0.0
    return 1.0 if accumulate else 0.0


@njit(cache=True, nogil=True)
def conv2d_backward_params(input, gradOutput, gradWeight, gradBias, columns, stride, padding,
                           accumulate):
    """gradWeight (+)= sum_n gradOutput[n] (x) im2col(input[n]); gradBias (+)= sums of
    gradOutput over (n, oh, ow). accumulate=False overwrites, True adds."""
    N, C, F, k, Ho, Wo, CKK, row, L, plane, m_max = _dims(
        input, gradWeight, gradOutput, columns, stride, padding)
    gw2 = gradWeight.reshape((F, CKK))
    xp = columns[:plane]
    xp[:] = 0.0
    beta = _start_param_grads(gradWeight, gradBias, N, accumulate)
    for n0 in range(0, N, m_max):
        m = min(m_max, N - n0)
        cols, g = _chunk(columns, plane, CKK, F, m, L)
        _expand_grad(gradOutput, g, n0, m, row, L)
        _params_chunk(input, cols, g, xp, gw2, gradBias, n0, m, k, stride, padding, Ho, Wo, L,
                      beta)
        beta = 1.0


@njit(cache=True, nogil=True)
def conv2d_activation_backward(input, gradOutput, gradInput, delta, gradWeight, gradBias,
                               columns, preactivation, output, weight, stride, padding,
                               activation, alpha, accumulate, need_grad_input):
    """Backward through act(conv2d(input)) in one call, per chunk of images:
    delta = gradOutput * act'(preactivation) (the activation's gradInput) expanded once
    into the column layout, then gradWeight (+)= and gradBias (+)= as in
    conv2d_backward_params, and gradInput = the adjoint applied to delta (skipped when
    need_grad_input is False) from the same expanded rows."""
    N, C, F, k, Ho, Wo, CKK, row, L, plane, m_max = _dims(
        input, gradWeight, gradOutput, columns, stride, padding)
    w2 = weight.reshape((F, CKK))
    gw2 = gradWeight.reshape((F, CKK))
    xp = columns[:plane]
    direct = _direct(C, k, stride)
    beta = _start_param_grads(gradWeight, gradBias, N, accumulate)
    for n0 in range(0, N, m_max):
        m = min(m_max, N - n0)
        cols, g = _chunk(columns, plane, CKK, F, m, L)
        _expand_activated(gradOutput, preactivation, output, delta, g, n0, m, row, L,
                          activation, alpha)
        xp[:] = 0.0  # the padded border: the previous chunk's col2im wrote over it
        _params_chunk(input, cols, g, xp, gw2, gradBias, n0, m, k, stride, padding, Ho, Wo, L,
                      beta)
        beta = 1.0
        if need_grad_input and not direct:
            gemm(True, False, 1.0, w2, g, 0.0, cols)
            _col2im_chunk(cols, gradInput, xp, n0, m, k, stride, padding, Ho, Wo, L)
    if need_grad_input and direct:
        # delta is complete now; the direct input gradient reads it image by image
        _direct_backward_input(delta, gradInput, columns, weight, padding, L, plane)
