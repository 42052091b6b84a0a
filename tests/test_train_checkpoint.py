"""fastnn.train.checkpoint: atomic checkpoints with optimizer state, parameters only,
clear errors on a mismatch, and resume that reproduces an uninterrupted run exactly; the
atomic writer under it: stale temporary files of a killed writer are removed by the next
save, files get the umask's permissions, a load that fails (wrong optimizer, bad shapes, bad
metadata) copies nothing and names the file; the CLI never overwrites a checkpoint it was
not told to resume."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn as nn
from conftest import assert_same_weights, blobs, mlp, weights
from fastnn.cli.common import RunOptions, _checkpoint_args
from fastnn.datasets import augment_batch
from fastnn.kernels import _files
from fastnn.optim import SGD, Adam, StepDecay
from fastnn.train import (fit, load_checkpoint, load_parameters, predict, save_checkpoint,
                          save_parameters)


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


def _stepped(seed=0, optimizer=SGD):
    net = mlp(seed=seed)
    opt = optimizer(net, learning_rate=0.01)
    x = np.random.default_rng(seed).standard_normal((8, 20)).astype(np.float32)
    y = np.arange(8) % 4
    crit = nn.ClassNLLCriterion()
    net.zeroGradParameters()
    net.backward(x, crit.backward(net.forward(x), y))
    opt.step()
    return net, opt


def _temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


KILLED_WRITER = """
import os, signal, sys
from fastnn.kernels._files import atomic_write
with atomic_write(sys.argv[1]) as f:
    f.write(b"x" * (1 << 20))
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_next_save_removes_what_a_killed_writer_left(tmp_path):
    path = tmp_path / "run.npz"
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], timeout=120)
        assert r.returncode == -signal.SIGKILL
    # each writer removes its killed predecessor's file first: one is left, not three
    assert len(_temporaries(tmp_path)) == 1
    net, opt = _stepped()
    save_checkpoint(path, net, opt)
    assert _temporaries(tmp_path) == []
    load_checkpoint(path, mlp(seed=5), SGD(mlp(), learning_rate=0.01))


def test_a_live_writers_file_and_other_files_are_kept(tmp_path):
    path = tmp_path / "run.npz"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".run.npz.{sleeper.pid}.abcd1234.tmp"
        live.write_bytes(b"partial")
        other = tmp_path / ".other.npz.1.abcd.tmp"  # another file's temporary
        other.write_bytes(b"x")
        old_style = tmp_path / ".run.npz.k2j4h5.tmp"  # tempfile.mkstemp's name: age only
        old_style.write_bytes(b"x")
        young_old_style = tmp_path / ".run.npz.q9w8e7.tmp"
        young_old_style.write_bytes(b"x")
        two_hours_ago = time.time() - 7200
        os.utime(old_style, (two_hours_ago, two_hours_ago))
        removed = _files.remove_stale_temporaries(path)
        assert removed == [str(old_style)]
        assert live.exists() and other.exists() and young_old_style.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _files.remove_stale_temporaries(path) == [str(live)]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_get_the_umask_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "run.npz", *_stepped())
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_wrong_optimizer_type_copies_nothing(tmp_path):
    path = save_checkpoint(tmp_path / "sgd.npz", *_stepped(seed=0))
    net, adam = _stepped(seed=1, optimizer=Adam)
    before_w, before_state = weights(net), adam.state_dict()
    with pytest.raises(ValueError, match="optimizer state is for SGD") as exc:
        load_checkpoint(path, net, adam)
    assert str(path) in str(exc.value)
    assert_same_weights(weights(net), before_w)
    assert adam.state_dict()["t"] == before_state["t"]


def _rewrite(path, edit):
    with np.load(path) as f:
        arrays = dict(f)
    edit(arrays)
    np.savez(path, **arrays)


def test_optimizer_state_of_other_shapes_copies_nothing(tmp_path):
    path = save_checkpoint(tmp_path / "run.npz", *_stepped(seed=0))
    _rewrite(path, lambda a: a.__setitem__("optim/accumulated_grads/0", np.zeros((3, 3))))
    net, opt = _stepped(seed=1)
    before = weights(net)
    with pytest.raises(ValueError, match=r"optim/accumulated_grads/0 has shape \(3, 3\)"):
        load_checkpoint(path, net, opt)
    assert_same_weights(weights(net), before)


@pytest.mark.parametrize("meta, match", [
    ("{not json", "not JSON"),
    (json.dumps({"format": "fastnn-checkpoint", "epoch": 1}), "'modules'"),
    (json.dumps({"format": "fastnn-checkpoint", "epoch": 1, "modules": [["Linear"]]}),
     "module #0"),
    (json.dumps({"format": "fastnn-checkpoint", "modules": []}), "'epoch'"),
    (json.dumps({"format": "fastnn-checkpoint", "epoch": 0, "modules": [],
                 "optimizer": {"type": "SGD"}}), "'optimizer'"),
    (json.dumps({"format": "fastnn-checkpoint", "epoch": 0, "modules": [],
                 "rng": {"init": {"bit_generator": "nope"}}}), "'rng'"),
    (json.dumps(["fastnn-checkpoint"]), "not a fastnn checkpoint"),
])
def test_bad_metadata_is_a_clear_error_naming_the_file(tmp_path, meta, match):
    path = save_checkpoint(tmp_path / "run.npz", *_stepped())
    _rewrite(path, lambda a: a.__setitem__("__meta__", np.array(meta)))
    net = mlp(seed=3)
    before = weights(net)
    with pytest.raises(ValueError, match=match) as exc:
        load_checkpoint(path, net)
    assert str(path) in str(exc.value)
    assert_same_weights(weights(net), before)


def test_cli_keeps_an_existing_checkpoint_aside(tmp_path, capsys):
    run = RunOptions(out=str(tmp_path), resume=False)
    ckpt = tmp_path / "mlp.npz"
    for text in (b"first", b"second", b"third"):
        ckpt.write_bytes(text)
        path, resume = _checkpoint_args(run, "mlp")
        assert path == str(ckpt) and resume is None and not ckpt.exists()
    assert (tmp_path / "mlp.previous.npz").read_bytes() == b"first"
    assert (tmp_path / "mlp.previous-2.npz").read_bytes() == b"second"
    assert (tmp_path / "mlp.previous-3.npz").read_bytes() == b"third"
    out = capsys.readouterr().out
    assert "--resume was not given" in out and "mlp.previous.npz" in out
    ckpt.write_bytes(b"fourth")
    run = dataclasses.replace(run, resume=True)
    assert _checkpoint_args(run, "mlp") == (str(ckpt), str(ckpt))
    assert ckpt.read_bytes() == b"fourth"


@pytest.mark.parametrize("argv", [["train", "mnist", "--epochs", "-1"],
                                  ["train", "mnist", "--epochs", "0"],
                                  ["train", "mnist", "--batch-size", "0"],
                                  ["train", "mnist", "--lr", "nan"],
                                  ["demo", "--epochs", "-3"],
                                  ["compare-activations", "--epochs", "-1"]])
def test_cli_refuses_non_positive_counts(argv, capsys):
    from fastnn.cli import main
    assert main(argv) == 2  # one line and exit status 2, no SystemExit traceback
    err = capsys.readouterr().err
    assert "must be a" in err and err.startswith("fastnn: error: ")


def test_fit_refuses_negative_epochs():
    X = np.zeros((4, 20), np.float32)
    with pytest.raises(ValueError, match="epochs must be an integer >= 0, got -1"):
        nn.fit(mlp(), nn.ClassNLLCriterion(), X, np.zeros(4, int), epochs=-1, log=None,
               progress=False)
