"""kernels/cpu/pool.py against the direct-loop NumPy references (tests/reference.py)."""
import numpy as np
import pytest

from fastnn.kernels.cpu import pool as K
from reference import (avgpool2d_backward_reference, avgpool2d_forward_reference,
                       maxpool2d_backward_reference, maxpool2d_forward_reference)

# (N, C, H, W, k, stride)
GEOMETRIES = [
    (2, 3, 8, 8, 2, 2),
    (2, 3, 7, 9, 2, 2),    # odd sizes: the last row/column is dropped (floor)
    (2, 2, 7, 8, 3, 2),    # overlapping windows
    (1, 2, 5, 5, 3, 1),    # heavy overlap
    (2, 1, 9, 7, 3, 3),
    (1, 1, 3, 3, 3, 3),    # one window
    (3, 2, 4, 6, 1, 1),    # identity
]


def run(x, k, s, index_dtype=np.int64):
    n, c, h, w = x.shape
    shape = (n, c, (h - k) // s + 1, (w - k) // s + 1)
    out = np.full(shape, -7.0, x.dtype)
    idx = np.full(shape, -1, index_dtype)
    K.maxpool2d_forward(x, out, idx, k, s)
    return out, idx


@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_maxpool_matches_reference(geom, dtype, index_dtype):
    n, c, h, w, k, s = geom
    rng = np.random.default_rng(sum(geom))
    x = np.round(2 * rng.standard_normal((n, c, h, w))).astype(dtype)  # many ties
    out, idx = run(x, k, s, index_dtype)
    ref_out, ref_idx = maxpool2d_forward_reference(x, k, s)
    np.testing.assert_array_equal(out, ref_out.astype(dtype))
    np.testing.assert_array_equal(idx, ref_idx)

    g = rng.standard_normal(out.shape).astype(dtype)
    gi = np.full(x.shape, np.nan, dtype)  # must be zeroed by the kernel
    K.maxpool2d_backward(g, gi, idx, k, s)
    np.testing.assert_allclose(gi, maxpool2d_backward_reference(g, ref_idx, x.shape),
                               rtol=1e-6, atol=1e-6)


def test_ties_go_to_first_element():
    x = np.ones((1, 1, 2, 2))
    out, idx = run(x, 2, 2)
    assert idx[0, 0, 0, 0] == 0 and out[0, 0, 0, 0] == 1


def test_nan_propagates_and_gets_the_gradient():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan           # window (0, 0): NaN beats the larger 5
    x[0, 0, 2, 3] = np.nan           # window (1, 1): two NaNs, the last one wins
    x[0, 0, 3, 2] = np.nan
    out, idx = run(x, 2, 2)
    ref_out, ref_idx = maxpool2d_forward_reference(x, 2, 2)
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out[0, 0, 1, 1])
    assert out[0, 0, 0, 1] == 7 and out[0, 0, 1, 0] == 13
    np.testing.assert_array_equal(idx, ref_idx)
    assert idx[0, 0, 0, 0] == 0 and idx[0, 0, 1, 1] == 14
    gi = np.empty_like(x)
    K.maxpool2d_backward(np.ones_like(out), gi, idx, 2, 2)
    assert gi[0, 0, 0, 0] == 1 and gi[0, 0, 3, 2] == 1 and gi.sum() == 4


def test_all_minus_inf_window():
    x = np.full((1, 1, 2, 2), -np.inf)
    out, idx = run(x, 2, 2)
    assert out[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == 0


def test_overlapping_windows_accumulate():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0               # the centre is the max of all four 2x2 windows
    out, idx = run(x, 2, 1)
    assert (idx == 4).all()
    gi = np.empty_like(x)
    K.maxpool2d_backward(np.full(out.shape, 0.5), gi, idx, 2, 1)
    assert gi[0, 0, 1, 1] == 2.0 and gi.sum() == 2.0


@pytest.mark.parametrize("k, s", [(2, 2), (3, 2)])
def test_random_nans_match_reference(k, s):
    """The unrolled 2x2 path and the general loop follow the same NaN rule."""
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal((2, 3, 9, 8))).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    out, idx = run(x, k, s)
    ref_out, ref_idx = maxpool2d_forward_reference(x, k, s)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)


# ---- average pooling ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_avgpool_matches_reference(geom, dtype):
    n, c, h, w, k, s = geom
    rng = np.random.default_rng(sum(geom))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    shape = (n, c, (h - k) // s + 1, (w - k) // s + 1)
    out = np.full(shape, np.nan, dtype)
    K.avgpool2d_forward(x, out, k, s)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(out, avgpool2d_forward_reference(x, k, s), **tol)
    g = rng.standard_normal(shape).astype(dtype)
    gi = np.full(x.shape, np.nan, dtype)  # must be zeroed by the kernel
    K.avgpool2d_backward(g, gi, k, s)
    np.testing.assert_allclose(gi, avgpool2d_backward_reference(g, x.shape, k, s), **tol)


def test_avgpool_nan_stays_in_its_windows():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan
    out = np.empty((1, 1, 2, 2), np.float32)
    K.avgpool2d_forward(x, out, 2, 2)
    assert np.isnan(out[0, 0, 0, 0]) and np.isfinite(out[0, 0].ravel()[1:]).all()
    assert out[0, 0, 1, 1] == (10 + 11 + 14 + 15) / 4
