"""Shared builders for the benchmarks (like pandas' ``pandas_vb_common``).

Nothing in here is a benchmark: asv only collects ``time_``/``peakmem_``/``timeraw_``
methods. Every builder seeds, so two runs time the same numbers.
"""
import importlib
import os

import numpy as np

import fastnn
from fastnn import (ClassNLLCriterion, CrossEntropyCriterion, Linear, LogSoftMax, ReLU,
                    Sequential, sgd_momentum)

#: The homework MLP.
MLP_SIZES = (784, 500, 300, 100, 10)
#: Batch sizes of the MLP training-step benchmarks (the README table's columns).
MLP_BATCHES = [1, 32, 128, 1024]
#: Batch sizes of the CNN training-step benchmarks.
CNN_BATCHES = [32, 128]

SEED = 1234


def seed(value=SEED):
    """Seed NumPy's global RNG and fastnn (parameter init + dropout)."""
    np.random.seed(value)
    fastnn.manual_seed(value)


def rng(value=SEED):
    return np.random.default_rng(value)


def build_mlp(dtype=np.float32):
    """784-500-300-100-10, ReLU between, LogSoftMax on top."""
    seed()
    layers = []
    sizes = MLP_SIZES
    for i in range(len(sizes) - 1):
        layers.append(Linear(sizes[i], sizes[i + 1]))
        layers.append(ReLU() if i < len(sizes) - 2 else LogSoftMax())
    net = Sequential(*layers)
    return net.type(dtype)


def mlp_batch(batch, dtype=np.float32, n_in=MLP_SIZES[0], n_classes=MLP_SIZES[-1]):
    r = rng()
    x = r.random((batch, n_in), dtype=np.float64).astype(dtype)
    y = r.integers(0, n_classes, batch).astype(np.int64)
    return x, y


def import_conv():
    """Conv2d, MaxPool2d, Flatten from fastnn.conv, or NotImplementedError (asv then
    records the benchmark as skipped) while that module is not written yet."""
    try:
        from fastnn.conv import Conv2d, Flatten, MaxPool2d
    except ImportError as exc:
        raise NotImplementedError(f"fastnn.conv is not available: {exc}")
    return Conv2d, MaxPool2d, Flatten


def make_conv(Conv2d, n_in, n_out, k, padding):
    """Conv2d with 'same' padding; accepts either a ``padding=`` keyword or the
    Torch7 positional order (nIn, nOut, kW, kH, dW, dH, padW, padH)."""
    try:
        return Conv2d(n_in, n_out, k, padding=padding)
    except TypeError:
        try:
            return Conv2d(n_in, n_out, k, k, 1, 1, padding, padding)
        except TypeError as exc:
            raise NotImplementedError(f"fastnn.conv.Conv2d signature not understood: {exc}")


def build_cnn(dtype=np.float32):
    """Conv 1->32 3x3, ReLU, MaxPool 2, Conv 32->64 3x3, ReLU, MaxPool 2, Flatten,
    Linear 3136->128, ReLU, Linear 128->10 (raw scores for CrossEntropyCriterion)."""
    Conv2d, MaxPool2d, Flatten = import_conv()
    seed()
    net = Sequential(
        make_conv(Conv2d, 1, 32, 3, 1), ReLU(), MaxPool2d(2),
        make_conv(Conv2d, 32, 64, 3, 1), ReLU(), MaxPool2d(2),
        Flatten(),
        Linear(64 * 7 * 7, 128), ReLU(),
        Linear(128, 10),
    )
    return net.type(dtype)


def cnn_batch(batch, dtype=np.float32):
    r = rng()
    x = r.random((batch, 1, 28, 28), dtype=np.float64).astype(dtype)
    y = r.integers(0, 10, batch).astype(np.int64)
    return x, y


class Trainer:
    """The homework's training step, verbatim; ``step()`` runs it once."""

    def __init__(self, net, criterion, x, y, learning_rate=0.01, momentum=0.9,
                 optimizer=sgd_momentum):
        self.net, self.criterion, self.x, self.y = net, criterion, x, y
        self.config = {"learning_rate": learning_rate, "momentum": momentum}
        self.state = {}
        self.optimizer = optimizer

    def step(self):
        net, criterion, x, y = self.net, self.criterion, self.x, self.y
        net.zeroGradParameters()
        out = net.forward(x)
        loss = criterion.forward(out, y)
        net.backward(x, criterion.backward(out, y))
        self.optimizer(net.getParameters(), net.getGradParameters(), self.config, self.state)
        return loss


def mlp_trainer(batch, dtype=np.float32):
    x, y = mlp_batch(batch, dtype)
    return Trainer(build_mlp(dtype), ClassNLLCriterion(), x, y)


def cnn_trainer(batch, dtype=np.float32):
    x, y = cnn_batch(batch, dtype)
    return Trainer(build_cnn(dtype), CrossEntropyCriterion(), x, y)


def flat(nested):
    """Leaves of nested lists (what getParameters()/getGradParameters() return)."""
    out = []
    stack = [nested]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def require_cuda():
    """NotImplementedError unless a real GPU is visible (the simulator does not count:
    its timings mean nothing)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1":
        raise NotImplementedError("CUDA simulator is on; CUDA benchmarks need a real GPU")
    if not fastnn.cuda_available():
        raise NotImplementedError("no CUDA GPU visible to numba.cuda")
    try:
        importlib.import_module("fastnn.kernels.cuda")
    except ImportError as exc:
        raise NotImplementedError(f"fastnn.kernels.cuda is not available: {exc}")
