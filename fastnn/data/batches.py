"""Mini-batches: shuffled iteration over (X, y) and the train/validation split."""
import numpy as np


def _check_xy(X, y):
    if y is not None and len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples (shape {np.shape(X)}) but y has {len(y)} "
                         f"(shape {np.shape(y)})")


def iterate_minibatches(X, y, batch_size, shuffle=True, seed=None):
    """Yield ``(X_batch, y_batch)`` covering every sample once; the last batch may be
    smaller. ``seed`` (int or ``np.random.Generator``) makes the shuffle reproducible.
    Without shuffling the batches are views, not copies."""
    _check_xy(X, y)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    n = len(X)
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            sel = slice(start, start + batch_size)
        else:
            sel = order[start:start + batch_size]
        yield X[sel], (None if y is None else y[sel])


class BatchIterator:
    """Re-iterable minibatches: each ``iter()`` is one epoch with a fresh shuffle drawn
    from one Generator, so a seeded run sees the same sequence of epochs.

    ``transform(X_batch)`` (e.g. ``lambda xb: augment_batch(xb, rng=rng)``) is applied
    to each batch; ``drop_last`` skips the final partial batch.
    """

    def __init__(self, X, y, batch_size, shuffle=True, seed=None, drop_last=False,
                 transform=None):
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


def train_val_split(X, y, val_size=10000, seed=0):
    """``(X_tr, y_tr, X_val, y_val)``: a seeded random ``val_size`` samples (an int, or a
    fraction in (0, 1)) go to validation. Both parts keep the original order."""
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
