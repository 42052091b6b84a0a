"""Misuse raises, with a message that names the module and the offending shape/value,
and bad labels are caught before any kernel can read out of bounds."""
import numpy as np
import pytest

import fastnn
from fastnn import (ELU, BatchMeanSubtraction, BatchNormalization, ChannelwiseScaling,
                    ClassNLLCriterion, ClassNLLCriterionUnstable, CrossEntropyCriterion, Dropout,
                    LeakyReLU, Linear, LogSoftMax, MSECriterion, ReLU, Sequential, SoftMax, Tanh,
                    adam_optimizer, sgd_momentum)


def raises(exc, fn, *parts):
    with pytest.raises(exc) as e:
        fn()
    msg = str(e.value)
    for p in parts:
        assert str(p) in msg, f"{p!r} not in {msg!r}"
    return msg


# ---- shapes ---------------------------------------------------------------------------------
def test_linear_wrong_feature_count():
    m = Linear(4, 3)
    raises(ValueError, lambda: m.forward(np.zeros((2, 5))), "Linear 4 -> 3", "(2, 5)", "(N, 4)")


def test_linear_wrong_ndim():
    m = Linear(4, 3)
    raises(ValueError, lambda: m.forward(np.zeros(4)), "Linear 4 -> 3", "(4,)")
    raises(ValueError, lambda: m.forward(np.zeros((2, 4, 1))), "Linear 4 -> 3", "(2, 4, 1)")


def test_wrong_feature_count_inside_sequential_names_the_child():
    net = Sequential(Linear(4, 3), ReLU(), Linear(5, 2))
    raises(ValueError, lambda: net.forward(np.zeros((2, 4))), "Linear 5 -> 2", "(2, 3)")


@pytest.mark.parametrize("make,bad", [(SoftMax, (3,)), (LogSoftMax, (2, 3, 4)),
                                      (lambda: BatchNormalization(0.1), (2, 3, 4)),
                                      (lambda: ChannelwiseScaling(3), (2, 3, 4))])
def test_wrong_ndim(make, bad):
    m = make()
    raises(ValueError, lambda: m.forward(np.zeros(bad)), repr(m).split("(")[0], str(bad))


def test_channelwise_scaling_wrong_channels():
    m = ChannelwiseScaling(3)
    raises(ValueError, lambda: m.forward(np.zeros((2, 4))), "ChannelwiseScaling 3", "(2, 4)")
    raises(ValueError, lambda: m.forward(np.zeros((2, 4, 5, 5))), "(2, 4, 5, 5)")


def test_batchnorm_feature_count_change_and_batch_of_one():
    m = BatchNormalization(0.5)
    m.forward(np.random.rand(4, 3))
    raises(ValueError, lambda: m.forward(np.zeros((4, 5))), "BatchNormalization", "(4, 5)")
    raises(ValueError, lambda: BatchNormalization().forward(np.zeros((1, 3))),
           "BatchNormalization", "(1, 3)", "at least 2")


def test_wrong_grad_output_shape():
    m = Linear(4, 3)
    x = np.zeros((2, 4))
    m.forward(x)
    raises(ValueError, lambda: m.backward(x, np.zeros((2, 4))), "Linear 4 -> 3", "(2, 4)", "(2, 3)")
    t = Tanh()
    t.forward(x)
    raises(ValueError, lambda: t.backward(x, np.zeros((3, 4))), "Tanh", "(3, 4)", "(2, 4)")


@pytest.mark.parametrize("dtype", [np.complex64, object, "U3"])
def test_non_real_input(dtype):
    raises(TypeError, lambda: Linear(2, 2).forward(np.zeros((1, 2), dtype=dtype)), "Linear 2 -> 2")


# ---- criterions: targets ---------------------------------------------------------------------
CRITS = [CrossEntropyCriterion, ClassNLLCriterion, ClassNLLCriterionUnstable]


def logp(n=4, c=3):
    return np.log(np.full((n, c), 1.0 / c))


@pytest.mark.parametrize("crit", CRITS)
@pytest.mark.parametrize("label", [3, 7, -1, 1000000])
def test_label_out_of_range(crit, label):
    c = crit()
    y = np.array([0, 1, label, 2])
    x = logp() if crit is not ClassNLLCriterionUnstable else np.full((4, 3), 1 / 3)
    for fn in (c.forward, c.backward):
        raises(ValueError, lambda: fn(x, y), crit.__name__, str(label), "(4, 3)", "[0, 2]")


@pytest.mark.parametrize("crit", CRITS + [MSECriterion])
def test_target_batch_size_mismatch(crit):
    c = crit()
    raises(ValueError, lambda: c.forward(logp(), np.array([0, 1, 2])), crit.__name__, "3", "4")
    raises(ValueError, lambda: c.forward(logp(), np.zeros((5, 3))), crit.__name__, "(5, 3)",
           "(4, 3)")


@pytest.mark.parametrize("crit", CRITS + [MSECriterion])
def test_target_width_mismatch(crit):
    c = crit()
    raises(ValueError, lambda: c.forward(logp(), np.zeros((4, 2))), crit.__name__, "(4, 2)",
           "(4, 3)")


