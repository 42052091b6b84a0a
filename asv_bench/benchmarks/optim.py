"""Optimizer updates on the homework MLP's 573,910 parameters.

``path``:
  * ``fused``: the arrays from ``net.getParameters()``/``getGradParameters()``, views into
    one flat buffer, so ``sgd_momentum``/``adam_optimizer`` make one kernel pass;
  * ``per_array``: copies of the same arrays (not views of a flat buffer), so the
    optimizer takes its per-array path: one kernel call per array;
  * ``numpy``: the textbook NumPy update per array (in-place ufuncs), for reference.

``fused`` vs ``per_array`` isolates the fused flat-buffer optimization.
"""
import numpy as np

from fastnn import adam_optimizer, sgd_momentum

from .common import build_mlp, flat, rng

PATHS = ["fused", "per_array", "numpy"]


def _numpy_sgd(variables, gradients, config, state):
    lr, mom = config["learning_rate"], config["momentum"]
    acc = state.setdefault("accumulated_grads", {})
    for i, (v, g) in enumerate(zip(variables, gradients)):
        a = acc.setdefault(i, np.zeros_like(v))
        np.multiply(a, mom, out=a)
        a += lr * g
        v -= a


def _numpy_adam(variables, gradients, config, state):
    lr, b1, b2, eps = (config[k] for k in ("learning_rate", "beta1", "beta2", "epsilon"))
    m, v_ = state.setdefault("m", {}), state.setdefault("v", {})
    state["t"] = t = state.get("t", 0) + 1
    lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    for i, (x, g) in enumerate(zip(variables, gradients)):
        mi = m.setdefault(i, np.zeros_like(x))
        vi = v_.setdefault(i, np.zeros_like(x))
        mi *= b1
        mi += (1 - b1) * g
        vi *= b2
        vi += (1 - b2) * g * g
        x -= lr_t * mi / (np.sqrt(vi) + eps)


class _OptimizerBench:
    params = [PATHS]
    param_names = ["path"]
    config = None
    functions = None

    def setup(self, path):
        net = build_mlp()
        params, grads = net.getParameters(), net.getGradParameters()
        r = rng()
        for g in flat(grads):
            g[...] = r.standard_normal(g.shape).astype(g.dtype) * 1e-3
        if path == "fused":
            self.p, self.g = params, grads
        else:
            self.p = [a.copy() for a in flat(params)]
            self.g = [a.copy() for a in flat(grads)]
        self.fn = self.functions[path == "numpy"]
        self.state = {}
        self.update()
        if path == "fused":
            assert "_fused" in self.state, "fused path not taken"
        elif path == "per_array":
            assert "_fused" not in self.state, "per-array path not taken"

    def update(self):
        self.fn(self.p, self.g, self.config, self.state)


class SGDMomentum(_OptimizerBench):
    config = {"learning_rate": 0.01, "momentum": 0.9}
    functions = (sgd_momentum, _numpy_sgd)

    def time_sgd_momentum(self, path):
        self.update()


class Adam(_OptimizerBench):
    config = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    functions = (adam_optimizer, _numpy_adam)

    def time_adam(self, path):
        self.update()


class OptimKernels:
    """The raw kernels over the flat buffers (no argument checking around them)."""

    def setup(self):
        from fastnn.kernels.cpu import optim as k
        self.k = k
        n = 573910
        r = rng()
        f32 = np.float32
        self.p = r.standard_normal(n).astype(f32)
        self.g = (r.standard_normal(n) * 1e-3).astype(f32)
        self.velocity = np.zeros(n, f32)  # SGD's; Adam's m and v are separate arrays
        self.m = np.zeros(n, f32)
        self.v = np.zeros(n, f32)
        # float32 scalars, as sgd_momentum/adam_optimizer pass them
        self.lr, self.mom = f32(0.01), f32(0.9)
        self.adam_scalars = (f32(1e-3), f32(0.9), f32(0.999), f32(1e-8))
        self.time_sgd_momentum_update()
        self.time_adam_update()

    def time_sgd_momentum_update(self):
        self.k.sgd_momentum_update(self.g, self.p, self.velocity, self.lr, self.mom)

    def time_adam_update(self):
        self.k.adam_update(self.g, self.p, self.m, self.v, *self.adam_scalars)
