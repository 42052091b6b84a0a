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

from cuda_ptx import compile_every_kernel, nvvm_available  # noqa: E402

pytestmark = pytest.mark.cudasim


def test_every_kernel_compiles_to_ptx():
    if not nvvm_available():
        pytest.skip("NVVM (libnvvm of the CUDA toolkit) is not installed")
    n, failures = compile_every_kernel(dtypes=(np.float32,))
    assert n >= 40, f"only {n} kernel signatures were launched"
    assert not failures, "\n".join(f"{name}{sig}: {str(e).splitlines()[0]}"
                                   for name, sig, e in failures)
