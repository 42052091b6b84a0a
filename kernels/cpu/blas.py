"""BLAS GEMM callable from Numba, with alpha/beta so gradients accumulate in place.

Numba's own ``np.dot`` always overwrites its output; gradients need
``C = alpha * op(A) @ op(B) + beta * C`` without a temporary, so the kernels call the
Fortran BLAS entry points directly, through symbols registered with LLVM by name,
which keeps the callers cacheable (ctypes pointers are not).

Which BLAS: numpy's own OpenBLAS when its wheel bundles one (the library ``np.dot``
already loaded: one thread pool in the process, and often a newer OpenBLAS than
scipy's; asv ``ablations.BlasLibrary`` compares the two); otherwise
scipy's ``cython_blas``, the library Numba's ``np.dot`` uses. ``LIBRARY`` says which.

Integer arguments are passed as pointers to int64. numpy's OpenBLAS is ILP64 (64-bit
integers) and scipy's LP64 (32-bit); on the little-endian machines Numba supports an
LP64 library reads the low half of each int64, which holds the same (small) value, so
one compiled (and cached) gemm serves either library.
"""
import ctypes
import glob
import os
import sys

import llvmlite.binding as llvm
import numpy as np
from numba import types

from ._jit import cython_blas_module, njit

_ROUTINES = ("sgemm", "dgemm", "sgemv", "dgemv")
# ILP64 Fortran names in numpy's scipy-openblas64 wheels, newest first
_NUMPY_NAME_PATTERNS = ("scipy_{}_64_", "{}_64_", "{}64_")


def _capsule_address(capsule):
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def _numpy_openblas():
    """(path, {routine: address}) of the ILP64 OpenBLAS bundled in numpy's wheel, or None
    (numpy built against another BLAS, or an unknown layout)."""
    if os.environ.get("FASTNN_BLAS") == "scipy" or sys.byteorder != "little":
        return None
    root = os.path.dirname(np.__file__)
    paths = sorted(glob.glob(os.path.join(root, os.pardir, "numpy.libs", "*openblas64*"))
                   + glob.glob(os.path.join(root, ".dylibs", "*openblas64*")))
    for path in paths:
        try:
            lib = ctypes.CDLL(os.path.realpath(path))
        except OSError:
            continue
        for pattern in _NUMPY_NAME_PATTERNS:
            try:
                fns = {r: getattr(lib, pattern.format(r)) for r in _ROUTINES}
            except AttributeError:
                continue
            addresses = {r: ctypes.cast(f, ctypes.c_void_p).value for r, f in fns.items()}
            return os.path.realpath(path), addresses
    return None


def _scipy_openblas():
    capi = cython_blas_module().__pyx_capi__
    return "scipy.linalg.cython_blas", {r: _capsule_address(capi[r]) for r in _ROUTINES}


LIBRARY, _addresses = _numpy_openblas() or _scipy_openblas()
for _name, _address in _addresses.items():
    llvm.add_symbol(f"fastnn_{_name}", _address)

_vp = types.voidptr
_sgemm = types.ExternalFunction("fastnn_sgemm", types.void(*([_vp] * 13)))
_dgemm = types.ExternalFunction("fastnn_dgemm", types.void(*([_vp] * 13)))
_sgemv = types.ExternalFunction("fastnn_sgemv", types.void(*([_vp] * 11)))
_dgemv = types.ExternalFunction("fastnn_dgemv", types.void(*([_vp] * 11)))

_N = ord("N")
_T = ord("T")


@njit(cache=True, nogil=True)
def gemm(trans_a, trans_b, alpha, a, b, beta, c):
    """c = alpha * op(a) @ op(b) + beta * c for C-contiguous 2-D arrays of one dtype.

    Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so BLAS gets
    (b, a) with the roles swapped; no transposed copies are made. One-row outputs
    go to gemv and rank-1 updates to a plain loop, where OpenBLAS's gemm is slow
    (batch-1 training is exactly these two shapes; asv ``affine.AffineKernels``).
    """
    # Kernels pass the flags as constants, which Numba types as literals and compiles
    # once per combination; bool() drops that, so one _gemm serves all three the MLP
    # uses (each copy is a compile of a cold start: asv startup.Startup).
    _gemm(bool(trans_a), bool(trans_b), alpha, a, b, beta, c)


@njit(cache=True, nogil=True)
def _gemm(trans_a, trans_b, alpha, a, b, beta, c):
    m = c.shape[0]
    n = c.shape[1]
    k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    if k <= 1:
        for i in range(m):
            for j in range(n):
                prod = 0.0
                if k == 1:
                    ai = a[0, i] if trans_a else a[i, 0]
                    bj = b[j, 0] if trans_b else b[0, j]
                    prod = alpha * ai * bj
                c[i, j] = prod if beta == 0 else beta * c[i, j] + prod
        return
    flags = np.empty(2, np.int8)
    dims = np.empty(6, np.int64)  # read as int32 by an LP64 BLAS: see the top
    scal = np.empty(2, c.dtype)
    scal[0] = alpha
    scal[1] = beta
    if m == 1:
        # c[0, :] = alpha * op(b)^T @ op(a)[0, :] + beta * c[0, :]
        flags[0] = _T if trans_b else _N
        dims[0] = k if trans_b else n     # rows of b's memory seen column-major
        dims[1] = n if trans_b else k
        dims[2] = b.shape[1]              # leading dimension
        dims[3] = a.shape[1] if trans_a else 1  # stride between a's k entries
        dims[4] = 1
        if c.itemsize == 4:  # both branches type-check: every pointer is void*
            _sgemv(flags.ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
                   scal[0:].ctypes.data, b.ctypes.data, dims[2:].ctypes.data,
                   a.ctypes.data, dims[3:].ctypes.data, scal[1:].ctypes.data,
                   c.ctypes.data, dims[4:].ctypes.data)
        else:
            _dgemv(flags.ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
                   scal[0:].ctypes.data, b.ctypes.data, dims[2:].ctypes.data,
                   a.ctypes.data, dims[3:].ctypes.data, scal[1:].ctypes.data,
                   c.ctypes.data, dims[4:].ctypes.data)
        return
    flags[0] = _T if trans_b else _N  # column-major first operand is b
    flags[1] = _T if trans_a else _N
    dims[0] = n
    dims[1] = m
    dims[2] = k
    dims[3] = b.shape[1]  # leading dimensions are the row lengths
    dims[4] = a.shape[1]
    dims[5] = c.shape[1]
    if c.itemsize == 4:
        _sgemm(flags[0:].ctypes.data, flags[1:].ctypes.data, dims[0:].ctypes.data,
               dims[1:].ctypes.data, dims[2:].ctypes.data, scal[0:].ctypes.data,
               b.ctypes.data, dims[3:].ctypes.data, a.ctypes.data, dims[4:].ctypes.data,
               scal[1:].ctypes.data, c.ctypes.data, dims[5:].ctypes.data)
    else:
        _dgemm(flags[0:].ctypes.data, flags[1:].ctypes.data, dims[0:].ctypes.data,
               dims[1:].ctypes.data, dims[2:].ctypes.data, scal[0:].ctypes.data,
               b.ctypes.data, dims[3:].ctypes.data, a.ctypes.data, dims[4:].ctypes.data,
               scal[1:].ctypes.data, c.ctypes.data, dims[5:].ctypes.data)
