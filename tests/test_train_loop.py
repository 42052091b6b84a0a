"""fastnn.train.loop: fit learns and records its history, schedules, optimizers given by
name, object or function, divergence recovery, early stopping, the progress bar,
augmentation.

Short runs only: synthetic blobs, or a few hundred steps on real MNIST subsets read
from ``$FASTNN_DATA/mnist`` (skipped when absent).
"""
import json
import os

import numpy as np
import pytest

import fastnn as nn
from conftest import assert_same_weights, blobs, mlp, weights
from fastnn.datasets import augment_batch
from fastnn.optim import StepDecay
from fastnn.train import History, TrainingDiverged, evaluate, fit, load_parameters, predict


def _mnist_or_skip():
    data = os.environ.get("FASTNN_DATA")
    if not data or not os.path.isdir(os.path.join(data, "mnist")):
        pytest.skip("real MNIST not available (set FASTNN_DATA)")
    from fastnn.datasets import load_mnist
    return load_mnist(download=False)


# --------------------------------------------------------------------------- learning

def test_mlp_on_mnist_beats_chance_after_300_steps():
    X, y, Xt, yt = _mnist_or_skip()
    nn.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10), nn.LogSoftMax())
    h = fit(net, nn.ClassNLLCriterion(), X[:12000], y[:12000],
            config={"learning_rate": 0.05, "momentum": 0.9}, epochs=1, batch_size=32,
            seed=0, progress=False, log=None, max_steps=300)
    assert len(h.step_loss) == 300
    _, acc = evaluate(net, nn.ClassNLLCriterion(), Xt[:2000], yt[:2000])
    assert acc > 0.85


def test_fit_learns_blobs_and_records_history():
    X, y = blobs()
    X_tr, y_tr, X_val, y_val = X[:500], y[:500], X[500:], y[500:]
    lines = []
    net = mlp()
    h = fit(net, nn.ClassNLLCriterion(), X_tr, y_tr, epochs=4, batch_size=50,
            config={"learning_rate": 0.05}, X_val=X_val, y_val=y_val, seed=0,
            progress=False, log=lines.append)
    assert h.epochs == [1, 2, 3, 4]
    assert len(h.step_loss) == len(h.step_accuracy) == 40
    assert h.steps == [10] * 4
    assert len(h.train_loss) == len(h.val_accuracy) == len(h.lr) == len(h.epoch_time) == 4
    assert h.val_accuracy[-1] > 0.95 and h.train_accuracy[-1] > 0.9
    assert h.stopped_reason == "completed"
    assert len(lines) == 4 and lines[0].startswith("epoch 1/4") and "val acc" in lines[0]
    d = h.to_dict()
    json.dumps(d)
    assert History.from_dict(d).train_loss == h.train_loss
    assert "History(4 epochs" in repr(h)
    assert net.training  # back in training mode


def test_schedule_sets_lr_per_epoch():
    X, y = blobs(200)
    h = fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=4, batch_size=50,
            config={"learning_rate": 0.1}, schedule=StepDecay(0.1, step_size=2, gamma=0.5),
            progress=False, log=None, seed=0)
    assert h.lr == [0.1, 0.1, 0.05, 0.05]


def test_functional_optimizer_and_adam_string():
    X, y = blobs(300)
    for opt, cfg in ((nn.sgd_momentum, {"learning_rate": 0.05, "momentum": 0.9}),
                     ("adam", {"learning_rate": 1e-2}),
                     (nn.adam_optimizer, {"learning_rate": 1e-2})):
        net = mlp()
        h = fit(net, nn.ClassNLLCriterion(), X, y, optimizer=opt, config=cfg, epochs=3,
                batch_size=50, progress=False, log=None, seed=0)
        assert h.train_accuracy[-1] > 0.9, opt


def test_autoencoder_target_is_input():
    X, _ = blobs(400, d=16)
    X = (X - X.mean(0)) / X.std(0)
    nn.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 8), nn.ELU(), nn.Linear(8, 16))
    h = fit(net, nn.MSECriterion(), X, None, optimizer="adam", config={"learning_rate": 1e-2},
            epochs=5, batch_size=50, X_val=X[:100], progress=False, log=None, seed=0)
    assert h.train_accuracy == [None] * 5 and h.val_accuracy == [None] * 5
    assert h.val_loss[-1] < 0.5 * h.train_loss[0]
    assert h.monitor == "val_loss"


def test_progress_bar_shows_epoch_and_batches(capsys):
    X, y = blobs(100)
    fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=1, batch_size=20, progress=True, log=None,
        seed=0)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and " 0/5 [" in err  # 100 samples: 5 batches of 20
    assert err.endswith("\r")  # leave=False: the bar erases itself at the end of the epoch


# --------------------------------------------------------------------------- divergence

