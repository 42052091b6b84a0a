"""Tiled shared-memory GEMM with alpha/beta and an optional fused epilogue
(bias + activation), the CUDA twin of ``fastnn.kernels.cpu.blas``.

``gemm(trans_a, trans_b, alpha, a, b, beta, c)`` computes
``c = alpha * op(a) @ op(b) + beta * c`` for C-contiguous 2-D device arrays of one
float dtype; ``beta == 0`` overwrites ``c`` (its old contents, even NaN, are ignored).
``gemm_bias_activation`` is the epilogue form the affine kernels use:
``pre = a @ b.T + bias; out = act(pre)``.

Each block computes a TILE x TILE tile of c with TILE x TILE threads; operand tiles
are staged in shared memory and loaded so that consecutive threads read consecutive
addresses for both the plain and the transposed layout. Tiles of c beyond the grid
are covered by a block-uniform grid-stride loop (so ``syncthreads`` stays legal).
Accumulation is in the arrays' dtype, like BLAS.
"""
import numpy as np
from numba import cuda
from numba.np import numpy_support

from . import config
from . import _simulator
from .activation import NONE, activation_value

_simulator.patch()  # shared-array race in the CUDA simulator

_KERNELS = {}
_DUMMY_BIAS = {}


def _make_kernel(dtype, tile):
    nbtype = numpy_support.from_dtype(dtype)
    zero = dtype.type(0)
    TILE = tile

    @cuda.jit
    def kernel(trans_a, trans_b, alpha, a, b, beta, c, bias, out, code, act_alpha, epilogue):
        sa = cuda.shared.array((TILE, TILE), nbtype)
        sb = cuda.shared.array((TILE, TILE), nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        m = c.shape[0]
        n = c.shape[1]
        k = a.shape[0] if trans_a else a.shape[1]
        n_row_tiles = (m + TILE - 1) // TILE
        n_col_tiles = (n + TILE - 1) // TILE
        n_k_tiles = (k + TILE - 1) // TILE
        tile_r = cuda.blockIdx.y
        while tile_r < n_row_tiles:
            row0 = tile_r * TILE
            tile_c = cuda.blockIdx.x
            while tile_c < n_col_tiles:
                col0 = tile_c * TILE
                acc = zero
                for kt in range(n_k_tiles):
                    k0 = kt * TILE
                    # sa[r, kk] = op(a)[row0 + r, k0 + kk]
                    if trans_a:  # a is (k, m): thread (ty, tx) reads a[k0 + ty, row0 + tx]
                        kk = k0 + ty
                        r = row0 + tx
                        sa[tx, ty] = a[kk, r] if kk < k and r < m else zero
                    else:        # a is (m, k): thread (ty, tx) reads a[row0 + ty, k0 + tx]
                        r = row0 + ty
                        kk = k0 + tx
                        sa[ty, tx] = a[r, kk] if kk < k and r < m else zero
                    # sb[kk, j] = op(b)[k0 + kk, col0 + j]
                    if trans_b:  # b is (n, k): thread (ty, tx) reads b[col0 + ty, k0 + tx]
                        j = col0 + ty
                        kk = k0 + tx
                        sb[tx, ty] = b[j, kk] if kk < k and j < n else zero
                    else:        # b is (k, n): thread (ty, tx) reads b[k0 + ty, col0 + tx]
                        kk = k0 + ty
                        j = col0 + tx
                        sb[ty, tx] = b[kk, j] if kk < k and j < n else zero
                    cuda.syncthreads()
                    for q in range(TILE):
                        acc += sa[ty, q] * sb[q, tx]
                    cuda.syncthreads()
                i = row0 + ty
                j = col0 + tx
                if i < m and j < n:
                    if epilogue:
                        z = acc + bias[j]
                        c[i, j] = z
                        out[i, j] = activation_value(code, z, act_alpha)
                    elif beta == zero:
                        c[i, j] = alpha * acc
                    else:
                        c[i, j] = alpha * acc + beta * c[i, j]
                tile_c += cuda.gridDim.x
            tile_r += cuda.gridDim.y

    return kernel


def _kernel(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"gemm: arrays must be float32 or float64, got {dtype}")
    key = (dtype, config.GEMM_TILE)
    k = _KERNELS.get(key)
    if k is None:
        k = _KERNELS[key] = _make_kernel(dtype, config.GEMM_TILE)
    return k


def _dummy_bias(dtype):
    d = _DUMMY_BIAS.get(dtype)
    if d is None:
        d = _DUMMY_BIAS[dtype] = cuda.device_array(1, dtype)
    return d


def _launch(trans_a, trans_b, alpha, a, b, beta, c, bias, out, code, act_alpha, epilogue):
    m, n = c.shape
    k_a = a.shape[0] if trans_a else a.shape[1]
    k_b = b.shape[1] if trans_b else b.shape[0]
    rows_a = a.shape[1] if trans_a else a.shape[0]
    cols_b = b.shape[0] if trans_b else b.shape[1]
    if k_a != k_b or rows_a != m or cols_b != n:
        raise ValueError(f"gemm: shapes do not match: op(a) {(rows_a, k_a)}, "
                         f"op(b) {(k_b, cols_b)}, c {(m, n)}")
    if m == 0 or n == 0:
        return
    dtype = np.dtype(c.dtype)
    tile = config.GEMM_TILE
    kernel = _kernel(dtype)
    cap = min(config.MAX_BLOCKS, 65535)
    grid = (min(cap, (n + tile - 1) // tile), min(cap, (m + tile - 1) // tile))
    kernel[grid, (tile, tile)](bool(trans_a), bool(trans_b), dtype.type(alpha), a, b,
                               dtype.type(beta), c, bias, out, int(code), dtype.type(act_alpha),
                               bool(epilogue))


def gemm(trans_a, trans_b, alpha, a, b, beta, c):
    """c = alpha * op(a) @ op(b) + beta * c (device arrays, one float dtype)."""
    _launch(trans_a, trans_b, alpha, a, b, beta, c, _dummy_bias(np.dtype(c.dtype)), c,
            NONE, 0.0, False)


def gemm_bias_activation(input, weight, bias, preactivation, output, activation, alpha):
    """preactivation = input @ weight.T + bias; output = act(preactivation), in one
    kernel (the bias and activation are the GEMM's epilogue). ``preactivation`` and
    ``output`` may be the same array when activation is NONE."""
    _launch(False, True, 1.0, input, weight, 0.0, preactivation, bias, output,
            activation, alpha, True)
