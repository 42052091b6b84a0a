"""``like(x, value)``: ``value`` as a scalar of ``x``'s float type, inside a kernel.

numba types a Python float literal as float64, and float32 op float64 (or op int64)
promotes to float64, so ``1.0 - y`` in a float32 kernel converts ``y`` up, computes in
float64 and converts back: half rate on an H100/H200, 1/64 on consumer cards. Every
constant and host scalar that meets array data goes through ``like`` instead, so a
float32 kernel stays float32 and a float64 kernel float64 (``tests/cuda_ptx.py``
counts the f64 instructions of every float32 kernel).

``x`` is an array (its dtype) or a float scalar (its type). A constant folds at
compile time. In the CUDA simulator ``like`` runs as plain Python.
"""
import numpy as np
from numba.core import config as _numba_config


def like(x, value):
    dtype = getattr(x, "dtype", None)
    if dtype is None:  # a Python float in the simulator: float64, as numba types it
        return float(value)
    return np.dtype(dtype).type(value)


if not _numba_config.ENABLE_CUDASIM:
    from numba.core import types
    from numba.extending import overload

    @overload(like, target="cuda")
    def _like(x, value):
        dt = x.dtype if isinstance(x, types.Array) else x
        if not isinstance(dt, types.Float):
            return None

        def impl(x, value):
            return dt(value)
        return impl



def index_like(ref, value):
    """``value`` as an integer of ``ref``'s type: index math stays in the launcher's
    index type (uint32 where the sizes allow: a 32-bit divide instead of a 64-bit one,
    which the GPU emulates in many instructions), not numba's int64."""
    return type(ref)(value)


if not _numba_config.ENABLE_CUDASIM:
    @overload(index_like, target="cuda")
    def _index_like(ref, value):
        if not isinstance(ref, types.Integer):
            return None
        it = ref

        def impl(ref, value):
            return it(value)
        return impl
