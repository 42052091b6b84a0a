"""fastnn/_runtime/rng.py: NumPy's global generator drives parameter init and dropout
masks, as in the homework, so np.random.seed reproduces both; manual_seed seeds it."""
import json

import numpy as np

import fastnn as nn
from fastnn._runtime import rng


def test_np_random_seed_reproduces_parameters():
    np.random.seed(3)
    a = nn.Linear(4, 3)
    np.random.seed(3)
    b = nn.Linear(4, 3)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.b, b.b)


def test_linear_draws_what_the_homework_draws():
    np.random.seed(3)
    stdv = 1 / np.sqrt(4)
    W = np.random.uniform(-stdv, stdv, size=(3, 4))
    b = np.random.uniform(-stdv, stdv, size=3)
    np.random.seed(3)
    layer = nn.Linear(4, 3)
    np.testing.assert_array_equal(layer.W, W.astype(np.float32))
    np.testing.assert_array_equal(layer.b, b.astype(np.float32))


def test_whole_nets_reproducible_under_np_random_seed():
    def build():
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 25, 3))

    np.random.seed(11)
    a = build()
    np.random.seed(11)
    b = build()
    for p, q in zip(sum(a.getParameters(), []), sum(b.getParameters(), [])):
        np.testing.assert_array_equal(p, q)


def _masks(seed):
    np.random.seed(seed)
    d = nn.Dropout(0.5)
    x = np.ones((8, 50), np.float32)
    return [d.forward(x).copy() for _ in range(2)]


def test_dropout_masks_reproducible_under_np_random_seed():
    a1, a2 = _masks(5)
    b1, b2 = _masks(5)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # consecutive forwards draw new masks
    assert not np.array_equal(a1, _masks(6)[0])


def test_manual_seed_seeds_np_random():
    nn.manual_seed(7)
    a = (np.random.random(3), nn.Linear(5, 2).W.copy(), _draw_mask())
    np.random.seed(7)
    b = (np.random.random(3), nn.Linear(5, 2).W.copy(), _draw_mask())
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    nn.manual_seed(2 ** 40 + 7)  # any integer: NumPy's legacy seeding takes it mod 2**32
    np.testing.assert_array_equal(np.random.random(3), a[0])
    nn.manual_seed(-1)


def _draw_mask():
    return nn.Dropout(0.3).forward(np.ones((4, 9))).copy()


def test_state_roundtrip_and_foreign_states():
    np.random.seed(1)
    state = json.loads(json.dumps(rng.get_state()))  # what a checkpoint keeps
    first = np.random.random(4)
    assert rng.set_state(state)
    np.testing.assert_array_equal(np.random.random(4), first)
    # what a checkpoint from before held: a PCG64 state, which is left alone
    pcg = np.random.default_rng(0).bit_generator.state
    assert not rng.set_state(pcg)
