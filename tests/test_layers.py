"""fastnn/layers.py and normalization.py: Linear, Dropout, BatchNormalization,
BatchMeanSubtraction, ChannelwiseScaling at the module level (the kernels have their own tests)."""
import numpy as np
import pytest

import fastnn
from conftest import rand
from fastnn import (BatchMeanSubtraction, BatchNormalization, ChannelwiseScaling, Dropout,
                    Linear)
from reference import (affine_forward_ref, affine_grad_bias_ref, affine_grad_input_ref,
                       affine_grad_weight_ref, batchnorm_eval_backward_ref,
                       batchnorm_eval_forward_ref, batchnorm_train_backward_ref,
                       batchnorm_train_forward_ref, scaling_backward_input_ref,
                       scaling_backward_params_ref, scaling_forward_ref)


# ---- Linear ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,n_in,n_out", [(1, 1, 1), (1, 5, 3), (7, 4, 1), (9, 13, 6)])
def test_linear(dtype, n, n_in, n_out):
    fastnn.manual_seed(0)
    m = Linear(n_in, n_out).type(dtype)
    x, g = rand(n, n_in), rand(n, n_out, seed=1)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(m.forward(x), affine_forward_ref(x.astype(dtype), m.W, m.b), **tol)
    m.zeroGradParameters()
    gi = m.backward(x, g)
    np.testing.assert_allclose(gi, affine_grad_input_ref(g.astype(dtype), m.W), **tol)
    np.testing.assert_allclose(m.gradW, affine_grad_weight_ref(x.astype(dtype), g.astype(dtype)),
                               **tol)
    np.testing.assert_allclose(m.gradb, affine_grad_bias_ref(g.astype(dtype)), **tol)


def test_linear_init_and_seed():
    fastnn.manual_seed(11)
    a = Linear(400, 30)
    fastnn.manual_seed(11)
    b = Linear(400, 30)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.b, b.b)
    assert a.W.shape == (30, 400) and a.b.shape == (30,) and a.W.dtype == np.float32
    bound = 1 / np.sqrt(400)
    assert np.abs(a.W).max() <= bound and np.abs(a.W).max() > 0.9 * bound
    assert np.abs(a.b).max() <= bound
    assert abs(a.W.mean()) < 0.05 * bound
    assert np.all(a.gradW == 0) and np.all(a.gradb == 0)
    c = Linear(400, 30)
    assert not np.array_equal(a.W, c.W)


# ---- Dropout --------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9, np.float32(0.3)])
def test_dropout_valid_p(p):
    assert Dropout(p).p == pytest.approx(float(p))


def test_dropout_eval_is_identity():
    x = rand(5, 6)
    m = Dropout(0.7).double()
    m.evaluate()
    np.testing.assert_array_equal(m.forward(x), x)
    g = rand(5, 6, seed=1)
    np.testing.assert_array_equal(m.backward(x, g), g)


def test_dropout_p_zero_is_identity_in_training():
    x = rand(3, 4)
    m = Dropout(0.0).double()
    np.testing.assert_array_equal(m.forward(x), x)
    g = rand(3, 4, seed=1)
    np.testing.assert_array_equal(m.backward(x, g), g)


