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
elements, so the columns written by im2col are still in the L3 cache when the GEMM
reads them. Much finer chunks lose again: every two-thread GEMM call ends in a join
of the BLAS threads, which waits whenever the host takes the other core away.
asv ``ablations.ConvColumnsChunk`` measures the chunked against the whole-batch layout.

Direct path. With few input taps (C k k <= DIRECT_MAX_CKK, e.g. the first layer of
an MNIST CNN: 1 channel, 3x3) the forward and the input gradient skip im2col and the
GEMM (``_conv_direct.py``): the columns would be as large as the output there and the
GEMM too thin to pay for them. For 3x3 kernels the nine taps are added in one pass, so
the accumulator row is loaded and stored once instead of nine times. The weight gradient
stays on the GEMM: its direct form is a dot product per tap, which does not vectorise
without fastmath. asv ``conv.Conv2dModule`` (layer ``1x28x28->32``) measures this path.

Files. ``conv.py`` holds the kernels; ``_conv_im2col.py`` the column layouts and the
GEMM's epilogues, ``_conv_col2im.py`` the scatter back for the input gradient and
``_conv_direct.py`` the direct path.

Fusion. A Sequential runs Conv2d + activation as conv2d_activation_forward/backward:
the activation is applied where the result is stored, and its derivative where the
gradient is expanded into the column layout, which then serves both backward GEMMs
(the separate kernels expand it once each). Every module's output and gradInput are
still written, as the homework API exposes them.

Non-finite values: the junk columns hold input values (or padding zeros), so a NaN
or inf in the input can reach more entries of gradWeight than in a direct
convolution (0 * inf = NaN); finite inputs give exact results.
"""

from ._jit import njit

from ._conv_col2im import _col2im_chunk
from ._conv_direct import DIRECT_MAX_CKK, _direct, _direct_backward_input, _direct_forward
from ._conv_im2col import (_chunk, _dims, _expand_activated, _expand_grad, _fill_columns,
                           _params_chunk, _start_param_grads, _store_activated)
from .activation import NONE
from .blas import gemm

# Scratch elements per chunk: the columns im2col writes are still in L3
# when the GEMM reads them (asv ablations.ConvColumnsChunk measures the choice).
COLUMNS_BUDGET = 1 << 21


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
