"""kernels/cpu/dropout.py: mask values, keep rate, backward, seeding through fastnn.manual_seed."""
import numpy as np
import pytest

import fastnn
from fastnn.kernels.cpu import dropout as K
from reference import dropout_backward_ref, dropout_forward_ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 3, 4, 5)])
def test_forward_backward_with_mask(dtype, p, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    out = np.full(shape, np.nan, dtype)
    mask = np.full(shape, np.nan, dtype)
    K.dropout_forward(x, out, mask, p)
    scale = dtype(1.0 / (1.0 - p))
    assert np.all((mask == 0) | (mask == scale)), np.unique(mask)
    np.testing.assert_allclose(out, dropout_forward_ref(x, mask), rtol=1e-6)
    g = rng.standard_normal(shape).astype(dtype)
    gi = np.full(shape, np.nan, dtype)
    K.dropout_backward(g, gi, mask)
    np.testing.assert_array_equal(gi, dropout_backward_ref(g, mask).astype(dtype))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_keep_rate_is_one_minus_p(p):
    n = 200_000
    x = np.ones(n, np.float32)
    out, mask = np.empty_like(x), np.empty_like(x)
    K.dropout_forward(x, out, mask, p)
    keep = np.mean(mask != 0)
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(keep - (1 - p)) < 6 * sigma, (keep, 1 - p)
    # E[out] = x: inverted dropout keeps the expectation
    assert abs(out.mean() - 1.0) < 6 * sigma / (1 - p)


def test_p_zero_keeps_everything():
    x = np.arange(10, dtype=np.float64)
    out, mask = np.empty_like(x), np.empty_like(x)
    K.dropout_forward(x, out, mask, 0.0)
    assert np.all(mask == 1.0) and np.array_equal(out, x)


def masks(seed, n=1000):
    fastnn.manual_seed(seed)
    x = np.ones(n)
    out, mask = np.empty_like(x), np.empty_like(x)
    K.dropout_forward(x, out, mask, 0.5)
    m1 = mask.copy()
    K.dropout_forward(x, out, mask, 0.5)
    return m1, mask.copy()


def test_manual_seed_reproduces_masks():
    a1, a2 = masks(123)
    b1, b2 = masks(123)
    c1, _ = masks(124)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # consecutive draws differ
    assert not np.array_equal(a1, c1)  # another seed differs


def test_kernel_seed_function_reproduces_masks():
    def draw():
        x = np.ones(500)
        out, mask = np.empty_like(x), np.empty_like(x)
        K.dropout_forward(x, out, mask, 0.3)
        return mask

    K.seed(7)
    a = draw()
    K.seed(7)
    np.testing.assert_array_equal(a, draw())
