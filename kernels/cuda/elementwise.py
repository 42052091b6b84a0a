"""Elementwise helpers the backend needs: fill and (dtype-converting) copy."""
from numba import cuda

from . import config


@cuda.jit(cache=True)
def _fill(out, value):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < out.size:
        out[i] = value
        i += stride


@cuda.jit(cache=True)
def _copy(src, dst):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < dst.size:
        dst[i] = src[i]
        i += stride


def fill(array, value):
    """array[...] = value (array: C-contiguous device array of any shape)."""
    if array.size == 0:
        return
    out = config.flat(array)
    blocks, tpb = config.grid_1d(out.size)
    _fill[blocks, tpb](out, config.typed(array, value))


def copy(src, dst):
    """dst[...] = src, converting the dtype if they differ (same size, C-contiguous)."""
    if src.size != dst.size:
        raise ValueError(f"copy: sizes differ ({src.size} vs {dst.size})")
    if dst.size == 0:
        return
    blocks, tpb = config.grid_1d(dst.size)
    _copy[blocks, tpb](config.flat(src), config.flat(dst))
