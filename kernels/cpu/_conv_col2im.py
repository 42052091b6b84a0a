"""Convolution's input gradient as GEMM + col2im: the column gradients are added back
onto the (padded) image planes, the adjoint of ``_conv_im2col``'s gathers. Helpers only.
"""
from ._jit import njit

from ._conv_im2col import _copy_interior, _valid_range


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
