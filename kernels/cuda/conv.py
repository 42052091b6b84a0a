"""2-D convolution (NCHW, square k x k kernels, stride s, zero padding p) on the GPU:
im2col / col2im kernels plus the shared tiled GEMM (``blas.gemm``), a chunk of
images per GEMM. Twin of ``fastnn.kernels.cpu.conv`` (same functions and arguments).

Column layout: plain compact im2col, ``cols[(c, ki, kj), i * L + oh * Wo + ow]`` with
L = Ho * Wo (any stride). The ``columns`` scratch (sized by ``columns_size``) is carved
into [cols (C k k, m L) | result / expanded gradient (F, m L)] for m images per GEMM.
col2im is written as a gather (each thread sums the column entries that read its
input pixel), so there are no atomics and results are deterministic.
"""
import numpy as np
from numba import cuda

from . import config
from .activation import activation_backward, activation_forward
from ._reduce import SHARED, block_sum
from ._typed import index_like, like
from .blas import gemm

COLUMNS_BUDGET = 1 << 23  # elements of scratch per call (32 MiB in float32)


def _geometry(C, H, W, k, stride, padding, F):
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (W + 2 * padding - k) // stride + 1
    L = Ho * Wo
    return Ho, Wo, L, (C * k * k + F) * L


def columns_size(input_shape, n_out, kernel_size, stride, padding, images=None):
    """Scratch elements the module should allocate for ``columns``: room for ``images``
    images per GEMM (clamped to [1, N], as the CPU twin's argument); by default as many
    as fit in ``COLUMNS_BUDGET``."""
    n, c, h, w = (int(v) for v in input_shape)
    _, _, _, per_image = _geometry(c, h, w, int(kernel_size), int(stride), int(padding),
                                   int(n_out))
    if images is None:
        images = COLUMNS_BUDGET // max(per_image, 1)
    m = max(1, min(max(n, 1), int(images)))
    return m * per_image


def _images_per_chunk(columns, per_image):
    if per_image == 0:
        return 1
    m = columns.size // per_image
    if m < 1:
        raise ValueError("conv2d: the columns buffer is too small (see columns_size)")
    return m


def _carve(columns, CKK, F, m, L):
    cols = columns[:CKK * m * L].reshape((CKK, m * L))
    res = columns[CKK * m * L:(CKK + F) * m * L].reshape((F, m * L))
    return cols, res


@cuda.jit(cache=True)
def _im2col(x, cols, n0, m, k, stride, padding, Ho, Wo, C, H, W):
    # Every integer argument has the launcher's index type (``_index``: uint32 where
    # the sizes allow) and every dividend is cast back to it (``index_like``), so the
    # divides are 32-bit; rows and columns are offset by the padding so that no
    # intermediate goes negative.
    zero = like(cols, 0.0)
    L = index_like(Wo, Ho * Wo)
    ML = index_like(Wo, m * L)
    kk2 = index_like(Wo, k * k)
    total = C * kk2 * ML
    e = index_like(Wo, cuda.grid(1))  # unsigned with unsigned: numba's int64 would
    step = index_like(Wo, cuda.gridsize(1))  # mix with uint64 into float64
    while e < total:
        u = index_like(Wo, e)
        r = u // ML
        col = index_like(Wo, u - r * ML)
        c = r // kk2
        q = index_like(Wo, r - c * kk2)
        ki = q // k
        kj = q - ki * k
        i = col // L
        p = index_like(Wo, col - i * L)
        oh = p // Wo
        ow = p - oh * Wo
        ihp = oh * stride + ki  # input row + padding
        iwp = ow * stride + kj
        if ihp >= padding and ihp < H + padding and iwp >= padding and iwp < W + padding:
            cols[r, col] = x[n0 + i, c, ihp - padding, iwp - padding]
        else:
            cols[r, col] = zero
        e += step


