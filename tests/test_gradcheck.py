"""fastnn.gradcheck / gradcheck_criterion on every module and criterion, at several
shapes (batch 1, odd sizes), and gradcheck catching a deliberately wrong module."""
import numpy as np
import pytest

import fastnn
from fastnn import (ELU, BatchMeanSubtraction, BatchNormalization, ChannelwiseScaling,
                    ClassNLLCriterion, ClassNLLCriterionUnstable, CrossEntropyCriterion, Dropout,
                    LeakyReLU, Linear, LogSoftMax, MSECriterion, ReLU, Sequential, Sigmoid,
                    SoftMax, SoftPlus, Tanh, gradcheck, gradcheck_criterion)
from fastnn.gradcheck import GradcheckError
from fastnn.nested import flatten as _flat
from reference import softmax_ref


def x_for(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * 1.5
    # keep away from the ReLU-family kinks where finite differences are meaningless
    x[np.abs(x) < 1e-2] += 0.05
    return x


MODULES = {
    "Linear": (lambda: Linear(5, 3), [(1, 5), (4, 5), (7, 5)]),
    "Linear1x1": (lambda: Linear(1, 1), [(1, 1), (3, 1)]),
    "ReLU": (ReLU, [(1, 1), (3, 4), (2, 3, 2, 2)]),
    "LeakyReLU": (lambda: LeakyReLU(0.1), [(1, 3), (5, 3)]),
    "ELU": (lambda: ELU(0.7), [(1, 3), (5, 3), (2, 2, 3, 3)]),
    "SoftPlus": (SoftPlus, [(1, 3), (5, 3)]),
    "Sigmoid": (Sigmoid, [(1, 3), (5, 3)]),
    "Tanh": (Tanh, [(1, 3), (5, 3)]),
    "SoftMax": (SoftMax, [(1, 1), (1, 4), (5, 3)]),
    "LogSoftMax": (LogSoftMax, [(1, 1), (1, 4), (5, 3)]),
    "Dropout": (lambda: Dropout(0.5), [(1, 3), (4, 5)]),
    "BatchNormalization": (lambda: BatchNormalization(0.9), [(2, 3), (7, 5), (1, 2, 3, 3),
                                                            (3, 2, 2, 3)]),
    "BatchNormalizationEval": (lambda: _trained_bn().evaluate(), [(1, 3), (4, 3)]),
    "BatchMeanSubtraction": (lambda: BatchMeanSubtraction(0.5), [(2, 3), (3, 2, 2, 2)]),
    "ChannelwiseScaling": (lambda: _scaling(3), [(1, 3), (5, 3), (2, 3, 2, 2)]),
    "Sequential": (lambda: Sequential(Linear(4, 6), ReLU(), Linear(6, 5), Tanh(),
                                      BatchNormalization(0.9), ChannelwiseScaling(5),
                                      Dropout(0.3), Linear(5, 3), LogSoftMax()),
                   [(2, 4), (5, 4)]),
    "SequentialFusedAll": (lambda: Sequential(Linear(3, 4), ELU(), Linear(4, 4), SoftPlus(),
                                              Linear(4, 4), Sigmoid(), Linear(4, 3),
                                              LeakyReLU(0.2), Linear(3, 2), SoftMax()),
                           [(1, 3), (4, 3)]),
    "NestedSequential": (lambda: Sequential(Sequential(Linear(3, 4), Tanh()), Linear(4, 2)),
                         [(1, 3), (3, 3)]),
}


def _trained_bn():
    m = BatchNormalization(0.5)
    m.forward(np.random.default_rng(1).standard_normal((8, 3)) * 2 + 1)
    return m


def _scaling(n):
    m = ChannelwiseScaling(n)
    m.gamma = np.linspace(0.5, 2.0, n)
    m.beta = np.linspace(-1.0, 1.0, n)
    return m


@pytest.mark.parametrize("name,shape", [(n, s) for n, (_, shapes) in MODULES.items()
                                        for s in shapes])
def test_gradcheck_modules(name, shape):
    fastnn.manual_seed(0)
    make, _ = MODULES[name]
    m = make()
    before = [np.array(p) for p in _flat(m.getParameters())]
    assert gradcheck(m, x_for(shape)) is True
    # the module itself is untouched (gradcheck works on a float64 copy)
    for a, b in zip(_flat(m.getParameters()), before):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32


def probs(shape, seed=0):
    return softmax_ref(np.random.default_rng(seed).standard_normal(shape))


def labels(shape, seed=0):
    return np.random.default_rng(seed + 1).integers(0, shape[1], shape[0])


CRITERIA = [
    ("CrossEntropy", CrossEntropyCriterion, lambda s: x_for(s), "index"),
    ("CrossEntropySoft", CrossEntropyCriterion, lambda s: x_for(s), "soft"),
    ("NLLlogprob", ClassNLLCriterion, lambda s: np.log(probs(s)), "index"),
    ("NLLprob", ClassNLLCriterion, probs, "index"),
    ("NLLonehot", ClassNLLCriterion, lambda s: np.log(probs(s)), "onehot"),
    ("NLLUnstable", ClassNLLCriterionUnstable, probs, "index"),
    ("MSE", MSECriterion, lambda s: x_for(s), "dense"),
]


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (5, 3), (8, 7)])
@pytest.mark.parametrize("name,crit,make_x,target_kind", CRITERIA)
def test_gradcheck_criteria(name, crit, make_x, target_kind, shape):
    if name.startswith("NLL") and shape[1] == 1:
        pytest.skip("one class: probability 1 (log 0) for every row, no room for a finite "
                    "difference that stays a (log-)probability")
    x = make_x(shape)
    y = labels(shape)
    if target_kind == "onehot":
        y = np.eye(shape[1])[y]
    elif target_kind == "soft":
        y = np.random.default_rng(3).dirichlet(np.ones(shape[1]), shape[0])
    elif target_kind == "dense":
        y = np.random.default_rng(4).standard_normal(shape)
    if name == "NLLprob":
        # perturbing a probability breaks "rows sum to 1": check on the log-probability
        # path's twin instead, d/dp of -log p, through the dense kernel's formula
        c = crit()
        g = c.backward(x, y)
        np.testing.assert_allclose(g, -np.eye(shape[1])[y] / x / shape[0], rtol=1e-12)
        return
    assert gradcheck_criterion(crit(), x, y) is True


