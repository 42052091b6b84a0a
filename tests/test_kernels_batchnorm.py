"""kernels/cpu/batchnorm.py on (N, C, S) views: 2-D input is S = 1, NCHW is S = H*W."""
import numpy as np
import pytest

from fastnn.kernels.cpu import batchnorm as K
from reference import (batchnorm_eval_backward_ref, batchnorm_eval_forward_ref,
                       batchnorm_train_backward_ref, batchnorm_train_forward_ref)

TOL = {np.float32: dict(rtol=5e-5, atol=5e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}
SHAPES = [(2, 1), (5, 3), (17, 8), (1, 3, 2, 2), (4, 2, 3, 5), (2, 5, 1, 1)]
EPS = 1e-3


def as3(x):
    return x.reshape(x.shape[0], x.shape[1], -1)


def data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed + sum(shape) * 7 + len(shape))
    x = (rng.standard_normal(shape) * 2 + 1.5).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    mm = rng.standard_normal(c).astype(dtype)
    mv = rng.random(c).astype(dtype) + 0.5
    return x, g, mm, mv


@pytest.mark.parametrize("center_only", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_train_forward_backward(shape, dtype, center_only):
    x, g, mm, mv = data(shape, dtype)
    c = shape[1]
    alpha = 0.9
    out = np.full(shape, np.nan, dtype)
    mean = np.full(c, np.nan, dtype)
    invstd = np.full(c, np.nan, dtype)
    mm_k, mv_k = mm.copy(), mv.copy()
    K.batchnorm_forward_train(as3(x), as3(out), mean, invstd, mm_k, mv_k, alpha, EPS, center_only)
    ref_out, mu, var, new_mm, new_mv = batchnorm_train_forward_ref(x, mm, mv, alpha, EPS,
                                                                   center_only)
    np.testing.assert_allclose(out, ref_out, **TOL[dtype])
    np.testing.assert_allclose(mean, mu, **TOL[dtype])
    np.testing.assert_allclose(mm_k, new_mm, **TOL[dtype])
    np.testing.assert_allclose(mv_k, new_mv, **TOL[dtype])
    if not center_only:
        np.testing.assert_allclose(invstd, 1 / np.sqrt(var + EPS), **TOL[dtype])

    gi = np.full(shape, np.nan, dtype)
    K.batchnorm_backward_train(as3(g), as3(gi), as3(out), invstd, center_only)
    np.testing.assert_allclose(gi, batchnorm_train_backward_ref(x, g, EPS, center_only),
                               **TOL[dtype])


@pytest.mark.parametrize("center_only", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES + [(1, 4)])
def test_eval_forward_backward(shape, dtype, center_only):
    x, g, mm, mv = data(shape, dtype, seed=1)
    out = np.full(shape, np.nan, dtype)
    K.batchnorm_forward_eval(as3(x), as3(out), mm, mv, EPS, center_only)
    np.testing.assert_allclose(out, batchnorm_eval_forward_ref(x, mm, mv, EPS, center_only),
                               **TOL[dtype])
    gi = np.full(shape, np.nan, dtype)
    K.batchnorm_backward_eval(as3(g), as3(gi), mv, EPS, center_only)
    np.testing.assert_allclose(gi, batchnorm_eval_backward_ref(g, mv, EPS, center_only),
                               **TOL[dtype])


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_moving_statistics_extremes(alpha):
    x, _, mm, mv = data((6, 3), np.float64)
    c = 3
    mm_k, mv_k = mm.copy(), mv.copy()
    K.batchnorm_forward_train(as3(x), as3(np.empty_like(x)), np.empty(c), np.empty(c),
                              mm_k, mv_k, alpha, EPS, False)
    if alpha == 1.0:  # moving statistics frozen
        np.testing.assert_array_equal(mm_k, mm)
        np.testing.assert_array_equal(mv_k, mv)
    else:  # replaced by this batch's (biased) statistics
        np.testing.assert_allclose(mm_k, x.mean(0), rtol=1e-12)
        np.testing.assert_allclose(mv_k, x.var(0), rtol=1e-12)
