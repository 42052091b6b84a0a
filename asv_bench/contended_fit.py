#!/usr/bin/env python
"""One MNIST epoch of ``fastnn.fit`` (the MLP 784-500-300-100-10, batches 32 and 128) next to
a competing busy process (``--idle``: without it), three ways, alternated over 3 rounds:
``fit``'s default (ThreadTuner picks the thread count per epoch), a fixed single thread
(``--threads 1``) and two fixed threads. Prints the medians and tuned / one thread.

  FASTNN_DATA=../shared/data python asv_bench/contended_fit.py [--idle]
"""
import argparse
import contextlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import nets  # noqa: E402
from compare.contended import busy_process  # noqa: E402


def epoch(X, y, mode, batch):
    import fastnn
    from fastnn._runtime import threads
    net, crit = nets.fastnn_mlp(), nets.fastnn_criterion("mlp")
    if mode == "tuned":  # as a user who never set the thread count gets it
        threads.apply_threads(2)
        tune = None if not threads.chosen_by_user() else True
    else:
        threads.apply_threads(1 if mode == "one thread" else 2)
        tune = False
    t0 = time.perf_counter()
    fastnn.fit(net, crit, X, y, epochs=1, batch_size=batch, progress=False, log=None, seed=0,
               tune_threads=tune)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--idle", action="store_true", help="no competing process")
    p.add_argument("--rounds", type=int, default=3)
    opts = p.parse_args()
    from fastnn.data import load_mnist
    X, y, _, _ = load_mnist(download=False, progress=False)
    X, y = np.ascontiguousarray(X, np.float32), y.astype(np.int64)
    modes = ("tuned", "one thread", "two threads")
    res = {}
    with (contextlib.nullcontext() if opts.idle else busy_process()):
        for _ in range(opts.rounds):
            for mode in modes:
                for batch in (32, 128):
                    res.setdefault((mode, batch), []).append(epoch(X, y, mode, batch))
    print(f"{'idle' if opts.idle else 'next to one busy process'}, {opts.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.2f}")
    for batch in (32, 128):
        med = {m: float(np.median(res[(m, batch)])) for m in modes}
        print(f"MLP batch {batch}: " + ", ".join(f"{m} {v:.2f} s" for m, v in med.items()) +
              f"; tuned / one thread {med['tuned'] / med['one thread']:.2f}")


if __name__ == "__main__":
    main()
