"""House rules of the CPU kernels that no numeric test would catch: every kernel is
cached and releases the GIL, none uses fastmath or parallel=True, and none writes an array into a slice
(``dst[...] = src`` makes Numba compile its shape-mismatch message: seconds of every
cold start). See DEVELOPERS.md."""
import ast
import glob
import os

import numpy as np
import pytest
from numba import njit

import fastnn.kernels.cpu as cpu
from fastnn.kernels.cpu import blas

SOURCES = sorted(glob.glob(os.path.join(os.path.dirname(cpu.__file__), "*.py")))


def _njit_decorators(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "njit":
                    yield node.name, {k.arg: k.value for k in dec.keywords}


def _is_number(node):
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant))


@pytest.mark.parametrize("path", SOURCES, ids=os.path.basename)
def test_kernels_are_cached_and_keep_strict_math(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    for name, keywords in _njit_decorators(tree):
        assert "cache" in keywords and keywords["cache"].value is True, name
        # fastnn's batch split runs kernels in two threads at once (fastnn/_parallel.py)
        assert "nogil" in keywords and keywords["nogil"].value is True, name
        assert "fastmath" not in keywords, name
        assert "parallel" not in keywords, name


@pytest.mark.parametrize("path", SOURCES, ids=os.path.basename)
def test_no_array_is_assigned_into_a_slice(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Subscript) and (
                    isinstance(target.slice, ast.Slice) or
                    (isinstance(target.slice, ast.Constant) and target.slice.value is Ellipsis)):
                if not _is_number(node.value):
                    offenders.append(node.lineno)
    assert not offenders, f"{os.path.basename(path)}: lines {offenders} (use a loop)"


@njit
def _all_transposes(a, c):
    # constants, as the kernels pass them: Numba types these as literals
    blas.gemm(False, False, 1.0, a, a, 0.0, c)
    blas.gemm(False, True, 1.0, a, a, 1.0, c)
    blas.gemm(True, False, 1.0, a, a, 1.0, c)
    blas.gemm(True, True, 1.0, a, a, 1.0, c)


def test_one_compiled_gemm_serves_every_transpose_combination():
    a = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    c = np.zeros((3, 3), np.float32)
    _all_transposes(a, c)
    np.testing.assert_allclose(c, a @ a + a @ a.T + a.T @ a + a.T @ a.T, rtol=1e-5, atol=1e-5)
    float32 = [sig for sig in blas._gemm.signatures if "float32" in str(sig[3])]
    assert len(float32) == 1, float32
