"""kernels/cpu/affine.py against the NumPy references: plain and fused with each activation."""
import numpy as np
import pytest

from fastnn.kernels.cpu import activation as A
from fastnn.kernels.cpu import affine as K
from reference import (activation_backward_ref, activation_ref, affine_forward_ref,
                       affine_grad_bias_ref, affine_grad_input_ref, affine_grad_weight_ref)

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 4), (5, 4, 1), (8, 13, 9), (33, 17, 11)]  # (N, n_in, n_out)
CODES = {"none": A.NONE, "relu": A.RELU, "leaky_relu": A.LEAKY_RELU, "elu": A.ELU,
         "softplus": A.SOFTPLUS, "sigmoid": A.SIGMOID, "tanh": A.TANH}
ALPHA = {"leaky_relu": 0.1, "elu": 0.7}


def data(shape, dtype, seed=0):
    n, n_in, n_out = shape
    rng = np.random.default_rng(seed + n * 10000 + n_in * 100 + n_out)
    x = rng.standard_normal((n, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    g = rng.standard_normal((n, n_out)).astype(dtype)
    return x, W, b, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_affine_forward_backward(dtype, shape):
    x, W, b, g = data(shape, dtype)
    n, n_in, n_out = shape
    out = np.full((n, n_out), np.nan, dtype)
    K.affine_forward(x, out, W, b)
    np.testing.assert_allclose(out, affine_forward_ref(x, W, b), **TOL[dtype])

    gi = np.full((n, n_in), np.nan, dtype)
    K.affine_backward_input(g, gi, W)
    np.testing.assert_allclose(gi, affine_grad_input_ref(g, W), **TOL[dtype])

    gW = np.full((n_out, n_in), np.nan, dtype)
    gb = np.full(n_out, np.nan, dtype)
    K.affine_backward_params(x, g, gW, gb, False)  # overwrite: NaN garbage must vanish
    np.testing.assert_allclose(gW, affine_grad_weight_ref(x, g), **TOL[dtype])
    np.testing.assert_allclose(gb, affine_grad_bias_ref(g), **TOL[dtype])

    K.affine_backward_params(x, g, gW, gb, True)  # accumulate
    np.testing.assert_allclose(gW, 2 * affine_grad_weight_ref(x, g), **TOL[dtype])
    np.testing.assert_allclose(gb, 2 * affine_grad_bias_ref(g), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CODES))
@pytest.mark.parametrize("shape", [(1, 7, 3), (5, 4, 1), (8, 13, 9)])
def test_fused_affine_activation(dtype, name, shape):
    x, W, b, g = data(shape, dtype, seed=1)
    n, n_in, n_out = shape
    alpha = ALPHA.get(name, 0.0)
    pre = np.full((n, n_out), np.nan, dtype)
    out = np.full((n, n_out), np.nan, dtype)
    K.affine_activation_forward(x, pre, out, W, b, CODES[name], alpha)
    z = affine_forward_ref(x, W, b)
    np.testing.assert_allclose(pre, z, **TOL[dtype])
    np.testing.assert_allclose(out, activation_ref(name, z, alpha), **TOL[dtype])

    gi = np.full((n, n_in), np.nan, dtype)
    delta = np.full((n, n_out), np.nan, dtype)
    gW = np.full((n_out, n_in), np.nan, dtype)
    gb = np.full(n_out, np.nan, dtype)
    K.affine_activation_backward(x, g, gi, delta, gW, gb, pre, out, W, CODES[name], alpha,
                                 False, True)
    d = activation_backward_ref(name, z, g, alpha)
    np.testing.assert_allclose(delta, d, **TOL[dtype])
    np.testing.assert_allclose(gi, affine_grad_input_ref(d, W), **TOL[dtype])
    np.testing.assert_allclose(gW, affine_grad_weight_ref(x, d), **TOL[dtype])
    np.testing.assert_allclose(gb, affine_grad_bias_ref(d), **TOL[dtype])

    K.affine_activation_backward(x, g, gi, delta, gW, gb, pre, out, W, CODES[name], alpha,
                                 True, True)
    np.testing.assert_allclose(gW, 2 * affine_grad_weight_ref(x, d), **TOL[dtype])
    np.testing.assert_allclose(gb, 2 * affine_grad_bias_ref(d), **TOL[dtype])


def test_fused_backward_can_skip_grad_input():
    x, W, b, g = data((4, 3, 2), np.float64)
    pre, out = np.empty((4, 2)), np.empty((4, 2))
    K.affine_activation_forward(x, pre, out, W, b, A.TANH, 0.0)
    gi = np.full((4, 3), 123.0)
    K.affine_activation_backward(x, g, gi, np.empty((4, 2)), np.empty((2, 3)), np.empty(2),
                                 pre, out, W, A.TANH, 0.0, False, False)
    assert np.all(gi == 123.0)


def test_nan_input_propagates():
    x, W, b, _ = data((3, 4, 5), np.float32)
    x[1, 2] = np.nan
    out = np.empty((3, 5), np.float32)
    K.affine_forward(x, out, W, b)
    assert np.all(np.isnan(out[1])) and np.all(np.isfinite(out[[0, 2]]))