# ---- gradcheck itself must catch mistakes ---------------------------------------------------
class WrongLinear(Linear):
    """Forgets a factor of 2 on gradInput."""

    def updateGradInput(self, input, gradOutput):
        gi = super().updateGradInput(input, gradOutput)
        gi *= 2
        return gi


class WrongBias(Linear):
    def accGradParameters(self, input, gradOutput):
        super().accGradParameters(input, gradOutput)
        self._raw_grad("gradb")[0] += 1.0


class WrongTanh(Tanh):
    def updateGradInput(self, input, gradOutput):
        gi = super().updateGradInput(input, gradOutput)
        gi[0, 0] += 1e-3  # a single small error is enough
        return gi


@pytest.mark.parametrize("make,what", [(lambda: WrongLinear(3, 2), "gradInput"),
                                       (lambda: WrongBias(3, 2), "parameter gradient #1"),
                                       (lambda: WrongTanh(), "gradInput"),
                                       (lambda: Sequential(Linear(3, 3), WrongTanh()),
                                        "gradInput")])
def test_gradcheck_catches_a_wrong_module(make, what):
    with pytest.raises(GradcheckError) as e:
        gradcheck(make(), x_for((4, 3)))
    assert what in str(e.value)
    assert isinstance(e.value, AssertionError)


class WrongCriterion(MSECriterion):
    def updateGradInput(self, input, target):
        gi = super().updateGradInput(input, target)
        gi *= 0.5  # forgot the 2 of d(x-t)^2
        return gi


def test_gradcheck_criterion_catches_a_wrong_criterion():
    with pytest.raises(GradcheckError, match="gradInput"):
        gradcheck_criterion(WrongCriterion(), x_for((3, 2)), np.zeros((3, 2)))


def test_gradcheck_can_skip_parameters():
    assert gradcheck(WrongBias(3, 2), x_for((4, 3)), check_params=False) is True
