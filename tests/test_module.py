"""Module protocol and Sequential: forward/backward bookkeeping, lazy zeroing of gradients,
parameters, containers, dtype conversion, copying, input casting, assignment."""
import copy
import pickle
import tempfile

import numpy as np
import pytest

import fastnn
from conftest import rand
from fastnn import (ELU, BatchNormalization, ChannelwiseScaling, Dropout, LeakyReLU, Linear,
                    LogSoftMax, ReLU, Sequential, Sigmoid, SoftMax, SoftPlus, Tanh)
from fastnn.nested import flatten as _flat


def linear(n_in, n_out, seed=0, dtype=np.float64):
    fastnn.manual_seed(seed)
    m = Linear(n_in, n_out)
    return m.double() if dtype == np.float64 else m


# ---- forward/backward protocol ------------------------------------------------------------
def test_forward_stores_output_and_backward_returns_gradinput():
    m = linear(4, 3)
    x = rand(5, 4)
    out = m.forward(x)
    assert m.output is out
    g = rand(5, 3, seed=1)
    gi = m.backward(x, g)
    assert m.gradInput is gi
    np.testing.assert_allclose(gi, g @ m.W, rtol=1e-12)
    np.testing.assert_allclose(m.gradW, g.T @ x, rtol=1e-12)
    np.testing.assert_allclose(m.gradb, g.sum(0), rtol=1e-12)


def test_backward_is_updateGradInput_plus_accGradParameters():
    a, b = linear(4, 3), linear(4, 3)
    x, g = rand(5, 4), rand(5, 3, seed=1)
    a.forward(x)
    b.forward(x)
    a.zeroGradParameters()
    b.zeroGradParameters()
    a.backward(x, g)
    b.updateGradInput(x, g)
    np.testing.assert_array_equal(b.gradW, 0)  # updateGradInput leaves parameters alone
    b.accGradParameters(x, g)
    np.testing.assert_array_equal(a.gradInput, b.gradInput)
    np.testing.assert_array_equal(a.gradW, b.gradW)
    np.testing.assert_array_equal(a.gradb, b.gradb)


def test_gradients_accumulate_and_zero():
    m = linear(4, 3)
    x, g = rand(5, 4), rand(5, 3, seed=1)
    m.zeroGradParameters()
    m.forward(x)
    m.backward(x, g)
    once_W, once_b = m.gradW.copy(), m.gradb.copy()
    m.backward(x, g)
    np.testing.assert_allclose(m.gradW, 2 * once_W, rtol=1e-12)
    np.testing.assert_allclose(m.gradb, 2 * once_b, rtol=1e-12)
    m.zeroGradParameters()
    m.backward(x, g)
    np.testing.assert_allclose(m.gradW, once_W, rtol=1e-12)
    np.testing.assert_allclose(m.gradb, once_b, rtol=1e-12)


def test_lazy_zero_reads_as_zeros():
    m = linear(4, 3)
    x, g = rand(5, 4), rand(5, 3, seed=1)
    m.forward(x)
    m.backward(x, g)
    m.zeroGradParameters()
    np.testing.assert_array_equal(m.gradW, 0)
    np.testing.assert_array_equal(m.gradb, 0)
    for gp in m.getGradParameters():
        np.testing.assert_array_equal(gp, 0)
    # after the materialization, backward accumulates onto the zeros
    m.backward(x, g)
    np.testing.assert_allclose(m.gradW, g.T @ x, rtol=1e-12)


