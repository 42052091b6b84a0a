"""Block-wide sum for the reduction kernels (losses, batch statistics).

A kernel declares ``sh = cuda.shared.array(SHARED, x.dtype)`` and every thread of the
block calls ``block_sum(sh, value)``; all threads get the total. The tree needs a
power-of-two block size (``config`` enforces it). Sums are in the data's dtype: a
float32 kernel does no float64 math (see ``_typed``); the tree keeps the rounding
error of a block's sum at ~log2(block) roundings.

In the CUDA simulator a device function defined outside its kernel's module has its
``cuda`` global swapped in and out per call, racily (numba-cuda PR #690): the first
thread to leave may restore the real module while others are still inside. That is
harmless here because every ``cuda.*`` access of ``block_sum`` comes before its last
barrier, which no thread leaves before all have reached it.
"""
from numba import cuda

from . import _simulator
from ._typed import like
from .config import MAX_THREADS_PER_BLOCK as SHARED

_simulator.patch()  # shared-array race in the CUDA simulator


@cuda.jit(device=True)
def block_sum(sh, value):
    tid = cuda.threadIdx.x
    sh[tid] = value
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            sh[tid] += sh[tid + s]
        cuda.syncthreads()
        s //= 2
    total = sh[0]
    cuda.syncthreads()  # everyone has read sh[0] before the next block_sum reuses sh
    return total


# ---- two-pass whole-array sums (the losses) ---------------------------------------
_PARTIALS = {}  # dtype -> the per-block partial sums scratch (grown, never shrunk)


def loss_grid(n, like_array):
    """(blocks, threads, partials) for a loss over ``n`` rows: one partial sum per block,
    in a scratch array of ``like_array``'s dtype reused by every loss launch (launches
    on one stream run in order, so a loss's finish reads its own partials)."""
    from . import config
    blocks, tpb = config.grid_1d(max(int(n), 1))
    key = str(like_array.dtype)
    partials = _PARTIALS.get(key)
    if partials is None or partials.shape[0] < blocks:
        partials = _PARTIALS[key] = cuda.device_array(max(blocks, 64), like_array.dtype)
    return blocks, tpb, partials


@cuda.jit(cache=True)
def _finish_loss(partials, count, loss, scale):
    sh = cuda.shared.array(SHARED, partials.dtype)
    part = like(partials, 0.0)
    i = cuda.threadIdx.x
    while i < count:
        part += partials[i]
        i += cuda.blockDim.x
    total = block_sum(sh, part)
    if cuda.threadIdx.x == 0:
        loss[0] = total * scale


def finish_loss(partials, count, loss, scale):
    """loss[0] = scale * sum(partials[:count]), in one block."""
    from . import config
    _finish_loss[1, config.THREADS_PER_BLOCK](partials, int(count), loss,
                                              config.typed(loss, scale))


# ---- column sums of (rows, columns) data, coalesced ---------------------------------
#: Shared array of ``column_block_sum``: up to 32 row groups x 32 columns.
COLUMN_SHARED = (32, 32)


def column_block():
    """(columns, row groups) of a column-reduction block: a warp reads 32 consecutive
    columns of one row (coalesced) and the row groups stride over the rows; smaller
    blocks (the tests' 32 threads) keep 4 row groups so the tree still turns."""
    from . import config
    tpb = config.THREADS_PER_BLOCK
    cols = max(1, min(32, tpb // 4))
    return cols, tpb // cols


def column_grid(n_columns):
    from . import config
    cols, groups = column_block()
    return max(1, min(config.MAX_BLOCKS, -(-int(n_columns) // cols))), (cols, groups)


@cuda.jit(device=True)
def column_block_sum(sh, value):
    """Sum of ``value`` over threadIdx.y, for each threadIdx.x; every thread gets its
    column's total. blockDim.y is a power of two (``column_block``)."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    sh[ty, tx] = value
    cuda.syncthreads()
    s = cuda.blockDim.y // 2
    while s > 0:
        if ty < s:
            sh[ty, tx] += sh[ty + s, tx]
        cuda.syncthreads()
        s //= 2
    total = sh[0, tx]
    cuda.syncthreads()  # everyone has read sh[0] before the next call reuses sh
    return total
