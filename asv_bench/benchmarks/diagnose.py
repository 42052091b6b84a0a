"""``fastnn.watch``'s overhead: the homework's batch-32 MLP step (784-500-300-100-10,
``common.Trainer``) watched and unwatched. The budget is a ratio of 1.10.

asv times the two classes separately; ``python asv_bench/benchmarks/diagnose.py``
measures the ratio in one process, alternating blocks of watched and unwatched steps on
the same net (so both see the same machine load), and prints the median of the
per-pair ratios.
"""
import contextlib
import sys
import time

import fastnn

try:
    from .common import mlp_trainer
except ImportError:  # run as a script
    from common import mlp_trainer

BATCH = 32


def _trainer():
    t = mlp_trainer(BATCH)
    for _ in range(3):  # compile or load every kernel the step uses
        t.step()
    return t


class TimeUnwatchedStep:
    def setup(self):
        self.t = _trainer()

    def time_step(self):
        self.t.step()


class TimeWatchedStep:
    def setup(self):
        self.t = _trainer()
        self.watch = fastnn.watch(self.t.net, self.t.criterion).__enter__()
        for _ in range(60):  # past the first sampled checks
            self.t.step()

    def teardown(self):
        self.watch.__exit__(None, None, None)

    def time_step(self):
        self.t.step()


def _block(t, steps):
    start = time.perf_counter()
    for _ in range(steps):
        t.step()
    return time.perf_counter() - start


def _pairs(t, pairs, steps, context):
    """Per-pair ratios (block inside ``context()`` / plain block), alternating which of
    the two runs first so that neither always gets the warmer or quieter turn."""
    ratios = []
    for k in range(pairs):
        if k % 2:
            with context():
                b = _block(t, steps)
            a = _block(t, steps)
        else:
            a = _block(t, steps)
            with context():
                b = _block(t, steps)
        ratios.append(b / a)
    return sorted(ratios)[pairs // 2]


def overhead_ratio(pairs=40, steps=50):
    """(median watched/unwatched ratio, median unwatched/unwatched ratio) over ``pairs``
    pairs of alternating blocks of ``steps`` steps (a multiple of the watch's sample
    interval) on one net. The second, a control, shows the measurement's own bias."""
    t = _trainer()
    w = fastnn.watch(t.net, t.criterion)
    return _pairs(t, pairs, steps, lambda: w), _pairs(t, pairs, steps, contextlib.nullcontext)


if __name__ == "__main__":
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    watched, control = overhead_ratio(pairs)
    print(f"batch-{BATCH} MLP step, {pairs} alternating pairs of 50-step blocks: watched / "
          f"unwatched median {watched:.3f} (control, unwatched / unwatched: {control:.3f})")
