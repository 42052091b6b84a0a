"""Data and nets for the diagnosis tests: a small real-MNIST subset from
``$FASTNN_DATA/mnist`` when it is there, else MNIST-shaped synthetic digits (ten sparse
noisy prototypes in [0, 1]^784), and the homework MLP and loop."""
import functools
import os

import numpy as np

import fastnn as nn


@functools.lru_cache(maxsize=2)
def mnist_subset(n=2000):
    """(X float32 in [0, 1], y int64) with n rows."""
    data = os.environ.get("FASTNN_DATA")
    if data and os.path.isdir(os.path.join(data, "mnist")):
        from fastnn.datasets import load_mnist
        X, y, _, _ = load_mnist(download=False)
        return X[:n].copy(), y[:n].copy()
    # sparse like MNIST (about 13% ink): a class's strokes, 30% of them missing, 3% stray
    # pixels, random intensities
    rng = np.random.default_rng(0)
    prototypes = rng.random((10, 784)) < 0.15
    y = rng.integers(0, 10, n)
    ink = (prototypes[y] & (rng.random((n, 784)) > 0.3)) | (rng.random((n, 784)) < 0.03)
    X = (ink * rng.uniform(0.5, 1.0, (n, 784))).astype(np.float32)
    return X, y.astype(np.int64)


def mlp(last=nn.LogSoftMax, seed=0, hidden=100):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10), last())


def homework_loop(net, criterion, X, y, *, learning_rate=0.1, steps=300, zero_grad=True,
                  optimize=True, batch=32, seed=0, hook=None):
    """The homework's loop on random batches; returns the losses."""
    config, state = {"learning_rate": learning_rate, "momentum": 0.9}, {}
    rng = np.random.default_rng(seed)
    losses = []
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(X), batch)
        xb, yb = X[idx], y[idx]
        if hook is not None:
            hook(step, net)
        if zero_grad:
            net.zeroGradParameters()
        out = net.forward(xb)
        losses.append(criterion.forward(out, yb))
        net.backward(xb, criterion.backward(out, yb))
        if optimize:
            nn.sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
    return losses


def watched_loop(net, criterion, X, y, **kwargs):
    """homework_loop inside ``fastnn.watch``; returns the Watch."""
    with nn.watch(net, criterion) as w:
        homework_loop(net, criterion, X, y, **kwargs)
    return w
