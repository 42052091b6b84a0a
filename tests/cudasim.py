"""Helpers for the CUDA tests, which run in the numba CUDA simulator.

The simulator is chosen when ``numba.cuda`` is first imported, from the environment
variable ``NUMBA_ENABLE_CUDASIM``, so it cannot be switched on inside a normal pytest
process. Hence:

* ``tests/test_cuda_kernels.py`` and ``tests/test_cuda_modules.py`` hold the CUDA tests.
  Outside the simulator they skip at module level (one "skipped" line each).
* ``tests/test_cuda_sim.py`` runs in the normal ``python -m pytest``: it starts one child
  ``python -m pytest <file>`` per CUDA test file, all at once, with
  ``NUMBA_ENABLE_CUDASIM=1`` and the tiny launch configuration below; a child's failure
  fails the matching test, with the child's output.
* ``tests/test_cuda_ptx.py`` (every kernel through the real numba.cuda compiler to PTX,
  no GPU needed) runs in a third child, without the simulator.
* By hand: ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda_kernels.py``.

The launch configuration (32 threads per block, 4x4 GEMM tiles, at most 2 blocks per
grid dimension) makes the small test shapes span several blocks and every grid-stride
loop turn more than once. The simulator runs one Python thread per GPU thread, so the
shapes stay small.
"""
import os
import subprocess
import sys

IN_SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
PTX_CHILD_FLAG = "FASTNN_CUDA_PTX_CHILD"
SKIP_REASON = ("CUDA simulator tests: run in a child process with NUMBA_ENABLE_CUDASIM=1 "
               "by tests/test_cuda_sim.py")

LAUNCH = {"threads_per_block": 32, "gemm_tile": 4, "max_blocks": 2}
CHILD_ENV = {
    "NUMBA_ENABLE_CUDASIM": "1",
    "FASTNN_CUDA_TPB": str(LAUNCH["threads_per_block"]),
    "FASTNN_CUDA_TILE": str(LAUNCH["gemm_tile"]),
    "FASTNN_CUDA_MAX_BLOCKS": str(LAUNCH["max_blocks"]),
}

if IN_SIMULATOR:
    # Simulated threads meet at every syncthreads() through a polling loop; a short GIL
    # switch interval makes those hand-offs several times faster on a 2-core machine.
    sys.setswitchinterval(1e-4)


class small_launch_config:
    """``with small_launch_config():`` the tiny launch configuration, restored after
    (so a by-hand simulator run gets it whatever FASTNN_CUDA_* says)."""

    def __enter__(self):
        from fastnn.kernels.cuda import config
        self.config = config
        self.old = config.set_launch_config(**LAUNCH)
        return config

    def __exit__(self, *exc):
        self.config.set_launch_config(**self.old)


def start_child_run(test_file, simulator=True):
    """Start ``python -m pytest test_file`` in a child process, under the simulator
    (``simulator=True``) or with the real numba.cuda (the PTX check); returns the Popen."""
    if simulator:
        env = dict(os.environ, **CHILD_ENV)
    else:
        env = dict(without_simulator_env(), **{PTX_CHILD_FLAG: "1"})
    cmd = [sys.executable, "-m", "pytest", os.fspath(test_file), "-q", "-p", "no:cacheprovider",
           "-o", "addopts=", "-rfEs"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def without_simulator_env():
    """A copy of os.environ with the simulator switched off (for "no GPU" checks)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    return env
