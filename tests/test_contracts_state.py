"""Hidden kernel contracts, continued from test_contracts.py (affine, conv, pool): the
families with saved state (batchnorm, dropout, activation, softmax, scaling), containers,
0-d input, labels and optimizers. Every inconsistent state a user can reach through
public attributes or a crafted checkpoint must raise an error naming the module.

The cases run in child processes (several per child, a fresh child after a crash): an
out-of-bounds write that kills the interpreter fails its case instead of pytest.
"""
import os

import numpy as np
import pytest

from childrun import check_outcome, registry, run_cases

CASES, case = registry()


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- batchnorm ------------------------------------------------------------------------------
@case("ValueError", "BatchNormalization", "moving_variance", "(1,)", "(64,)")
def batchnorm_moving_stats_disagree_eval():
    import fastnn
    m = fastnn.BatchNormalization(0.9)
    m.moving_mean = np.zeros(64)
    m.moving_variance = np.ones(1)  # eval would read 63 values past it
    m.evaluate().forward(_x(256, 64))


@case("ValueError", "BatchNormalization", "moving_mean", "(1,)")
def batchnorm_moving_stats_disagree_train():
    import fastnn
    m = fastnn.BatchNormalization(0.9)
    m.moving_variance = np.ones(64)
    m.moving_mean = np.zeros(1)  # training would write 63 values past it
    m.forward(_x(256, 64))


@case("ValueError", "BatchNormalization", "1-D")
def batchnorm_moving_stat_2d():
    import fastnn
    m = fastnn.BatchNormalization()
    m.moving_mean = np.zeros((4, 1))


@case("ValueError", "BatchNormalization", "moving_mean", "(3,)", "16")
def batchnorm_stats_fewer_channels_than_input():
    import fastnn
    m = fastnn.BatchNormalization()
    m.moving_mean = np.zeros(3)
    m.moving_variance = np.ones(3)
    m.forward(_x(8, 16, 4, 4))


@case("ValueError", "BatchNormalization", "moving_variance", "float32")
def batchnorm_unpickled_stats_wrong_dtype():
    import fastnn
    m = fastnn.BatchNormalization()
    m.forward(_x(4, 3))
    state = m.__getstate__()
    state["moving_variance"] = np.ones(3)  # float64 into a float32 module, past __setattr__
    m2 = fastnn.BatchNormalization.__new__(fastnn.BatchNormalization)
    m2.__setstate__(state)
    m2.evaluate().forward(_x(4, 3))


@case("ValueError StateDictError", "bn.npz", "BatchNormalization", "moving_variance", "(1,)")
def batchnorm_crafted_checkpoint():
    import tempfile
    import fastnn
    net = fastnn.Sequential(fastnn.Linear(4, 64), fastnn.BatchNormalization(0.9))
    path = os.path.join(tempfile.mkdtemp(), "bn.npz")
    fastnn.save_checkpoint(path, net)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["model/1.running_mean"] = np.zeros(64, np.float32)
    arrays["model/1.running_var"] = np.ones(1, np.float32)
    np.savez(path, **arrays)
    fresh = fastnn.Sequential(fastnn.Linear(4, 64), fastnn.BatchNormalization(0.9))
    fastnn.load_checkpoint(path, fresh)
    fresh.evaluate().forward(_x(256, 4))


@case("ValueError", "bn1.npz", "BatchNormalization", "moving_variance", "(1,)")
def batchnorm_crafted_checkpoint_version_1():
    import json
    import tempfile
    import fastnn
    net = fastnn.Sequential(fastnn.Linear(4, 64), fastnn.BatchNormalization(0.9))
    path = os.path.join(tempfile.mkdtemp(), "bn1.npz")
    fastnn.save_checkpoint(path, net)
    with np.load(path) as f:
        meta = json.loads(str(f["__meta__"]))
        arrays = {"param/0/W": f["model/0.weight"], "param/0/b": f["model/0.bias"]}
    meta["version"] = 1  # the positional layout
    arrays["state/1/moving_mean"] = np.zeros(64, np.float32)
    arrays["state/1/moving_variance"] = np.ones(1, np.float32)
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    fresh = fastnn.Sequential(fastnn.Linear(4, 64), fastnn.BatchNormalization(0.9))
    fastnn.load_checkpoint(path, fresh)
    fresh.evaluate().forward(_x(256, 4))


