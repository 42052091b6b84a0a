"""One thread per module: a second thread entering forward/backward of a module (or of
a net holding it) while another is inside raises RuntimeError instead of returning
numbers computed into the other thread's buffers. A deep copy per thread runs
concurrently."""
import copy
import pickle
import threading

import numpy as np
import pytest

import fastnn
from fastnn import BatchNormalization, Linear, ReLU, Sequential


class Gate(fastnn.Module):
    """Holds the thread that runs its forward until released (makes the overlap certain)."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def updateOutput(self, input):
        self.entered.set()
        self.release.wait(30)
        self.output = input
        return input

    def __getstate__(self):
        state = super().__getstate__()
        state["entered"] = state["release"] = None
        return state


def _net():
    fastnn.manual_seed(0)
    gate = Gate()
    return Sequential(Linear(8, 8), ReLU(), BatchNormalization(), gate).evaluate(), gate


def test_second_thread_in_forward_raises():
    net, gate = _net()
    x = np.ones((4, 8), np.float32)
    t = threading.Thread(target=net.forward, args=(x,))
    t.start()
    try:
        assert gate.entered.wait(30)
        with pytest.raises(RuntimeError, match="another thread is inside") as e:
            net.forward(x)
        assert "Sequential" in str(e.value) and "deepcopy" in str(e.value)
        with pytest.raises(RuntimeError, match="another thread is inside"):
            net.backward(x, x)
        with pytest.raises(RuntimeError, match="Gate: forward called while another thread"):
            gate.forward(x)
    finally:
        gate.release.set()
        t.join(30)
    # released: the net serves the next caller
    assert net.forward(x).shape == (4, 8)


def test_second_thread_in_backward_raises():
    lin = Linear(8, 8)
    x = np.ones((4, 8), np.float32)
    lin.forward(x)
    gate = Gate()
    net = Sequential(lin, gate)
    gate.release.set()
    net.forward(x)  # a forward to go backward from
    gate.release.clear()
    gate.entered.clear()
    t = threading.Thread(target=net.forward, args=(x,))
    t.start()
    try:
        assert gate.entered.wait(30)
        with pytest.raises(RuntimeError, match="backward called while another thread"):
            net.backward(x, x)
    finally:
        gate.release.set()
        t.join(30)


def test_one_copy_per_thread_runs_concurrently():
    fastnn.manual_seed(1)
    net = Sequential(Linear(32, 64), ReLU(), Linear(64, 10)).evaluate()
    xs = [np.random.default_rng(i).standard_normal((256, 32)).astype(np.float32)
          for i in range(4)]
    expected = [net.forward(x).copy() for x in xs]
    results, errors = {}, []

    def work(i):
        mine = copy.deepcopy(net)
        try:
            for _ in range(20):
                out = mine.forward(xs[i])
                results.setdefault(i, []).append(out.copy())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for i in range(4):
        for out in results[i]:
            np.testing.assert_array_equal(out, expected[i])


def test_lock_is_not_copied_or_pickled():
    net = Sequential(Linear(4, 4), ReLU())
    clone = pickle.loads(pickle.dumps(net))
    deep = copy.deepcopy(net)
    assert clone[0]._busy is not net[0]._busy and deep[0]._busy is not net[0]._busy
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(clone.forward(x), net.forward(x))
