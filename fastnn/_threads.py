"""Threading split: Numba kernels run single-threaded and BLAS owns the cores.

Our kernels are memory-bound loops around BLAS calls; letting Numba's thread pool
and OpenBLAS's both spin on a 2-core machine only makes them fight. So kernels
never use ``parallel=True`` and ``set_num_threads`` sizes the BLAS pools (numpy's
OpenBLAS, which the kernels' GEMMs call when numpy bundles one, and scipy's).
"""
import os


def set_num_threads(n):
    """Limit every BLAS thread pool in this process to ``n`` threads, including the
    one the kernels call (``kernels.cpu.blas.LIBRARY``, loaded here first:
    threadpoolctl only sees libraries that are already loaded)."""
    from threadpoolctl import threadpool_limits
    from .kernels.cpu import blas  # noqa: F401  loads scipy's cython_blas
    return threadpool_limits(limits=int(n), user_api="blas")


def configure_from_env():
    n = os.environ.get("FASTNN_NUM_THREADS")
    if n:
        set_num_threads(int(n))
