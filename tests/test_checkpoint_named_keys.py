"""Checkpoints key arrays by state_dict name (version 2); version 1 files, keyed by leaf
position, still load."""
import json

import numpy as np
import pytest

import fastnn as nn
from fastnn.optim import SGD
from fastnn.train import checkpoint as ckpt
from fastnn.train import load_checkpoint, save_checkpoint


def net_with(act=nn.ReLU, p=0.2, seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNormalization(0.9), act(), nn.Dropout(p),
                         nn.Linear(8, 3), nn.LogSoftMax())


def trained(seed=0):
    net = net_with(seed=seed)
    opt = SGD(net, learning_rate=0.1, momentum=0.9)
    x = np.random.default_rng(seed).standard_normal((10, 6)).astype(np.float32)
    y = np.arange(10) % 3
    crit = nn.ClassNLLCriterion()
    for _ in range(2):
        net.zeroGradParameters()
        out = net.forward(x)
        crit.forward(out, y)
        net.backward(x, crit.backward(out, y))
        opt.step()
    return net, opt


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_file_holds_state_dict_names(tmp_path):
    net, opt = trained()
    path = save_checkpoint(tmp_path / "c.npz", net, opt)
    with np.load(path) as f:
        files = set(f.files)
        meta = json.loads(str(f["__meta__"]))
    assert meta["version"] == 2
    assert {"model/" + k for k in net.state_dict()} <= files
    assert not any(k.startswith(("param/", "state/")) for k in files)


def test_layers_without_parameters_may_change(tmp_path):
    net, opt = trained()
    path = save_checkpoint(tmp_path / "c.npz", net, opt)
    other = net_with(act=nn.Tanh, p=0.5, seed=7)  # positional loading refused this
    load_checkpoint(path, other, SGD(other, learning_rate=1.0))
    assert_same_state(other, net)


def _save_version_1(path, net, opt):
    """A checkpoint as version 1 wrote it: arrays keyed by leaf position."""
    out = {}
    for i, m, kind, name in ckpt.module_arrays(net):
        a = m.__dict__.get(name)
        if a is not None:
            out[f"{kind}/{i}/{name}"] = np.asarray(a)
    opt_meta, opt_arrays = ckpt._optimizer_payload(opt)
    out.update(opt_arrays)
    modules = [[type(m).__name__, {n: list(np.shape(m.__dict__[n])) for n in m._param_names}]
               for m in net.leaves()]
    meta = {"format": ckpt.CHECKPOINT_FORMAT, "version": 1, "epoch": 3, "modules": modules,
            "optimizer": opt_meta, "rng": {}, "extra": {}}
    out["__meta__"] = np.array(json.dumps(meta))
    np.savez(path, **out)


def test_version_1_positional_checkpoints_still_load(tmp_path):
    net, opt = trained()
    path = tmp_path / "v1.npz"
    _save_version_1(path, net, opt)
    fresh = net_with(seed=5)
    fresh_opt = SGD(fresh, learning_rate=1.0)
    assert load_checkpoint(path, fresh, fresh_opt)["epoch"] == 3
    assert_same_state(fresh, net)
    assert fresh_opt.config == opt.config
    with pytest.raises(ValueError, match="module #2 is ReLU in the checkpoint but Tanh"):
        load_checkpoint(path, net_with(act=nn.Tanh))


def test_mismatch_lists_keys_and_modules_and_loads_nothing(tmp_path):
    net, opt = trained()
    path = save_checkpoint(tmp_path / "c.npz", net)
    nn.manual_seed(1)
    other = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.LogSoftMax())
    before = other.modules[0].W.copy()
    with pytest.raises(nn.StateDictError) as info:
        load_checkpoint(path, other)
    msg = str(info.value)
    assert str(path) in msg
    assert "missing keys: 2.weight, 2.bias" in msg
    assert "unexpected keys: 1.running_mean, 1.running_var, 4.weight, 4.bias" in msg
    assert "BatchNormalization" in msg and "the network's modules" in msg
    np.testing.assert_array_equal(other.modules[0].W, before)
