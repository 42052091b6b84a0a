"""Affine kernels (``fastnn.kernels.cpu.affine`` and ``blas.gemm``) and the Linear module.

Shapes are the homework MLP's biggest and smallest layers. Each ``setup`` calls every
kernel once, so Numba's compile (or cache load) never lands inside a timing.
"""
import numpy as np

from fastnn import Linear, ReLU

from .common import MLP_BATCHES, rng, seed

from fastnn.kernels.codes import RELU
SHAPES = ["784x500", "100x10"]


def _shape(name):
    n_in, n_out = (int(s) for s in name.split("x"))
    return n_in, n_out


class AffineKernels:
    params = (MLP_BATCHES, SHAPES)
    param_names = ["batch", "layer"]

    def setup(self, batch, layer):
        from fastnn.kernels.cpu import affine
        self.k = affine
        n_in, n_out = _shape(layer)
        r = rng()
        f32 = np.float32
        self.x = r.standard_normal((batch, n_in)).astype(f32)
        self.W = (r.standard_normal((n_out, n_in)) * 0.05).astype(f32)
        self.b = r.standard_normal(n_out).astype(f32)
        self.pre = np.empty((batch, n_out), f32)
        self.out = np.empty((batch, n_out), f32)
        self.g = r.standard_normal((batch, n_out)).astype(f32)
        self.delta = np.empty((batch, n_out), f32)
        self.gi = np.empty((batch, n_in), f32)
        self.gW = np.zeros((n_out, n_in), f32)
        self.gb = np.zeros(n_out, f32)
        self.time_forward(batch, layer)
        self.time_forward_relu(batch, layer)
        self.time_backward_input(batch, layer)
        self.time_backward_params(batch, layer)
        self.time_backward_params_accumulate(batch, layer)
        self.time_backward_relu_fused(batch, layer)

    def time_forward(self, batch, layer):
        self.k.affine_forward(self.x, self.out, self.W, self.b)

    def time_forward_relu(self, batch, layer):
        self.k.affine_activation_forward(self.x, self.pre, self.out, self.W, self.b, RELU, 0.0)

    def time_backward_input(self, batch, layer):
        self.k.affine_backward_input(self.g, self.gi, self.W)

    def time_backward_params(self, batch, layer):
        self.k.affine_backward_params(self.x, self.g, self.gW, self.gb, False)

    def time_backward_params_accumulate(self, batch, layer):
        self.k.affine_backward_params(self.x, self.g, self.gW, self.gb, True)

    def time_backward_relu_fused(self, batch, layer):
        self.k.affine_activation_backward(self.x, self.g, self.gi, self.delta, self.gW, self.gb,
                                          self.pre, self.out, self.W, RELU, 0.0, False, True)


class Gemm:
    """fastnn's BLAS entry (alpha/beta, no temporaries) against NumPy's matmul, on the
    three GEMMs of one 784->500 layer."""

    params = (MLP_BATCHES, ["fastnn", "numpy"])
    param_names = ["batch", "impl"]

    def setup(self, batch, impl):
        from fastnn.kernels.cpu.blas import gemm
        r = rng()
        f32 = np.float32
        self.gemm = gemm
        self.x = r.standard_normal((batch, 784)).astype(f32)
        self.W = r.standard_normal((500, 784)).astype(f32)
        self.g = r.standard_normal((batch, 500)).astype(f32)
        self.out = np.empty((batch, 500), f32)
        self.gi = np.empty((batch, 784), f32)
        self.gW = np.empty((500, 784), f32)
        self.fwd = self._fastnn_fwd if impl == "fastnn" else self._numpy_fwd
        self.bwd_input = self._fastnn_bwd_input if impl == "fastnn" else self._numpy_bwd_input
        self.bwd_weight = self._fastnn_bwd_weight if impl == "fastnn" else self._numpy_bwd_weight
        self.fwd()
        self.bwd_input()
        self.bwd_weight()

    def _fastnn_fwd(self):
        self.gemm(False, True, 1.0, self.x, self.W, 0.0, self.out)

    def _numpy_fwd(self):
        np.matmul(self.x, self.W.T, out=self.out)

    def _fastnn_bwd_input(self):
        self.gemm(False, False, 1.0, self.g, self.W, 0.0, self.gi)

    def _numpy_bwd_input(self):
        np.matmul(self.g, self.W, out=self.gi)

    def _fastnn_bwd_weight(self):
        self.gemm(True, False, 1.0, self.g, self.x, 0.0, self.gW)

    def _numpy_bwd_weight(self):
        np.matmul(self.g.T, self.x, out=self.gW)

    def time_forward(self, batch, impl):
        self.fwd()

    def time_backward_input(self, batch, impl):
        self.bwd_input()

    def time_backward_weight(self, batch, impl):
        self.bwd_weight()


class LinearModule:
    """The module around the kernels: validation, casts, buffer lookup, lazy zeroing.
    At batch 1 the gap between this and ``AffineKernels`` is pure Python overhead."""

    params = (MLP_BATCHES, SHAPES)
    param_names = ["batch", "layer"]

    def setup(self, batch, layer):
        seed()
        n_in, n_out = _shape(layer)
        self.lin = Linear(n_in, n_out)
        self.act = ReLU()
        r = rng()
        self.x = r.standard_normal((batch, n_in)).astype(np.float32)
        self.g = r.standard_normal((batch, n_out)).astype(np.float32)
        self.time_forward(batch, layer)
        self.time_backward(batch, layer)
        self.time_forward_fused_relu(batch, layer)
        self.time_backward_fused_relu(batch, layer)

    def time_forward(self, batch, layer):
        self.lin.forward(self.x)

    def time_backward(self, batch, layer):
        self.lin.backward(self.x, self.g)

    def time_forward_fused_relu(self, batch, layer):
        self.lin.forward_fused(self.x, self.act)

    def time_backward_fused_relu(self, batch, layer):
        self.lin.backward_fused(self.x, self.g, self.act)
