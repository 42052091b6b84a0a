"""Convolution without im2col for layers with few input taps (C k k <= DIRECT_MAX_CKK,
e.g. an MNIST CNN's first layer): each tap is one axpy over the wide grid, and 3x3
kernels add their nine taps in one pass. Helpers only: ``conv.py`` chooses the path.

Why: there the columns would be as large as the output and the GEMM too thin to pay for
building them; asv ``conv.Conv2dDirect`` and ``conv.Conv2d`` measure both paths.
"""
from ._jit import njit

from ._conv_im2col import _copy_interior, _expand_grad, _store_activated

# Stride 1 with C k k <= this takes the direct path (no im2col).
DIRECT_MAX_CKK = 32


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
