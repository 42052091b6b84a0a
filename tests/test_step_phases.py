"""asv_bench/step_phases.py: the phases of the homework loop add up, the Python share is
a part of each phase, and the kernel families are given back untouched afterwards (the
timing itself is a benchmark, never a test)."""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _module():
    folder = os.path.join(HERE, "..", "asv_bench")
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location("step_phases",
                                                      os.path.join(folder, "step_phases.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(folder)


def test_phases_and_their_python_share(capsys):
    from fastnn._runtime import parallel as _parallel
    from fastnn.backend import CPUBackend
    before = {f: getattr(CPUBackend.kernels, f) for f in ("affine", "optim", "softmax_nll")}
    threads = _parallel.threads()
    results = _module().main(["--batches", "2", "--steps", "3", "--threads", "1"])
    phases = results[2]
    assert set(phases) == {"zero", "forward", "criterion forward", "criterion backward",
                           "backward", "optimizer"}
    for total, python in phases.values():
        assert 0 <= python <= total
    assert phases["forward"][0] > phases["forward"][1]   # the forward's kernels took time
    assert "batch     2:" in capsys.readouterr().out
    for family, module in before.items():
        assert getattr(CPUBackend.kernels, family) is module
    assert _parallel.threads() == threads
