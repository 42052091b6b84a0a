"""numba.cuda twins of the CPU kernels: same family files, function names and
argument order as ``fastnn.kernels.cpu``. Each public function is a host-side
launcher that takes device arrays, launches ``@cuda.jit`` kernels and returns nothing.

Importing this package imports nothing (no numba.cuda); the family modules import
``numba.cuda`` when first used, which works without a GPU (kernels compile lazily at
first launch) and under the simulator (``NUMBA_ENABLE_CUDASIM=1``, set before the
first ``numba.cuda`` import).

Compatibility: works with numba's built-in ``numba.cuda`` and with the ``numba-cuda``
package (which takes over the same import name). Only APIs present in both are used:
``cuda.jit`` (with ``device=`` and ``cache=`` only), ``cuda.grid``/``gridsize``,
thread/block indices, ``cuda.shared.array``, ``cuda.syncthreads``, ``device_array``,
``to_device``, ``numba.cuda.random`` (xoroshiro128p). No ``inline=``, no
``max_registers``, no ``cuda.atomic`` on floats, no removed ``numba.cuda.compiler``
internals.
"""
import os as _os
import warnings as _warnings

from .._cache_guard import drop_stale_cache as _drop_stale_cache

_drop_stale_cache(_os.path.dirname(__file__))

# The loss and statistics kernels run on purpose in one block (or a few), which numba
# flags at every new grid size ("Grid size N will likely result in GPU under-utilization").
_warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU "
                         r"under-utilization")
