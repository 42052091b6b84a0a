"""kernels/cpu/blas.gemm: c = alpha * op(a) @ op(b) + beta * c, every transpose combo,
beta 0/1, and the special paths (m == 1 -> gemv, k <= 1 -> plain loop)."""
import itertools

import numpy as np
import pytest

from fastnn.kernels.cpu.blas import gemm

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}

# (m, n, k): general, m == 1 (gemv), k == 1 (rank-1 loop), k == 0, n == 1, odd sizes
SHAPES = [(4, 5, 3), (1, 5, 3), (1, 1, 7), (4, 5, 1), (1, 6, 1), (7, 1, 4), (3, 4, 0),
          (13, 9, 17), (1, 33, 65)]


def operands(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.0, 1.0), (-0.5, 1.0), (2.0, 0.0)])
def test_gemm(dtype, ta, tb, m, n, k, alpha, beta):
    rng = np.random.default_rng(m * 1000 + n * 100 + k)
    a, b = operands(rng, m, n, k, ta, tb, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = c0.copy()
    gemm(ta, tb, alpha, a, b, beta, c)
    A = a.astype(np.float64).T if ta else a.astype(np.float64)
    B = b.astype(np.float64).T if tb else b.astype(np.float64)
    expected = alpha * (A @ B) + beta * c0.astype(np.float64)
    np.testing.assert_allclose(c, expected, **TOL[dtype])


@pytest.mark.parametrize("ta,tb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("m,n,k", [(4, 5, 3), (1, 5, 3), (4, 5, 1)])
def test_beta_zero_ignores_garbage_in_c(ta, tb, m, n, k):
    """beta == 0 must overwrite: NaN left in c (e.g. an uninitialised buffer) must not leak."""
    rng = np.random.default_rng(0)
    a, b = operands(rng, m, n, k, ta, tb, np.float64)
    c = np.full((m, n), np.nan)
    gemm(ta, tb, 1.0, a, b, 0.0, c)
    A = a.T if ta else a
    B = b.T if tb else b
    np.testing.assert_allclose(c, A @ B, rtol=1e-12)


def test_nan_in_operands_propagates():
    for m, k in [(3, 4), (1, 4), (3, 1)]:
        a = np.ones((m, k))
        a[0, 0] = np.nan
        c = np.zeros((m, 2))
        gemm(False, False, 1.0, a, np.ones((k, 2)), 0.0, c)
        assert np.all(np.isnan(c[0])), (m, k, c)


@pytest.mark.parametrize("m,n", [(0, 3), (3, 0)])
def test_empty_output_is_a_no_op(m, n):
    """No rows or no columns: BLAS is not called and nothing around ``c`` is written
    (``c`` is an empty view into a buffer of sentinels)."""
    buffer = np.full(8, 7.0)
    c = buffer[2:2].reshape(m, n)
    assert gemm(False, False, 1.0, np.ones((m, 2)), np.ones((2, n)), 0.0, c) is None
    assert c.shape == (m, n)
    np.testing.assert_array_equal(buffer, 7.0)


BLAS_CHOICE = """
import numpy as np
from fastnn.kernels.cpu import blas
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    for m in (1, 5):  # gemv and gemm
        a = rng.standard_normal((m, 7)).astype(dtype)
        b = rng.standard_normal((9, 7)).astype(dtype)
        c = np.ones((m, 9), dtype)
        blas.gemm(False, True, 2.0, a, b, 1.0, c)
        ref = 2.0 * a.astype(np.float64) @ b.T.astype(np.float64) + 1.0
        assert np.allclose(c, ref, rtol=1e-5, atol=1e-5), (dtype, m)
print(blas.LIBRARY)
"""


@pytest.mark.parametrize("choice", ["default", "scipy"])
def test_either_blas_library_gives_the_same_products(choice):
    """numpy's ILP64 OpenBLAS (the default when numpy bundles one) and scipy's LP64
    cython_blas (FASTNN_BLAS=scipy) run the same compiled gemm: its int64 arguments
    read correctly as int32 too."""
    import os
    import subprocess
    import sys
    env = dict(os.environ)
    env.pop("FASTNN_BLAS", None)
    if choice == "scipy":
        env["FASTNN_BLAS"] = "scipy"
    out = subprocess.run([sys.executable, "-c", BLAS_CHOICE], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    library = out.stdout.strip().splitlines()[-1]
    if choice == "scipy":
        assert library == "scipy.linalg.cython_blas"
    assert "On entry to" not in out.stderr  # BLAS's own complaint about a bad argument
