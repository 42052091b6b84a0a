"""fastnn/optim.py: the homework's functional optimizers (fused flat-buffer path and
per-array path), the class forms, and the learning-rate schedules."""
import copy

import numpy as np
import pytest

import fastnn
from fastnn import ChannelwiseScaling, Linear, ReLU, Sequential, adam_optimizer, sgd_momentum
from fastnn.optim import SGD, Adam, CosineDecay, ExponentialDecay, StepDecay, step_decay
from fastnn.nested import flatten as _flat
from reference import adam_ref, sgd_momentum_ref

SGD_CFG = {"learning_rate": 0.05, "momentum": 0.9}
ADAM_CFG = {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


def make_net(dtype):
    fastnn.manual_seed(0)
    return Sequential(Linear(5, 4), ReLU(), Linear(4, 3), ChannelwiseScaling(3)).type(dtype)


def fill_grads(grads, step):
    for k, g in enumerate(_flat(grads)):
        g[...] = np.random.default_rng(100 * step + k).standard_normal(g.shape)


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule,config", [(sgd_momentum, SGD_CFG), (adam_optimizer, ADAM_CFG)])
def test_fused_path_equals_per_array_path(rule, config, dtype):
    net = make_net(dtype)
    params, grads = net.getParameters(), net.getGradParameters()
    # the same values in separate arrays, nested like fastnn's lists but not from fastnn
    sep_params = [[np.array(p) for p in child] for child in params]
    sep_grads = [[np.array(g) for g in child] for child in grads]
    fused_state, sep_state = {}, {}
    for step in range(4):
        fill_grads(grads, step)
        fill_grads(sep_grads, step)
        rule(params, grads, config, fused_state)
        rule(sep_params, sep_grads, config, sep_state)
        assert "_fused" in fused_state
        assert "_fused" not in sep_state
        for a, b in zip(_flat(params), _flat(sep_params)):
            assert a.dtype == b.dtype == dtype
            np.testing.assert_allclose(a, b, **tol(dtype))
    keys = ("accumulated_grads",) if rule is sgd_momentum else ("m", "v")
    for key in keys:
        assert set(fused_state[key]) == set(sep_state[key]) == set(range(len(_flat(params))))
        for i in sep_state[key]:
            np.testing.assert_allclose(fused_state[key][i], sep_state[key][i], **tol(dtype))
    if rule is adam_optimizer:
        assert fused_state["t"] == sep_state["t"] == 4
    # the net's modules see the updated parameters
    np.testing.assert_array_equal(net[0].W, params[0][0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_momentum_matches_reference(dtype):
    rng = np.random.default_rng(0)
    variables = [rng.standard_normal((3, 4)).astype(dtype), [rng.standard_normal(5).astype(dtype)]]
    grads = [np.zeros((3, 4), dtype), [np.zeros(5, dtype)]]
    refs = [(v.astype(np.float64), np.zeros(v.shape)) for v in _flat(variables)]
    state = {}
    for step in range(3):
        fill_grads(grads, step)
        sgd_momentum(variables, grads, SGD_CFG, state)
        for k, (v, g) in enumerate(zip(_flat(variables), _flat(grads))):
            p_ref, vel_ref = sgd_momentum_ref(refs[k][0], g, refs[k][1], 0.05, 0.9)
            refs[k] = (p_ref, vel_ref)
            np.testing.assert_allclose(v, p_ref, **tol(dtype))
            np.testing.assert_allclose(state["accumulated_grads"][k], vel_ref, **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_matches_reference(dtype):
    rng = np.random.default_rng(1)
    variables = [rng.standard_normal((2, 3)).astype(dtype), rng.standard_normal(4).astype(dtype)]
    grads = [np.zeros((2, 3), dtype), np.zeros(4, dtype)]
    refs = [(v.astype(np.float64), np.zeros(v.shape), np.zeros(v.shape)) for v in variables]
    state = {}
    for step in range(1, 5):
        fill_grads(grads, step)
        adam_optimizer(variables, grads, ADAM_CFG, state)
        assert state["t"] == step
        for k, (v, g) in enumerate(zip(variables, grads)):
            refs[k] = adam_ref(*refs[k][:1], g, *refs[k][1:], step, 0.01)
            np.testing.assert_allclose(v, refs[k][0], **tol(dtype))
            np.testing.assert_allclose(state["m"][k], refs[k][1], **tol(dtype))
            np.testing.assert_allclose(state["v"][k], refs[k][2], **tol(dtype))


def test_homework_style_single_arrays_and_default_config_values():
    x = np.array([1.0, 2.0])
    state = {}
    sgd_momentum([x], [np.array([1.0, 1.0])], {"learning_rate": 0.5}, state)  # momentum 0
    np.testing.assert_allclose(x, [0.5, 1.5])
    np.testing.assert_allclose(state["accumulated_grads"][0], [0.5, 0.5])
    y = np.array([0.0])
    adam_optimizer([y], [np.array([2.0])], {"learning_rate": 0.1}, {})
    np.testing.assert_allclose(y, [-0.1], rtol=1e-6)  # first Adam step moves by ~lr


def test_optimizer_updates_parameters_with_non_contiguous_layouts():
    """Variables are updated in place whatever their memory layout."""
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    v_t = base.T  # Fortran-ordered view
    g = np.ones((4, 3))
    sgd_momentum([v_t], [g], {"learning_rate": 1.0, "momentum": 0.0}, {})
    np.testing.assert_array_equal(base, np.arange(12).reshape(3, 4) - 1.0)
    strided = np.zeros(10)
    adam_optimizer([strided[::2]], [np.ones(5)], {"learning_rate": 0.1}, {})
    np.testing.assert_allclose(strided[::2], -0.1, rtol=1e-6)
    assert np.all(strided[1::2] == 0)


def test_state_survives_switching_from_per_array_to_fused():
    net = make_net(np.float64)
    params, grads = net.getParameters(), net.getGradParameters()
    twin = copy.deepcopy(net)
    tp, tg = twin.getParameters(), twin.getGradParameters()
    state, ref_state = {}, {}
    fill_grads(grads, 0)
    fill_grads(tg, 0)
    copies_p = [[np.array(p) for p in c] for c in params]
    copies_g = [[np.array(g) for g in c] for c in grads]
    sgd_momentum(copies_p, copies_g, SGD_CFG, state)  # per-array first
    for c, cp in zip(params, copies_p):
        for p, q in zip(c, cp):
            p[...] = q
    sgd_momentum(tp, tg, SGD_CFG, ref_state)
    fill_grads(grads, 1)
    fill_grads(tg, 1)
    sgd_momentum(params, grads, SGD_CFG, state)  # then fused, keeping the momentum
    sgd_momentum(tp, tg, SGD_CFG, ref_state)
    assert "_fused" in state
    for a, b in zip(_flat(params), _flat(tp)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_fused_state_rebuilds_after_dtype_change():
    net = make_net(np.float32)
    state = {}
    fill_grads(net.getGradParameters(), 0)
    sgd_momentum(net.getParameters(), net.getGradParameters(), SGD_CFG, state)
    net.double()
    params, grads = net.getParameters(), net.getGradParameters()
    fill_grads(grads, 1)
    before = [np.array(p) for p in _flat(params)]
    vel = [np.array(state["accumulated_grads"][i], np.float64) for i in range(len(before))]
    sgd_momentum(params, grads, SGD_CFG, state)
    for k, (p, g) in enumerate(zip(_flat(params), _flat(grads))):
        assert p.dtype == np.float64
        np.testing.assert_allclose(p, sgd_momentum_ref(before[k], g, vel[k], 0.05, 0.9)[0],
                                   rtol=1e-12)


# ---- class forms ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,rule,config", [(SGD, sgd_momentum, SGD_CFG),
                                             (Adam, adam_optimizer, ADAM_CFG)])
def test_class_forms_equal_functional_forms(cls, rule, config):
    net = make_net(np.float64)
    twin = copy.deepcopy(net)
    opt = cls(net, **config)
    state = {}
    x = np.random.default_rng(0).standard_normal((6, 5))
    for step in range(3):
        for m in (net, twin):
            m.zeroGradParameters()
            m.forward(x)
            m.backward(x, np.ones((6, 3)) * (step + 1))
        opt.step()
        rule(twin.getParameters(), twin.getGradParameters(), config, state)
        for a, b in zip(_flat(net.getParameters()), _flat(twin.getParameters())):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    opt.zero_grad()
    assert all(np.all(g == 0) for g in _flat(net.getGradParameters()))
    sd = opt.state_dict()
    other = cls(twin, **config)
    other.load_state_dict(sd)
    assert other.config == opt.config


def test_class_form_rejects_unknown_options():
    with pytest.raises(TypeError, match="lr"):
        SGD(make_net(np.float32), lr=0.1)


# ---- schedules ------------------------------------------------------------------------------
def test_step_decay_halves_every_three_epochs():
    s = StepDecay(0.1)
    assert [s(e) for e in range(7)] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    cfg = {"learning_rate": 1.0}
    assert step_decay(cfg, 6, 0.1) == pytest.approx(0.025)
    assert cfg["learning_rate"] == pytest.approx(0.025)
    assert s.apply(cfg, 3) == pytest.approx(0.05) and cfg["learning_rate"] == pytest.approx(0.05)


def test_other_schedules():
    assert ExponentialDecay(1.0, 0.5)(3) == pytest.approx(0.125)
    c = CosineDecay(1.0, 10)
    assert c(0) == pytest.approx(1.0) and c(10) == pytest.approx(0.0) and c(5) == pytest.approx(0.5)
    assert c(20) == pytest.approx(0.0)


def test_a_bare_array_is_one_variable():
    # not a list: one variable, whose momentum the state keeps whole under index 0
    p = np.ones((2, 3), np.float32)
    g = np.full((2, 3), 2.0, np.float32)
    state = {}
    sgd_momentum(p, g, {"learning_rate": 0.1, "momentum": 0.9}, state)
    np.testing.assert_allclose(p, 0.8)
    assert list(state["accumulated_grads"]) == [0]
    assert state["accumulated_grads"][0].shape == (2, 3)


def test_state_of_another_dtype_or_layout_is_converted_not_misread():
    W = np.ones((3, 4), np.float32)
    gW = np.full((3, 4), 0.5, np.float32)
    velocity = np.asfortranarray(np.full((3, 4), 2.0))  # float64, Fortran order
    state = {"accumulated_grads": {0: velocity}}
    sgd_momentum([W], [gW], {"learning_rate": 0.1, "momentum": 0.5}, state)
    np.testing.assert_allclose(W, 1 - (0.5 * 2.0 + 0.1 * 0.5), rtol=1e-5)
    assert state["accumulated_grads"][0].dtype == np.float32


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "fast"])
def test_non_finite_config_is_refused(bad):
    W, gW = np.ones(3, np.float32), np.ones(3, np.float32)
    with pytest.raises((ValueError, TypeError), match="learning_rate"):
        sgd_momentum([W], [gW], {"learning_rate": bad}, {})
    with pytest.raises((ValueError, TypeError), match="momentum"):
        fastnn.optim.SGD(fastnn.Linear(2, 2), momentum=bad)
    np.testing.assert_array_equal(W, 1)


# ---- the base class: one place decides fused or per-array ----------------------------------
def test_per_array_adam_counts_one_step_whatever_the_dtypes():
    variables = [np.zeros(3, np.float32), np.zeros(2, np.float64)]
    grads = [np.ones(3, np.float32), np.ones(2, np.float64)]
    state = {}
    adam_optimizer(variables, grads, ADAM_CFG, state)
    assert state["t"] == 1
    for v in variables:  # the first bias-corrected step moves by about the learning rate
        np.testing.assert_allclose(v, -0.01, rtol=1e-5)


def test_base_class_runs_a_rule_function():
    net = make_net(np.float64)
    calls = []

    def rule(variables, gradients, config, state):
        calls.append((config["learning_rate"], len(_flat(variables))))
        state["n"] = state.get("n", 0) + 1

    opt = fastnn.optim.Optimizer(net, rule=rule, learning_rate=0.5, anything=1)
    opt.step()
    opt.step()
    assert calls == [(0.5, 6), (0.5, 6)] and opt.state == {"n": 2}
    assert repr(opt).startswith("rule(")
    with pytest.raises(TypeError, match="rule function"):
        fastnn.optim.Optimizer(net)


def test_functional_forms_are_the_class_rules():
    net, twin = make_net(np.float32), make_net(np.float32)
    fill_grads(net.getGradParameters(), 0)
    fill_grads(twin.getGradParameters(), 0)
    s1, s2 = {}, {}
    Adam.apply(net.getParameters(), net.getGradParameters(), ADAM_CFG, s1)
    adam_optimizer(twin.getParameters(), twin.getGradParameters(), ADAM_CFG, s2)
    for a, b in zip(_flat(net.getParameters()), _flat(twin.getParameters())):
        np.testing.assert_array_equal(a, b)
    assert sorted(s1) == sorted(s2) == ["_fused", "m", "t", "v"]
