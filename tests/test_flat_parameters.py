"""fastnn/module.py: FlatParameters, the explicit record of a container's flat buffers
(Torch7's getParameters()), and the lists that carry it to the optimizer. Nothing
module-level keeps a net alive."""
import gc
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import fastnn
from fastnn import Linear, ReLU, Sequential, sgd_momentum
from fastnn.module import FlatParameters, ParameterList
from fastnn.nested import flatten

SGD_CFG = {"learning_rate": 0.05, "momentum": 0.9}


def make_net(seed=0):
    fastnn.manual_seed(seed)
    return Sequential(Linear(6, 5), ReLU(), Linear(5, 3))


def test_the_lists_carry_the_container_record():
    net = make_net()
    params, grads = net.getParameters(), net.getGradParameters()
    flat = net.flatten_parameters()
    assert isinstance(flat, FlatParameters)
    assert isinstance(params, ParameterList) and params.flat is flat and grads.flat is flat
    assert flat.holds(flatten(params), flatten(grads))
    assert all(a is b for a, b in zip(flatten(params), flat.param_views))
    # the views tile the flat buffers in order
    np.testing.assert_array_equal(np.concatenate([p.ravel() for p in flatten(params)]),
                                  flat.params)
    assert flat.params.size == 6 * 5 + 5 + 5 * 3 + 3


def test_a_copy_of_the_lists_is_a_plain_list():
    import copy
    import pickle
    params = make_net().getParameters()
    for other in (copy.copy(params), copy.deepcopy(params), pickle.loads(pickle.dumps(params))):
        assert type(other) is list and not hasattr(other, "flat")


def test_an_edited_list_takes_the_per_array_path():
    # the list still carries the record, but no longer holds its views: updating the
    # flat buffer would leave the caller's array untouched
    net = make_net()
    params, grads = net.getParameters(), net.getGradParameters()
    for g in flatten(grads):
        g[...] = 1.0
    mine = params[0][0].copy()
    params[0][0] = mine
    before = mine.copy()
    state = {}
    sgd_momentum(params, grads, SGD_CFG, state)
    assert "_fused" not in state
    np.testing.assert_allclose(mine, before - 0.05)


def test_views_of_one_buffer_not_from_a_container_take_the_per_array_path():
    # no address arithmetic: only a container's record makes an update fused
    P, G = np.zeros(10), np.ones(10)
    vs, gs = [P[:4].reshape(2, 2), P[4:]], [G[:4].reshape(2, 2), G[4:]]
    state = {}
    sgd_momentum(vs, gs, SGD_CFG, state)
    assert "_fused" not in state
    np.testing.assert_allclose(P, -0.05)


def test_lists_from_before_a_dtype_change_are_not_fused():
    net = make_net()
    params, grads = net.getParameters(), net.getGradParameters()
    net.double()  # the leaves now hold new arrays; the old lists are stale
    assert not params.flat.is_current()
    state = {}
    sgd_momentum(params, grads, SGD_CFG, state)
    assert "_fused" not in state


def test_dropped_nets_do_not_survive():
    refs = []
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 8)
    crit = fastnn.CrossEntropyCriterion()
    for i in range(20):
        net = make_net(i)
        opt = fastnn.optim.SGD(net, **SGD_CFG)
        state = {}
        for _ in range(3):
            opt.zero_grad()
            out = net.forward(x)
            crit.forward(out, y)
            net.backward(x, crit.backward(out, y))
            opt.step()
            sgd_momentum(net.getParameters(), net.getGradParameters(), SGD_CFG, state)
        if i % 2:
            net.double()
            net.getParameters()
        refs.append((weakref.ref(net), weakref.ref(net.modules[0]),
                     weakref.ref(net.flatten_parameters().params)))
        del net, opt, state, out
    gc.collect()
    alive = [i for i, r in enumerate(refs) if any(w() is not None for w in r)]
    assert alive == []


RSS_SCRIPT = textwrap.dedent("""
    import gc
    import fastnn
    from fastnn import Linear, ReLU, Sequential, sgd_momentum

    def rss_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    def build_and_drop(i):
        net = Sequential(Linear(784, 1024), ReLU(), Linear(1024, 1024), ReLU(),
                         Linear(1024, 10))
        state = {}
        sgd_momentum(net.getParameters(), net.getGradParameters(),
                     {"learning_rate": 0.1, "momentum": 0.9}, state)
        net.double()
        net.getParameters()
        net.float()
        sgd_momentum(net.getParameters(), net.getGradParameters(),
                     {"learning_rate": 0.1, "momentum": 0.9}, state)

    for i in range(5):  # warm up: allocator pools, kernels loaded
        build_and_drop(i)
    gc.collect()
    start = rss_mib()
    for i in range(60):
        build_and_drop(i)
    gc.collect()
    print("RSS_GROWTH_MIB", rss_mib() - start)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")
def test_building_and_dropping_nets_keeps_rss_flat():
    # each net is 1.86 M parameters: kept alive, 60 of them (with their float64 twins)
    # would grow the process by gigabytes
    res = subprocess.run([sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    growth = float(res.stdout.split("RSS_GROWTH_MIB")[1])
    assert growth < 100, f"RSS grew by {growth:.0f} MiB over 60 nets"
