"""fastnn.train.checkpoint and the atomic writer under it: stale temporary files of a
killed writer are removed by the next save, files get the umask's permissions, a load
that fails (wrong optimizer, bad shapes, bad metadata) copies nothing and names the
file; the CLI never overwrites a checkpoint it was not told to resume."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn as nn
from fastnn.cli.common import _checkpoint_args
from fastnn.kernels import _files
from fastnn.optim import SGD, Adam
from fastnn.train import load_checkpoint, save_checkpoint
from test_training import assert_same_weights, mlp, weights


def _trained(seed=0, optimizer=SGD):
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
    net, opt = _trained()
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
        path = save_checkpoint(tmp_path / "run.npz", *_trained())
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_wrong_optimizer_type_copies_nothing(tmp_path):
    path = save_checkpoint(tmp_path / "sgd.npz", *_trained(seed=0))
    net, adam = _trained(seed=1, optimizer=Adam)
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
    path = save_checkpoint(tmp_path / "run.npz", *_trained(seed=0))
    _rewrite(path, lambda a: a.__setitem__("optim/accumulated_grads/0", np.zeros((3, 3))))
    net, opt = _trained(seed=1)
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
    path = save_checkpoint(tmp_path / "run.npz", *_trained())
    _rewrite(path, lambda a: a.__setitem__("__meta__", np.array(meta)))
    net = mlp(seed=3)
    before = weights(net)
    with pytest.raises(ValueError, match=match) as exc:
        load_checkpoint(path, net)
    assert str(path) in str(exc.value)
    assert_same_weights(weights(net), before)


def test_cli_keeps_an_existing_checkpoint_aside(tmp_path, capsys):
    args = argparse.Namespace(out=str(tmp_path), resume=False)
    ckpt = tmp_path / "mlp.npz"
    for text in (b"first", b"second", b"third"):
        ckpt.write_bytes(text)
        path, resume = _checkpoint_args(args, "mlp")
        assert path == str(ckpt) and resume is None and not ckpt.exists()
    assert (tmp_path / "mlp.previous.npz").read_bytes() == b"first"
    assert (tmp_path / "mlp.previous-2.npz").read_bytes() == b"second"
    assert (tmp_path / "mlp.previous-3.npz").read_bytes() == b"third"
    out = capsys.readouterr().out
    assert "--resume was not given" in out and "mlp.previous.npz" in out
    ckpt.write_bytes(b"fourth")
    args.resume = True
    assert _checkpoint_args(args, "mlp") == (str(ckpt), str(ckpt))
    assert ckpt.read_bytes() == b"fourth"


@pytest.mark.parametrize("argv", [["train", "mnist", "--epochs", "-1"],
                                  ["train", "mnist", "--epochs", "0"],
                                  ["train", "mnist", "--batch-size", "0"],
                                  ["train", "mnist", "--lr", "nan"],
                                  ["demo", "--epochs", "-3"],
                                  ["compare-activations", "--epochs", "-1"]])
def test_cli_refuses_non_positive_counts(argv, capsys):
    from fastnn.cli import main
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "must be a" in capsys.readouterr().err


def test_fit_refuses_negative_epochs():
    X = np.zeros((4, 20), np.float32)
    with pytest.raises(ValueError, match="epochs must be an integer >= 0, got -1"):
        nn.fit(mlp(), nn.ClassNLLCriterion(), X, np.zeros(4, int), epochs=-1, log=None,
               progress=False)