def test_lazy_zero_in_a_container_and_fused_path():
    fastnn.manual_seed(0)
    net = Sequential(Linear(4, 6), ReLU(), Linear(6, 3), ChannelwiseScaling(3)).double()
    x, g = rand(5, 4), rand(5, 3, seed=1)
    net.forward(x)
    net.backward(x, g)
    first = [a.copy() for a in _flat(net.getGradParameters())]
    net.backward(x, g)
    for a, b in zip(_flat(net.getGradParameters()), first):
        np.testing.assert_allclose(a, 2 * b, rtol=1e-12, atol=1e-14)
    net.zeroGradParameters()
    for a in _flat(net.getGradParameters()):
        np.testing.assert_array_equal(a, 0)
    net.zeroGradParameters()
    net.forward(x)
    net.backward(x, g)
    for a, b in zip(_flat(net.getGradParameters()), first):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_getParameters_returns_live_arrays():
    m = linear(3, 2)
    x = rand(4, 3)
    W, b = m.getParameters()
    W[...] = 0
    b[...] = 7
    np.testing.assert_array_equal(m.forward(x), np.full((4, 2), 7.0))
    net = Sequential(linear(3, 2), ReLU()).double()
    params = net.getParameters()
    params[0][1][...] = 5  # the Linear's bias
    params[0][0][0, :] = 0
    np.testing.assert_allclose(net.forward(x), np.maximum(x @ net[0].W.T + 5, 0), rtol=1e-12)
    assert np.all(net.output[:, 0] == 5)


def test_container_returns_one_list_per_child():
    net = Sequential(Linear(3, 4), ReLU(), Dropout(0.2), Linear(4, 2), ChannelwiseScaling(2))
    params, grads = net.getParameters(), net.getGradParameters()
    assert [len(p) for p in params] == [2, 0, 0, 2, 2]
    assert [len(g) for g in grads] == [2, 0, 0, 2, 2]
    assert [p.shape for p in params[0]] == [(4, 3), (4,)]
    assert [g.shape for g in grads[3]] == [(2, 4), (2,)]
    nested = Sequential(Sequential(Linear(2, 2), ReLU()), Linear(2, 1))
    assert [[len(p) for p in nested.getParameters()[0]], len(nested.getParameters()[1])] == \
        [[2, 0], 2]


def test_train_evaluate_propagate():
    inner = Sequential(Dropout(0.5), BatchNormalization(0.9))
    net = Sequential(Linear(2, 2), inner, ReLU())
    assert net.evaluate() is net
    assert all(not m.training for m in [net, inner, *inner, *net])
    assert net.train() is net
    assert all(m.training for m in [net, inner, *inner, *net])


@pytest.mark.parametrize("make", [lambda: Linear(3, 2), lambda: ChannelwiseScaling(3),
                                  lambda: Sequential(Linear(3, 2), Tanh())])
def test_double_float_change_dtype_in_place_and_return_self(make):
    m = make()
    x = rand(4, 3)
    before = np.array(m.forward(x), dtype=np.float64)
    assert m.double() is m
    out = m.forward(x)
    assert out.dtype == np.float64
    assert all(p.dtype == np.float64 for p in _flat(m.getParameters()))
    assert all(g.dtype == np.float64 for g in _flat(m.getGradParameters()))
    np.testing.assert_allclose(out, before, rtol=1e-6, atol=1e-7)
    assert m.float() is m
    assert m.forward(x).dtype == np.float32
    assert all(p.dtype == np.float32 for p in _flat(m.getParameters()))


def test_repr(capsys):
    assert repr(Linear(784, 10)) == "Linear 784 -> 10"
    net = Sequential(Linear(784, 10), ReLU(), LogSoftMax())
    print(net)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert "Linear 784 -> 10" in lines[1] and "ReLU" in lines[2] and "LogSoftMax" in lines[3]


# ---- Sequential --------------------------------------------------------------------------
def test_sequential_list_api():
    a, b, c = Linear(3, 4), ReLU(), Linear(4, 2)
    net = Sequential()
    assert net.add(a) is net
    net.add(b).add(c)
    assert len(net) == 3
    assert net[0] is a and net[-1] is c and net[1] is b
    assert list(net) == [a, b, c]
    sl = net[0:2]
    assert isinstance(sl, Sequential) and list(sl) == [a, b]
    d = Tanh()
    net.insert(d, 1)
    assert list(net) == [a, d, b, c]
    assert net.remove() is c
    assert net.remove(1) is d
    assert list(net) == [a, b]
    assert net.forward(rand(2, 3)).shape == (2, 4)  # still runs after edits


