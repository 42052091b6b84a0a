#!/usr/bin/env python
"""Where the MLP's training step spends its time: each phase of the homework loop, and
how much of it is Python rather than kernels, measured inside the running step.

  python asv_bench/step_phases.py                 # batches 32, 128, 1024
  python asv_bench/step_phases.py --batches 1,32 --steps 500

Every kernel call is timed by a wrapper around the kernel families the modules call
(``CPUBackend.kernels.<family>``); a phase's Python is its time minus its kernels' time
(the wrappers' own cost, well under a microsecond a call, counts as Python). Python
between kernels runs on caches the GEMMs have just flushed, so these in-step figures are
several times what the same code costs in a tight loop. Medians are not used: the phase
times are means over the steps, after 20 warm-up steps.
"""
import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import nets as ct  # noqa: E402  (the same MLP, data and learning rate)

PHASES = ("zero", "forward", "criterion forward", "criterion backward", "backward", "optimizer")
FAMILIES = ("affine", "activation", "softmax_nll", "optim", "elementwise")


class _TimedFamily:
    """A kernel family whose functions add their run time to ``spent[0]``."""

    def __init__(self, module, spent):
        self._module, self._spent = module, spent

    def __getattr__(self, name):
        fn = getattr(self._module, name)
        if not callable(fn):
            return fn
        spent, clock = self._spent, time.perf_counter

        def timed(*args):
            t0 = clock()
            fn(*args)
            spent[0] += clock() - t0
        setattr(self, name, timed)
        return timed


def measure(batch, steps, spent):
    from fastnn import ClassNLLCriterion, sgd_momentum
    net, criterion = ct.fastnn_mlp(), ClassNLLCriterion()
    x, y = ct.data(batch, (ct.MLP_SIZES[0],))
    config, state = {"learning_rate": ct.LR, "momentum": ct.MOMENTUM}, {}
    total = collections.Counter()
    kernels = collections.Counter()
    clock = time.perf_counter
    for step in range(steps + 20):
        marks = [(clock(), spent[0])]
        net.zeroGradParameters()
        marks.append((clock(), spent[0]))
        out = net.forward(x)
        marks.append((clock(), spent[0]))
        criterion.forward(out, y)
        marks.append((clock(), spent[0]))
        g = criterion.backward(out, y)
        marks.append((clock(), spent[0]))
        net.backward(x, g)
        marks.append((clock(), spent[0]))
        sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
        marks.append((clock(), spent[0]))
        if step >= 20:
            for phase, (t0, k0), (t1, k1) in zip(PHASES, marks, marks[1:]):
                total[phase] += t1 - t0
                kernels[phase] += k1 - k0
    return {p: (total[p] / steps, (total[p] - kernels[p]) / steps) for p in PHASES}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="32,128,1024")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    opts = p.parse_args(argv)
    import fastnn
    from fastnn._runtime import parallel as _parallel
    from fastnn.backend import CPUBackend
    threads_before = _parallel.threads()
    limiter = fastnn.set_num_threads(opts.threads)
    spent = [0.0]
    originals = {f: getattr(CPUBackend.kernels, f) for f in FAMILIES}
    results = {}
    try:
        for family, module in originals.items():
            setattr(CPUBackend.kernels, family, _TimedFamily(module, spent))
        print(f"MLP {'-'.join(map(str, ct.MLP_SIZES))}, {opts.threads} threads; per phase: "
              f"time (of which Python), µs, means over {opts.steps} steps")
        for batch in (int(b) for b in opts.batches.split(",")):
            res = measure(batch, max(1, opts.steps if batch < 1024 else opts.steps // 5), spent)
            results[batch] = res
            python = sum(py for _, py in res.values())
            print(f"batch {batch:5d}: " + "  ".join(f"{p} {t * 1e6:.0f} ({py * 1e6:.0f})"
                                                    for p, (t, py) in res.items())
                  + f"  | Python {python * 1e6:.0f} of "
                    f"{sum(t for t, _ in res.values()) * 1e6:.0f}")
    finally:  # leave the process as it was (the test suite calls main)
        for family, module in originals.items():
            setattr(CPUBackend.kernels, family, module)
        limiter.restore_original_limits()
        _parallel.set_threads(threads_before)
    return results


if __name__ == "__main__":
    main()
