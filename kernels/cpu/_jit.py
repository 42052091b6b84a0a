"""``njit`` for the CPU kernels: ``numba.njit``, except that a kernel found in the cache
loads without Numba's context refresh.

Before loading any cached function, Numba refreshes its CPU context, which imports
every lowering module it has (NumPy's linalg, random, typed containers, ...): a large
share of a warm start's time and memory. Loading cached object
code needs none of them, only the symbols of Numba's runtime (NRT) that the code links
against. A kernel that misses the cache still compiles through Numba's own path, which
refreshes then. ``FASTNN_NUMBA_REFRESH=1`` restores Numba's behaviour (asv
``startup.Startup``'s "refresh" case measures the difference).

This leans on ``numba.core.caching.FunctionCache``, which is internal: if it changes
shape, kernels fall back to Numba's ordinary loading rather than fail.
"""
import importlib.machinery
import importlib.util
import os
import sys

from numba import njit as _numba_njit

try:
    from numba.core.caching import FunctionCache as _FunctionCache
    from numba.core.runtime.nrt import rtsys as _rtsys
except ImportError:  # Numba moved its internals: keep its own loading
    _FunctionCache = None


def cython_blas_module():
    """scipy.linalg.cython_blas without running scipy/linalg/__init__.py, which
    imports all of scipy.linalg, which no kernel needs (asv ``startup.Startup``)."""
    mod = sys.modules.get("scipy.linalg.cython_blas")
    if mod is not None:
        return mod
    import scipy
    folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, "cython_blas" + suffix)
        if os.path.exists(path):
            spec = importlib.util.spec_from_file_location("scipy.linalg.cython_blas", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            sys.modules["scipy.linalg.cython_blas"] = mod
            return mod
    import scipy.linalg.cython_blas as mod  # unusual layout: take the slow road
    return mod


def _before_refresh():
    """Numba's refresh imports scipy.linalg.cython_blas (to check for BLAS), which
    would run all of scipy.linalg: loading the one extension first avoids that."""
    try:
        cython_blas_module()
    except ImportError:
        pass


if _FunctionCache is not None:
    class _CacheLoadingWithoutRefresh(_FunctionCache):
        def load_overload(self, sig, target_context):
            try:
                _rtsys.initialize(target_context)  # NRT symbols for the cached code
                with self._guard_against_spurious_io_errors():
                    cres = self._load_overload(sig, target_context)
            except AttributeError:  # internals changed: Numba's own path
                _before_refresh()
                return super().load_overload(sig, target_context)
            if cres is None:  # a compile follows, and refreshes
                _before_refresh()
            return cres


_REFRESH = _FunctionCache is None or os.environ.get("FASTNN_NUMBA_REFRESH") == "1"
if _REFRESH:
    _before_refresh()


def loads_without_refresh(dispatcher):
    """Make a cached dispatcher load without Numba's refresh (see the module docstring);
    True if it now does."""
    cache = getattr(dispatcher, "_cache", None)
    if _REFRESH or type(cache) is not _FunctionCache:
        return False
    cache.__class__ = _CacheLoadingWithoutRefresh
    return True


def njit(**options):
    """``numba.njit(**options)`` whose cached kernels load without the refresh."""
    decorate = _numba_njit(**options)

    def wrap(fn):
        dispatcher = decorate(fn)
        loads_without_refresh(dispatcher)
        return dispatcher
    return wrap
