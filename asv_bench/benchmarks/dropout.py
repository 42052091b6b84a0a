"""Dropout (``fastnn.Dropout`` on ``fastnn.kernels.cpu.dropout``) at the default MLP
recipe's hidden width (1024) and the homework batch sizes."""
import numpy as np

import fastnn

from .common import rng, seed

SIZES = ["128x1024", "1024x1024"]


class DropoutModule:
    params = (SIZES, [0.2, 0.5])
    param_names = ["size", "p"]

    def setup(self, size, p):
        n, m = (int(v) for v in size.split("x"))
        seed()
        self.m = fastnn.Dropout(p)
        r = rng()
        self.x = r.standard_normal((n, m)).astype(np.float32)
        self.g = r.standard_normal((n, m)).astype(np.float32)
        self.time_forward(size, p)
        self.time_backward(size, p)

    def time_forward(self, size, p):
        self.m.forward(self.x)

    def time_backward(self, size, p):
        self.m.backward(self.x, self.g)
