"""Elementwise activation kernels (``fastnn.kernels.cpu.activation``) and modules."""
import numpy as np

import fastnn

from fastnn.kernels import codes

from .common import rng

CODES = {"relu": codes.RELU, "leaky_relu": codes.LEAKY_RELU, "elu": codes.ELU,
         "softplus": codes.SOFTPLUS, "sigmoid": codes.SIGMOID, "tanh": codes.TANH}
MODULES = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "elu": "ELU", "softplus": "SoftPlus",
           "sigmoid": "Sigmoid", "tanh": "Tanh"}
SIZES = ["128x500", "1024x500"]


def _arrays(size):
    n, m = (int(s) for s in size.split("x"))
    r = rng()
    x = r.standard_normal((n, m)).astype(np.float32)
    g = r.standard_normal((n, m)).astype(np.float32)
    return x, g


class ActivationKernels:
    params = (list(CODES), SIZES)
    param_names = ["activation", "size"]

    def setup(self, activation, size):
        from fastnn.kernels.cpu import activation as k
        self.k = k
        self.code = CODES[activation]
        self.x, self.g = _arrays(size)
        self.y = np.empty_like(self.x)
        self.gi = np.empty_like(self.x)
        self.time_forward(activation, size)
        self.time_backward(activation, size)

    def time_forward(self, activation, size):
        self.k.activation_forward(self.x, self.y, self.code, 0.03)

    def time_backward(self, activation, size):
        self.k.activation_backward(self.x, self.g, self.gi, self.y, self.code, 0.03)


class ActivationModules:
    """Module forward/backward: kernel plus the per-call Python layer."""

    params = (list(MODULES), ["1x500", "128x500"])
    param_names = ["activation", "size"]

    def setup(self, activation, size):
        self.m = getattr(fastnn, MODULES[activation])()
        self.x, self.g = _arrays(size)
        self.time_forward(activation, size)
        self.time_backward(activation, size)

    def time_forward(self, activation, size):
        self.m.forward(self.x)

    def time_backward(self, activation, size):
        self.m.backward(self.x, self.g)
