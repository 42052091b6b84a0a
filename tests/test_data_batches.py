"""fastnn.data.batches: minibatches cover every sample once, seeded shuffles, epochs,
the train/validation split."""
import numpy as np
import pytest

from fastnn.datasets import BatchIterator, iterate_minibatches, train_val_split


# --------------------------------------------------------------------------- batches

def test_minibatches_cover_everything_once():
    X, y = np.arange(103)[:, None] * np.ones((1, 3)), np.arange(103)
    batches = list(iterate_minibatches(X, y, 10, shuffle=True, seed=1))
    assert [len(b[0]) for b in batches] == [10] * 10 + [3]
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen) == list(range(103)) and not np.array_equal(seen, np.arange(103))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb)  # rows stay paired with labels


def test_minibatches_seeded_and_ordered():
    X, y = np.arange(50), np.arange(50)
    a = [yb for _, yb in iterate_minibatches(X, y, 8, seed=7)]
    b = [yb for _, yb in iterate_minibatches(X, y, 8, seed=7)]
    c = [yb for _, yb in iterate_minibatches(X, y, 8, seed=8)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))
    plain = np.concatenate([yb for _, yb in iterate_minibatches(X, y, 8, shuffle=False)])
    np.testing.assert_array_equal(plain, y)
    with pytest.raises(ValueError, match="X has 50 samples"):
        next(iterate_minibatches(X, y[:-1], 8))
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_minibatches(X, y, 0))


def test_batch_iterator_epochs():
    X, y = np.arange(25), np.arange(25)
    it = BatchIterator(X, y, 10, seed=3)
    assert len(it) == 3
    epoch1 = np.concatenate([yb for _, yb in it])
    epoch2 = np.concatenate([yb for _, yb in it])
    assert sorted(epoch1) == sorted(epoch2) == list(range(25))
    assert not np.array_equal(epoch1, epoch2)  # a fresh shuffle per epoch
    again = BatchIterator(X, y, 10, seed=3)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in again]), epoch1)

    dropped = BatchIterator(X, y, 10, seed=3, drop_last=True, transform=lambda xb: -xb)
    batches = list(dropped)
    assert len(dropped) == len(batches) == 2
    assert all(len(xb) == 10 and np.array_equal(xb, -yb) for xb, yb in batches)


def test_train_val_split():
    X, y = np.arange(100) * 10, np.arange(100)
    X_tr, y_tr, X_val, y_val = train_val_split(X, y, val_size=30, seed=0)
    assert len(X_tr) == 70 and len(X_val) == 30
    assert not set(y_tr) & set(y_val) and set(y_tr) | set(y_val) == set(range(100))
    np.testing.assert_array_equal(X_tr, y_tr * 10)
    assert np.all(np.diff(y_tr) > 0)  # original order kept
    np.testing.assert_array_equal(train_val_split(X, y, 30, seed=0)[3], y_val)
    assert not np.array_equal(train_val_split(X, y, 30, seed=1)[3], y_val)
    assert len(train_val_split(X, y, 0.25)[2]) == 25
    with pytest.raises(ValueError, match="val_size"):
        train_val_split(X, y, val_size=100)