def test_sequential_edits_invalidate_fusion_and_flat_buffer():
    fastnn.manual_seed(0)
    net = Sequential(Linear(3, 4), ReLU()).double()
    x = rand(5, 3)
    net.forward(x)
    net.getParameters()
    net.remove()
    net.add(Tanh().double())
    np.testing.assert_allclose(net.forward(x), np.tanh(x @ net[0].W.T + net[0].b), rtol=1e-12)
    net.insert(Linear(3, 3).double(), 0)
    y = net.forward(x)
    assert y.shape == (5, 4)
    assert len(net.getParameters()) == 3


class Recorder(fastnn.Module):
    """Identity that remembers what it was given."""

    def __init__(self):
        super().__init__()
        self.seen_forward = []
        self.seen_backward = []

    def updateOutput(self, input):
        self.seen_forward.append(np.array(input, copy=True))
        self.output = np.array(input, copy=True)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.seen_backward.append(np.array(input, copy=True))
        self.gradInput = gradOutput
        return gradOutput


@pytest.mark.parametrize("middle", [lambda: [Linear(3, 4), ReLU()], lambda: [Linear(3, 4)],
                                    lambda: [Sigmoid(), Linear(3, 4)]])
def test_sequential_backward_feeds_each_child_its_forward_input(middle):
    fastnn.manual_seed(1)
    r1, r2 = Recorder(), Recorder()
    net = Sequential(r1, *middle(), r2, Linear(4, 2)).double()
    x = rand(5, 3)
    net.forward(x)
    net.backward(x, rand(5, 2, seed=1))
    for r in (r1, r2):
        assert len(r.seen_backward) == 1
        np.testing.assert_array_equal(r.seen_backward[0], r.seen_forward[0])


ACTS = [ReLU, lambda: LeakyReLU(0.1), lambda: ELU(0.5), SoftPlus, Sigmoid, Tanh]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("batch", [1, 6])
def test_fused_path_matches_modules_called_one_by_one(act, dtype, batch):
    fastnn.manual_seed(3)
    layers = [Linear(5, 7), act(), Linear(7, 4), act(), Linear(4, 3), LogSoftMax()]
    net = Sequential(*[copy.deepcopy(m) for m in layers]).type(dtype)
    for m in layers:
        m.type(dtype)
    x = rand(batch, 5).astype(dtype)
    g = rand(batch, 3, seed=1).astype(dtype)
    out = net.forward(x)
    h = x
    for m in layers:
        h = m.forward(h)
    np.testing.assert_array_equal(out, h)
    for _ in range(2):  # the second round accumulates
        gi = net.backward(x, g)
        gm = g
        for i in range(len(layers) - 1, -1, -1):
            inp = x if i == 0 else layers[i - 1].output
            gm = layers[i].backward(inp, gm)
        # the fused kernels do the same arithmetic in the same order: bitwise equal
        # (float32 bias gradients: see test_fused_bias_gradient_is_bitwise_equal_in_float32)
        np.testing.assert_array_equal(gi, gm)
        for a, b in zip(_flat(net.getGradParameters()),
                        _flat([m.getGradParameters() for m in layers])):
            if dtype == np.float64 or a.ndim == 2:
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
    # intermediate outputs/gradInputs of the fused children are what the modules expose
    np.testing.assert_array_equal(net[1].output, layers[1].output)
    np.testing.assert_array_equal(net[1].gradInput, layers[1].gradInput)
    np.testing.assert_array_equal(net[0].output, layers[0].output)
    np.testing.assert_array_equal(net[0].gradInput, layers[0].gradInput)


def test_torch_style_updateGradInput_then_accGradParameters_on_sequential():
    fastnn.manual_seed(4)
    net = Sequential(Linear(4, 5), ReLU(), Linear(5, 2)).double()
    ref = copy.deepcopy(net)
    x, g = rand(6, 4), rand(6, 2, seed=1)
    net.forward(x)
    ref.forward(x)
    ref.zeroGradParameters()
    net.zeroGradParameters()
    ref.backward(x, g)
    net.updateGradInput(x, g)
    net.accGradParameters(x, g)
    np.testing.assert_allclose(net.gradInput, ref.gradInput, rtol=1e-12)
    for a, b in zip(_flat(net.getGradParameters()), _flat(ref.getGradParameters())):
        np.testing.assert_allclose(a, b, rtol=1e-12)


