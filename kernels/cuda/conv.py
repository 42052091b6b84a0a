"""2-D convolution (NCHW, square k x k kernels, stride s, zero padding p) on the GPU:
im2col / col2im kernels plus the shared tiled GEMM (``blas.gemm``), a chunk of
images per GEMM. Twin of ``fastnn.kernels.cpu.conv`` (same functions and arguments).

Column layout: plain compact im2col, ``cols[(c, ki, kj), i * L + oh * Wo + ow]`` with
L = Ho * Wo (any stride). The ``columns`` scratch (sized by ``columns_size``) is carved
into [cols (C k k, m L) | result / expanded gradient (F, m L)] for m images per GEMM.
col2im is written as a gather (each thread sums the column entries that read its
input pixel), so there are no atomics and results are deterministic.
"""
from numba import cuda

from . import config
from .activation import activation_backward, activation_forward
from ._reduce import SHARED, block_sum
from ._typed import like
from .blas import gemm

COLUMNS_BUDGET = 1 << 23  # elements of scratch per call (32 MiB in float32)


def _geometry(C, H, W, k, stride, padding, F):
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (W + 2 * padding - k) // stride + 1
    L = Ho * Wo
    return Ho, Wo, L, (C * k * k + F) * L


def columns_size(input_shape, n_out, kernel_size, stride, padding, budget=COLUMNS_BUDGET):
    """Scratch elements the module should allocate for ``columns``: as many images per
    GEMM as fit in ``budget`` (at least one, at most the batch)."""
    n, c, h, w = (int(v) for v in input_shape)
    _, _, _, per_image = _geometry(c, h, w, int(kernel_size), int(stride), int(padding),
                                   int(n_out))
    m = max(1, min(max(n, 1), budget // max(per_image, 1)))
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
def _im2col(x, cols, n0, m, k, stride, padding, Ho, Wo):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    L = Ho * Wo
    ML = m * L
    total = C * k * k * ML
    e = cuda.grid(1)
    while e < total:
        r = e // ML
        col = e - r * ML
        c = r // (k * k)
        kk = r - c * k * k
        ki = kk // k
        kj = kk - ki * k
        i = col // L
        p = col - i * L
        oh = p // Wo
        ow = p - oh * Wo
        ih = oh * stride - padding + ki
        iw = ow * stride - padding + kj
        if ih >= 0 and ih < H and iw >= 0 and iw < W:
            cols[r, col] = x[n0 + i, c, ih, iw]
        else:
            cols[r, col] = like(cols, 0.0)
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _col2im(cols, gx, n0, m, k, stride, padding, Ho, Wo):
    """gx[n0 + i, c, ih, iw] = sum of the column entries that im2col filled from it."""
    C, H, W = gx.shape[1], gx.shape[2], gx.shape[3]
    L = Ho * Wo
    total = m * C * H * W
    e = cuda.grid(1)
    while e < total:
        i = e // (C * H * W)
        r = e - i * (C * H * W)
        c = r // (H * W)
        r -= c * H * W
        ih = r // W
        iw = r - ih * W
        acc = like(gx, 0.0)
        for ki in range(k):
            t = ih + padding - ki
            if t < 0 or t % stride != 0:
                continue
            oh = t // stride
            if oh >= Ho:
                continue
            for kj in range(k):
                u = iw + padding - kj
                if u < 0 or u % stride != 0:
                    continue
                ow = u // stride
                if ow >= Wo:
                    continue
                acc += cols[(c * k + ki) * k + kj, i * L + oh * Wo + ow]
        gx[n0 + i, c, ih, iw] = acc
        e += cuda.gridsize(1)


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
        _launch_1d(_im2col, CKK * m * L, input, cols, n0, m, k, stride, padding, Ho, Wo)
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
        _launch_1d(_col2im, m * C * H * W, cols, gradInput, n0, m, k, stride, padding, Ho, Wo)


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
        _launch_1d(_im2col, CKK * m * L, input, cols, n0, m, k, stride, padding, Ho, Wo)
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
