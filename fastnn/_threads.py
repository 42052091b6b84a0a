"""Threading split: Numba kernels run single-threaded and BLAS owns the cores.

Our kernels are memory-bound loops around BLAS calls; letting Numba's thread pool
and OpenBLAS's both spin on a 2-core machine only makes them fight. So kernels
never use ``parallel=True`` and ``set_num_threads`` sizes the BLAS pools (numpy's
and scipy's, which Numba's GEMMs use).
"""
import os


def set_num_threads(n):
    """Limit every BLAS thread pool in this process to ``n`` threads."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=int(n), user_api="blas")


def configure_from_env():
    n = os.environ.get("FASTNN_NUM_THREADS")
    if n:
        set_num_threads(int(n))