@cuda.jit(cache=True)
def _col2im(cols, gx, n0, m, k, stride, padding, Ho, Wo, C, H, W):
    """gx[n0 + i, c, ih, iw] = sum of the column entries that im2col filled from it
    (integer arguments and dividends in the launcher's index type, as in _im2col)."""
    L = Ho * Wo
    HW = index_like(W, H * W)
    CHW = index_like(W, C * HW)
    total = m * CHW
    e = index_like(W, cuda.grid(1))
    step = index_like(W, cuda.gridsize(1))
    while e < total:
        u = index_like(W, e)
        i = u // CHW
        r = index_like(W, u - i * CHW)
        c = r // HW
        r = index_like(W, r - c * HW)
        ih = r // W
        iw = r - ih * W
        acc = like(gx, 0.0)
        for ki in range(k):
            t = ih + padding  # oh * stride + ki == ih + padding
            if t < ki:
                continue
            t = index_like(W, t - ki)
            oh = t // stride
            if oh * stride != t or oh >= Ho:
                continue
            for kj in range(k):
                v = iw + padding
                if v < kj:
                    continue
                v = index_like(W, v - kj)
                ow = v // stride
                if ow * stride != v or ow >= Wo:
                    continue
                acc += cols[(c * k + ki) * k + kj, i * L + oh * Wo + ow]
        gx[n0 + i, c, ih, iw] = acc
        e += step


def _index(*sizes):
    """The integer type for index math bounded by ``sizes``: uint32 when every size
    (and a grid-stride step past it) fits, else int64."""
    return np.uint32 if max(sizes) < 2 ** 31 else np.int64


@cuda.jit(cache=True)
def _scatter_output(res, bias, out, n0, m):
    """out[n0 + i, f, p] = res[f, i * L + p] + bias[f] (out viewed as (N, F, L))."""
    F, L = out.shape[1], out.shape[2]
    total = m * F * L
    e = cuda.grid(1)
    while e < total:
        i = e // (F * L)
        r = e - i * (F * L)
        f = r // L
        p = r - f * L
        out[n0 + i, f, p] = res[f, i * L + p] + bias[f]
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _expand_grad(go, g, n0, m):
    """g[f, i * L + p] = go[n0 + i, f, p] (go viewed as (N, F, L))."""
    F, L = go.shape[1], go.shape[2]
    total = m * F * L
    e = cuda.grid(1)
    while e < total:
        f = e // (m * L)
        r = e - f * (m * L)
        i = r // L
        p = r - i * L
        g[f, r] = go[n0 + i, f, p]
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _bias_grad(go, grad_bias, accumulate):
    """grad_bias[f] (+)= sum over (n, p) of go[n, f, p]; one block per filter."""
    sh = cuda.shared.array(SHARED, go.dtype)
    N, F, L = go.shape
    count = N * L
    f = cuda.blockIdx.x
    while f < F:
        acc = like(go, 0.0)
        e = cuda.threadIdx.x
        while e < count:
            n = e // L
            acc += go[n, f, e - n * L]
            e += cuda.blockDim.x
        total = block_sum(sh, acc)
        if cuda.threadIdx.x == 0:
            if accumulate:
                grad_bias[f] += total
            else:
                grad_bias[f] = total
        f += cuda.gridDim.x


def _ints(bound_a, bound_b, *values):
    """``values`` in the index type for arrays of ``bound_a`` and ``bound_b`` elements
    (their extents, e.g. H + padding, stay below those bounds plus a kernel size)."""
    t = _index(bound_a + max(values), bound_b + max(values))
    return tuple(t(v) for v in values)


def _launch_1d(kernel, n, *args):
    if n:
        blocks, tpb = config.grid_1d(n)
        kernel[blocks, tpb](*args)


def conv2d_forward(input, output, columns, weight, bias, stride, padding):
    """output[n, f] = bias[f] + sum_c weight[f, c] (*) input[n, c] (cross-correlation).
    Shapes as in the CPU twin; columns: 1-D scratch of ``columns_size(...)`` elements."""
    N, C, H, W = input.shape
    F, k = weight.shape[0], weight.shape[2]
    Ho, Wo, L, per_image = _geometry(C, H, W, k, stride, padding, F)
    CKK = C * k * k
    if N == 0 or F == 0 or L == 0:
        return
    m_max = _images_per_chunk(columns, per_image)
    w2 = weight.reshape((F, CKK))
    out3 = output.reshape((N, F, L))
    for n0 in range(0, N, m_max):
        m = min(m_max, N - n0)
        cols, res = _carve(columns, CKK, F, m, L)
        _launch_1d(_im2col, CKK * m * L, input, cols,
                   *_ints(input.size, CKK * m * L, n0, m, k, stride, padding, Ho, Wo, C, H, W))
        gemm(False, False, 1.0, w2, cols, 0.0, res)
        _launch_1d(_scatter_output, m * F * L, res, bias, out3, n0, m)


