"""Block-wide sum for the reduction kernels (losses, batch statistics).

A kernel declares ``sh = cuda.shared.array(SHARED, float64)`` and every thread of the
block calls ``block_sum(sh, value)``; all threads get the total. The tree needs a
power-of-two block size (``config`` enforces it). Sums are in float64, like the CPU
twins' accumulators.

In the CUDA simulator a device function defined outside its kernel's module has its
``cuda`` global swapped in and out per call, racily (numba-cuda PR #690): the first
thread to leave may restore the real module while others are still inside. That is
harmless here because every ``cuda.*`` access of ``block_sum`` comes before its last
barrier, which no thread leaves before all have reached it.
"""
from numba import cuda

from . import _simulator
from .config import MAX_THREADS_PER_BLOCK as SHARED

_simulator.patch()  # shared-array race in the CUDA simulator


@cuda.jit(device=True)
def block_sum(sh, value):
    tid = cuda.threadIdx.x
    sh[tid] = value
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            sh[tid] += sh[tid + s]
        cuda.syncthreads()
        s //= 2
    total = sh[0]
    cuda.syncthreads()  # everyone has read sh[0] before the next block_sum reuses sh
    return total