# ---- copying ------------------------------------------------------------------------------
def make_net(seed=5):
    fastnn.manual_seed(seed)
    return Sequential(Linear(4, 6), ReLU(), BatchNormalization(0.9), ChannelwiseScaling(6),
                      Linear(6, 3), LogSoftMax())


def train_steps(net, steps=3, seed=0):
    crit = fastnn.ClassNLLCriterion()
    state = {}
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        x = rng.standard_normal((8, 4))
        y = rng.integers(0, 3, 8)
        net.zeroGradParameters()
        out = net.forward(x)
        losses.append(crit.forward(out, y))
        net.backward(x, crit.backward(out, y))
        fastnn.sgd_momentum(net.getParameters(), net.getGradParameters(),
                            {"learning_rate": 0.1, "momentum": 0.9}, state)
    return losses


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
@pytest.mark.parametrize("flatten_first", [False, True])
def test_copies_are_independent_and_train_identically(clone, flatten_first):
    net = make_net()
    if flatten_first:
        train_steps(net, 1, seed=9)
    twin = clone(net)
    for a, b in zip(_flat(net.getParameters()), _flat(twin.getParameters())):
        np.testing.assert_array_equal(a, b)
        assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(net[2].moving_mean, twin[2].moving_mean)
    la = train_steps(net)
    lb = train_steps(twin)
    assert la == lb
    for a, b in zip(_flat(net.getParameters()), _flat(twin.getParameters())):
        np.testing.assert_array_equal(a, b)
    # changing one leaves the other alone
    net[0].W[...] = 0
    net[2].moving_mean[...] = 42
    assert np.any(twin[0].W != 0)
    assert np.all(twin[2].moving_mean != 42)
    x = rand(3, 4)
    twin.evaluate()
    before = twin.forward(x).copy()
    train_steps(net, 1)
    np.testing.assert_array_equal(twin.forward(x), before)


def test_deepcopy_of_a_single_layer_is_independent():
    m = linear(3, 2)
    c = copy.deepcopy(m)
    m.W[...] = 1
    assert not np.shares_memory(m.W, c.W) and np.any(c.W != 1)


# ---- inputs of any dtype and layout ------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: Linear(6, 4), ReLU, SoftMax, LogSoftMax, Tanh,
                                  lambda: BatchNormalization(0.5), lambda: ChannelwiseScaling(6),
                                  lambda: Sequential(Linear(6, 5), ELU(), Linear(5, 2))])
def test_any_input_dtype_and_layout(make):
    fastnn.manual_seed(0)
    proto = make()
    base = np.random.default_rng(0).integers(0, 5, (6, 12)).astype(np.uint8)
    variants = [base[:, ::2],  # uint8, strided
                base[:, ::2].astype(np.int64),
                base[:, ::2].astype(np.float64),
                np.asfortranarray(base[:, ::2].astype(np.float32)),
                base[::-1, ::2].astype(np.float32)[::-1],  # negative strides
                base[:, ::2].tolist()]
    ref_in = np.ascontiguousarray(base[:, ::2], dtype=np.float32)
    ref_m = copy.deepcopy(proto)
    ref_out = ref_m.forward(ref_in).copy()
    g = np.random.default_rng(1).standard_normal(ref_out.shape)
    ref_gi = ref_m.backward(ref_in, g.astype(np.float32)).copy()
    for v in variants:
        m = copy.deepcopy(proto)
        out = m.forward(v)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(m.backward(v, g), ref_gi)


def test_float64_module_keeps_float64():
    m = linear(3, 2)
    assert m.forward(np.ones((2, 3), np.float32)).dtype == np.float64