@case("ValueError", "BatchNormalization", "invstd", "(3,)")
def batchnorm_saved_output_other_channels():
    import fastnn
    m = fastnn.BatchNormalization()
    x = _x(8, 3)
    m.forward(x)
    m.output = _x(8, 64)  # backward would read 61 invstd values past the saved 3
    m.backward(x, _x(8, 64))


@case("ValueError", "BatchNormalization", "(2, 3, 0, 0)", "at least 2")
def batchnorm_train_empty_spatial():
    import fastnn
    fastnn.BatchNormalization().forward(np.zeros((2, 3, 0, 0), np.float32))


@case("ValueError", "BatchNormalization", "(0, 3, 2, 2)")
def batchnorm_train_empty_batch():
    import fastnn
    fastnn.BatchNormalization().forward(np.zeros((0, 3, 2, 2), np.float32))


# ---- dropout --------------------------------------------------------------------------------
@case("ValueError", "Dropout", "mask", "(4, 8)")
def dropout_saved_output_grown():
    import fastnn
    m = fastnn.Dropout(0.5)
    x = _x(4, 8)
    m.forward(x)
    m.output = _x(4096, 8)  # the mask holds 32 values; backward walks 32768
    m.backward(x, _x(4096, 8))


@case("ValueError", "Dropout", "[0, 1)")
def dropout_p_one():
    import fastnn
    m = fastnn.Dropout(0.5)
    m.p = 1.0  # scale 1 / (1 - p)
    m.forward(_x(4, 8))


# ---- activation / softmax -------------------------------------------------------------------
@case("ValueError", "Tanh", "output", "float32")
def activation_saved_output_wrong_dtype():
    import fastnn
    m = fastnn.Tanh()
    x = _x(4, 8)
    m.forward(x)
    m.output = np.zeros((4, 8))
    m.backward(x, _x(4, 8))


@case("ValueError", "Sigmoid", "output", "C-contiguous")
def activation_saved_output_strided():
    import fastnn
    m = fastnn.Sigmoid()
    x = _x(4, 8)
    m.forward(x)
    m.output = _x(4, 16)[:, ::2]
    m.backward(x, _x(4, 8))


@case("ValueError", "LeakyReLU", "slope")
def activation_slope_not_a_number():
    import fastnn
    fastnn.LeakyReLU().slope = "steep"


@case("ValueError", "SoftMax", "output", "float32")
def softmax_saved_output_wrong_dtype():
    import fastnn
    m = fastnn.SoftMax()
    x = _x(4, 8)
    m.forward(x)
    m.output = np.zeros((4, 8))
    m.backward(x, _x(4, 8))


@case("ValueError", "SoftMax", "(3, 0)", "no classes")
def softmax_no_classes():
    import fastnn
    fastnn.SoftMax().forward(np.zeros((3, 0), np.float32))


@case("ValueError", "LogSoftMax", "(3, 0)", "no classes")
def log_softmax_no_classes():
    import fastnn
    fastnn.LogSoftMax().forward(np.zeros((3, 0), np.float32))


# ---- scaling --------------------------------------------------------------------------------
@case("AttributeError", "ChannelwiseScaling", "n_out", "gamma.shape[0]")
def scaling_n_out_edited():
    import fastnn
    m = fastnn.ChannelwiseScaling(3)
    m.n_out = 64  # gamma holds 3 values
    m.forward(_x(4, 64))


