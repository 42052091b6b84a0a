"""Batch splitting: fastnn's own threads for the heavy CPU kernels.

With BLAS's threads alone, only the GEMMs used the second core: the memory-bound passes
around them (im2col and col2im, the stores that apply bias and activation, pooling) ran
on one, and every two-thread GEMM ended in a join that waited whenever the busy host
took the other core away. So Conv2d, MaxPool2d and Linear split their batch into one
part per thread and run each part's kernel (``nogil``) in its own thread, with BLAS
single-threaded meanwhile; parameter gradients are summed from per-part buffers in a
fixed order, so results do not depend on timing. The small CNN's training step went
from 78-104 to 64-76 ms at batch 128 (alternating processes; README, "Benchmarks").

Small work stays on one thread: a hand-off costs tens of microseconds.
``set_num_threads(n)`` sets both this split and the BLAS pools.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_STATE = {"threads": 1, "pool": None, "blas": None}
_LOCK = threading.Lock()


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(n):
    """Split heavy kernels over ``n`` threads (1: no splitting)."""
    n = max(1, int(n))
    with _LOCK:
        pool = _STATE["pool"]
        if pool is not None and pool._max_workers != n - 1:
            pool.shutdown(wait=True)
            pool = None
        if n > 1 and pool is None:
            pool = ThreadPoolExecutor(n - 1, thread_name_prefix="fastnn")
        _STATE["pool"] = pool
        _STATE["threads"] = n


def threads():
    return _STATE["threads"]


def parts(n_items, work=None, min_work=0):
    """(lo, hi) bounds splitting ``n_items`` rows into one part per thread, or a single
    part when there is one row per thread or less, or ``work`` (any measure of the whole
    call's cost) is below ``min_work``."""
    k = min(_STATE["threads"], n_items)
    if k <= 1 or (work is not None and work < min_work):
        return ((0, n_items),)
    return tuple((n_items * i // k, n_items * (i + 1) // k) for i in range(k))


def _blas_controllers():
    """threadpoolctl controllers of the BLAS the kernels call (found once)."""
    if _STATE["blas"] is None:
        from threadpoolctl import ThreadpoolController
        from .kernels.cpu import blas
        libs = [c for c in ThreadpoolController().lib_controllers
                if c.user_api == "blas" and os.path.realpath(c.filepath) == blas.LIBRARY]
        if not libs:  # scipy's fallback (LIBRARY names the module): limit every BLAS
            libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        _STATE["blas"] = libs
    return _STATE["blas"]


#: Multiply-adds from which OpenBLAS runs a GEMM on several threads (its
#: SMP_THRESHOLD_MIN x GEMM_MULTITHREAD_THRESHOLD); smaller calls need no BLAS limit.
BLAS_THREADED_WORK = 65536 * 4


def run(fn, bounds, work=None):
    """fn(part, lo, hi) for each part; part 0 on the calling thread, the others on the
    pool. Re-raises a part's exception.

    While fastnn splits (more than one thread), BLAS runs single-threaded inside every
    call that comes through here, split or not, unless ``work`` says its GEMMs are too
    small for OpenBLAS to thread: a two-thread GEMM leaves OpenBLAS's worker spinning
    for about 0.1 s, which takes the core the next split needs (the MLP step at batch
    1024 took twice as long when only the split calls limited BLAS)."""
    if _STATE["threads"] == 1 or (len(bounds) == 1 and work is not None
                                  and work < BLAS_THREADED_WORK):
        for i, (lo, hi) in enumerate(bounds):
            fn(i, lo, hi)
        return
    libs = _blas_controllers()
    saved = [lib.num_threads for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    try:
        if len(bounds) == 1:
            fn(0, *bounds[0])
            return
        pool = _STATE["pool"]
        futures = [pool.submit(fn, i, lo, hi) for i, (lo, hi) in enumerate(bounds[1:], 1)]
        try:
            fn(0, *bounds[0])
        finally:
            for f in futures:
                f.exception()  # wait for every part before any buffer is touched again
        for f in futures:
            f.result()
    finally:
        for lib, n in zip(libs, saved):
            lib.set_num_threads(n)
