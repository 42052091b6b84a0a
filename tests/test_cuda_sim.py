"""Runs the CUDA test files in child processes (see tests/cudasim.py): the kernel and
module tests in the numba CUDA simulator, the PTX compile check with the real
numba.cuda. ``NUMBA_ENABLE_CUDASIM`` must be set before ``numba.cuda`` is imported, so
none of them can run inside this pytest process. All children start together (each is
CPU-bound and mostly single-threaded under the GIL, so they share the cores), and each
test waits for its own child. A simulator child that passes no test fails (the simulator
ships with numba, so nothing excuses it); the PTX child may skip, on a machine without NVVM.
"""
import os

import pytest

from cudasim import IN_SIMULATOR, start_child_run

HERE = os.path.dirname(os.path.abspath(__file__))
CHILDREN = {  # file -> run under the simulator?
    "test_cuda_kernels.py": True,
    "test_cuda_modules.py": True,
    "test_cuda_interop.py": True,
    "test_cuda_steps.py": True,
    "test_cuda_ptx.py": False,
}
TIMEOUT = 600

pytestmark = pytest.mark.skipif(IN_SIMULATOR, reason="already in the simulator")


@pytest.fixture(scope="module")
def children():
    procs = {name: start_child_run(os.path.join(HERE, name), simulator=sim)
             for name, sim in CHILDREN.items()}
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("name", list(CHILDREN))
def test_cuda_file_in_child_process(children, name):
    proc = children[name]
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except Exception:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{name} did not finish within {TIMEOUT} s:\n{out}", pytrace=False)
    kind, message = verdict(name, CHILDREN[name], proc.returncode, out)
    print(f"[child] {message.splitlines()[0]}")
    if kind == "fail":
        pytest.fail(message, pytrace=False)
    if kind == "skip":
        pytest.skip(message)


def verdict(name, simulator, returncode, out):
    """("pass" | "fail" | "skip", message) for a child's exit code and output. A
    simulator child that passed no test fails (the simulator ships with numba, so nothing
    excuses it); the PTX child may skip (no NVVM)."""
    lines = out.strip().splitlines()
    summary = lines[-1] if lines else "(no output)"
    where = "in the CUDA simulator" if simulator else "(real numba.cuda, no GPU)"
    if returncode != 0:
        return "fail", f"{name} failed {where} (exit code {returncode}):\n{out}"
    if " passed" not in summary:
        reasons = " ".join(line for line in lines if line.startswith("SKIPPED"))
        if simulator:
            return "fail", f"{name} ran no test {where}: {summary}; {reasons}"
        return "skip", f"{name} {where}: {summary}; {reasons}"
    return "pass", f"{name} {where}: {summary}"


@pytest.mark.parametrize("simulator,returncode,out,kind", [
    (True, 0, "....\n4 passed in 1.0s", "pass"),
    (True, 0, "SKIPPED [1] x.py: no reason\n1 skipped in 0.1s", "fail"),
    (True, 5, "no tests ran in 0.1s", "fail"),
    (True, 1, "F\n1 failed in 0.1s", "fail"),
    (False, 0, "SKIPPED [1] x.py: NVVM missing\n1 skipped in 0.1s", "skip"),
])
def test_verdict_fails_a_simulator_child_that_ran_nothing(simulator, returncode, out, kind):
    assert verdict("test_x.py", simulator, returncode, out)[0] == kind