@case("ValueError", "ChannelwiseScaling", "gamma", "(3,)")
def scaling_gamma_wrong_shape():
    import fastnn
    fastnn.ChannelwiseScaling(3).gamma = np.ones(64)


# ---- containers -----------------------------------------------------------------------------
@case("")
def sequential_modules_edited_in_place():
    import fastnn
    net = fastnn.Sequential(fastnn.Linear(8, 8), fastnn.ReLU(), fastnn.Linear(8, 3))
    x = _x(4, 8)
    net.forward(x)
    net.modules[1] = fastnn.SoftMax()  # the cached plan fused Linear with ReLU
    net.modules.append(fastnn.LogSoftMax())
    out = net.forward(x)
    ref = fastnn.LogSoftMax().forward(net[2].forward(fastnn.SoftMax().forward(
        net[0].forward(x))))
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    net.backward(x, np.ones_like(out))


# ---- 0-d input (any module) -----------------------------------------------------------------
@case("ValueError", "ReLU", "0-d")
def zero_d_input_float64():
    import fastnn
    fastnn.ReLU().forward(np.array(3.0))


@case("ValueError", "ReLU", "0-d")
def zero_d_input_float32():
    import fastnn
    fastnn.ReLU().forward(np.array(3.0, np.float32))


@case("ValueError", "MSECriterion", "0-d")
def zero_d_input_criterion():
    import fastnn
    fastnn.MSECriterion().forward(np.array(3.0), np.array([3.0]))


# ---- softmax_nll (labels) / optim -----------------------------------------------------------
@case("ValueError", "CrossEntropyCriterion", "label 7", "[0, 2]")
def labels_out_of_range():
    import fastnn
    fastnn.CrossEntropyCriterion().forward(_x(2, 3), np.array([0, 7]))


@case("ValueError", "CrossEntropyCriterion", "label 9", "[0, 2]")
def labels_big_endian_out_of_range():
    import fastnn
    fastnn.CrossEntropyCriterion().forward(_x(2, 3), np.array([0, 9], dtype=">i8"))


@case("")
def big_endian_inputs_everywhere():
    import fastnn
    net = fastnn.Sequential(fastnn.Conv2d(1, 2, 3), fastnn.ReLU(), fastnn.MaxPool2d(2),
                            fastnn.Flatten(), fastnn.Linear(18, 3), fastnn.LogSoftMax())
    x = _x(2, 1, 6, 6)
    ref = net.forward(x).copy()
    xb = x.astype(">f4")
    np.testing.assert_array_equal(net.forward(xb), ref)
    crit = fastnn.ClassNLLCriterion()
    t = np.array([0, 2], dtype=">i8")
    assert crit.forward(ref, t) == crit.forward(ref, t.astype(np.int64))
    net.backward(xb, crit.backward(ref.astype(">f8"), t))


@case("ValueError", "accumulated_grads[0]", "(8, 4)")
def optim_state_wrong_shape():
    import fastnn
    W, gW = np.zeros((8, 4), np.float32), np.ones((8, 4), np.float32)
    state = {"accumulated_grads": {0: np.zeros(3, np.float32)}}
    fastnn.sgd_momentum([W], [gW], {"learning_rate": 0.1, "momentum": 0.9}, state)


@case("ValueError", "SGD", "learning_rate", "nan")
def optim_learning_rate_nan():
    import fastnn
    fastnn.optim.SGD(fastnn.Linear(2, 2), learning_rate=float("nan"))


@case("ValueError", "adam_optimizer", "learning_rate", "inf")
def optim_functional_learning_rate_inf():
    import fastnn
    W, gW = np.zeros(4, np.float32), np.ones(4, np.float32)
    fastnn.adam_optimizer([W], [gW], {"learning_rate": float("inf")}, {})


@pytest.fixture(scope="module")
def outcomes():
    return run_cases("test_contracts_state", list(CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_contract(name, outcomes):
    check_outcome(name, outcomes[name], CASES)
