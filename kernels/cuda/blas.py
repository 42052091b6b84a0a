"""Register-blocked shared-memory GEMM with alpha/beta, split-K and an optional fused
epilogue (bias + activation), the CUDA twin of ``fastnn.kernels.cpu.blas``.

``gemm(trans_a, trans_b, alpha, a, b, beta, c)`` computes
``c = alpha * op(a) @ op(b) + beta * c`` for C-contiguous 2-D device arrays of one
float dtype; ``beta == 0`` overwrites ``c`` (its old contents, even NaN, are ignored).
``gemm_bias_activation`` is the epilogue form the affine kernels use:
``pre = a @ b.T + bias; out = act(pre)``.

Blocking: a block of T x T threads (T = ``config.GEMM_TILE``, 16 by default) computes a
(R T) x (R T) tile of c (64 x 64), each thread an R x R = 4 x 4 register block whose
rows and columns are T apart, so a warp's shared-memory reads are broadcasts (A) or
consecutive words (B). Operand tiles of depth T are staged k-major in shared memory,
each row padded by one word so that the strided stores of the transposing loads hit
distinct banks; global loads are coalesced for every layout. Tiles beyond the grid
are covered by a block-uniform grid-stride loop (so ``syncthreads`` stays legal).

Split-K: when the output has too few tiles to fill the GPU and k is long (the first
conv's weight gradient: 32 x 9 outputs, k = 25,088), the k range is cut into slices,
one per ``blockIdx.z``; each writes its partial tile to a workspace and a second
kernel sums the slices in a fixed order (deterministic, no atomics) and applies
alpha/beta or the epilogue. Accumulation is in the arrays' dtype, like BLAS.

The kernels are plain module-level ``cache=True`` kernels: T is the block size read at
run time (shared arrays are sized for the largest T, ``MAX_TILE``), and the dtype
comes from the arrays.
"""
import numpy as np
from numba import cuda

from ..codes import NONE
from . import config
from . import _simulator
from ._typed import like
from .activation import activation_value

_simulator.patch()  # shared-array race in the CUDA simulator

R = 4            # outputs per thread along each axis (register block)
MAX_TILE = 16    # largest T the shared arrays hold (T * T = 256 threads)
#: Shared row length: the largest tile width plus one word of padding, so that the
#: transposing stores (consecutive threads, consecutive rows) hit distinct banks.
_ROW = R * MAX_TILE + 1
#: Split k when the output has fewer tiles than this (about two waves of an H100's SMs).
SPLIT_K_TARGET_BLOCKS = 256
#: Each k slice is at least this many times the tile depth T.
SPLIT_K_MIN_DEPTH = 8
MAX_SPLITS = 64

_WORKSPACE = {}  # dtype -> split-K partial tiles (grown, never shrunk)
_DUMMY_BIAS = {}


@cuda.jit(cache=True)
def _gemm_tiles(trans_a, trans_b, alpha, a, b, beta, c, bias, out, code, act_alpha, epilogue,
                splits, k_slice, work):
    sa = cuda.shared.array((MAX_TILE, _ROW), a.dtype)  # sa[kk, r] = op(a)[row0 + r, k0 + kk]
    sb = cuda.shared.array((MAX_TILE, _ROW), b.dtype)  # sb[kk, j] = op(b)[k0 + kk, col0 + j]
    acc = cuda.local.array((R, R), c.dtype)
    a_reg = cuda.local.array(R, a.dtype)
    b_reg = cuda.local.array(R, b.dtype)
    zero = like(c, 0.0)
    T = cuda.blockDim.x
    BM = T * R
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tid = ty * T + tx
    m = c.shape[0]
    n = c.shape[1]
    k = a.shape[0] if trans_a else a.shape[1]
    n_row_tiles = (m + BM - 1) // BM
    n_col_tiles = (n + BM - 1) // BM
    z = cuda.blockIdx.z
    while z < splits:
        k_begin = z * k_slice
        k_end = k_begin + k_slice
        if k_end > k:
            k_end = k
        tile_r = cuda.blockIdx.y
        while tile_r < n_row_tiles:
            row0 = tile_r * BM
            tile_c = cuda.blockIdx.x
            while tile_c < n_col_tiles:
                col0 = tile_c * BM
                for i in range(R):
                    for j in range(R):
                        acc[i, j] = zero
                k0 = k_begin
                while k0 < k_end:
                    # R elements of each operand per thread; reads coalesced for each layout
                    for q in range(R):
                        e = tid + q * T * T
                        if trans_a:  # a is (k, m): consecutive threads, consecutive rows
                            kk = e // BM
                            r = e - kk * BM
                        else:        # a is (m, k): consecutive threads, consecutive k
                            r = e // T
                            kk = e - r * T
                        gk = k0 + kk
                        gr = row0 + r
                        if gk < k_end and gr < m:
                            sa[kk, r] = a[gk, gr] if trans_a else a[gr, gk]
                        else:
                            sa[kk, r] = zero
                        if trans_b:  # b is (n, k)
                            jj = e // T
                            kk = e - jj * T
                        else:        # b is (k, n)
                            kk = e // BM
                            jj = e - kk * BM
                        gk = k0 + kk
                        gj = col0 + jj
                        if gk < k_end and gj < n:
                            sb[kk, jj] = b[gj, gk] if trans_b else b[gk, gj]
                        else:
                            sb[kk, jj] = zero
                    cuda.syncthreads()
                    for kk in range(T):
                        for i in range(R):
                            a_reg[i] = sa[kk, ty + i * T]
                        for j in range(R):
                            b_reg[j] = sb[kk, tx + j * T]
                        for i in range(R):
                            for j in range(R):
                                acc[i, j] += a_reg[i] * b_reg[j]
                    cuda.syncthreads()
                    k0 += T
                for i in range(R):
                    gi = row0 + ty + i * T
                    for j in range(R):
                        gj = col0 + tx + j * T
                        if gi < m and gj < n:
                            if splits > 1:
                                work[z, gi, gj] = acc[i, j]
                            else:
                                _store(c, out, bias, gi, gj, acc[i, j], alpha, beta, code,
                                       act_alpha, epilogue)
                tile_c += cuda.gridDim.x
            tile_r += cuda.gridDim.y
        z += cuda.gridDim.z