def test_huge_learning_rate_stops_with_clear_message_and_restores_weights():
    X, y = blobs(400)
    net = mlp()
    before = weights(net)
    with pytest.raises(TrainingDiverged) as exc:
        fit(net, nn.ClassNLLCriterion(), X, y, config={"learning_rate": 1e6, "momentum": 0.9},
            epochs=3, batch_size=20, progress=False, log=None, seed=0)
    msg = str(exc.value)
    assert "diverged" in msg and "learning rate" in msg and "restored" in msg
    assert isinstance(exc.value, RuntimeError)
    assert exc.value.history.stopped_reason == "diverged"
    assert_same_weights(weights(net), before)  # the snapshot of the start of epoch 1


def test_nan_input_restores_last_good_weights():
    X, y = blobs(400)
    net = mlp(bn=True)
    fit(net, nn.ClassNLLCriterion(), X, y, config={"learning_rate": 0.05}, epochs=1,
        batch_size=40, progress=False, log=None, seed=0)
    good = weights(net)
    Xbad = X.copy()
    Xbad[123, 4] = np.nan
    with pytest.raises(TrainingDiverged, match="not finite"):
        fit(net, nn.ClassNLLCriterion(), Xbad, y, config={"learning_rate": 0.05}, epochs=2,
            batch_size=40, progress=False, log=None, seed=1)
    assert_same_weights(weights(net), good)


def test_snapshot_every_keeps_the_latest_good_block():
    X, y = blobs(400)
    Xbad = X.copy()
    Xbad[12 * 20 + 3] = np.inf  # in the 13th batch (no shuffling)
    kw = dict(config={"learning_rate": 0.05}, batch_size=20, shuffle=False, progress=False,
              log=None, seed=0)
    ref = mlp(dropout=0.2)
    fit(ref, nn.ClassNLLCriterion(), X, y, epochs=1, max_steps=10, **kw)
    net = mlp(dropout=0.2)
    with pytest.raises(TrainingDiverged) as exc:
        fit(net, nn.ClassNLLCriterion(), Xbad, y, epochs=1, snapshot_every=5, **kw)
    assert exc.value.step == 13
    assert_same_weights(weights(net), weights(ref))


def test_loss_blowup_relative_to_first_loss():
    X, y = blobs(400)
    X = X.copy()
    X[200:] *= 1e5  # finite, but the loss jumps far above the reference (first) loss
    net = mlp()
    before = weights(net)
    with pytest.raises(TrainingDiverged, match="reference loss"):
        fit(net, nn.ClassNLLCriterion(), X, y, config={"learning_rate": 0.01}, epochs=1,
            batch_size=40, shuffle=False, progress=False, log=None, seed=0)
    assert_same_weights(weights(net), before)


# --------------------------------------------------------------------------- early stopping

def test_early_stopping_restores_best_weights():
    X, y = blobs(400)
    rng = np.random.default_rng(5)
    X_val, y_val = X[:100], rng.integers(0, 4, 100)  # labels that cannot be learned
    net = mlp()
    h = fit(net, nn.ClassNLLCriterion(), X[100:], y[100:], config={"learning_rate": 0.05},
            epochs=30, batch_size=50, X_val=X_val, y_val=y_val, early_stopping=2,
            progress=False, log=None, seed=0)
    assert h.stopped_reason == "early_stopping"
    assert len(h.epochs) < 30
    assert len(h.epochs) == h.best_epoch + 2
    _, acc = evaluate(net, nn.ClassNLLCriterion(), X_val, y_val)
    assert acc == h.best_value == max(h.val_accuracy)


def test_early_stopping_needs_validation():
    X, y = blobs(100)
    with pytest.raises(ValueError, match="validation"):
        fit(mlp(), nn.ClassNLLCriterion(), X, y, early_stopping=2, progress=False, log=None)


# --------------------------------------------------------------------------- conv

def test_fit_small_cnn_with_augmentation(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    X = np.zeros((64, 1, 8, 8), np.float32)
    X[y == 0, 0, 2:6, 3:5] = 1  # vertical bar
    X[y == 1, 0, 3:5, 2:6] = 1  # horizontal bar
    nn.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNormalization(0.9), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 2), nn.LogSoftMax())
    h = fit(net, nn.ClassNLLCriterion(), X, y, optimizer="adam",
            config={"learning_rate": 1e-2}, epochs=8, batch_size=16,
            augment=lambda xb, rng: augment_batch(xb, rng=rng, max_shift=1, max_angle=0),
            X_val=X, y_val=y, checkpoint=tmp_path / "cnn.npz", progress=False, log=None,
            seed=0)
    assert h.val_accuracy[-1] > 0.9
    net2 = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNormalization(0.9), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 2), nn.LogSoftMax())
    load_parameters(tmp_path / "cnn.npz", net2)
    assert np.array_equal(predict(net2, X), predict(net, X))
