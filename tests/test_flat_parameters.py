"""fastnn/container.py: FlatParameters, the explicit record of a container's flat buffers
(Torch7's getParameters()), and the lists that carry it to the optimizer (that dropped
nets are freed: tests/test_memory.py)."""
import numpy as np

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
