"""fastnn/activations.py at the module level: forward/backward against the references,
float32/float64, any input ndim for the elementwise ones, rows for SoftMax/LogSoftMax."""
import numpy as np
import pytest

from fastnn import ELU, LeakyReLU, LogSoftMax, ReLU, Sigmoid, SoftMax, SoftPlus, Tanh
from reference import (activation_backward_ref, activation_ref, log_softmax_backward_ref,
                       log_softmax_ref, softmax_backward_ref, softmax_ref)

ELEMENTWISE = [("relu", ReLU, 0.0), ("leaky_relu", lambda: LeakyReLU(0.2), 0.2),
               ("leaky_relu", LeakyReLU, 0.03), ("elu", ELU, 1.0), ("elu", lambda: ELU(0.3), 0.3),
               ("softplus", SoftPlus, 0.0), ("sigmoid", Sigmoid, 0.0), ("tanh", Tanh, 0.0)]


def tol(dtype):
    return dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,make,alpha", ELEMENTWISE)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (6, 5), (2, 3, 4, 4)])
def test_elementwise(name, make, alpha, dtype, shape):
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    m = make().type(dtype)
    out = m.forward(x)
    assert out.shape == shape and out.dtype == dtype and m.output is out
    np.testing.assert_allclose(out, activation_ref(name, x, alpha), **tol(dtype))
    gi = m.backward(x, g)
    np.testing.assert_allclose(gi, activation_backward_ref(name, x, g, alpha), **tol(dtype))


def test_defaults_and_repr():
    assert LeakyReLU().slope == 0.03 and ELU().alpha == 1.0
    assert repr(LeakyReLU(0.1)) == "LeakyReLU(slope=0.1)" and repr(ReLU()) == "ReLU"
    assert repr(ELU(0.5)) == "ELU(alpha=0.5)"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (7, 3), (4, 11)])
def test_softmax_log_softmax(dtype, shape):
    rng = np.random.default_rng(shape[0] * 10 + shape[1])
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    sm, lsm = SoftMax().type(dtype), LogSoftMax().type(dtype)
    t = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(sm.forward(x), softmax_ref(x), **t)
    np.testing.assert_allclose(sm.output.sum(1), 1, **t)
    np.testing.assert_allclose(sm.backward(x, g), softmax_backward_ref(x, g), **t)
    np.testing.assert_allclose(lsm.forward(x), log_softmax_ref(x), **t)
    np.testing.assert_allclose(lsm.backward(x, g), log_softmax_backward_ref(x, g), **t)


def test_softmax_extreme_scores():
    x = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4 + 1, -1e4]])
    y = SoftMax().double().forward(x)
    ly = LogSoftMax().double().forward(x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ly))
    np.testing.assert_allclose(ly, log_softmax_ref(x), rtol=1e-12)


@pytest.mark.parametrize("make", [ReLU, Sigmoid, Tanh, SoftPlus, ELU, LeakyReLU])
def test_backward_uses_the_forward_input(make):
    """Two forwards on different inputs then backward on the second: no stale state."""
    a, b = np.linspace(-3, 3, 12).reshape(3, 4), np.linspace(2, -4, 12).reshape(3, 4)
    m = make().double()
    m.forward(a)
    m.forward(b)
    ref = make().double()
    ref.forward(b)
    g = np.ones((3, 4))
    np.testing.assert_array_equal(m.backward(b, g), ref.backward(b, g))


def test_fusion_hooks():
    from fastnn.kernels import codes
    assert ReLU().fusion_spec() == (codes.RELU, 0.0)
    assert LeakyReLU(0.25).fusion_spec() == (codes.LEAKY_RELU, 0.25)
    assert ELU(0.5).fusion_spec() == (codes.ELU, 0.5)
    act = ReLU()
    out = act.fused_output((2, 3))
    assert out.shape == (2, 3) and act.fused_output((2, 3)) is out  # reused
    with pytest.raises(RuntimeError, match="ReLU: backward called before forward"):
        act.fused_backward_buffers(np.zeros((2, 4)), np.zeros((2, 3)), (2, 3))
    act.forward(np.zeros((2, 3)))
    g, gi = act.fused_backward_buffers(np.zeros((2, 4)), np.ones((2, 3)), (2, 3))
    assert g.dtype == np.float32 and gi.shape == (2, 3)
    with pytest.raises(ValueError, match="gradOutput has shape"):
        act.fused_backward_buffers(np.zeros((2, 4)), np.ones((2, 5)), (2, 3))
