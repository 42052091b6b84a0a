"""House rules of the CUDA kernels that no numeric test would catch (read from the
source, no numba.cuda needed): every kernel is compiled with ``cache=True`` (a GPU
process otherwise recompiles every kernel at start-up; gpu_check checks the loading on
hardware), and no kernel file imports fastnn (kernels get what they need as
arguments, e.g. the dropout seed)."""
import ast
import glob
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(glob.glob(os.path.join(HERE, "..", "kernels", "cuda", "*.py")))


def _cuda_jit_decorators(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                call = dec if isinstance(dec, ast.Call) else None
                func = call.func if call else dec
                if isinstance(func, ast.Attribute) and func.attr == "jit" and \
                        getattr(func.value, "id", None) == "cuda":
                    yield node.name, {k.arg: k.value for k in (call.keywords if call else [])}


@pytest.mark.parametrize("path", SOURCES, ids=os.path.basename)
def test_cuda_kernels_are_cached(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    for name, keywords in _cuda_jit_decorators(tree):
        device = keywords.get("device")
        if device is not None and device.value is True:
            continue  # device functions compile into their callers
        assert "cache" in keywords and keywords["cache"].value is True, name


@pytest.mark.parametrize("path", SOURCES, ids=os.path.basename)
def test_cuda_kernels_never_import_fastnn(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "fastnn" for a in node.names), path
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert (node.module or "").split(".")[0] != "fastnn", path


def test_the_rule_sees_kernels():
    kernels = sum(1 for p in SOURCES for _ in _cuda_jit_decorators(ast.parse(open(p).read())))
    assert kernels > 40
