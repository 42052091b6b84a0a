"""Work-around for a race in the numba CUDA simulator (used only when
``NUMBA_ENABLE_CUDASIM=1``; a no-op on real GPUs).

The simulator runs every GPU thread of a block as a Python thread and hands out
``cuda.shared.array`` by call site: the first thread to reach the line allocates the
array and the others look it up. The look-up and the store are not atomic, so under
load two threads of one block can both allocate, and one of them then works on a
private "shared" array: the tiled GEMM and the block reductions silently compute
garbage in a few entries (seen as rare, load-dependent test failures). ``patch()``
makes the allocation atomic. It keeps the simulator's semantics (one array per call
site per launch) and leaves the simulator alone if its internals look different.
"""
import sys
import threading

_LOCK = threading.Lock()


_SWAPS = {}  # id(globals dict) -> [threads inside, saved entries]


def _patch_swapped_cuda_module():
    """Device functions swap the ``cuda`` global for the simulator's fake on every call,
    per thread, and restore it on return; when two threads of a block overlap, the first
    to return restores the real module under the other ("module 'numba.cuda' has no
    attribute 'syncthreads'"). Count the threads inside and restore after the last."""
    import contextlib
    try:
        from numba.cuda.simulator import kernel, kernelapi
    except ImportError:
        return
    if getattr(kernelapi, "_fastnn_swap_patched", False):
        return

    @contextlib.contextmanager
    def swapped_cuda_module(fn, fake_cuda_module):
        from numba import cuda
        globs = fn.__globals__
        key = id(globs)
        with _LOCK:
            entry = _SWAPS.get(key)
            if entry is None:
                orig = {k: v for k, v in globs.items() if v is cuda}
                globs.update({k: fake_cuda_module for k in orig})
                entry = _SWAPS[key] = [0, orig]
            entry[0] += 1
        try:
            yield
        finally:
            with _LOCK:
                entry[0] -= 1
                if entry[0] == 0:
                    globs.update(entry[1])
                    del _SWAPS[key]

    kernelapi.swapped_cuda_module = swapped_cuda_module
    kernel.swapped_cuda_module = swapped_cuda_module
    kernelapi._fastnn_swap_patched = True


def patch():
    from numba.core import config as numba_config
    if not numba_config.ENABLE_CUDASIM:
        return
    _patch_swapped_cuda_module()
    try:
        from numba.cuda.simulator import kernelapi
        shared_cls = kernelapi.FakeCUDAShared
    except (ImportError, AttributeError):
        return
    if getattr(shared_cls, "_fastnn_atomic", False) or not hasattr(shared_cls, "array"):
        return
    original = shared_cls.array

    def array(self, shape, dtype):
        allocations = getattr(self, "_allocations", None)
        if shape == 0 or not isinstance(allocations, dict):
            return original(self, shape, dtype)  # dynamic shared memory: no look-up
        from numba.core import types
        from numba.np import numpy_support
        import numpy as np
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)  # the simulator's key
        with _LOCK:
            res = allocations.get(caller)
            if res is None:
                res = allocations[caller] = np.empty(shape, dtype)
        return res

    shared_cls.array = array
    shared_cls._fastnn_atomic = True
