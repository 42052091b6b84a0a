"""Helpers shared by the test files: random arrays, a small classification problem and
the MLP that learns it. Import them by name (``from conftest import rand``): pytest puts
this folder on ``sys.path``, as it does for ``reference`` and ``cudasim``.

Only NumPy at import time: the CUDA simulator children load this file too, before they
import ``numba.cuda``.
"""
import numpy as np


def rand(*shape, seed=0, scale=1.0, shift=0.0, dtype=np.float64):
    """Standard-normal array of ``shape`` and ``dtype``, times ``scale`` plus ``shift``; the
    same ``seed`` gives the same array."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(dtype)


def uniform(rng, shape, dtype, lo=-2.0, hi=2.0):
    """Uniform array in [lo, hi) of ``dtype`` drawn from the generator ``rng`` (the CUDA
    kernel tests draw every argument from one generator)."""
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def blobs(n=600, d=20, classes=4, seed=0, spread=3.0):
    """``n`` float32 points in ``d`` dims around ``classes`` Gaussian centres, and their
    int labels: a problem a small MLP learns in one epoch."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d)) * spread
    y = rng.integers(0, classes, n)
    X = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    return X, y


def mlp(d=20, classes=4, hidden=32, dropout=0.0, bn=False, seed=0):
    """Linear-(BatchNorm)-ReLU-(Dropout)-Linear-LogSoftMax, seeded."""
    import fastnn as nn
    nn.manual_seed(seed)
    layers = [nn.Linear(d, hidden)]
    if bn:
        layers.append(nn.BatchNormalization(0.9))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(hidden, classes), nn.LogSoftMax()]
    return nn.Sequential(*layers)


def weights(net):
    """Copies of every parameter and moving statistic of ``net``, in a fixed order."""
    from fastnn.train import checkpoint
    return [None if a is None else np.array(a) for _, m, _, name in checkpoint.module_arrays(net)
            for a in [m.__dict__.get(name)]]


def assert_same_weights(a, b):
    """Two ``weights()`` lists hold the same arrays, bit for bit."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
        else:
            assert np.array_equal(x, y)