@pytest.mark.parametrize("crit", CRITS)
def test_non_integer_labels(crit):
    raises(ValueError, lambda: crit().forward(logp(), np.array([0, 1.5, 2, 0])), crit.__name__,
           "1.5")
    raises(TypeError, lambda: crit().forward(logp(), np.array(["a", "b", "c", "d"])),
           crit.__name__)


@pytest.mark.parametrize("crit", CRITS)
def test_input_must_be_2d(crit):
    raises(ValueError, lambda: crit().forward(np.zeros(3), np.array([0, 1, 2])), crit.__name__,
           "(3,)")


def test_raw_scores_to_class_nll():
    x = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    raises(ValueError, lambda: ClassNLLCriterion().forward(x, [0, 1]), "ClassNLLCriterion",
           "LogSoftMax", "CrossEntropyCriterion", "(2, 3)")


def test_bad_labels_never_reach_the_kernel(monkeypatch):
    """Validation happens before any kernel call (kernels index without bounds checks)."""
    from fastnn.kernels.cpu import softmax_nll

    called = []
    for name in dir(softmax_nll):
        fn = getattr(softmax_nll, name)
        # the validators themselves run: they read labels and scores, index nothing
        if callable(fn) and hasattr(fn, "py_func") and \
                name not in ("classify_scores", "first_bad_label"):
            monkeypatch.setattr(softmax_nll, name,
                                lambda *a, _n=name: called.append(_n))
    for crit in CRITS:
        x = logp() if crit is not ClassNLLCriterionUnstable else np.full((4, 3), 1 / 3)
        for y in (np.array([0, 1, 3, 0]), np.array([0, -1, 2, 0]), np.array([0, 1])):
            for fn in (crit().forward, crit().backward):
                with pytest.raises(ValueError):
                    fn(x, y)
    assert called == []
    CrossEntropyCriterion().forward(logp(), np.array([0, 1, 2, 0]))  # the patch is live
    assert called == ["cross_entropy_forward"]


# ---- constructors -----------------------------------------------------------------------------
@pytest.mark.parametrize("make,parts", [
    (lambda: Linear(0, 3), ["Linear", "n_in", "0"]),
    (lambda: Linear(3, -2), ["Linear", "n_out", "-2"]),
    (lambda: Linear(2.5, 3), ["Linear", "2.5"]),
    (lambda: Linear(True, 3), ["Linear", "True"]),
    (lambda: Linear("4", 3), ["Linear", "'4'"]),
    (lambda: Dropout(1.0), ["Dropout", "1.0", "[0, 1)"]),
    (lambda: Dropout(-0.1), ["Dropout", "-0.1"]),
    (lambda: Dropout(float("nan")), ["Dropout", "nan"]),
    (lambda: Dropout("0.5"), ["Dropout", "'0.5'"]),
    (lambda: LeakyReLU(-1), ["LeakyReLU", "-1"]),
    (lambda: LeakyReLU(float("inf")), ["LeakyReLU", "inf"]),
    (lambda: ELU(-0.5), ["ELU", "-0.5"]),
    (lambda: BatchNormalization(1.5), ["BatchNormalization", "1.5"]),
    (lambda: BatchNormalization(-0.1), ["BatchNormalization", "-0.1"]),
    (lambda: BatchMeanSubtraction(2), ["BatchMeanSubtraction", "2"]),
    (lambda: ChannelwiseScaling(0), ["ChannelwiseScaling", "0"]),
])
def test_bad_constructor_args(make, parts):
    raises(ValueError, make, *parts)


def test_bad_dtype():
    raises(ValueError, lambda: Linear(2, 2).type(np.int32), "Linear 2 -> 2", "int32")
    raises(ValueError, lambda: Linear(2, 2).type(np.float16), "float16")


def test_sequential_add_rejects_non_modules():
    raises(TypeError, lambda: Sequential().add(np.zeros(3)), "Sequential", "ndarray")
    raises(TypeError, lambda: Sequential(Linear(2, 2)).insert("relu", 0), "Sequential", "str")


# ---- parameters -------------------------------------------------------------------------------
@pytest.mark.parametrize("attr,value", [("W", np.zeros((4, 3))), ("W", np.zeros(12)),
                                        ("b", np.zeros(4)), ("b", 0.0), ("gradW", np.zeros((3, 3)))])
def test_assign_parameter_of_wrong_shape(attr, value):
    m = Linear(4, 3)
    raises(ValueError, lambda: setattr(m, attr, value), "Linear 4 -> 3", attr,
           str(np.shape(value)))


def test_assign_scaling_parameter_of_wrong_shape():
    m = ChannelwiseScaling(3)
    raises(ValueError, lambda: setattr(m, "gamma", np.ones(4)), "ChannelwiseScaling 3", "gamma",
           "(4,)", "(3,)")