@cuda.jit(device=True)
def _store(c, out, bias, i, j, v, alpha, beta, code, act_alpha, epilogue):
    if epilogue:
        zv = v + bias[j]
        c[i, j] = zv
        out[i, j] = activation_value(code, zv, act_alpha)
    elif beta == like(c, 0.0):
        c[i, j] = alpha * v
    else:
        c[i, j] = alpha * v + beta * c[i, j]


@cuda.jit(cache=True)
def _sum_slices(work, splits, alpha, beta, c, bias, out, code, act_alpha, epilogue):
    """c (or the epilogue) from the k slices' partial tiles, summed in slice order."""
    m, n = c.shape
    e = cuda.grid(1)
    while e < m * n:
        i = e // n
        j = e - i * n
        v = work[0, i, j]
        for s in range(1, splits):
            v += work[s, i, j]
        _store(c, out, bias, i, j, v, alpha, beta, code, act_alpha, epilogue)
        e += cuda.gridsize(1)


def split_k(m, n, k, tile=None):
    """Number of k slices for an (m, n, k) product: 1 unless the output has fewer than
    ``SPLIT_K_TARGET_BLOCKS`` tiles and k holds several slices of at least
    ``SPLIT_K_MIN_DEPTH`` tile depths (shorter slices cost more in workspace traffic
    than they gain)."""
    t = config.GEMM_TILE if tile is None else tile
    bm = t * R
    tiles = (-(-m // bm)) * (-(-n // bm))
    if tiles >= SPLIT_K_TARGET_BLOCKS:
        return 1
    by_depth = k // (SPLIT_K_MIN_DEPTH * t)
    return int(max(1, min(MAX_SPLITS, by_depth, -(-SPLIT_K_TARGET_BLOCKS // tiles))))


def _workspace(dtype, shape):
    size = shape[0] * shape[1] * shape[2]
    w = _WORKSPACE.get(dtype)
    if w is None or w.size < size:
        w = _WORKSPACE[dtype] = cuda.device_array(size, dtype)
    return w[:size].reshape(shape)


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
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"gemm: arrays must be float32 or float64, got {dtype}")
    t = config.GEMM_TILE
    if t > MAX_TILE:
        raise ValueError(f"gemm: FASTNN_CUDA_TILE must be <= {MAX_TILE}, got {t}")
    bm = t * R
    splits = split_k(m, n, k_a, t)
    k_slice = -(-k_a // splits) if k_a else 0
    k_slice = -(-k_slice // t) * t  # whole tile depths per slice
    if k_slice:
        splits = -(-k_a // k_slice)
    cap = min(config.MAX_BLOCKS, 65535)
    grid = (min(cap, -(-n // bm)), min(cap, -(-m // bm)), min(cap, splits))
    work = _workspace(dtype, (splits, m, n)) if splits > 1 else _dummy_work(dtype)
    scalars = (dtype.type(alpha), dtype.type(beta))
    _gemm_tiles[grid, (t, t)](bool(trans_a), bool(trans_b), scalars[0], a, b, scalars[1], c,
                              bias, out, int(code), dtype.type(act_alpha), bool(epilogue),
                              int(splits), int(k_slice), work)
    if splits > 1:
        blocks, tpb = config.grid_1d(m * n)
        _sum_slices[blocks, tpb](work, int(splits), scalars[0], scalars[1], c, bias, out,
                                 int(code), dtype.type(act_alpha), bool(epilogue))


def _dummy_work(dtype):
    key = ("work", dtype)
    d = _DUMMY_BIAS.get(key)
    if d is None:
        d = _DUMMY_BIAS[key] = cuda.device_array((1, 1, 1), dtype)
    return d


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