def conv2d_backward_input(gradOutput, gradInput, columns, weight, stride, padding):
    """gradInput = the adjoint of the convolution applied to gradOutput (overwritten)."""
    N, C, H, W = gradInput.shape
    F, k = weight.shape[0], weight.shape[2]
    Ho, Wo, L, per_image = _geometry(C, H, W, k, stride, padding, F)
    CKK = C * k * k
    if N == 0 or gradInput.size == 0:
        return
    if F == 0 or L == 0:
        from .elementwise import fill
        fill(gradInput, 0.0)
        return
    m_max = _images_per_chunk(columns, per_image)
    w2 = weight.reshape((F, CKK))
    go3 = gradOutput.reshape((N, F, L))
    for n0 in range(0, N, m_max):
        m = min(m_max, N - n0)
        cols, g = _carve(columns, CKK, F, m, L)
        _launch_1d(_expand_grad, m * F * L, go3, g, n0, m)
        gemm(True, False, 1.0, w2, g, 0.0, cols)
        ints = _ints(cols.size, gradInput.size, n0, m, k, stride, padding, Ho, Wo, C, H, W)
        _launch_1d(_col2im, m * C * H * W, cols, gradInput, *ints)


def conv2d_backward_params(input, gradOutput, gradWeight, gradBias, columns, stride, padding,
                           accumulate):
    """gradWeight (+)= sum_n gradOutput[n] (x) im2col(input[n]); gradBias (+)= sums of
    gradOutput over (n, oh, ow). accumulate=False overwrites, True adds."""
    N, C, H, W = input.shape
    F, k = gradWeight.shape[0], gradWeight.shape[2]
    Ho, Wo, L, per_image = _geometry(C, H, W, k, stride, padding, F)
    CKK = C * k * k
    if F == 0:
        return
    gw2 = gradWeight.reshape((F, CKK))
    if N == 0 or L == 0:
        if not accumulate:
            from .elementwise import fill
            fill(gradWeight, 0.0)
            fill(gradBias, 0.0)
        return
    m_max = _images_per_chunk(columns, per_image)
    go3 = gradOutput.reshape((N, F, L))
    beta = 1.0 if accumulate else 0.0
    for n0 in range(0, N, m_max):
        m = min(m_max, N - n0)
        cols, g = _carve(columns, CKK, F, m, L)
        _launch_1d(_im2col, CKK * m * L, input, cols,
                   *_ints(input.size, CKK * m * L, n0, m, k, stride, padding, Ho, Wo, C, H, W))
        _launch_1d(_expand_grad, m * F * L, go3, g, n0, m)
        gemm(False, True, 1.0, g, cols, beta, gw2)
        beta = 1.0
    blocks, tpb = config.grid_rows(F)
    _bias_grad[blocks, tpb](go3, gradBias, bool(accumulate))


def conv2d_activation_forward(input, preactivation, output, columns, weight, bias, stride,
                              padding, activation, alpha):
    """preactivation = conv2d_forward's output; output = act(preactivation). The CPU
    twin fuses the activation into its store pass; here it is one more launch."""
    conv2d_forward(input, preactivation, columns, weight, bias, stride, padding)
    activation_forward(preactivation, output, activation, alpha)


def conv2d_activation_backward(input, gradOutput, gradInput, delta, gradWeight, gradBias,
                               columns, preactivation, output, weight, stride, padding,
                               activation, alpha, accumulate, need_grad_input):
    """delta = gradOutput * act'(preactivation); then the input gradient (when
    need_grad_input) and the parameter gradients of the convolution for delta."""
    activation_backward(preactivation, gradOutput, delta, output, activation, alpha)
    if need_grad_input:
        conv2d_backward_input(delta, gradInput, columns, weight, stride, padding)
    conv2d_backward_params(input, delta, gradWeight, gradBias, columns, stride, padding,
                           accumulate)