# ---- optimizers -------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", [sgd_momentum, adam_optimizer])
def test_optimizer_structure_and_shape_mismatch(rule):
    cfg = {"learning_rate": 0.1, "momentum": 0.9}
    a, b = np.zeros((2, 3)), np.zeros(3)
    name = rule.__name__
    raises(ValueError, lambda: rule([a, b], [np.zeros((2, 3))], cfg, {}), name)
    raises(ValueError, lambda: rule([a, b], [np.zeros((3, 2)), np.zeros(3)], cfg, {}), name,
           "(2, 3)", "(3, 2)")
    raises(ValueError, lambda: rule([[a], b], [a, b], cfg, {}), name)


@pytest.mark.parametrize("rule", [sgd_momentum, adam_optimizer])
def test_optimizer_config_and_state_misuse(rule):
    raises(KeyError, lambda: rule([np.zeros(2)], [np.zeros(2)], {}, {}), rule.__name__,
           "learning_rate")
    raises(TypeError, lambda: rule([np.zeros(2, np.int64)], [np.zeros(2)],
                                   {"learning_rate": 0.1}, {}), rule.__name__, "int64")
    state = {}
    rule([np.zeros(2)], [np.zeros(2)], {"learning_rate": 0.1}, state)
    raises(ValueError, lambda: rule([np.zeros(3)], [np.zeros(3)], {"learning_rate": 0.1}, state),
           "(2,)", "(3,)")


# ---- protocol ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: Linear(3, 2), ReLU, Tanh, SoftMax, LogSoftMax,
                                  lambda: Dropout(0.5), lambda: BatchNormalization(0.1),
                                  lambda: ChannelwiseScaling(3),
                                  lambda: Sequential(Linear(3, 2), ReLU()),
                                  lambda: Sequential(Tanh(), Linear(3, 2))])
def test_backward_before_forward(make):
    m = make()
    name = repr(m).splitlines()[0].split(" (")[0]
    msg = raises(RuntimeError, lambda: m.backward(np.zeros((2, 3)), np.zeros((2, 2))), "forward")
    assert any(n in msg for n in (name, "Linear 3 -> 2", "Tanh")), msg


@pytest.mark.parametrize("make, small, big, grad_shape", [
    (ReLU, (2, 3), (500, 3), (500, 3)),
    (lambda: Sequential(Linear(3, 2), ReLU()), (2, 3), (500, 3), (500, 2)),
    (lambda: Sequential(fastnn.Conv2d(1, 2, 3), ReLU()), (2, 1, 5, 5), (300, 1, 5, 5),
     (300, 2, 5, 5)),
])
def test_backward_on_another_batch_than_the_last_forward(make, small, big, grad_shape):
    """The kernels read the saved forward output: a larger backward batch would read past
    its end (Numba does not bounds-check), so it is an error that names both shapes."""
    m = make()
    m.forward(np.ones(small))
    msg = raises(ValueError, lambda: m.backward(np.ones(big), np.ones(grad_shape)),
                 "does not match the last forward", big)
    assert str(small[0]) in msg


def test_backward_before_forward_after_dtype_change():
    m = Linear(3, 2)
    m.forward(np.zeros((2, 3)))
    m.double()
    raises(RuntimeError, lambda: m.backward(np.zeros((2, 3)), np.zeros((2, 2))), "Linear 3 -> 2")


def test_gradcheck_on_a_module_with_mismatched_shapes_is_an_error_not_a_pass():
    with pytest.raises(ValueError):
        fastnn.gradcheck(Linear(3, 2), np.zeros((2, 4)))


def test_mse_single_column_with_flat_target_is_a_shape_error_not_labels():
    """(N, 1) regression output with an (N,) target: never read as one-hot class labels."""
    raises(ValueError, lambda: MSECriterion().forward(np.zeros((4, 1)), np.zeros(4)),
           "MSECriterion", "(4,)", "(4, 1)")


@pytest.mark.parametrize("rule", [sgd_momentum, adam_optimizer])
def test_optimizer_non_array_entries(rule):
    raises(ValueError, lambda: rule([np.zeros(2)], [[1.0, 2.0]], {"learning_rate": 0.1}, {}),
           rule.__name__, "(2,)", "float")
    raises(TypeError, lambda: rule([1.0], [1.0], {"learning_rate": 0.1}, {}), rule.__name__,
           "variable #0", "float")


NO_CACHE_LOCATOR = """
import numpy as np
import numba.core.caching as caching
# only the NUMBA_CACHE_DIR locator, as in a read-only install: the in-tree and
# user-wide fallbacks are what make this hard to reach on a writable checkout
caching.CacheImpl._locator_classes = [caching.UserProvidedCacheLocator]
import fastnn
try:
    fastnn.ReLU().forward(np.ones((2, 2), np.float32))
except RuntimeError as exc:
    print(exc)
"""


def test_unwritable_explicit_numba_cache_dir_is_a_clear_error():
    import os
    import subprocess
    import sys
    caching = pytest.importorskip("numba.core.caching")
    if not hasattr(caching.CacheImpl, "_locator_classes"):
        pytest.skip("Numba's cache locators moved")
    env = dict(os.environ, NUMBA_CACHE_DIR="/dev/null/cache")
    r = subprocess.run([sys.executable, "-c", NO_CACHE_LOCATOR], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "NUMBA_CACHE_DIR='/dev/null/cache' is not writable" in r.stdout
    assert "activation kernels" in r.stdout
