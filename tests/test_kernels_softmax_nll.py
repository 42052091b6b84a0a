"""kernels/cpu/softmax_nll.py: softmax/log-softmax, fused cross-entropy, NLL on
log-probabilities and probabilities, clipped NLL, MSE, and the score classifier."""
import numpy as np
import pytest

from fastnn.kernels.cpu import softmax_nll as K
from reference import (class_nll_logprob_ref, class_nll_prob_ref, clipped_nll_ref,
                       cross_entropy_ref, log_softmax_backward_ref, log_softmax_ref, mse_ref,
                       one_hot_ref, softmax_backward_ref, softmax_ref)

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-13)}
SHAPES = [(1, 1), (1, 10), (5, 3), (7, 2), (16, 11)]
DTYPES = [np.float32, np.float64]


def make(shape, dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed + 100 * shape[0] + shape[1])
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    g = rng.standard_normal(shape).astype(dtype)
    return x, labels, g


def loss_buf(dtype):
    return np.full(1, np.nan, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_and_log_softmax(dtype, shape):
    x, _, g = make(shape, dtype)
    y = np.full(shape, np.nan, dtype)
    K.softmax_forward(x, y)
    np.testing.assert_allclose(y, softmax_ref(x), **TOL[dtype])
    gi = np.full(shape, np.nan, dtype)
    K.softmax_backward(g, gi, y)
    np.testing.assert_allclose(gi, softmax_backward_ref(x, g), **TOL[dtype])

    ly = np.full(shape, np.nan, dtype)
    K.log_softmax_forward(x, ly)
    np.testing.assert_allclose(ly, log_softmax_ref(x), **TOL[dtype])
    K.log_softmax_backward(g, gi, ly)
    np.testing.assert_allclose(gi, log_softmax_backward_ref(x, g), **TOL[dtype])


def test_softmax_large_scores_are_stable():
    x = np.array([[1000.0, 1001.0, -1000.0], [-1e4, -1e4, -1e4]])
    y, ly = np.empty_like(x), np.empty_like(x)
    K.softmax_forward(x, y)
    K.log_softmax_forward(x, ly)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ly))
    np.testing.assert_allclose(y, softmax_ref(x), rtol=1e-12)
    np.testing.assert_allclose(ly, log_softmax_ref(x), rtol=1e-12)


