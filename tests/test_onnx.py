"""fastnn.onnx.export: onnxruntime runs the exported file and agrees with fastnn's
evaluate-mode output within 1e-5 (float32)."""
import sys
from functools import partial

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastnn as nn  # noqa: E402
from conftest import rand as _normal  # noqa: E402
import fastnn.onnx as fonnx  # noqa: E402

from fastnn.models import cnn, mlp  # noqa: E402  (the nets `fastnn train mnist` trains)

TOL = dict(rtol=1e-5, atol=1e-5)

rand = partial(_normal, dtype=np.float32)  # these tests run float32 nets


def train_statistics(net, shape, steps=3):
    """A few training forwards: moving statistics that are not the initial 0 and 1."""
    net.train()
    for s in range(steps):
        net.forward(rand(*shape, seed=10 + s) * 2 + 0.5)


def run_onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def check(net, x, tmp_path, batch=None):
    path = fonnx.export(net, tmp_path / "net.onnx", x)
    x_run = x if batch is None else rand(batch, *x.shape[1:], seed=99)
    training = net.training
    net.evaluate()
    expected = net.forward(x_run).copy()
    net.train() if training else net.evaluate()
    np.testing.assert_allclose(run_onnx(path, x_run), expected, **TOL)
    return path


def test_default_mnist_mlp(tmp_path):
    nn.manual_seed(0)
    net = mlp()
    path = check(net, rand(4, 784), tmp_path, batch=7)  # any batch size runs
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node] == \
        ["Gemm", "Relu", "Identity", "Gemm", "Relu", "Identity", "Gemm", "LogSoftmax"]
    assert model.opset_import[0].version == fonnx.DEFAULT_OPSET
    names = [t.name for t in model.graph.initializer]
    assert names == list(net.state_dict())  # weights under their state_dict names


def test_cnn(tmp_path):
    nn.manual_seed(1)
    net = cnn()
    train_statistics(net, (8, 1, 28, 28))
    check(net, rand(3, 1, 28, 28), tmp_path, batch=5)


def bn_every_activation_net():
    nn.manual_seed(2)
    return nn.Sequential(
        nn.Linear(10, 16), nn.BatchNormalization(0.5), nn.ChannelwiseScaling(16), nn.ReLU(),
        nn.Linear(16, 16), nn.BatchNormalization(0.3, eps=1e-5), nn.LeakyReLU(0.1),
        nn.Sequential(nn.Linear(16, 16), nn.ELU(0.8)), nn.BatchMeanSubtraction(0.2),
        nn.Linear(16, 16), nn.SoftPlus(), nn.ChannelwiseScaling(16),
        nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 16), nn.Tanh(), nn.Dropout(0.4),
        nn.Linear(16, 8), nn.SoftMax(), nn.Linear(8, 4), nn.LogSoftMax())


def test_batchnorm_and_every_activation(tmp_path):
    net = bn_every_activation_net()
    net.modules[2].gamma = np.linspace(0.5, 1.5, 16)
    net.modules[2].beta = np.linspace(-0.3, 0.3, 16)
    net.modules[11].gamma = np.linspace(1.2, 0.7, 16)
    train_statistics(net, (32, 10))
    check(net, rand(6, 10), tmp_path)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "net.onnx")).graph.node]
    for op in ("BatchNormalization", "Relu", "LeakyRelu", "Elu", "Sub", "Softplus", "Mul",
               "Sigmoid", "Tanh", "Softmax", "LogSoftmax"):
        assert op in ops, op


def test_conv_batchnorm_with_scaling_on_4d_input(tmp_path):
    nn.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.BatchNormalization(0.5),
                        nn.ChannelwiseScaling(3), nn.BatchMeanSubtraction(0.5),
                        nn.ChannelwiseScaling(3), nn.MaxPool2d(2, stride=1), nn.Flatten())
    net.modules[4].gamma = np.array([0.5, 2.0, -1.0])
    train_statistics(net, (4, 2, 9, 9))
    check(net, rand(2, 2, 9, 9), tmp_path)


def test_export_is_eval_mode_and_restores_modes(tmp_path):
    net = bn_every_activation_net()
    train_statistics(net, (32, 10))
    net.modules[4].evaluate()
    modes = [m.training for m in net.leaves()]
    before = net.modules[1].moving_mean.copy()
    fonnx.export(net, tmp_path / "net.onnx", rand(5, 10))
    assert [m.training for m in net.leaves()] == modes and net.training
    np.testing.assert_array_equal(net.modules[1].moving_mean, before)  # no training forward


def test_unsupported_layer_and_opset_are_named(tmp_path):
    class Custom(nn.Module):
        pass
    with pytest.raises(nn.UnsupportedLayerError, match="Custom"):
        fonnx.export(nn.Sequential(nn.Linear(2, 2), Custom()), tmp_path / "x.onnx",
                     rand(1, 2))
    with pytest.raises(ValueError, match="opset"):
        fonnx.export(nn.Linear(2, 2), tmp_path / "x.onnx", rand(1, 2), opset=9)


def test_opset_choice_is_written(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.SoftMax())
    path = fonnx.export(net, tmp_path / "x.onnx", rand(2, 3), opset=13)
    assert onnx.load(path).opset_import[0].version == 13
    np.testing.assert_allclose(run_onnx(path, rand(2, 3)), net.evaluate().forward(rand(2, 3)),
                               **TOL)


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"\[onnx\]"):
        fonnx.export(nn.Linear(2, 2), tmp_path / "x.onnx", rand(1, 2))
