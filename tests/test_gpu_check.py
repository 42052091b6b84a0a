"""asv_bench/gpu_check.py, the prepared check for the day a GPU is lent: it runs end to
end in the CUDA simulator with --tiny (a child process: the simulator must be chosen
before numba.cuda is imported), and a check that raises is a failed row that hides
none of the others."""
import math
import os
import re
import subprocess
import sys

import pytest

from cudasim import IN_SIMULATOR

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "asv_bench", "gpu_check.py")
TIMEOUT = 600

pytestmark = pytest.mark.skipif(IN_SIMULATOR, reason="starts its own simulator process")


def test_gpu_check_tiny_runs_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    for name in ("FASTNN_CUDA_TPB", "FASTNN_CUDA_TILE", "FASTNN_CUDA_MAX_BLOCKS"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, SCRIPT, "--tiny"], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    passed = re.search(r"(\d+)/(\d+) checks passed", out)
    assert passed and passed.group(1) == passed.group(2), out[-2000:]
    assert int(passed.group(2)) > 150  # float32 and float64 rows
    for row in ("[float64]", "all float32 checks with FASTNN_CUDA_MAX_BLOCKS=2",
                "CNN [2] training step, batch 1", "fit: one epoch", "split-K; 2 k slices"):
        assert row in out, row


def _checks():
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        from gpu_check_kernels import Checks
    finally:
        sys.path.pop(0)
    return Checks(cuda=None)


def test_a_check_that_raises_is_a_failed_row_and_the_rest_run():
    chk = _checks()

    def broken():
        raise RuntimeError("kernel launch failed")
    assert chk.guarded("broken kernel", "3x4", broken) is None
    chk.compare("fine", "2", lambda: [1.0, 2.0], lambda: [1.0, 2.0])
    chk.compare("raises inside compare", "2", broken, lambda: [1.0])
    chk.compare("wrong", "1", lambda: [1.5], lambda: [1.0])
    verdicts = {name: ok for name, _, _, _, ok in chk.rows}
    assert verdicts == {"broken kernel [float32]": False, "fine [float32]": True,
                        "raises inside compare [float32]": False, "wrong [float32]": False}
    assert math.isinf(chk.rows[0][2])


def test_float64_checks_use_float64_tolerances():
    chk = _checks()
    chk.set_dtype("float64")
    chk.compare("float32 rounding is an error in float64", "1", lambda: [1.0 + 1e-7],
                lambda: [1.0])
    assert chk.rows[-1][-1] is False
