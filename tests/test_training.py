"""fastnn.training: fit, History, divergence stop, early stopping, checkpoints, resume.

Short runs only: synthetic blobs, or a few hundred steps on real MNIST subsets read
from ``$FASTNN_DATA/mnist`` (skipped when absent).
"""
import json
import os

import numpy as np
import pytest

import fastnn as nn
from fastnn.train import checkpoint as training
from fastnn.datasets import augment_batch
from fastnn.optim import SGD, Adam, StepDecay
from fastnn.train import (History, TrainingDiverged, evaluate, fit, load_checkpoint,
                             load_parameters, predict, save_checkpoint, save_parameters)

HAVE_CONV = hasattr(nn, "Conv2d")


def _mnist_or_skip():
    data = os.environ.get("FASTNN_DATA")
    if not data or not os.path.isdir(os.path.join(data, "mnist")):
        pytest.skip("real MNIST not available (set FASTNN_DATA)")
    from fastnn.datasets import load_mnist
    return load_mnist(download=False)


def blobs(n=600, d=20, classes=4, seed=0, spread=3.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d)) * spread
    y = rng.integers(0, classes, n)
    X = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    return X, y


def mlp(d=20, classes=4, hidden=32, dropout=0.0, bn=False, seed=0):
    nn.manual_seed(seed)
    layers = [nn.Linear(d, hidden)]
    if bn:
        layers.append(nn.BatchNormalization(0.9))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(hidden, classes), nn.LogSoftMax()]
    return nn.Sequential(*layers)


def weights(net):
    """Copies of every parameter and moving statistic, in a fixed order."""
    return [None if a is None else np.array(a) for _, m, _, name in training.module_arrays(net)
            for a in [m.__dict__.get(name)]]


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
        else:
            assert np.array_equal(x, y)


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


def test_predict_and_evaluate_restore_mode():
    X, y = blobs(100)
    net = mlp(dropout=0.5)
    net.train()
    out = predict(net, X, batch_size=30)
    assert out.shape == (100, 4) and net.training
    net.evaluate()
    loss, acc = evaluate(net, nn.ClassNLLCriterion(), X, y, batch_size=30)
    assert not net.training
    assert np.isfinite(loss) and 0 <= acc <= 1


def test_progress_bar_runs(capsys):
    X, y = blobs(100)
    fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=1, batch_size=20, progress=True, log=None,
        seed=0)


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


# --------------------------------------------------------------------------- plot

def test_history_plot_writes_png(tmp_path):
    X, y = blobs(200)
    h = fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=2, batch_size=50, X_val=X[:50],
            y_val=y[:50], progress=False, log=None, seed=0)
    path = tmp_path / "sub" / "history.png"
    h.plot(path, title="blobs")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h2 = History()
    h2.epochs, h2.train_loss, h2.val_loss, h2.steps = [1], [3.0], [None], [2]
    h2.train_accuracy, h2.val_accuracy, h2.step_loss = [None], [None], [4.0, 2.0]
    h2.plot(tmp_path / "ae.png")
    assert (tmp_path / "ae.png").stat().st_size > 1000


# --------------------------------------------------------------------------- checkpoints

def _trained(opt_cls=SGD, **cfg):
    X, y = blobs(200)
    net = mlp(bn=True, dropout=0.2)
    opt = opt_cls(net, **cfg)
    fit(net, nn.ClassNLLCriterion(), X, y, optimizer=opt, epochs=1, batch_size=50,
        progress=False, log=None, seed=0)
    return net, opt, X, y


@pytest.mark.parametrize("opt_cls,cfg", [(SGD, {"learning_rate": 0.05, "momentum": 0.9}),
                                         (Adam, {"learning_rate": 1e-3})])
def test_checkpoint_roundtrip_with_optimizer_state(tmp_path, opt_cls, cfg):
    net, opt, X, y = _trained(opt_cls, **cfg)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, net, opt, epoch=7, extra={"note": "hi"})
    net2 = mlp(bn=True, dropout=0.2, seed=99)
    opt2 = opt_cls(net2, learning_rate=123.0)
    info = load_checkpoint(path, net2, opt2)
    assert info["epoch"] == 7 and info["extra"] == {"note": "hi"}
    assert_same_weights(weights(net2), weights(net))
    bn = net2.modules[1]
    assert bn.moving_mean is not None and np.array_equal(bn.moving_mean, net.modules[1].moving_mean)
    assert opt2.config == opt.config
    sd, sd2 = opt.state_dict(), opt2.state_dict()
    assert sd.keys() == sd2.keys()
    for k in sd:
        if isinstance(sd[k], dict) and k != "config":
            assert all(np.array_equal(sd[k][i], sd2[k][i]) for i in sd[k])
        else:
            assert sd[k] == sd2[k]
    # one more identical step from both gives identical weights
    for n_, o_ in ((net, opt), (net2, opt2)):
        n_.evaluate()  # deterministic forward (no dropout), BN uses moving stats
        n_.zeroGradParameters()
        out = n_.forward(X[:50])
        crit = nn.ClassNLLCriterion()
        crit.forward(out, y[:50])
        n_.backward(X[:50], crit.backward(out, y[:50]))
        o_.step()
    assert_same_weights(weights(net2), weights(net))


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    net, opt, X, y = _trained()
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, net, opt, epoch=1)
    good = weights(net)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", broken_savez)
    net.modules[0].W[...] = 0  # different weights, so a torn write would show
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, net, opt, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]  # no temp left over
    net2 = mlp(bn=True, dropout=0.2, seed=3)
    assert load_checkpoint(path, net2, SGD(net2))["epoch"] == 1
    assert_same_weights(weights(net2), good)


