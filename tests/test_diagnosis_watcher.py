"""fastnn.watch: each code it reports, provoked by the homework loop with one mistake;
none of them on a healthy MNIST MLP; results unchanged by watching."""
import math

import numpy as np
import pytest

import fastnn as nn
from fastnn.diagnosis import CODES
from diagnosis_data import homework_loop, mlp, mnist_subset, watched_loop

#: code -> the test here that provokes it (test_diagnosis_findings checks the union).
PROVOKED = {
    "updates_too_small": "test_learning_rate_1e6",
    "loss_at_chance": "test_labels_shuffled_separately",
    "gradients_accumulate": "test_zero_grad_forgotten",
    "criterion_input_mismatch": "test_logsoftmax_into_unstable",
    "input_scale": "test_pixels_0_255_with_softmax",
    "nonfinite_loss": "test_nonfinite_loss_reported_once_naming_the_module",
    "input_nonfinite": "test_nan_in_the_inputs",
    "diverging": "test_diverging_regression",
    "dead_units": "test_dead_units",
}


@pytest.fixture(scope="module")
def data():
    return mnist_subset()


@pytest.fixture(scope="module")
def healthy(data):
    X, y = data
    return watched_loop(mlp(), nn.ClassNLLCriterion(), X, y)


@pytest.mark.parametrize("code", sorted(CODES))
def test_healthy_mnist_mlp_reports_nothing(healthy, code):
    assert code not in healthy.codes, str(healthy)


def test_watching_changes_no_result_and_restores_the_methods(data):
    X, y = data
    plain_net, watched_net = mlp(), mlp()
    crit_a, crit_b = nn.ClassNLLCriterion(), nn.ClassNLLCriterion()
    plain = homework_loop(plain_net, crit_a, X, y, steps=60)
    with nn.watch(watched_net, crit_b, sample_every=5) as w:
        watched = homework_loop(watched_net, crit_b, X, y, steps=60)
    assert plain == watched
    for a, b in zip(plain_net.getParameters(), watched_net.getParameters()):
        for p, q in zip(a, b):
            np.testing.assert_array_equal(p, q)
    for obj, names in ((watched_net, ("forward", "backward", "zeroGradParameters")),
                       (crit_b, ("forward",))):
        assert not set(names) & set(vars(obj)), "a wrapper was left behind"
    assert w.step == 60


def test_methods_restored_when_the_loop_raises(data):
    X, y = data
    net, crit = mlp(), nn.ClassNLLCriterion()
    with pytest.raises(ValueError):
        with nn.watch(net, crit):
            net.forward(X[:4, :10])  # wrong width: Linear raises
    assert "forward" not in vars(net)


def test_learning_rate_1e6(data):
    w = watched_loop(mlp(), nn.ClassNLLCriterion(), *data, learning_rate=1e-6)
    assert {"updates_too_small", "loss_at_chance"} <= w.codes


def test_labels_shuffled_separately():
    X, y = mnist_subset(8000)  # enough rows that 300 steps cannot memorise random labels
    w = watched_loop(mlp(), nn.ClassNLLCriterion(), X, np.random.default_rng(5).permutation(y))
    assert "loss_at_chance" in w.codes


def test_zero_grad_forgotten(data):
    w = watched_loop(mlp(), nn.ClassNLLCriterion(), *data, zero_grad=False, steps=30)
    [finding] = [f for f in w.findings if f.code == "gradients_accumulate"]
    assert "step 2:" in finding.message  # at the first step it happens


def test_logsoftmax_into_unstable(data):
    w = watched_loop(mlp(), nn.ClassNLLCriterionUnstable(), *data, steps=5)
    assert "criterion_input_mismatch" in w.codes
    assert "log-probabilities" in str(w)


def test_pixels_0_255_with_softmax(data):
    X, y = data
    w = watched_loop(mlp(nn.SoftMax), nn.ClassNLLCriterion(), X * 255, y, steps=30)
    assert "input_scale" in w.codes


def test_nonfinite_loss_reported_once_naming_the_module(data):
    def poison(step, net):
        if step == 7:
            net.modules[2].W[0, 0] = np.nan

    w = watched_loop(mlp(), nn.ClassNLLCriterion(), *data, steps=40, hook=poison)
    found = [f for f in w.findings if f.code == "nonfinite_loss"]
    assert len(found) == 1
    assert found[0].module == "Linear 100 -> 10" and "step 7:" in found[0].message


def test_nan_in_the_inputs(data):
    X, y = data
    X = X.copy()
    X[:, 3] = np.nan
    w = watched_loop(mlp(), nn.ClassNLLCriterion(), X, y, steps=3)
    assert "input_nonfinite" in w.codes


def test_optimizer_never_applied(data):
    w = watched_loop(mlp(), nn.ClassNLLCriterion(), *data, optimize=False, steps=60)
    [finding] = [f for f in w.findings if f.code == "updates_too_small"]
    assert "never applied" in finding.message


def test_diverging_regression():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 20)).astype(np.float32)
    y = (X @ rng.standard_normal((20, 1))).astype(np.float32)
    nn.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 1))
    crit = nn.MSECriterion()
    # plain SGD on a quadratic: the direction of the Hessian's top eigenvalue grows by
    # |1 - lr * top| = 1.1 a step
    Xb = np.hstack([X, np.ones((len(X), 1), np.float32)]).astype(np.float64)
    top = np.linalg.eigvalsh(2 / len(X) * Xb.T @ Xb).max()
    config, state = {"learning_rate": 2.1 / top, "momentum": 0.0}, {}
    with nn.watch(net, crit) as w:
        for _ in range(200):
            net.zeroGradParameters()
            out = net.forward(X)
            loss = crit.forward(out, y)
            net.backward(X, crit.backward(out, y))
            nn.sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
    assert math.isfinite(loss)
    assert "diverging" in w.codes


def test_dead_units(data):
    net = mlp()
    net.modules[0].b[:] = -10.0  # every unit's pre-activation far below zero
    w = watched_loop(net, nn.ClassNLLCriterion(), *data, steps=60)
    [finding] = [f for f in w.findings if f.code == "dead_units"]
    assert finding.module == "ReLU"


def test_on_finding_called_once_per_new_finding(data):
    seen = []
    with nn.watch(mlp(), nn.ClassNLLCriterion(), on_finding=seen.append) as w:
        homework_loop(w.net, w.criterion, *data, zero_grad=False, steps=10)
    assert seen == w.findings and [f.code for f in seen].count("gradients_accumulate") == 1