def test_nan_row_stays_nan_and_other_rows_are_untouched():
    x = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]])
    for fn in (K.softmax_forward, K.log_softmax_forward):
        y = np.empty_like(x)
        fn(x, y)
        assert np.all(np.isnan(y[0])) and np.all(np.isfinite(y[1]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cross_entropy_index_and_dense(dtype, shape):
    x, labels, _ = make(shape, dtype, seed=1)
    n = shape[0]
    ref_loss, ref_grad = cross_entropy_ref(x, labels)
    loss, probs, gi = loss_buf(dtype), np.full(shape, np.nan, dtype), np.full(shape, np.nan, dtype)
    K.cross_entropy_forward(x, labels, loss, probs, 1.0 / n)
    np.testing.assert_allclose(loss[0], ref_loss, **TOL[dtype])
    np.testing.assert_allclose(probs, softmax_ref(x), **TOL[dtype])
    K.cross_entropy_backward(labels, gi, probs, 1.0 / n)
    np.testing.assert_allclose(gi, ref_grad, **TOL[dtype])

    onehot = one_hot_ref(labels, shape[1]).astype(dtype)
    loss2, probs2, gi2 = loss_buf(dtype), np.empty(shape, dtype), np.empty(shape, dtype)
    K.cross_entropy_dense_forward(x, onehot, loss2, probs2, 1.0 / n)
    K.cross_entropy_dense_backward(onehot, gi2, probs2, 1.0 / n)
    np.testing.assert_allclose(loss2[0], ref_loss, **TOL[dtype])
    np.testing.assert_allclose(gi2, ref_grad, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_soft_labels(dtype):
    x, _, _ = make((6, 4), dtype, seed=2)
    rng = np.random.default_rng(3)
    t = rng.random((6, 4)).astype(dtype)
    t[2] = 0  # an all-zero row contributes nothing
    ref_loss, ref_grad = cross_entropy_ref(x, t)
    loss, probs, gi = loss_buf(dtype), np.empty((6, 4), dtype), np.empty((6, 4), dtype)
    K.cross_entropy_dense_forward(x, t, loss, probs, 1.0 / 6)
    K.cross_entropy_dense_backward(t, gi, probs, 1.0 / 6)
    np.testing.assert_allclose(loss[0], ref_loss, **TOL[dtype])
    np.testing.assert_allclose(gi, ref_grad, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_class_nll_on_log_probabilities_and_probabilities(dtype, shape):
    x, labels, _ = make(shape, dtype, seed=4)
    n = shape[0]
    logp = log_softmax_ref(x).astype(dtype)
    p = softmax_ref(x).astype(dtype)
    onehot = one_hot_ref(labels, shape[1]).astype(dtype)
    for inp, is_prob, ref in ((logp, 0, class_nll_logprob_ref), (p, 1, class_nll_prob_ref)):
        ref_loss, ref_grad = ref(inp, labels)
        loss, gi = loss_buf(dtype), np.full(shape, np.nan, dtype)
        K.class_nll_forward(inp, labels, loss, is_prob, 1.0 / n)
        K.class_nll_backward(inp, labels, gi, is_prob, 1.0 / n)
        np.testing.assert_allclose(loss[0], ref_loss, **TOL[dtype])
        np.testing.assert_allclose(gi, ref_grad, **TOL[dtype])
        loss2, gi2 = loss_buf(dtype), np.full(shape, np.nan, dtype)
        K.class_nll_dense_forward(inp, onehot, loss2, is_prob, 1.0 / n)
        K.class_nll_dense_backward(inp, onehot, gi2, is_prob, 1.0 / n)
        np.testing.assert_allclose(loss2[0], ref_loss, **TOL[dtype])
        np.testing.assert_allclose(gi2, ref_grad, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_clipped_nll(dtype, shape):
    x, labels, _ = make(shape, dtype, seed=5)
    p = softmax_ref(x).astype(dtype)
    p.flat[0] = 0.0  # clipped from below
    if p.size > 1:
        p.flat[1] = 1.0  # clipped from above (1 - 1e-15 rounds to 1 in float32: log gives 0)
    t = one_hot_ref(labels, shape[1]).astype(dtype)
    t.flat[0] = 1.0
    ref_loss, ref_grad = clipped_nll_ref(p, t)
    loss, gi = loss_buf(dtype), np.full(shape, np.nan, dtype)
    K.clipped_nll_forward(p, t, loss, 1e-15, 1.0 / shape[0])
    K.clipped_nll_backward(p, t, gi, 1e-15, 1.0 / shape[0])
    np.testing.assert_allclose(loss[0], ref_loss, rtol=TOL[dtype]["rtol"])
    np.testing.assert_allclose(gi, ref_grad, rtol=TOL[dtype]["rtol"])
    assert np.isfinite(loss[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 3), (3, 2, 5)])
def test_mse(dtype, shape):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.standard_normal(shape).astype(dtype)
    ref_loss, ref_grad = mse_ref(x, t)
    loss, gi = loss_buf(dtype), np.full(shape, np.nan, dtype)
    K.mse_forward(x, t, loss, 1.0 / shape[0])
    K.mse_backward(x, t, gi, 1.0 / shape[0])
    np.testing.assert_allclose(loss[0], ref_loss, **TOL[dtype])
    np.testing.assert_allclose(gi, ref_grad, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_classify_scores(dtype):
    def kind(x):
        res = np.full(1, -1, np.int64)
        x = np.asarray(x, dtype)
        K.classify_scores(x, res, 64 * x.shape[1] * float(np.finfo(dtype).eps))
        return int(res[0])

    x, _, _ = make((9, 10), dtype, seed=7)
    assert kind(log_softmax_ref(x)) == K.LOG_PROBABILITIES
    assert kind(softmax_ref(x)) == K.PROBABILITIES
    assert kind(one_hot_ref([0, 2, 1], 3)) == K.PROBABILITIES
    assert kind(x) == K.RAW_SCORES
    assert kind(np.abs(x)) == K.RAW_SCORES  # non-negative but rows do not sum to 1
    assert kind([[0.5, 0.6]]) == K.RAW_SCORES
    assert kind([[-0.5, 1.5]]) == K.RAW_SCORES  # sums to 1 but has a negative entry
    p = softmax_ref(x)
    p[3] *= 1.01
    assert kind(p) == K.RAW_SCORES  # one bad row is enough


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_first_bad_label(dtype):
    result = np.empty(1, np.int64)
    labels = np.array([0, 2, 1, 2], dtype)
    K.first_bad_label(labels, 3, result)
    assert result[0] == -1
    K.first_bad_label(labels, 2, result)   # 2 is out of range for 2 classes
    assert result[0] == 1
    K.first_bad_label(np.zeros(0, dtype), 3, result)
    assert result[0] == -1
    if np.dtype(dtype).kind == "i":
        K.first_bad_label(np.array([0, 1, -1, 5], dtype), 3, result)
        assert result[0] == 2
