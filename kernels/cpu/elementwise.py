"""Elementwise helpers: fill and (dtype-converting) copy, the CPU twins of
``kernels/cuda/elementwise.py``. A Numba loop becomes a plain memset, which zeroes the
MLP's flat gradient buffer faster than ``ndarray.fill`` (asv ``elementwise.Fill``)."""
from ._jit import njit


@njit(cache=True, nogil=True)
def fill(array, value):
    """array[...] = value (array: C-contiguous, any shape)."""
    flat = array.reshape(array.size)
    for i in range(flat.size):
        flat[i] = value


@njit(cache=True, nogil=True)
def copy(src, dst):
    """dst[...] = src, converting the dtype if they differ (same size, C-contiguous)."""
    if src.size != dst.size:
        raise ValueError("copy: src and dst differ in size")
    s = src.reshape(src.size)
    d = dst.reshape(dst.size)
    for i in range(d.size):
        d[i] = s[i]
