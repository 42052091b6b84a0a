"""House rules of the CPU kernels that no numeric test would catch: every kernel is
cached and releases the GIL, none uses fastmath or parallel=True, and none writes an
array into a slice (``dst[...] = src`` makes Numba compile its shape-mismatch message:
seconds of every cold start). See DEVELOPERS.md."""
import ast
import glob
import os

import pytest

import fastnn.kernels.cpu as cpu

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
        # fastnn's batch split runs kernels in two threads at once (fastnn/_runtime/parallel.py)
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


ONE_GEMM = """
import numpy as np
from numba import njit
from numba.core import event
from fastnn.kernels.cpu.blas import gemm

@njit
def all_transposes(a, c):
    # constants, as the kernels pass them: Numba types these as literals
    gemm(False, False, 1.0, a, a, 0.0, c)
    gemm(False, True, 1.0, a, a, 1.0, c)
    gemm(True, False, 1.0, a, a, 1.0, c)
    gemm(True, True, 1.0, a, a, 1.0, c)

a = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
c = np.zeros((3, 3), np.float32)
with event.install_recorder("numba:compile") as rec:
    all_transposes(a, c)
assert np.allclose(c, a @ a + a @ a.T + a.T @ a + a.T @ a.T, rtol=1e-5, atol=1e-5)
print(sum(1 for _, ev in rec.buffer
          if ev.is_start and ev.data["dispatcher"].py_func.__name__ == "_gemm"))
"""


def test_one_compiled_gemm_serves_every_transpose_combination(tmp_path):
    """In a fresh process with an empty cache, four literal transpose combinations
    compile _gemm once (each literal combination used to be a ~2 s compile)."""
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    script = tmp_path / "one_gemm.py"  # a file: Numba does not type `python -c` globals
    script.write_text(ONE_GEMM)
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "1", out.stdout
