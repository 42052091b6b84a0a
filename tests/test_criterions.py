"""fastnn/criterions.py: losses and gradients against the references, index vs one-hot
targets, probability/log-probability detection in ClassNLLCriterion."""
import numpy as np
import pytest

from fastnn import (ClassNLLCriterion, ClassNLLCriterionUnstable, CrossEntropyCriterion,
                    LogSoftMax, MSECriterion, SoftMax)
from reference import (class_nll_logprob_ref, class_nll_prob_ref, clipped_nll_ref,
                       cross_entropy_ref, log_softmax_ref, mse_ref, one_hot_ref, softmax_ref)

SHAPES = [(1, 1), (1, 10), (5, 3), (8, 2), (13, 7)]
DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)


def data(shape, seed=0):
    rng = np.random.default_rng(seed + 10 * shape[0] + shape[1])
    return rng.standard_normal(shape) * 2, rng.integers(0, shape[1], shape[0])


def inputs_for(name, scores, dtype):
    if name == "logprob":
        return log_softmax_ref(scores).astype(dtype)
    if name == "prob":
        return softmax_ref(scores).astype(dtype)
    return scores.astype(dtype)


CASES = [  # (criterion, input kind, reference)
    (CrossEntropyCriterion, "scores", cross_entropy_ref),
    (ClassNLLCriterion, "logprob", class_nll_logprob_ref),
    (ClassNLLCriterion, "prob", class_nll_prob_ref),
    (ClassNLLCriterionUnstable, "prob", clipped_nll_ref),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("crit,kind,ref", CASES)
def test_loss_and_gradient(crit, kind, ref, shape, dtype):
    scores, labels = data(shape)
    x = inputs_for(kind, scores, dtype)
    c = crit()
    ref_loss, ref_grad = ref(x, labels)
    loss = c.forward(x, labels)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, ref_loss, **tol(dtype))
    gi = c.backward(x, labels)
    assert gi.dtype == dtype and c.gradInput is gi
    np.testing.assert_allclose(gi, ref_grad, **tol(dtype))


@pytest.mark.parametrize("crit,kind,ref", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_hot_targets_equal_index_targets(crit, kind, ref, dtype):
    scores, labels = data((9, 4), seed=1)
    x = inputs_for(kind, scores, dtype)
    c = crit()
    variants = [labels, labels.tolist(), labels.astype(np.int32), labels.astype(np.uint8),
                labels.astype(np.float64), labels.reshape(-1, 1),
                one_hot_ref(labels, 4), one_hot_ref(labels, 4).astype(np.float32),
                one_hot_ref(labels, 4).astype(np.int64)]
    ref_loss = c.forward(x, labels)
    ref_grad = c.backward(x, labels).copy()
    for t in variants:
        np.testing.assert_allclose(c.forward(x, t), ref_loss, **tol(dtype))
        np.testing.assert_allclose(c.backward(x, t), ref_grad, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (6, 3), (4, 2, 3)])
def test_mse(shape, dtype):
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape)
    ref_loss, ref_grad = mse_ref(x, t)
    c = MSECriterion()
    np.testing.assert_allclose(c.forward(x, t), ref_loss, **tol(dtype))
    np.testing.assert_allclose(c.backward(x, t), ref_grad, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_one_hot_targets_equal_index_targets(dtype):
    """The criterions' contract: targets are class indices or rows of the input's width."""
    scores, labels = data((7, 5), seed=3)
    x = scores.astype(dtype)
    c = MSECriterion()
    onehot = one_hot_ref(labels, 5)
    ref_loss, ref_grad = mse_ref(x, onehot)
    for t in (onehot, labels, labels.reshape(-1, 1), labels.tolist()):
        np.testing.assert_allclose(c.forward(x, t), ref_loss, **tol(dtype))
        np.testing.assert_allclose(c.backward(x, t), ref_grad, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 2), (1, 10), (6, 3), (20, 10), (3, 100)])
def test_class_nll_detects_probabilities_exactly(shape, dtype):
    """SoftMax output and LogSoftMax output of the same scores give the same loss and
    consistent gradients (d/dp = d/dlogp / p)."""
    scores, labels = data(shape, seed=4)
    p = SoftMax().type(dtype).forward(scores).copy()
    logp = LogSoftMax().type(dtype).forward(scores).copy()
    c = ClassNLLCriterion()
    lp = c.forward(p, labels)
    gp = c.backward(p, labels).copy()
    ll = c.forward(logp, labels)
    gl = c.backward(logp, labels).copy()
    np.testing.assert_allclose(lp, ll, **tol(dtype))
    np.testing.assert_allclose(ll, class_nll_logprob_ref(logp, labels)[0], **tol(dtype))
    np.testing.assert_allclose(gp * p, gl, **tol(dtype))
    np.testing.assert_allclose(gl, -one_hot_ref(labels, shape[1]) / shape[0], **tol(dtype))


def test_class_nll_one_hot_probabilities_and_saturated_log_probabilities():
    c = ClassNLLCriterion()
    p = one_hot_ref([1, 0], 3)  # a confident, correct SoftMax: probabilities, loss 0
    assert c.forward(p, [1, 0]) == 0.0
    logp = np.log(np.clip(p, 1e-300, None))
    assert c.forward(logp, [1, 0]) == 0.0


