"""fastnn/train/threads.py: the thread tuner keeps the configured thread count unless one
thread is clearly faster, stops a slow probe early, and restores the count at the end.
Timing is simulated: the callback reads a fake clock."""
import types

import numpy as np
import pytest

import fastnn
from fastnn._runtime import parallel
from fastnn.train import threads as tuner_module
from fastnn.train.threads import ThreadTuner


@pytest.fixture
def simulated(monkeypatch):
    """A fake clock that advances by the current thread count's step time, and a
    set_num_threads that only records."""
    state = {"threads": 2, "now": 0.0, "calls": []}
    monkeypatch.setattr(parallel, "threads", lambda: state["threads"])

    def set_threads(n):
        state["calls"].append(n)
        state["threads"] = n
    monkeypatch.setattr(tuner_module, "apply_threads", set_threads)
    monkeypatch.setattr(tuner_module.time, "perf_counter", lambda: state["now"])
    return state


def drive(tuner, state, step_time, steps):
    run = types.SimpleNamespace(epoch=0, steps_done=0)
    tuner.on_epoch_start(run)
    slow_steps = 0
    for _ in range(steps):
        dt = step_time[state["threads"]]
        slow_steps += state["threads"] > 1 and dt > 0.02
        state["now"] += dt
        run.steps_done += 1
        tuner.on_step_end(run, 0.0)
    return run, slow_steps


def test_keeps_two_threads_when_they_are_faster(simulated):
    tuner = ThreadTuner(probe_steps=5, probe_seconds=0)
    drive(tuner, simulated, {1: 0.010, 2: 0.006}, 40)
    assert tuner.choice == 2 and simulated["threads"] == 2
    assert tuner.history[0][2] == 2


def test_one_thread_when_the_host_is_busy_and_the_probe_stops_early(simulated):
    tuner = ThreadTuner(probe_steps=5, warmup=1, abort_after=2, probe_seconds=0)
    _, slow_steps = drive(tuner, simulated, {1: 0.010, 2: 0.200}, 40)
    assert tuner.choice == 1 and simulated["threads"] == 1
    assert slow_steps == 3  # one warm-up step and two slow ones, not a whole probe
    tuner.on_fit_end(None)
    assert simulated["threads"] == 2  # the configured count is back


def test_similar_speeds_keep_the_configured_count(simulated):
    tuner = ThreadTuner(probe_steps=5, margin=0.9, probe_seconds=0)
    drive(tuner, simulated, {1: 0.0095, 2: 0.010}, 40)
    assert tuner.choice == 2


def test_reprobes_within_a_long_epoch(simulated):
    tuner = ThreadTuner(probe_steps=3, reprobe_steps=10, probe_seconds=0)
    drive(tuner, simulated, {1: 0.010, 2: 0.005}, 60)
    assert len(tuner.history) >= 3


def test_inactive_with_one_configured_thread(simulated):
    simulated["threads"] = 1
    tuner = ThreadTuner()
    drive(tuner, simulated, {1: 0.010}, 20)
    assert simulated["calls"] == [] and tuner.history == []


def test_fit_restores_the_thread_count():
    before = parallel.threads()
    rng = np.random.default_rng(0)
    X = rng.random((256, 20), dtype=np.float32)
    y = rng.integers(0, 3, 256)
    net = fastnn.Sequential(fastnn.Linear(20, 3), fastnn.LogSoftMax())
    fastnn.fit(net, fastnn.ClassNLLCriterion(), X, y, epochs=1, batch_size=8, progress=False,
               log=None, seed=0)
    assert parallel.threads() == before


def test_each_setting_is_probed_for_probe_seconds(simulated):
    tuner = ThreadTuner(probe_steps=2, warmup=0, probe_seconds=0.1)
    drive(tuner, simulated, {1: 0.010, 2: 0.006}, 12)  # one thread: 10 steps for 0.1 s
    assert tuner.history == [] and simulated["threads"] == 2  # still probing two threads


def test_stalls_count_through_the_mean(simulated):
    """Two threads fast on most steps but stalled on some (a busy host's time slices):
    the mean shows it, the median would not."""
    tuner = ThreadTuner(probe_steps=6, warmup=0, probe_seconds=0, abort_after=100)
    run = types.SimpleNamespace(epoch=0, steps_done=0)
    tuner.on_epoch_start(run)
    pattern = {1: [0.010] * 6, 2: [0.006, 0.006, 0.006, 0.006, 0.080, 0.080]}
    for threads in (1, 2):
        for dt in pattern[threads]:
            simulated["now"] += dt
            run.steps_done += 1
            tuner.on_step_end(run, 0.0)
    assert tuner.choice == 1
