"""``ThreadTuner``: picks the thread count of each epoch from what the steps achieve.

Why: on a machine where another process holds a core, every two-thread join (BLAS's,
and fastnn's batch split) can wait a scheduler time slice for its other half, and a
two-thread step becomes several times slower than a one-thread step; on an idle machine
two threads are faster. Neither default is right everywhere, and the host's load changes
during a run, so at each epoch's start (and every ``reprobe_steps`` steps) the tuner
times a few steps at the configured count and a few at one thread, then keeps the faster
for the steps that follow. ``compare_torch.py --contended`` and asv
``training_step.ContendedMLPStep`` measure the effect.
"""
import time

import numpy as np

from .._runtime import parallel
from .._runtime.threads import apply_threads
from .callbacks import Callback


class ThreadTuner(Callback):
    """Time ``probe_steps`` steps at one thread, then up to as many at the configured
    count (``parallel.threads()``), and keep the configured count unless one thread is
    clearly faster (its mean step below ``margin`` times the other's). The configured count's probe stops
    early once ``abort_after`` of its steps each took over twice the one-thread median,
    so a busy host costs a few slow steps per probe, not a whole probe. Restores the
    configured count when the run ends.

    Parameters
    ----------
    probe_steps : int
        Timed steps per setting, after ``warmup`` dropped ones.
    reprobe_steps : int
        Probe again after that many steps within an epoch.
    margin : float
        One thread is chosen when its mean step is below ``margin`` times the
        configured count's.
    warmup : int
        Steps dropped after each switch (thread pools waking up).
    abort_after : int
        Slow steps that end the configured count's probe early.
    probe_seconds : float
        Each setting is probed for at least this long (and ``probe_steps`` steps).
    """

    def __init__(self, probe_steps=10, reprobe_steps=2000, margin=0.9, warmup=1,
                 abort_after=2, probe_seconds=0.25):
        self.configured = parallel.threads()
        self.probe_steps, self.reprobe_steps = int(probe_steps), int(reprobe_steps)
        self.margin, self.warmup, self.abort_after = float(margin), int(warmup), int(abort_after)
        self.probe_seconds = float(probe_seconds)
        self.choice = self.configured
        self.history = []  # (epoch, step, chosen threads, median one, median configured)
        self._phase, self._times, self._last, self._since = "done", {}, None, 0

    @property
    def active(self):
        return self.configured > 1

    def _set(self, n):
        if parallel.threads() != n:
            apply_threads(n)

    def _start_probe(self):
        self._phase, self._times, self._since = "one", {"one": [], "many": []}, 0
        self._set(1)
        self._last = time.perf_counter()

    def _finish(self, run):
        # means, not medians: a busy host shows as occasional long stalls of the joins,
        # which a median would hide
        one = float(np.mean(self._times["one"][self.warmup:]))
        many_times = self._times["many"][self.warmup:]
        many = float(np.mean(many_times)) if many_times else float("inf")
        self.choice = 1 if one < self.margin * many else self.configured
        self._set(self.choice)
        self.history.append((run.epoch, run.steps_done, self.choice, one, many))
        self._phase, self._since = "done", 0

    def on_epoch_start(self, run):
        if self.active:
            self._start_probe()

    def on_step_end(self, run, loss):
        if not self.active:
            return
        now = time.perf_counter()
        elapsed, self._last = now - self._last, now
        if self._phase == "done":
            self._since += 1
            if self._since >= self.reprobe_steps:
                self._start_probe()
            return
        times = self._times[self._phase]
        times.append(elapsed)
        n = len(times) - self.warmup
        # long enough to see the scheduler's time slices, not only a lucky stretch
        done = n >= self.probe_steps and sum(times[self.warmup:]) >= self.probe_seconds
        if self._phase == "one":
            if done:
                self._phase = "many"
                self._set(self.configured)
            return
        one = float(np.mean(self._times["one"][self.warmup:]))
        slow = sum(t > 2.0 * one for t in times[self.warmup:])
        if done or slow >= self.abort_after:
            self._finish(run)

    def on_fit_end(self, run):
        if self.active:
            self._set(self.configured)
