"""Batch splitting: fastnn's own threads for the heavy CPU kernels.

With BLAS's threads alone, only the GEMMs used the second core: the memory-bound passes
around them (im2col and col2im, the stores that apply bias and activation, pooling) ran
on one, and every two-thread GEMM ended in a join that waited whenever the busy host
took the other core away. So Conv2d, MaxPool2d and Linear split their batch into one
part per thread and run each part's kernel (``nogil``) in its own thread, with BLAS
single-threaded meanwhile; parameter gradients are summed from per-part buffers in a
fixed order, so results do not depend on timing. The effect on the small CNN's step:
``asv run ... -b ablations.BatchSplit`` (figures in the README, "Benchmarks").

Small work stays on one thread: a hand-off costs tens of microseconds.
``set_num_threads(n)`` sets both this split and the BLAS pools.
"""
import os
import threading

_STATE = {"threads": 1, "pool": None, "blas": None, "inside": 0, "saved": None}
_LOCK = threading.Lock()       # the pool
_BLAS_LOCK = threading.Lock()  # the BLAS limit, shared by concurrent callers


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(n):
    """Split heavy kernels over ``n`` threads (1: no splitting)."""
    n = max(1, int(n))
    with _LOCK:
        if n != _STATE["threads"] and _STATE["pool"] is not None:
            _STATE["pool"].shutdown(wait=True)  # _pool() starts one of the new size
            _STATE["pool"] = None
        _STATE["threads"] = n


def _pool():
    """The worker threads, started on first use (and again in a forked child)."""
    with _LOCK:
        if _STATE["pool"] is None:
            # imported here, not at start-up (asv startup.Startup): a pure MLP never splits
            from concurrent.futures import ThreadPoolExecutor
            _STATE["pool"] = ThreadPoolExecutor(_STATE["threads"] - 1,
                                                thread_name_prefix="fastnn")
        return _STATE["pool"]


def _after_fork_in_child():
    # a forked child has none of the parent's threads: a pool copied from the parent
    # would queue work that never runs
    _STATE["pool"] = None
    _STATE["inside"] = 0
    _STATE["saved"] = None
    global _LOCK, _BLAS_LOCK
    _LOCK = threading.Lock()
    _BLAS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
        from ..kernels.cpu import blas
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
    after the call, which takes the core the next split needs (asv
    ``ablations.LinearSplit`` and ``ablations.BatchSplit`` measure the choices)."""
    if _STATE["threads"] == 1 or (len(bounds) == 1 and work is not None
                                  and work < BLAS_THREADED_WORK):
        for i, (lo, hi) in enumerate(bounds):
            fn(i, lo, hi)
        return
    _enter_single_threaded_blas()
    try:
        if len(bounds) == 1:
            fn(0, *bounds[0])
            return
        pool = _pool()
        futures = [pool.submit(fn, i, lo, hi) for i, (lo, hi) in enumerate(bounds[1:], 1)]
        try:
            fn(0, *bounds[0])
        finally:
            for f in futures:
                f.exception()  # wait for every part before any buffer is touched again
        for f in futures:
            f.result()
    finally:
        _leave_single_threaded_blas()


def _enter_single_threaded_blas():
    """Limit BLAS to one thread; the first of concurrent callers saves the limit to
    restore and the last one restores it."""
    libs = _blas_controllers()
    with _BLAS_LOCK:
        if _STATE["inside"] == 0:
            _STATE["saved"] = [lib.num_threads for lib in libs]
            for lib in libs:
                lib.set_num_threads(1)
        _STATE["inside"] += 1


def _leave_single_threaded_blas():
    libs = _blas_controllers()
    with _BLAS_LOCK:
        _STATE["inside"] -= 1
        if _STATE["inside"] == 0:
            for lib, n in zip(libs, _STATE["saved"]):
                lib.set_num_threads(n)
