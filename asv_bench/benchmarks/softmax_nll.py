"""Softmax / log-softmax / losses (``fastnn.kernels.cpu.softmax_nll``) and the
criterion modules that wrap them (target validation, the probability-vs-log-probability
check of ClassNLLCriterion, the loss read-back)."""
import numpy as np

from fastnn import ClassNLLCriterion, CrossEntropyCriterion, LogSoftMax, MSECriterion

from .common import rng

BATCHES = [1, 32, 128, 1024]
N_CLASSES = 10


def _data(batch):
    r = rng()
    x = r.standard_normal((batch, N_CLASSES)).astype(np.float32)
    y = r.integers(0, N_CLASSES, batch).astype(np.int64)
    g = r.standard_normal((batch, N_CLASSES)).astype(np.float32)
    return x, y, g


class SoftmaxNLLKernels:
    params = [BATCHES]
    param_names = ["batch"]

    def setup(self, batch):
        from fastnn.kernels.cpu import softmax_nll as k
        self.k = k
        self.x, self.y, self.g = _data(batch)
        self.out = np.empty_like(self.x)
        self.logp = np.empty_like(self.x)
        k.log_softmax_forward(self.x, self.logp)
        self.gi = np.empty_like(self.x)
        self.probs = np.empty_like(self.x)
        self.loss = np.empty(1, np.float32)
        self.kind = np.empty(1, np.int64)
        self.scale = 1.0 / batch  # a Python float, as the criterions pass it
        for name in dir(self):
            if name.startswith("time_"):
                getattr(self, name)(batch)

    def time_softmax_forward(self, batch):
        self.k.softmax_forward(self.x, self.out)

    def time_softmax_backward(self, batch):
        self.k.softmax_backward(self.g, self.gi, self.out)

    def time_log_softmax_forward(self, batch):
        self.k.log_softmax_forward(self.x, self.out)

    def time_log_softmax_backward(self, batch):
        self.k.log_softmax_backward(self.g, self.gi, self.logp)

    def time_cross_entropy_forward(self, batch):
        self.k.cross_entropy_forward(self.x, self.y, self.loss, self.probs, self.scale)

    def time_cross_entropy_backward(self, batch):
        self.k.cross_entropy_backward(self.y, self.gi, self.probs, self.scale)

    def time_classify_scores(self, batch):
        self.k.classify_scores(self.logp, self.kind, 1e-4)

    def time_class_nll_forward(self, batch):
        self.k.class_nll_forward(self.logp, self.y, self.loss, 0, self.scale)

    def time_class_nll_backward(self, batch):
        self.k.class_nll_backward(self.logp, self.y, self.gi, 0, self.scale)


class Criterions:
    """forward + backward of each criterion, as the training loop calls them."""

    params = (BATCHES, ["ClassNLLCriterion", "CrossEntropyCriterion", "MSECriterion"])
    param_names = ["batch", "criterion"]

    def setup(self, batch, criterion):
        x, y, g = _data(batch)
        if criterion == "ClassNLLCriterion":
            self.c = ClassNLLCriterion()
            self.input = LogSoftMax().forward(x).copy()
            self.target = y
        elif criterion == "CrossEntropyCriterion":
            self.c = CrossEntropyCriterion()
            self.input, self.target = x, y
        else:
            self.c = MSECriterion()
            self.input, self.target = x, g
        self.time_forward(batch, criterion)
        self.time_backward(batch, criterion)

    def time_forward(self, batch, criterion):
        self.c.forward(self.input, self.target)

    def time_backward(self, batch, criterion):
        self.c.backward(self.input, self.target)


class LogSoftMaxModule:
    params = [BATCHES]
    param_names = ["batch"]

    def setup(self, batch):
        self.x, _, self.g = _data(batch)
        self.m = LogSoftMax()
        self.time_forward(batch)
        self.time_backward(batch)

    def time_forward(self, batch):
        self.m.forward(self.x)

    def time_backward(self, batch):
        self.m.backward(self.x, self.g)
