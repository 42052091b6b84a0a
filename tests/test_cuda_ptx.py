"""Every CUDA kernel compiles with the real numba.cuda compiler (typing, lowering and
NVVM to PTX) without a GPU; see tests/cuda_ptx.py. float32 only: it is the dtype where
float64 literals and float32 arrays have to unify (float64 kernels type trivially), and
each signature costs ~0.3 s of compiling. Runs in a child process started by
tests/test_cuda_sim.py (it patches numba's launch path)."""
import os

import numpy as np
import pytest

from cudasim import IN_SIMULATOR, PTX_CHILD_FLAG

if IN_SIMULATOR or os.environ.get(PTX_CHILD_FLAG) != "1":
    pytest.skip("PTX compile check: runs in a child process started by tests/test_cuda_sim.py",
                allow_module_level=True)

from cuda_ptx import compile_every_kernel, f64_ops, f64_rows, nvvm_available  # noqa: E402

pytestmark = pytest.mark.cudasim


@pytest.fixture(scope="module")
def compiled():
    """(signatures compiled, failures, {(kernel, signature): ptx}), compiled once."""
    if not nvvm_available():
        pytest.skip("NVVM (libnvvm of the CUDA toolkit) is not installed")
    ptx = {}
    n, failures = compile_every_kernel(dtypes=(np.float32,), ptx_out=ptx)
    return n, failures, ptx


def test_every_kernel_compiles_to_ptx(compiled):
    n, failures, _ = compiled
    assert n >= 40, f"only {n} kernel signatures were launched"
    assert not failures, "\n".join(f"{name}{sig}: {str(e).splitlines()[0]}"
                                   for name, sig, e in failures)


def test_f64_counter_sees_float64_math():
    """The counter itself: f64 arithmetic and conversions count, f64 loads do not."""
    ptx = "\tld.param.f64 \t%fd1, [p];\n\tcvt.f64.f32 \t%fd2, %f1;\n" \
          "\tfma.rn.f64 \t%fd3, %fd2, 0d4000000000000000, %fd1;\n" \
          "\t@%p1 bra \tBB0_2;\n\tadd.f32 \t%f2, %f1, %f1;\n\tst.global.f64 \t[%rd1], %fd3;\n"
    assert f64_ops(ptx) == {"cvt.f64.f32": 1, "fma.rn.f64": 1}


def test_float32_kernels_do_no_float64_math(compiled):
    """Every float32 kernel launch compiles to PTX without one float64 instruction
    (see cuda_ptx.f64_ops for what counts): FP64 runs at half rate on an H100/H200 and
    1/64 on consumer cards. ``python tests/cuda_ptx.py`` prints the table."""
    rows = f64_rows(compiled[2])
    assert len(rows) >= 40, f"only {len(rows)} float32 kernel launches were compiled"
    offenders = [f"{name}: {ops}" for name, sig, ops in rows if ops]
    assert not offenders, "float64 math in float32 kernels:\n" + "\n".join(offenders)


def test_im2col_and_pooling_index_math_is_32_bit(compiled):
    """im2col, col2im and max pooling divide in 32 bits where the sizes allow (the
    launchers pass uint32 sizes): a 64-bit integer divide is a long emulated sequence."""
    import re
    seen = 0
    for (name, sig), text in compiled[2].items():
        if name in ("conv._im2col", "conv._col2im", "pool._forward", "pool._backward"):
            seen += 1
            divides = set(re.findall(r"\b(?:div|rem)\.[\w.]+", text))
            assert divides and all(d.endswith("32") for d in divides), (name, divides)
    assert seen == 4
