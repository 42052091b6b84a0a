"""fastnn.train.callbacks: after a divergence the optimizer's state goes back with the
weights, so following the error's advice (the same optimizer at a lower learning rate)
trains instead of diverging again on the diverged momentum."""
import numpy as np
import pytest

import fastnn as nn
from conftest import assert_same_weights, blobs, mlp, weights
from fastnn.optim import SGD, Adam
from fastnn.train import TrainingDiverged, fit

KW = dict(batch_size=20, progress=False, log=None, seed=0)


def _diverge(net, opt, X, y, **kw):
    with pytest.raises(TrainingDiverged) as exc:
        fit(net, nn.ClassNLLCriterion(), X, y, optimizer=opt, epochs=3, **dict(KW, **kw))
    return exc.value


@pytest.mark.parametrize("make", [lambda net: SGD(net, learning_rate=1e4, momentum=0.9),
                                  lambda net: Adam(net, learning_rate=1e4)])
def test_lower_learning_rate_with_the_same_optimizer_trains(make):
    X, y = blobs(400)
    net = mlp()
    opt = make(net)
    message = str(_diverge(net, opt, X, y))
    # the snapshot is the start of epoch 1: no step taken, so no state yet
    assert not any(isinstance(v, dict) and v for v in opt.state.values())
    assert opt.state.get("t", 0) == 0
    history = fit(net, nn.ClassNLLCriterion(), X, y, optimizer=opt,
                  config={"learning_rate": 1e-3}, epochs=2, **KW)
    assert history.stopped_reason == "completed"
    assert np.isfinite(history.step_loss).all()
    assert history.step_loss[-1] < history.step_loss[0]
    assert "weights and the optimizer state were restored" in message


def test_optimizer_state_is_the_snapshots():
    X, y = blobs(400)
    Xbad = X.copy()
    Xbad[12 * 20 + 3] = np.inf  # in the 13th batch (no shuffling)
    kw = dict(shuffle=False)
    ref, net = mlp(), mlp()
    ref_opt = SGD(ref, learning_rate=0.05, momentum=0.9)
    fit(ref, nn.ClassNLLCriterion(), X, y, optimizer=ref_opt, epochs=1, max_steps=10,
        **dict(KW, **kw))
    opt = SGD(net, learning_rate=0.05, momentum=0.9)
    exc = _diverge(net, opt, Xbad, y, snapshot_every=5, **kw)
    assert exc.step == 13
    assert_same_weights(weights(net), weights(ref))
    ref_v = ref_opt.state_dict()["accumulated_grads"]
    v = opt.state_dict()["accumulated_grads"]
    assert sorted(v) == sorted(ref_v)
    for i in ref_v:
        np.testing.assert_array_equal(v[i], ref_v[i])
    assert opt.config["learning_rate"] == 0.05  # the config is the caller's
