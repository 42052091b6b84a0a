"""kernels/cpu/activation.py against the NumPy references, float32 and float64."""
import numpy as np
import pytest

from fastnn.kernels.cpu import activation as K
from reference import activation_backward_ref, activation_ref

CODES = {"relu": K.RELU, "leaky_relu": K.LEAKY_RELU, "elu": K.ELU, "softplus": K.SOFTPLUS,
         "sigmoid": K.SIGMOID, "tanh": K.TANH, "none": K.NONE}
ALPHA = {"leaky_relu": 0.07, "elu": 1.3}
TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def test_codes_match_developer_doc():
    assert (K.NONE, K.RELU, K.LEAKY_RELU, K.ELU, K.SOFTPLUS, K.SIGMOID, K.TANH) == tuple(range(7))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CODES))
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 3), (2, 3, 4, 5)])
def test_forward_backward(name, dtype, shape):
    rng = np.random.default_rng(len(name) * 100 + len(shape) * 10 + shape[-1])
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    x.flat[0] = 0.0  # the kink: every activation picks the z <= 0 branch here
    alpha = ALPHA.get(name, 0.0)
    out = np.full(shape, np.nan, dtype)
    K.activation_forward(x, out, CODES[name], alpha)
    np.testing.assert_allclose(out, activation_ref(name, x, alpha), **TOL[dtype])
    g = rng.standard_normal(shape).astype(dtype)
    gi = np.full(shape, np.nan, dtype)
    K.activation_backward(x, g, gi, out, CODES[name], alpha)
    ref = activation_backward_ref(name, x, g, alpha)
    if name == "elu":
        ref.flat[0] = g.flat[0] * alpha  # left derivative at 0
    np.testing.assert_allclose(gi, ref, **TOL[dtype])


@pytest.mark.parametrize("name", list(CODES))
def test_extreme_inputs_stay_finite(name):
    x = np.array([[-1000.0, -50.0, 50.0, 1000.0]])
    out = np.empty_like(x)
    K.activation_forward(x, out, CODES[name], ALPHA.get(name, 0.0))
    assert np.all(np.isfinite(out)), out
    gi = np.empty_like(x)
    K.activation_backward(x, np.ones_like(x), gi, out, CODES[name], ALPHA.get(name, 0.0))
    assert np.all(np.isfinite(gi)), gi
    np.testing.assert_allclose(out, activation_ref(name, x, ALPHA.get(name, 0.0)), rtol=1e-12)


@pytest.mark.parametrize("name", list(CODES))
def test_nan_propagates(name):
    x = np.array([[np.nan, 1.0]], np.float32)
    out = np.empty_like(x)
    K.activation_forward(x, out, CODES[name], ALPHA.get(name, 0.0))
    assert np.isnan(out[0, 0]) and np.isfinite(out[0, 1])