# ---- parameter assignment -----------------------------------------------------------------
def test_assigning_a_parameter_stores_values():
    fastnn.manual_seed(0)
    net = Sequential(Linear(3, 2), ReLU())
    params = net.getParameters()
    W_view = params[0][0]
    layer = net[0]
    new_W = np.arange(6, dtype=np.float64).reshape(2, 3)
    layer.W = new_W
    assert layer.W.dtype == np.float32
    np.testing.assert_array_equal(layer.W, new_W)
    np.testing.assert_array_equal(W_view, new_W)  # the flat buffer saw it
    assert layer.W is not new_W
    new_W[0, 0] = 100  # not aliased
    assert layer.W[0, 0] == 0
    layer.b = [1.0, -1.0]
    np.testing.assert_array_equal(net.forward(np.zeros((1, 3))), [[1.0, 0.0]])


@pytest.mark.parametrize("name,shape", [("W", (3, 2)), ("b", (3,)), ("W", (6,)), ("gradW", (2, 2))])
def test_assigning_wrong_shape_raises_naming_shapes(name, shape):
    layer = Linear(3, 2)
    with pytest.raises(ValueError) as e:
        setattr(layer, name, np.zeros(shape))
    msg = str(e.value)
    assert "Linear 3 -> 2" in msg and str(shape) in msg and name in msg


# ---- NaN ----------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [ReLU, lambda: Linear(3, 3),
                                  lambda: Sequential(Linear(3, 3), ReLU())])
def test_nan_input_propagates(make):
    m = make()
    x = np.ones((2, 3))
    x[0, 1] = np.nan
    out = m.forward(x)
    assert np.isnan(out[0]).any() and np.all(np.isfinite(out[1]))
    if isinstance(m, ReLU):
        assert np.isnan(out[0, 1])
    else:
        assert np.all(np.isnan(out[0]))