@pytest.mark.parametrize("shape", [(1, 1), (64, 50), (4, 3, 5, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_training_scales_kept_units(shape, dtype):
    p = 0.4
    fastnn.manual_seed(0)
    m = Dropout(p).type(dtype)
    x = rand(*shape, shift=3.0) + 0.0
    x = np.abs(x) + 0.5  # no zeros in the input: a zero output means dropped
    out = m.forward(x)
    kept = out != 0
    scale = dtype(1 / (1 - p))
    np.testing.assert_allclose(out[kept], x.astype(dtype)[kept] * scale, rtol=1e-6)
    g = rand(*shape, seed=1)
    gi = m.backward(x, g)
    np.testing.assert_allclose(gi[kept], g.astype(dtype)[kept] * scale, rtol=1e-6)
    assert np.all(gi[~kept] == 0)
    if x.size > 1000:
        assert abs(kept.mean() - (1 - p)) < 0.05


def test_dropout_reproducible_with_manual_seed():
    x = np.ones((20, 20))
    fastnn.manual_seed(5)
    a = Dropout(0.5).forward(x).copy()
    fastnn.manual_seed(5)
    b = Dropout(0.5).forward(x).copy()
    np.testing.assert_array_equal(a, b)


# ---- BatchNormalization ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 1), (6, 4), (1, 3, 2, 2), (5, 2, 3, 4)])
@pytest.mark.parametrize("cls", [BatchNormalization, BatchMeanSubtraction])
def test_batchnorm_train_eval(cls, shape, dtype):
    alpha = 0.8
    center = cls is BatchMeanSubtraction
    m = cls(alpha).type(dtype)
    tol = dict(rtol=5e-5, atol=5e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    c = shape[1]
    mm, mv = np.zeros(c), np.ones(c)  # created at the first forward
    for step in range(3):
        x = rand(*shape, seed=step, scale=2.0, shift=step + 1.0).astype(dtype)
        ref_out, _, _, mm, mv = batchnorm_train_forward_ref(x, mm, mv, alpha, 1e-3, center)
        np.testing.assert_allclose(m.forward(x), ref_out, **tol)
        np.testing.assert_allclose(m.moving_mean, mm, **tol)
        np.testing.assert_allclose(m.moving_variance, mv, **tol)
        g = rand(*shape, seed=10 + step).astype(dtype)
        np.testing.assert_allclose(m.backward(x, g),
                                   batchnorm_train_backward_ref(x, g, 1e-3, center), **tol)
    assert m.moving_mean.dtype == dtype
    m.evaluate()
    for n in (1, 3):  # eval works for batch 1, and does not touch the moving statistics
        x = rand(n, *shape[1:], seed=20 + n, shift=0.5).astype(dtype)
        np.testing.assert_allclose(m.forward(x), batchnorm_eval_forward_ref(x, mm, mv, 1e-3,
                                                                            center), **tol)
        g = rand(n, *shape[1:], seed=30 + n).astype(dtype)
        np.testing.assert_allclose(m.backward(x, g), batchnorm_eval_backward_ref(g, mv, 1e-3,
                                                                                 center), **tol)
        np.testing.assert_allclose(m.moving_mean, mm, **tol)
        np.testing.assert_allclose(m.moving_variance, mv, **tol)


def test_batchnorm_moving_statistics_formula():
    """moving = alpha * moving + (1 - alpha) * batch (biased variance), from mean 0, variance 1."""
    x = rand(10, 3, shift=2.0, scale=3.0)
    m = BatchNormalization(0.9).double()
    m.forward(x)
    np.testing.assert_allclose(m.moving_mean, 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.moving_variance, 0.9 + 0.1 * x.var(0), rtol=1e-12)
    m2 = BatchNormalization().double()  # default alpha = 0: moving = last batch
    m2.forward(x)
    np.testing.assert_allclose(m2.moving_mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m2.moving_variance, x.var(0), rtol=1e-12)


def test_batchnorm_train_output_is_normalized():
    x = rand(50, 4, 3, 3, shift=5.0, scale=4.0)
    y = BatchNormalization(0.5).double().forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 16 / (16 + 1e-3), rtol=1e-3)


def test_batchnorm_backward_in_eval_after_train_forward_uses_train_formula():
    """backward follows the mode of the forward it belongs to."""
    x, g = rand(6, 3), rand(6, 3, seed=1)
    m = BatchNormalization(0.5).double()
    m.forward(x)
    m.evaluate()
    np.testing.assert_allclose(m.backward(x, g), batchnorm_train_backward_ref(x, g), rtol=1e-10)


# ---- ChannelwiseScaling ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3), (5, 3), (1, 3, 2, 2), (4, 3, 5, 2)])
def test_channelwise_scaling(shape, dtype):
    m = ChannelwiseScaling(3).type(dtype)
    assert np.all(m.gamma == 1) and np.all(m.beta == 0)
    m.gamma = [0.5, -2.0, 3.0]
    m.beta = [1.0, 0.0, -1.0]
    x, g = rand(*shape).astype(dtype), rand(*shape, seed=1).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(m.forward(x), scaling_forward_ref(x, m.gamma, m.beta), **tol)
    m.zeroGradParameters()
    np.testing.assert_allclose(m.backward(x, g), scaling_backward_input_ref(g, m.gamma), **tol)
    gg, gb = scaling_backward_params_ref(x, g)
    np.testing.assert_allclose(m.gradGamma, gg, **tol)
    np.testing.assert_allclose(m.gradBeta, gb, **tol)
    m.backward(x, g)
    np.testing.assert_allclose(m.gradGamma, 2 * gg, **tol)
    assert repr(m) == "ChannelwiseScaling 3"


@pytest.mark.parametrize("train_batch,eval_batch", [(2, 50), (50, 2), (None, 3)])
def test_dropout_backward_follows_the_mode_of_its_forward(train_batch, eval_batch):
    """Switching mode between forward and backward must not pair a gradient with a mask
    of another batch (the kernel would read out of bounds) or with no mask at all."""
    m = Dropout(0.5).double()
    if train_batch:
        m.forward(np.ones((train_batch, 30)))
    m.evaluate()
    x = rand(eval_batch, 30)
    m.forward(x)
    m.train()
    g = rand(eval_batch, 30, seed=1)
    np.testing.assert_array_equal(m.backward(x, g), g)  # the forward was the identity
    # and the other way round: a masked forward, then evaluate(), then backward
    fastnn.manual_seed(0)
    out = m.forward(x).copy()
    m.evaluate()
    gi = m.backward(x, g)
    np.testing.assert_allclose(gi, np.where(out != 0, 2 * g, 0.0), rtol=1e-12)


def test_batchnorm_eps_is_used_and_checked():
    x = np.random.default_rng(0).standard_normal((6, 3))
    bn = BatchNormalization(0.5, eps=0.25).double()
    assert bn.EPS == 0.25 and BatchNormalization.EPS == 1e-3 and "eps=0.25" in repr(bn)
    bn.forward(x)
    mean, var = x.mean(axis=0), x.var(axis=0)
    np.testing.assert_allclose(bn.output, (x - mean) / np.sqrt(var + 0.25), rtol=1e-12)
    bn.evaluate()
    np.testing.assert_allclose(bn.forward(x), (x - bn.moving_mean) /
                               np.sqrt(bn.moving_variance + 0.25), rtol=1e-12)
    for bad in (0, -1e-5, True, "1e-5"):
        with pytest.raises(ValueError, match="eps must be > 0"):
            BatchNormalization(eps=bad)


# ---- contracts that convert rather than raise (the raising ones: test_contracts.py) ----------
def test_batchnorm_moving_statistics_assigned_are_copied_in_the_module_dtype():
    m = BatchNormalization(0.5)
    mean, var = [0.5, -0.5, 1.0], np.array([2.0, 1.0, 4.0])  # a list, float64
    m.moving_mean = mean
    m.moving_variance = var
    assert m.moving_mean.dtype == np.float32 and m.moving_mean.flags.c_contiguous
    assert m.moving_variance is not var  # training updates it in place; the caller's stays
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    out = m.evaluate().forward(x)
    expected = (x - np.float32(mean)) / np.sqrt(np.float32(var) + np.float32(m.EPS))
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    m.train().forward(x)
    np.testing.assert_array_equal(var, [2.0, 1.0, 4.0])


def test_sizes_follow_the_weights():
    lin = Linear(5, 3)
    assert (lin.n_in, lin.n_out) == (5, 3) and repr(lin) == "Linear 5 -> 3"
    conv = fastnn.Conv2d(2, 4, 3, stride=2, padding=0)
    assert (conv.n_in, conv.n_out, conv.kernel_size, conv.stride, conv.padding) == (2, 4, 3, 2, 0)
    conv.stride, conv.padding = 1, 1  # settings may change between calls, validated
    assert conv.forward(np.zeros((1, 2, 5, 5))).shape == (1, 4, 5, 5)
    assert ChannelwiseScaling(7).n_out == 7


def test_old_pickles_with_stored_sizes_still_load():
    import pickle
    lin = Linear(4, 2)
    state = lin.__getstate__()
    state["n_in"], state["n_out"] = 4, 2  # what pickles before ShapeOf stored
    old = Linear.__new__(Linear)
    old.__setstate__(state)
    assert old.n_in == 4 and old.forward(np.ones((1, 4))).shape == (1, 2)
    assert pickle.loads(pickle.dumps(old)).n_out == 2


def test_assigning_none_forgets_the_moving_statistics():
    bn = BatchNormalization(0.5)
    assert bn.state_names == ("moving_mean", "moving_variance") and bn.parameter_names == ()
    bn.forward(np.arange(6.0).reshape(3, 2))
    bn.moving_mean = None
    bn.moving_variance = None
    assert bn.moving_mean is None and bn.moving_variance is None
    bn.forward(np.zeros((2, 3)))  # started afresh, now with 3 features
    assert bn.moving_mean.shape == (3,)
    with pytest.raises(ValueError, match="moving_mean of shape"):
        bn.moving_mean = np.zeros(4)
