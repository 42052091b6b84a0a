"""Mini-batches: shuffled iteration over (X, y) and the train/validation split."""
from typing import Callable, Iterator

import numpy as np

from .._runtime.checks import positive_int


def _check_xy(X, y):
    if y is not None and len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples (shape {np.shape(X)}) but y has {len(y)} "
                         f"(shape {np.shape(y)})")


def iterate_minibatches(X: np.ndarray, y: "np.ndarray | None", batch_size: int,
                        shuffle: bool = True,
                        seed: "int | np.random.Generator | None" = None) -> Iterator:
    """Yield ``(X_batch, y_batch)`` covering every sample once; the last batch may be smaller.

    Parameters
    ----------
    X : ndarray
        Inputs, first dimension N.
    y : ndarray or None
        Targets, N of them (None yields None batches).
    batch_size : int
        Samples per batch, 1 or more.
    shuffle : bool
        Visit the samples in a random order; without it the batches are views, not copies.
    seed : int or numpy.random.Generator, optional
        Makes the shuffle reproducible.

    Yields
    ------
    (ndarray, ndarray or None)
        One batch of inputs and targets.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.data import iterate_minibatches
    >>> [yb.tolist() for _, yb in iterate_minibatches(np.zeros((5, 2)), np.arange(5), 2,
    ...                                               shuffle=False)]
    [[0, 1], [2, 3], [4]]
    """
    _check_xy(X, y)
    batch_size = positive_int(batch_size, "batch_size")
    n = len(X)
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            sel = slice(start, start + batch_size)
        else:
            sel = order[start:start + batch_size]
        yield X[sel], (None if y is None else y[sel])


class BatchIterator:
    """Re-iterable minibatches: each ``iter()`` is one epoch with a fresh shuffle drawn from
    one Generator, so a seeded run sees the same sequence of epochs.

    Parameters
    ----------
    X : ndarray
        Inputs, first dimension N.
    y : ndarray or None
        Targets, N of them.
    batch_size : int
        Samples per batch.
    shuffle : bool
        A new random order per epoch.
    seed : int or numpy.random.Generator, optional
        Seeds the shuffles.
    drop_last : bool
        Skip the final partial batch.
    transform : callable, optional
        Applied to each input batch (e.g. ``lambda xb: augment_batch(xb, rng=rng)``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.data import BatchIterator
    >>> batches = BatchIterator(np.zeros((25, 2)), np.arange(25), 10, seed=0)
    >>> len(batches), [len(yb) for _, yb in batches]
    (3, [10, 10, 5])
    """

    def __init__(self, X: np.ndarray, y: "np.ndarray | None", batch_size: int,
                 shuffle: bool = True, seed: "int | np.random.Generator | None" = None,
                 drop_last: bool = False, transform: "Callable | None" = None) -> None:
        _check_xy(X, y)
        self.X, self.y = X, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        n = len(self.X)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        for xb, yb in iterate_minibatches(self.X, self.y, self.batch_size, self.shuffle,
                                          seed=self._rng):
            if self.drop_last and len(xb) < self.batch_size:
                return
            if self.transform is not None:
                xb = self.transform(xb)
            yield xb, yb


def train_val_split(X: np.ndarray, y: np.ndarray, val_size: "int | float" = 10000,
                    seed: int = 0) -> "tuple[np.ndarray, ...]":
    """Split off a seeded random validation set; both parts keep the original order.

    Parameters
    ----------
    X : ndarray
        Inputs, first dimension N.
    y : ndarray
        Targets, N of them.
    val_size : int or float
        Validation samples, or a fraction in (0, 1) of N.
    seed : int
        Seeds the choice.

    Returns
    -------
    (X_tr, y_tr, X_val, y_val)
        The two parts.
    """
    _check_xy(X, y)
    n = len(X)
    if isinstance(val_size, float) and 0.0 < val_size < 1.0:
        val_size = int(round(n * val_size))
    if int(val_size) != val_size or not 0 < val_size < n:
        raise ValueError(f"val_size must be in 1..{n - 1} for {n} samples, got {val_size!r}")
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = np.sort(perm[:int(val_size)])
    tr_idx = np.sort(perm[int(val_size):])
    return X[tr_idx], y[tr_idx], X[val_idx], y[val_idx]
