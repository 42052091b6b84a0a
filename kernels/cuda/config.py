"""Launch configuration shared by every CUDA kernel family.

One value sets the threads per block of every 1-D launch (``THREADS_PER_BLOCK``,
env ``FASTNN_CUDA_TPB``); the GEMM uses square ``GEMM_TILE`` x ``GEMM_TILE`` blocks
(env ``FASTNN_CUDA_TILE``); grids are capped at ``MAX_BLOCKS`` blocks per dimension
(env ``FASTNN_CUDA_MAX_BLOCKS``) and every kernel covers the rest with a grid-stride
loop. Tests set small values (e.g. 32 / 4 / 2) so tiny inputs span several blocks and
every stride loop turns more than once.

This module does not import numba.cuda.
"""
import os

#: Upper bound for THREADS_PER_BLOCK: the block reductions use a shared array this long.
MAX_THREADS_PER_BLOCK = 1024


def _env_int(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"fastnn: environment variable {name} must be an integer, "
                         f"got {raw!r}") from None


def _check_tpb(value):
    value = int(value)
    if value < 1 or value > MAX_THREADS_PER_BLOCK or value & (value - 1):
        raise ValueError(f"fastnn: threads per block must be a power of two in "
                         f"[1, {MAX_THREADS_PER_BLOCK}] (block reductions halve it), "
                         f"got {value}")
    return value


def _check_tile(value):
    value = int(value)
    if value < 1 or value * value > MAX_THREADS_PER_BLOCK:
        raise ValueError(f"fastnn: GEMM tile must be >= 1 with tile*tile <= "
                         f"{MAX_THREADS_PER_BLOCK} threads, got {value}")
    return value


def _check_max_blocks(value):
    value = int(value)
    if value < 1:
        raise ValueError(f"fastnn: max blocks must be >= 1, got {value}")
    return value


THREADS_PER_BLOCK = _check_tpb(_env_int("FASTNN_CUDA_TPB", 256))
GEMM_TILE = _check_tile(_env_int("FASTNN_CUDA_TILE", 16))
MAX_BLOCKS = _check_max_blocks(_env_int("FASTNN_CUDA_MAX_BLOCKS", 4096))


def set_launch_config(threads_per_block=None, gemm_tile=None, max_blocks=None):
    """Change the launch configuration at run time (kernels read it at every launch).
    Returns the previous values as a dict, so ``set_launch_config(**old)`` restores them."""
    global THREADS_PER_BLOCK, GEMM_TILE, MAX_BLOCKS
    old = {"threads_per_block": THREADS_PER_BLOCK, "gemm_tile": GEMM_TILE,
           "max_blocks": MAX_BLOCKS}
    if threads_per_block is not None:
        THREADS_PER_BLOCK = _check_tpb(threads_per_block)
    if gemm_tile is not None:
        GEMM_TILE = _check_tile(gemm_tile)
    if max_blocks is not None:
        MAX_BLOCKS = _check_max_blocks(max_blocks)
    return old


def set_threads_per_block(value):
    """Shorthand for ``set_launch_config(threads_per_block=value)``."""
    return set_launch_config(threads_per_block=value)["threads_per_block"]


def grid_1d(n):
    """(blocks, threads) for a grid-stride loop over n items."""
    tpb = THREADS_PER_BLOCK
    return max(1, min(MAX_BLOCKS, (n + tpb - 1) // tpb)), tpb


def grid_rows(n):
    """(blocks, threads) for a loop with one block per row/channel (block reductions)."""
    return max(1, min(MAX_BLOCKS, n)), THREADS_PER_BLOCK


def flat(array):
    """1-D view of a C-contiguous device array (a view: no copy)."""
    return array if array.ndim == 1 else array.reshape(array.size)


def typed(array, value):
    """``value`` as a scalar of the array's dtype, so float32 kernels stay float32
    (a Python float argument is a float64 in the kernel: see ``_typed.like``)."""
    import numpy as np
    return np.dtype(array.dtype).type(value)
