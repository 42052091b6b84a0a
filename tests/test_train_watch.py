"""fit's Watcher and SkipInputGradient callbacks (fastnn/train/callbacks.py): findings
are logged as they appear; the first module skips its input gradient during the run
only, without changing the result."""
import numpy as np

import fastnn as nn
from fastnn.train.callbacks import Callback
from diagnosis_data import mlp, mnist_subset


def _fit(net, lines, **kwargs):
    X, y = mnist_subset()
    kwargs = {"epochs": 1, "batch_size": 32, "seed": 0, "progress": False, "max_steps": 150,
              **kwargs}
    return nn.fit(net, nn.ClassNLLCriterion(), X, y, log=lines.append, **kwargs)


def test_fit_logs_watch_findings_as_they_appear():
    lines = []
    _fit(mlp(), lines, config={"learning_rate": 1e-6})
    found = [line for line in lines if line.startswith("fastnn.watch:")]
    assert any("updates_too_small" in line for line in found), lines
    assert not any("epoch" in line for line in lines[:lines.index(found[0])]), \
        "the finding is printed during the epoch, not after it"


def test_fit_healthy_run_logs_no_finding_and_watch_false_installs_nothing():
    lines = []
    net = mlp()
    _fit(net, lines, config={"learning_rate": 0.1})
    assert not [line for line in lines if line.startswith("fastnn.watch:")], lines

    class Spy(Callback):
        def on_step_end(self, run, loss):
            self.wrapped = "forward" in vars(run.net)

    spy = Spy()
    _fit(mlp(), [], watch=False, callbacks=[spy], max_steps=3)
    assert spy.wrapped is False


def test_fit_skips_the_first_input_gradient_during_the_run_only():
    class Spy(Callback):
        def on_step_end(self, run, loss):
            self.skipping = run.net.modules[0].skips_grad_input
            self.grad_input = run.net.modules[0].gradInput

    spy = Spy()
    skipped = mlp()
    _fit(skipped, [], callbacks=[spy], max_steps=40)
    assert spy.skipping and spy.grad_input is None
    assert not skipped.modules[0].skips_grad_input
    kept = mlp()
    _fit(kept, [], input_gradient=True, max_steps=40)
    for a, b in zip(skipped.getParameters(), kept.getParameters()):
        for p, q in zip(a, b):
            np.testing.assert_array_equal(p, q)
