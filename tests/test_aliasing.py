"""A module fed its own buffers gives the numbers it gives on a separate copy:
``h = m.forward(h)`` with ``h`` the module's output, ``m.updateGradInput(x, m.gradInput)``
and ``m.backward(m.gradInput, g)``, for every module type (fastnn/_contracts.apart)."""
import copy

import numpy as np
import pytest

import fastnn
from fastnn import (ELU, AvgPool2d, BatchMeanSubtraction, BatchNormalization, ChannelwiseScaling,
                    ClassNLLCriterion, ClassNLLCriterionUnstable, Conv2d, CrossEntropyCriterion,
                    Dropout, Flatten, LeakyReLU, Linear, LogSoftMax, MaxPool2d, MSECriterion, ReLU,
                    Sequential, Sigmoid, SoftMax, SoftPlus, Tanh)

# (factory, input shape): modules whose output has their input's shape, so that the
# output can be fed back as input and gradInput as gradOutput
SQUARE = {
    "Linear": (lambda: Linear(16, 16), (6, 16)),
    "Conv2d": (lambda: Conv2d(3, 3, 3), (2, 3, 7, 7)),
    "Conv2d_batch5": (lambda: Conv2d(3, 3, 3, stride=1, padding=1), (5, 3, 4, 4)),
    "MaxPool2d": (lambda: MaxPool2d(1, stride=1), (2, 3, 5, 5)),
    "AvgPool2d": (lambda: AvgPool2d(1, stride=1), (2, 3, 5, 5)),
    "BatchNormalization": (lambda: BatchNormalization(0.5), (8, 5)),
    "BatchNormalization_eval": (lambda: BatchNormalization(0.5).evaluate(), (8, 5)),
    "BatchNormalization_4d": (lambda: BatchNormalization(0.5), (4, 3, 3, 3)),
    "BatchMeanSubtraction": (lambda: BatchMeanSubtraction(0.5), (8, 5)),
    "ChannelwiseScaling": (lambda: _scaling(5), (8, 5)),
    "Dropout": (lambda: Dropout(0.4), (8, 5)),
    "ReLU": (ReLU, (8, 5)),
    "LeakyReLU": (lambda: LeakyReLU(0.1), (8, 5)),
    "ELU": (ELU, (8, 5)),
    "SoftPlus": (SoftPlus, (8, 5)),
    "Sigmoid": (Sigmoid, (8, 5)),
    "Tanh": (Tanh, (8, 5)),
    "SoftMax": (SoftMax, (8, 5)),
    "LogSoftMax": (LogSoftMax, (8, 5)),
    "Flatten": (Flatten, (8, 5)),
    "Sequential_fused_linear": (lambda: Sequential(Linear(16, 16), Tanh()), (6, 16)),
    "Sequential_fused_conv": (lambda: Sequential(Conv2d(3, 3, 3), ELU()), (2, 3, 6, 6)),
    "Sequential_mixed": (lambda: Sequential(Linear(16, 16), BatchNormalization(),
                                            Dropout(0.3), Linear(16, 16)), (6, 16)),
}
PARAMETRIC = ["Linear", "Conv2d", "ChannelwiseScaling", "Sequential_fused_linear",
              "Sequential_fused_conv", "Sequential_mixed"]


def _scaling(n):
    m = ChannelwiseScaling(n)
    m.gamma = np.linspace(0.5, 2.0, n)
    m.beta = np.linspace(-1.0, 1.0, n)
    return m


def _data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _pair(name):
    make, shape = SQUARE[name]
    fastnn.manual_seed(0)
    m = make()
    return m, copy.deepcopy(m), shape


def _seeded(seed, fn, *args):
    fastnn.manual_seed(seed)  # Dropout draws the same mask for both modules
    return fn(*args)


def _grads(m):
    return [np.array(g) for group in [m.getGradParameters()] for g in _flat(group)]


def _flat(nested):
    if isinstance(nested, (list, tuple)):
        return [a for item in nested for a in _flat(item)]
    return [nested]


@pytest.mark.parametrize("name", sorted(SQUARE))
def test_forward_on_its_own_output(name):
    m, ref, shape = _pair(name)
    x, g = _data(shape, 1), _data(shape, 2)
    h = _seeded(1, m.forward, x)
    h_ref = _seeded(1, ref.forward, x).copy()
    expected = _seeded(2, ref.forward, h_ref).copy()
    got = _seeded(2, m.forward, h)  # h is m.output
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # backward on the same array sees what forward read, not what it wrote
    np.testing.assert_allclose(m.backward(h, g), ref.backward(h_ref, g), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SQUARE))
def test_update_grad_input_on_its_own_grad_input(name):
    m, ref, shape = _pair(name)
    x, g = _data(shape, 1), _data(shape, 2)
    _seeded(1, m.forward, x)
    _seeded(1, ref.forward, x)
    m.backward(x, g)
    ref.backward(x, g)
    expected = ref.updateGradInput(x, ref.gradInput.copy()).copy()
    got = m.updateGradInput(x, m.gradInput)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", PARAMETRIC)
def test_backward_with_its_own_grad_input_as_gradient(name):
    m, ref, shape = _pair(name)
    x, g = _data(shape, 1), _data(shape, 2)
    for mod in (m, ref):
        _seeded(1, mod.forward, x)
        mod.backward(x, g)
        mod.zeroGradParameters()
    expected_gi = ref.backward(x, ref.gradInput.copy()).copy()
    got_gi = m.backward(x, m.gradInput)
    np.testing.assert_allclose(got_gi, expected_gi, rtol=1e-5, atol=1e-6)
    for a, b in zip(_grads(m), _grads(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", PARAMETRIC)
def test_backward_on_its_own_grad_input_as_input(name):
    m, ref, shape = _pair(name)
    x, g = _data(shape, 1), _data(shape, 2)
    for mod in (m, ref):
        _seeded(1, mod.forward, x)
        mod.backward(x, g)
        mod.zeroGradParameters()
    inp = m.gradInput  # a buffer backward is about to rewrite
    inp_ref = ref.gradInput.copy()
    _seeded(3, m.forward, inp)
    _seeded(3, ref.forward, inp_ref)
    m.backward(inp, g)
    ref.backward(inp_ref, g)
    for a, b in zip(_grads(m), _grads(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [MSECriterion, ClassNLLCriterion, ClassNLLCriterionUnstable,
                                  CrossEntropyCriterion])
def test_criterion_backward_on_its_own_grad_input(make):
    crit, ref = make(), make()
    x = np.log(np.full((6, 4), 0.25, np.float32)) if make is ClassNLLCriterion \
        else np.random.default_rng(0).uniform(0.1, 0.9, (6, 4)).astype(np.float32)
    t = np.array([0, 1, 2, 3, 0, 1])
    crit.backward(x, t)
    ref.backward(x, t)
    expected = ref.backward(ref.gradInput.copy(), t).copy()
    np.testing.assert_allclose(crit.backward(crit.gradInput, t), expected, rtol=1e-6)


def test_a_view_of_the_output_buffer_counts_as_the_buffer():
    m, ref, shape = _pair("Linear")
    x = _data(shape, 1)
    h = m.forward(x)
    expected = ref.forward(ref.forward(x).copy()).copy()
    got = m.forward(h.reshape(-1).reshape(shape))  # a view, not the buffer object itself
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    half = m.forward(x)[:3]  # rows of the buffer: a shorter batch read from it
    np.testing.assert_allclose(m.forward(half), ref.forward(ref.forward(x)[:3].copy()),
                               rtol=1e-6, atol=1e-6)