def test_load_into_other_architecture_fails_clearly(tmp_path):
    net, opt, X, y = _trained()
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, net, opt)
    with pytest.raises(ValueError, match="modules"):
        load_checkpoint(path, mlp())
    with pytest.raises(ValueError, match="shape"):
        load_checkpoint(path, mlp(hidden=16, bn=True, dropout=0.2))
    with pytest.raises(ValueError, match="Adam"):
        net2 = mlp(bn=True, dropout=0.2)
        load_checkpoint(path, net2, Adam(net2))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="checkpoint"):
        load_checkpoint(tmp_path / "junk.npz", net)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz", net)


def test_save_load_parameters(tmp_path):
    net, _, X, _ = _trained()
    save_parameters(tmp_path / "w.npz", net)
    net2 = load_parameters(tmp_path / "w.npz", mlp(bn=True, dropout=0.2, seed=5))
    assert np.array_equal(predict(net2, X), predict(net, X))


# --------------------------------------------------------------------------- resume

def _resume_setup():
    X, y = blobs(300, d=64)
    X = np.abs(X[:, :64]) / 10  # an 8x8 "image" so augment_batch applies

    def build(seed):
        return mlp(d=64, hidden=48, dropout=0.3, bn=True, seed=seed)
    kw = dict(optimizer="sgd", config={"learning_rate": 0.05, "momentum": 0.9},
              batch_size=32, schedule=StepDecay(0.05, 1, 0.5), X_val=X[:60], y_val=y[:60],
              augment=augment_batch, seed=1234, progress=False, log=None,
              tune_threads=False)  # bit-exact runs need a fixed thread count
    return X, y, build, kw


def test_resume_reproduces_uninterrupted_run_exactly(tmp_path):
    X, y, build, kw = _resume_setup()
    straight = build(0)
    h_straight = fit(straight, nn.ClassNLLCriterion(), X, y, epochs=2, **kw)

    path = tmp_path / "run.npz"
    first = build(0)
    fit(first, nn.ClassNLLCriterion(), X, y, epochs=1, checkpoint=path, **kw)
    resumed = build(7)  # fresh net (other init) and a fresh optimizer inside fit
    h = fit(resumed, nn.ClassNLLCriterion(), X, y, epochs=2, checkpoint=path, resume=path,
            **kw)
    assert_same_weights(weights(resumed), weights(straight))
    assert h.epochs == [1, 2]
    assert h.train_loss == h_straight.train_loss
    assert h.step_loss == h_straight.step_loss
    assert load_checkpoint(path, build(0))["epoch"] == 2


def test_resume_with_explicit_optimizer_objects(tmp_path):
    X, y, build, kw = _resume_setup()
    kw.pop("optimizer")
    cfg = kw.pop("config")
    straight = build(0)
    fit(straight, nn.ClassNLLCriterion(), X, y, optimizer=Adam(straight, learning_rate=1e-3),
        epochs=2, **kw)
    path = tmp_path / "run.npz"
    a = build(0)
    fit(a, nn.ClassNLLCriterion(), X, y, optimizer=Adam(a, learning_rate=1e-3), epochs=1,
        checkpoint=path, **kw)
    b = build(1)
    fit(b, nn.ClassNLLCriterion(), X, y, optimizer=Adam(b, learning_rate=1e-3), epochs=2,
        resume=path, **kw)
    assert_same_weights(weights(b), weights(straight))
    assert cfg  # unused


def test_resume_done_and_missing(tmp_path):
    X, y = blobs(100)
    path = tmp_path / "c.npz"
    fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=1, checkpoint=path, progress=False,
        log=None, seed=0)
    lines = []
    h = fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=1, resume=path, progress=False,
            log=lines.append)
    assert len(h.epochs) == 1 and "nothing to do" in lines[0]
    with pytest.raises(FileNotFoundError):
        fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=1, resume=tmp_path / "nope.npz",
            progress=False, log=None)


def test_unseeded_runs_store_their_seed(tmp_path):
    X, y = blobs(100)
    path = tmp_path / "c.npz"
    fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=1, checkpoint=path, progress=False, log=None)
    seed = load_checkpoint(path, mlp())["extra"]["seed"]
    assert isinstance(seed, int)


# --------------------------------------------------------------------------- conv

@pytest.mark.skipif(not HAVE_CONV, reason="fastnn.conv not available yet")
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
