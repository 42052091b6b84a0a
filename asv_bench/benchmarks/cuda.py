"""CUDA kernels (``fastnn.kernels.cuda``, same file and function names as the CPU ones)
and the GPU training step. Every timing ends with ``cuda.synchronize()``.

Skipped (NotImplementedError in setup) without a real GPU: ``fastnn.cuda_available()``
False, or the CUDA simulator on (its timings mean nothing), or the CUDA kernels missing.
"""
import numpy as np

from .common import MLP_BATCHES, mlp_trainer, require_cuda, rng

from fastnn.kernels.codes import RELU


def _cuda():
    from numba import cuda
    return cuda


class CUDAMLPStep:
    params = [MLP_BATCHES]
    param_names = ["batch"]
    timeout = 300

    def setup(self, batch):
        require_cuda()
        self.cuda = _cuda()
        self.t = mlp_trainer(batch)
        self.t.net.cuda()
        self.t.x = self.cuda.to_device(self.t.x)
        self.step()

    def step(self):
        self.t.step()
        self.cuda.synchronize()

    def time_step(self, batch):
        self.step()


class CUDAMLPForward:
    params = [MLP_BATCHES]
    param_names = ["batch"]
    timeout = 300

    def setup(self, batch):
        require_cuda()
        self.cuda = _cuda()
        self.t = mlp_trainer(batch)
        self.t.net.cuda().evaluate()
        self.t.x = self.cuda.to_device(self.t.x)
        self.forward()

    def forward(self):
        self.t.net.forward(self.t.x)
        self.cuda.synchronize()

    def time_forward(self, batch):
        self.forward()


class CUDAAffineKernels:
    """The 784->500 layer's fused Linear+ReLU kernels on device arrays."""

    params = [[128, 1024]]
    param_names = ["batch"]
    timeout = 300
    n_in, n_out = 784, 500

    def setup(self, batch):
        require_cuda()
        cuda = self.cuda = _cuda()
        try:
            from fastnn.kernels.cuda import affine
        except ImportError as exc:
            raise NotImplementedError(f"fastnn.kernels.cuda.affine: {exc}")
        self.k = affine
        r = rng()
        f32 = np.float32
        n_in, n_out = self.n_in, self.n_out
        d = cuda.to_device
        self.x = d(r.standard_normal((batch, n_in)).astype(f32))
        self.W = d((r.standard_normal((n_out, n_in)) * 0.05).astype(f32))
        self.b = d(r.standard_normal(n_out).astype(f32))
        self.g = d(r.standard_normal((batch, n_out)).astype(f32))
        self.pre = cuda.device_array((batch, n_out), f32)
        self.out = cuda.device_array((batch, n_out), f32)
        self.delta = cuda.device_array((batch, n_out), f32)
        self.gi = cuda.device_array((batch, n_in), f32)
        self.gW = d(np.zeros((n_out, n_in), f32))
        self.gb = d(np.zeros(n_out, f32))
        try:
            self.forward_relu()
            self.backward_relu()
        except AttributeError as exc:
            raise NotImplementedError(f"CUDA affine kernel missing: {exc}")

    def forward_relu(self):
        self.k.affine_activation_forward(self.x, self.pre, self.out, self.W, self.b, RELU, 0.0)
        self.cuda.synchronize()

    def backward_relu(self):
        self.k.affine_activation_backward(self.x, self.g, self.gi, self.delta, self.gW, self.gb,
                                          self.pre, self.out, self.W, RELU, 0.0, False, True)
        self.cuda.synchronize()

    def time_forward_relu(self, batch):
        self.forward_relu()

    def time_backward_relu(self, batch):
        self.backward_relu()


class CUDASGDMomentum:
    """sgd_momentum over the MLP's parameters on the GPU."""

    timeout = 300

    def setup(self):
        require_cuda()
        from fastnn import sgd_momentum
        self.cuda = _cuda()
        self.t = mlp_trainer(128)
        self.t.net.cuda()
        self.t.x = self.cuda.to_device(self.t.x)
        self.t.step()
        self.fn = sgd_momentum
        self.p, self.g = self.t.net.getParameters(), self.t.net.getGradParameters()
        self.update()

    def update(self):
        self.fn(self.p, self.g, self.t.config, self.t.state)
        self.cuda.synchronize()

    def time_sgd_momentum(self):
        self.update()