class DoubledReLU(ReLU):
    """A user subclass (2 * relu): fusion would silently skip these overrides."""

    def updateOutput(self, input):
        self.output = 2 * super().updateOutput(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        return super().updateGradInput(input, 2 * np.asarray(gradOutput))


class LoggingLinear(Linear):
    calls = 0

    def updateOutput(self, input):
        type(self).calls += 1
        return super().updateOutput(input)


def test_subclassed_modules_are_not_fused_away():
    fastnn.manual_seed(0)
    net = Sequential(Linear(3, 4), DoubledReLU()).double()
    x = rand(5, 3)
    z = x @ net[0].W.T + net[0].b
    np.testing.assert_allclose(net.forward(x), 2 * np.maximum(z, 0), rtol=1e-12)
    g = rand(5, 4, seed=1)
    np.testing.assert_allclose(net.backward(x, g), (2 * g * (z > 0)) @ net[0].W, rtol=1e-12)
    LoggingLinear.calls = 0
    net2 = Sequential(LoggingLinear(3, 4), ReLU())
    net2.forward(x)
    assert LoggingLinear.calls == 1


# ---- regressions: eager gradient zeroing keeps held arrays true; fused bias grad rounding ----
def test_held_gradient_arrays_read_zero_after_zeroGradParameters():
    fastnn.manual_seed(0)
    net = Sequential(Linear(3, 2), ReLU()).double()
    params, grads = net.getParameters(), net.getGradParameters()  # Torch7 style: fetched once
    x = rand(4, 3)
    net.forward(x)
    net.backward(x, np.ones((4, 2)))
    net.zeroGradParameters()
    for g in _flat(grads):
        np.testing.assert_array_equal(g, 0)


def test_penalty_added_to_held_gradients_before_backward_is_kept():
    fastnn.manual_seed(0)
    net = Sequential(Linear(3, 2)).double()
    params, grads = net.getParameters(), net.getGradParameters()
    x, g = rand(4, 3), rand(4, 2, seed=1)
    net.forward(x)
    net.backward(x, g)
    net.zeroGradParameters()
    grads[0][0] += 0.1 * params[0][0]  # weight decay, added before backward
    net.forward(x)
    net.backward(x, g)
    np.testing.assert_allclose(grads[0][0], g.T @ x + 0.1 * params[0][0], rtol=1e-12)


def test_fused_bias_gradient_is_bitwise_equal_in_float32():
    fastnn.manual_seed(3)
    layers = [Linear(5, 7), Tanh()]
    net = Sequential(*[copy.deepcopy(m) for m in layers])
    x, g = rand(6, 5).astype(np.float32), rand(6, 7, seed=1).astype(np.float32)
    net.forward(x)
    net.backward(x, g)
    layers[1].forward(layers[0].forward(x))
    layers[0].backward(x, layers[1].backward(layers[0].output, g))
    np.testing.assert_array_equal(net[0].gradW, layers[0].gradW)  # holds
    np.testing.assert_array_equal(net[0].gradb, layers[0].gradb)


def test_lazy_zero_grad_opt_in_matches_eager():
    """lazy_zero_grad(True) skips the memset but gives the same gradients after backward."""
    results = []
    for lazy in (False, True):
        fastnn.lazy_zero_grad(lazy)
        try:
            fastnn.manual_seed(0)
            net = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
            x = rand(5, 3)
            for _ in range(2):
                net.zeroGradParameters()
                net.forward(x)
                net.backward(x, np.ones((5, 2)))
            results.append([np.array(g) for g in _flat(net.getGradParameters())])
        finally:
            fastnn.lazy_zero_grad(False)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_fast_exit_freezes_the_collector_only_with_numba_loaded(monkeypatch):
    import gc
    import sys

    from fastnn._runtime import exit as _exit
    registered = []
    _exit.install(environ={}, register=registered.append)
    assert registered == [_exit.freeze_if_numba_loaded]
    _exit.install(environ={"FASTNN_FAST_EXIT": "0"}, register=registered.append)
    assert len(registered) == 1                      # opted out: nothing registered

    before = gc.get_freeze_count()
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    _exit.freeze_if_numba_loaded()
    assert gc.get_freeze_count() == before           # no Numba: nothing to skip
    monkeypatch.setitem(sys.modules, "numba", object())
    try:
        _exit.freeze_if_numba_loaded()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_numba_cache_falls_back_to_a_temp_folder_when_nothing_is_writable(tmp_path):
    """A read-only install and an unwritable home would make @njit(cache=True) raise at
    import; fastnn points NUMBA_CACHE_DIR at a per-user temp folder instead."""
    from fastnn._runtime import cache as _cache
    kernels = tmp_path / "site" / "fastnn" / "kernels" / "cpu"
    kernels.mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    read_only = {str(kernels), str(home)}

    def access(path, mode):  # root ignores permission bits, so the test injects them
        return str(path) not in read_only

    env = {"HOME": str(home)}
    # the install is writable: Numba's own __pycache__ next to the sources works
    assert _cache.fallback_cache_dir(str(kernels), env, lambda p, m: True) is None
    # read-only install, writable home: Numba's user-wide fallback works
    env_home = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert _cache.fallback_cache_dir(str(kernels), env_home, access) is None
    # neither: a temp folder
    env_none = {"XDG_CACHE_HOME": str(home / "cache")}
    folder = _cache.fallback_cache_dir(str(kernels), env_none, access)
    assert folder is not None and folder.startswith(tempfile.gettempdir())
    # an explicit NUMBA_CACHE_DIR always wins
    assert _cache.fallback_cache_dir(str(kernels), dict(env_none, NUMBA_CACHE_DIR="/x"),
                                     access) is None


# ---- the container's cached parameter lists (built once per flat buffer) -------------
def _ids(nested):
    return [[id(a) for a in inner] for inner in nested]


def test_getParameters_hands_out_fresh_lists_of_the_same_arrays():
    net = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
    first = net.getParameters()
    first[0].append("mine")
    first.append(["mine too"])
    second = net.getParameters()
    assert len(second) == 3 and len(second[0]) == 2
    assert _ids(second) == _ids(net.getParameters())
    assert second[0][0] is net.modules[0].W
    grads = net.getGradParameters()
    assert grads[2][1] is net.modules[2].gradb


def test_getParameters_follows_changes_to_the_children():
    net = Sequential(Linear(3, 4), ReLU())
    net.getParameters()
    extra = Linear(4, 2)
    net.add(extra)
    assert net.getParameters()[2][0] is extra.W
    other = Linear(3, 4)
    net.modules[0] = other                       # edited in place, not through add()
    assert net.getParameters()[0][0] is other.W
    net.remove(2)
    assert len(net.getGradParameters()) == 2
    inner = Sequential(Linear(2, 2))
    outer = Sequential(Linear(2, 2), inner)
    outer.getParameters()
    inner.add(Linear(2, 3))
    assert outer.getParameters()[1][1][0] is inner.modules[1].W


def test_getParameters_calls_a_subclass_override_each_time():
    class Counting(Linear):
        calls = 0

        def getParameters(self):
            Counting.calls += 1
            return super().getParameters()

    net = Sequential(Counting(2, 2), ReLU())
    net.getParameters()
    net.getParameters()
    assert Counting.calls >= 2


def test_param_grad_parts_take_the_parameter_names():
    class Three(fastnn.Module):
        _param_names = ("A", "B", "C")
        _grad_names = ("gradA", "gradB", "gradC")
        gradA = fastnn.module.GradientSlot()
        gradB = fastnn.module.GradientSlot()
        gradC = fastnn.module.GradientSlot()

        def __init__(self):
            super().__init__()
            for p, shape in zip(self._param_names, [(2,), (3, 1), (4,)]):
                setattr(self, p, np.zeros(shape, np.float32))
                setattr(self, "grad" + p, np.ones(shape, np.float32))

    m = Three()
    parts = m._param_grad_parts(3, ("C", "A"))
    assert [tuple(a.shape) for a in parts[0][:2]] == [(4,), (2,)] and parts[0][2] is True
    assert parts[0][0] is m.gradC and parts[0][1] is m.gradA
    assert all(p[2] is False and p[0].shape == (4,) and p[1].shape == (2,) for p in parts[1:])
    for i, p in enumerate(parts[1:], 1):
        p[0][...] = i
        p[1][...] = 10 * i
    m._sum_param_grad_parts(parts)
    np.testing.assert_array_equal(m.gradC, 1 + 1 + 2)
    np.testing.assert_array_equal(m.gradA, 1 + 10 + 20)
    np.testing.assert_array_equal(m.gradB, 1)  # not asked for: untouched


def test_named_leaves_and_listModules_walk_the_tree():
    inner = Sequential(Linear(3, 3), ReLU())
    net = Sequential(Linear(2, 3), inner, Sequential(Sequential(Tanh())))
    named = net.named_leaves()
    assert [p for p, _ in named] == ["0.", "1.0.", "1.1.", "2.0.0."]
    assert [m for _, m in named] == net.leaves()
    assert net.listModules() == [net, net[0], inner, inner[0], inner[1], net[2], net[2][0],
                                 net[2][0][0]]
    lone = Linear(2, 2)
    assert lone.named_leaves() == [("", lone)] and lone.listModules() == [lone]


def test_backward_hook_sees_each_child_once_its_gradients_are_final():
    net = Sequential(Linear(3, 4), ReLU(), Dropout(0.0), Linear(4, 2))
    x, g = np.ones((5, 3), np.float32), np.ones((5, 2), np.float32)
    net.forward(x)
    seen = []

    def hook(container, index):
        # the gradients of children index.. are written: the last Linear's at the first call
        seen.append((index, float(np.abs(net.modules[3].gradW).sum()) > 0))

    net.zeroGradParameters()
    net.set_backward_hook(hook)
    net.backward(x, g)
    # Linear(3, 4) and ReLU run fused: one call, with the index of the Linear
    assert seen == [(3, True), (2, True), (0, True)]
    clone = pickle.loads(pickle.dumps(net))  # copies do not carry the hook
    clone.forward(x)
    clone.backward(x, g)
    net.set_backward_hook(None)
    net.backward(x, g)
    assert len(seen) == 3
    with pytest.raises(TypeError, match="set_backward_hook"):
        net.set_backward_hook(3)
