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


def patch():
    from numba.core import config as numba_config
    if not numba_config.ENABLE_CUDASIM:
        return
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
