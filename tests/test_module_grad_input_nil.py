"""Torch7's ``module.gradInput = nil`` idiom (fastnn/module.py, layers.py, conv.py):
``gradInput = None`` skips the input gradient, parameter gradients are unchanged, and
Sequential passes None through."""
import numpy as np
import pytest

import fastnn as nn
from fastnn.kernels.cpu import affine


def _mlp():
    nn.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), nn.LogSoftMax())


def _cnn():
    nn.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 3),
                         nn.LogSoftMax())


def _grads(build, x, skip):
    net = build()
    if skip:
        net.modules[0].gradInput = None
    crit = nn.ClassNLLCriterion()
    y = np.arange(len(x)) % 3
    net.zeroGradParameters()
    out = net.forward(x)
    crit.forward(out, y)
    gi = net.backward(x, crit.backward(out, y))
    return gi, [np.array(g) for g in sum(net.getGradParameters(), [])]


@pytest.mark.parametrize("build, shape", [(_mlp, (4, 6)), (_cnn, (4, 2, 4, 4))])
def test_first_module_nil_skips_input_gradient_keeps_parameter_gradients(build, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    gi_full, full = _grads(build, x, skip=False)
    gi_nil, nil = _grads(build, x, skip=True)
    assert gi_full is not None and gi_nil is None
    for a, b in zip(full, nil):
        np.testing.assert_array_equal(a, b)


def test_linear_skips_the_gemm(monkeypatch):
    calls = []
    for name in ("affine_backward_input", "affine_activation_backward"):
        real = getattr(affine, name)
        monkeypatch.setattr(affine, name, lambda *a, _real=real, _name=name: (
            calls.append((_name, a[-1] if _name.endswith("activation_backward") else True)),
            _real(*a))[1])
    x = np.ones((2, 6), np.float32)
    for net in (nn.Sequential(nn.Linear(6, 4), nn.ReLU()), nn.Sequential(nn.Linear(6, 4))):
        net.modules[0].gradInput = None
        net.forward(x)
        assert net.backward(x, np.ones((2, 4), np.float32)) is None
    # fused: the kernel is told to skip gradInput; unfused: affine_backward_input never runs
    assert calls == [("affine_activation_backward", False)]


def test_generic_module_and_update_grad_input_skip():
    relu = nn.ReLU()
    relu.gradInput = None
    x = np.array([[1.0, -1.0]], np.float32)
    relu.forward(x)
    assert relu.backward(x, np.ones_like(x)) is None
    lin = nn.Linear(2, 2)
    lin.gradInput = None
    lin.forward(x)
    assert lin.updateGradInput(x, np.ones_like(x)) is None
    net = nn.Sequential(lin, nn.Tanh())
    net.forward(x)
    assert net.updateGradInput(x, np.ones_like(x)) is None


def test_gradient_turned_on_again():
    lin = nn.Linear(3, 2)
    lin.gradInput = None
    assert lin.skips_grad_input
    lin.skips_grad_input = False
    x = np.ones((1, 3), np.float32)
    lin.forward(x)
    assert lin.backward(x, np.ones((1, 2), np.float32)).shape == (1, 3)


def test_nil_in_the_middle_names_the_module_that_would_get_nothing():
    net = _mlp()
    net.modules[2].gradInput = None
    x = np.ones((2, 6), np.float32)
    net.forward(x)
    with pytest.raises(ValueError, match=r"module \(2\) Linear 5 -> 3 has gradInput = None.*"
                                         r"Linear 6 -> 5"):
        net.backward(x, np.ones((2, 3), np.float32))
