"""Convolution (``fastnn.conv.Conv2d`` on ``fastnn.kernels.cpu.conv``), at the two layers
of the small MNIST CNN: 1->32 3x3 on 28x28 and 32->64 3x3 on 14x14, 'same' padding.

Skipped (NotImplementedError in setup) while ``fastnn.conv`` is not importable.
"""
import numpy as np

from .common import CNN_BATCHES, import_conv, make_conv, rng, seed

LAYERS = {"1x28x28->32": (1, 32, 28), "32x14x14->64": (32, 64, 14)}


class Conv2dModule:
    params = (CNN_BATCHES, list(LAYERS))
    param_names = ["batch", "layer"]

    def setup(self, batch, layer):
        Conv2d, _, _ = import_conv()
        c_in, c_out, hw = LAYERS[layer]
        seed()
        self.m = make_conv(Conv2d, c_in, c_out, 3, 1)
        r = rng()
        self.x = r.standard_normal((batch, c_in, hw, hw)).astype(np.float32)
        out = self.m.forward(self.x)
        self.g = r.standard_normal(out.shape).astype(np.float32)
        self.time_forward(batch, layer)
        self.time_backward(batch, layer)
        self.time_update_grad_input(batch, layer)
        self.time_acc_grad_parameters(batch, layer)

    def time_forward(self, batch, layer):
        self.m.forward(self.x)

    def time_backward(self, batch, layer):
        self.m.backward(self.x, self.g)

    def time_update_grad_input(self, batch, layer):
        self.m.updateGradInput(self.x, self.g)

    def time_acc_grad_parameters(self, batch, layer):
        self.m.accGradParameters(self.x, self.g)


class Conv2dFusedReLU:
    """Conv2d + ReLU through a Sequential (which may fuse them, as it fuses Linear + ReLU)."""

    params = [CNN_BATCHES]
    param_names = ["batch"]

    def setup(self, batch):
        Conv2d, _, _ = import_conv()
        from fastnn import ReLU, Sequential
        seed()
        self.net = Sequential(make_conv(Conv2d, 32, 64, 3, 1), ReLU())
        r = rng()
        self.x = r.standard_normal((batch, 32, 14, 14)).astype(np.float32)
        out = self.net.forward(self.x)
        self.g = r.standard_normal(out.shape).astype(np.float32)
        self.time_forward_backward(batch)

    def time_forward_backward(self, batch):
        self.forward_backward()

    def forward_backward(self):
        self.net.forward(self.x)
        self.net.backward(self.x, self.g)