@pytest.mark.parametrize("bad", [np.array([[0.5, 0.7], [0.1, 0.2]]),   # positive, not summing to 1
                                 np.array([[2.0, -1.0], [0.5, 0.5]]),  # mixed signs
                                 np.array([[-0.5, 1.5]])])             # sums to 1, negative entry
def test_class_nll_raw_scores_raise_helpful_error(bad):
    c = ClassNLLCriterion()
    for fn in (c.forward, c.backward):
        with pytest.raises(ValueError) as e:
            fn(bad, np.zeros(bad.shape[0], np.int64))
        msg = str(e.value)
        assert "ClassNLLCriterion" in msg and "LogSoftMax" in msg
        assert "CrossEntropyCriterion" in msg and str(bad.shape) in msg


def test_cross_entropy_backward_without_forward_recomputes():
    scores, labels = data((5, 4), seed=5)
    c = CrossEntropyCriterion()
    c.forward(scores * 3, labels)
    np.testing.assert_allclose(c.backward(scores, labels), cross_entropy_ref(scores, labels)[1],
                               rtol=1e-11)


def test_cross_entropy_soft_labels():
    scores, _ = data((6, 5), seed=6)
    t = np.random.default_rng(0).dirichlet(np.ones(5), 6)
    c = CrossEntropyCriterion()
    ref_loss, ref_grad = cross_entropy_ref(scores, t)
    np.testing.assert_allclose(c.forward(scores, t), ref_loss, rtol=1e-11)
    np.testing.assert_allclose(c.backward(scores, t), ref_grad, rtol=1e-11)


def test_loss_is_a_mean_over_the_batch():
    scores, labels = data((4, 3), seed=7)
    c = CrossEntropyCriterion()
    single = [c.forward(scores[i:i + 1], labels[i:i + 1]) for i in range(4)]
    np.testing.assert_allclose(c.forward(scores, labels), np.mean(single), rtol=1e-12)


def test_nan_reaches_the_loss():
    x = np.array([[np.nan, 0.0], [0.0, 1.0]])
    assert np.isnan(CrossEntropyCriterion().forward(x, [0, 1]))
    assert np.isnan(MSECriterion().forward(x, np.zeros((2, 2))))
    lp = np.array([[np.nan, -1.0], [-0.1, -2.0]])
    assert np.isnan(ClassNLLCriterion().forward(lp, [0, 1]))


def test_cross_entropy_backward_after_the_input_array_was_refilled():
    """A net reuses its output buffer: forward (loss only every few steps) then backward
    on the same, refilled array must see the new scores."""
    scores, labels = data((4, 3), seed=8)
    out = np.zeros((4, 3))
    c = CrossEntropyCriterion()
    c.forward(out, labels)
    c.backward(out, labels)
    for step in range(1, 3):
        out[...] = scores * step  # the next step's net.forward writes into the same array
        np.testing.assert_allclose(c.backward(out, labels),
                                   cross_entropy_ref(out, labels)[1], rtol=1e-11)
    out[...] = scores * 5
    c.forward(out, labels)
    out[...] = scores  # Torch contract: backward goes with the last forward on this input...
    c.backward(out, labels)
    c.forward(out, labels)  # ...and a forward always refreshes
    np.testing.assert_allclose(c.backward(out, labels), cross_entropy_ref(scores, labels)[1],
                               rtol=1e-11)


def test_class_nll_accepts_float32_probabilities_upcast_to_float64():
    scores, labels = data((64, 10), seed=9)
    p32 = SoftMax().forward(scores * 3).copy()  # float32 module
    p64 = p32.astype(np.float64)  # e.g. to_numpy(out).astype(float) in a notebook
    c = ClassNLLCriterion()
    np.testing.assert_allclose(c.forward(p64, labels), class_nll_prob_ref(p64, labels)[0],
                               rtol=1e-12)
    np.testing.assert_allclose(c.forward(p64, labels), c.forward(p32, labels), rtol=1e-6)


def test_big_endian_labels_give_the_native_loss():
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    t = np.array([0, 3, 1, 2, 3])
    for crit in (CrossEntropyCriterion(), MSECriterion()):
        native = crit.forward(x, t)
        big = crit.forward(x, t.astype(">i8"))
        assert big == native
        np.testing.assert_array_equal(crit.backward(x, t.astype(">i8")), crit.backward(x, t))


def test_class_nll_clamps_underflowed_probabilities():
    """0-255 inputs saturate SoftMax: exact zeros give a large finite loss and gradient
    (the homework's clip at 1e-15), never ZeroDivisionError."""
    x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)  # probabilities
    y = np.array([1, 1])
    crit = ClassNLLCriterion()
    loss = crit.forward(x, y)
    assert loss == pytest.approx(-np.log(1e-15) / 2, rel=1e-6)
    g = crit.backward(x, y)
    assert np.all(np.isfinite(g)) and g[0, 1] == pytest.approx(-0.5 / 1e-15, rel=1e-6)
    dense = crit.forward(x, np.eye(3, dtype=np.float32)[y])
    assert dense == pytest.approx(loss, rel=1e-6)
    assert np.all(np.isfinite(crit.backward(x, np.eye(3, dtype=np.float32)[y])))
