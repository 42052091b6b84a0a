"""Threads: fastnn splits the batch of its heavy CPU kernels over its own threads
(``fastnn/_runtime/parallel.py``; BLAS runs single-threaded inside those calls) and leaves every
other GEMM to BLAS's threads. The kernels never use Numba's ``parallel=True``: its
thread pool and OpenBLAS's only fight on a 2-core machine.
"""
import os
from typing import TYPE_CHECKING

from . import parallel as _parallel
from .checks import positive_int

if TYPE_CHECKING:
    from threadpoolctl import threadpool_limits

_CHOSEN = {"by_user": False}


def set_num_threads(n: int) -> "threadpool_limits":
    """Use ``n`` threads: for fastnn's batch split (Conv2d, MaxPool2d, and the Linear layers
    of a net that has them) and for every BLAS thread pool in this process, including the
    one the kernels call (``kernels.cpu.blas.LIBRARY``, loaded here first: threadpoolctl
    only sees libraries that are already loaded).

    A count set here (or through ``FASTNN_NUM_THREADS``) is fixed: ``fit`` no longer
    tunes it per epoch, so that runs repeat bit for bit.

    Parameters
    ----------
    n : int
        Threads (1 or more).

    Returns
    -------
    threadpoolctl.threadpool_limits
        The limiter; its ``restore_original_limits()`` restores the BLAS pools.
    """
    n = positive_int(n, "set_num_threads: n")
    _CHOSEN["by_user"] = True
    return apply_threads(n)


def chosen_by_user():
    """Whether the thread count was set explicitly (``set_num_threads`` or
    ``FASTNN_NUM_THREADS``) rather than left to fastnn."""
    return _CHOSEN["by_user"]


def apply_threads(n):
    """``set_num_threads`` without fixing the count (for fastnn's own tuning)."""
    from threadpoolctl import threadpool_limits
    from ..kernels.cpu import blas  # noqa: F401  loads the kernels' BLAS
    _parallel.set_threads(n)
    return threadpool_limits(limits=int(n), user_api="blas")


def configure_from_env():
    n = os.environ.get("FASTNN_NUM_THREADS")
    if n:
        try:
            value = int(n)
        except ValueError:
            value = n
        set_num_threads(positive_int(value, "environment variable FASTNN_NUM_THREADS"))
    else:
        _parallel.set_threads(_parallel.usable_cpus())
