"""Where a module's arrays live (host or GPU) and which kernel set it calls.

A module holds one backend; its phases call ``self.backend.kernels.<family>.<fn>``
with buffers from ``self.backend``. CPU and CUDA kernel families share names,
so a module's code is the same on both.
"""
import importlib
import os

import numpy as np


class _KernelNamespace:
    """Imports ``fastnn.kernels.<device>.<family>`` on first use, so that
    importing fastnn never imports numba.cuda (or compiles anything)."""

    def __init__(self, device):
        self._device = device

    def __getattr__(self, family):
        if family.startswith("_"):
            raise AttributeError(family)
        try:
            mod = importlib.import_module(f"fastnn.kernels.{self._device}.{family}")
        except RuntimeError as exc:
            if "no locator available" not in str(exc):
                raise
            raise RuntimeError(_cache_unwritable_message(family)) from exc
        from ._runtime.rng import seed_kernel_family
        seed_kernel_family(mod)
        setattr(self, family, mod)
        return mod


def _cache_unwritable_message(family):
    """Numba's "cannot cache function ...: no locator available" says neither where
    it looked nor what to do."""
    explicit = os.environ.get("NUMBA_CACHE_DIR")
    where = (f"NUMBA_CACHE_DIR={explicit!r} is not writable (fastnn never overrides an "
             f"explicit NUMBA_CACHE_DIR)" if explicit else
             "neither the install folder's __pycache__ nor ~/.cache/numba is writable")
    return (f"fastnn: cannot load the {family} kernels: Numba has nowhere to write its "
            f"kernel cache: {where}. Point NUMBA_CACHE_DIR at a writable folder, or unset "
            f"it to let fastnn pick one in the temporary directory.")


class CPUBackend:
    name = "cpu"
    kernels = _KernelNamespace("cpu")

    @staticmethod
    def empty(shape, dtype):
        return np.empty(shape, dtype)

    @staticmethod
    def zeros(shape, dtype):
        return np.zeros(shape, dtype)

    @staticmethod
    def to_device(array, dtype, out=None):
        """Contiguous array of ``dtype``; no copy when ``array`` already is one
        (``out`` is for the GPU's reused buffers and ignored here)."""
        return np.ascontiguousarray(array, dtype=dtype)

    @staticmethod
    def to_numpy(array):
        return np.asarray(array)

    @staticmethod
    def is_device_array(array):
        return isinstance(array, np.ndarray)


def cuda_available() -> bool:
    """Whether ``module.cuda()`` can run here.

    Returns
    -------
    bool
        True when numba.cuda sees a usable GPU, or the CUDA simulator is on
        (``NUMBA_ENABLE_CUDASIM=1``).
    """
    try:
        from numba import cuda
    except Exception:  # numba built without CUDA support
        return False
    try:
        return bool(cuda.is_available())
    except Exception:
        return False


def cuda_simulator_enabled():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


class CUDABackend:
    name = "cuda"
    kernels = _KernelNamespace("cuda")

    @staticmethod
    def _cuda():
        from numba import cuda
        return cuda

    @classmethod
    def empty(cls, shape, dtype):
        return cls._cuda().device_array(shape, dtype)

    @classmethod
    def zeros(cls, shape, dtype):
        out = cls._cuda().device_array(shape, dtype)
        cls.kernels.elementwise.fill(out, 0.0)
        return out

    @classmethod
    def to_device(cls, array, dtype, out=None):
        """C-contiguous device array of ``dtype``: numba device arrays pass through,
        other ``__cuda_array_interface__`` objects are wrapped (no copy) and host data
        is copied over. A dtype change on the device runs a cast kernel.

        ``out``: a device array to reuse when its shape and dtype fit (host data is
        copied into it, a device cast writes it), so a training step allocates nothing;
        the result is ``out`` then, else a new array."""
        cuda = cls._cuda()
        dtype = np.dtype(dtype)
        if is_cuda_object(array):
            dev = _as_device_array(array)
            if dev.is_c_contiguous():
                if dev.dtype == dtype:
                    return dev
                if not _fits(out, dev.shape, dtype):
                    out = cuda.device_array(dev.shape, dtype)
                cls.kernels.elementwise.copy(dev, out)
                return out
            array = dev.copy_to_host()
        host = np.ascontiguousarray(array, dtype=dtype)
        if _fits(out, host.shape, dtype):
            out.copy_to_device(host)
            return out
        return cuda.to_device(host)

    @classmethod
    def to_numpy(cls, array):
        return to_numpy(array)

    @classmethod
    def is_device_array(cls, array):
        return is_cuda_object(array)


def _fits(buf, shape, dtype):
    return buf is not None and buf.dtype == dtype and tuple(buf.shape) == tuple(shape)


def is_cuda_object(x):
    """True for numba device arrays (real, or the simulator's fakes, which lack
    ``__cuda_array_interface__``) and any object exporting ``__cuda_array_interface__``.
    Never imports numba.cuda."""
    if isinstance(x, np.ndarray):
        return False
    return bool(getattr(x, "__cuda_ndarray__", False)) or \
        hasattr(x, "__cuda_array_interface__")


def _as_device_array(x):
    if getattr(x, "__cuda_ndarray__", False):
        return x
    from numba import cuda
    return cuda.as_cuda_array(x)  # CuPy, PyTorch CUDA tensors, ...


def to_numpy(x: object) -> np.ndarray:
    """Bring a fastnn result back to the host.

    Parameters
    ----------
    x : array
        A NumPy array (returned as it is), a numba device array, or any object with
        ``__cuda_array_interface__``.

    Returns
    -------
    ndarray
        The values on the host.
    """
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "copy_to_host"):
        return x.copy_to_host()
    if hasattr(x, "__cuda_array_interface__"):
        return _as_device_array(x).copy_to_host()
    return np.asarray(x)


def get_backend(name):
    if name == "cpu":
        return CPUBackend
    if name == "cuda":
        if not (cuda_available() or cuda_simulator_enabled()):
            raise RuntimeError(
                "fastnn: .cuda() needs an NVIDIA GPU visible to numba.cuda "
                "(install the extra: pip install 'fastnn[cuda]'), or the CUDA simulator "
                "(NUMBA_ENABLE_CUDASIM=1); no GPU was found.")
        return CUDABackend
    raise ValueError(f"fastnn: unknown device {name!r}; expected 'cpu' or 'cuda'")
