"""One benchmark per optimization, each timed with it on and off, on the MLP training
step (the homework loop, see ``training_step.py``). The fused flat-buffer optimizer's
ablation lives in ``optim.py`` (``fused`` vs ``per_array``).

* ``BufferReuse``: modules keep their output/gradInput buffers between calls
  (``reused``) vs every module's and the criterion's ``_buffers`` cleared before each
  call, so every phase allocates afresh (``fresh``).
* ``FusedBiasActivation``: the Sequential runs Linear+ReLU as one fused kernel per
  phase (``fused``, planned by ``Sequential._fusion_plan``) vs the same modules called
  one by one, forward then backward in reverse, as Sequential would without fusion
  (``unfused``).
* ``FusedConvActivation``: the same on the small CNN's training step, where the
  Sequential fuses each Conv2d with its ReLU.
* ``LazyGradZeroing``: with ``fastnn.lazy_zero_grad(True)``, ``zeroGradParameters()``
  only marks gradients zero and the next backward overwrites them (``lazy``) vs the
  default eager zeroing, one memset of the flat gradient buffer (``eager_flat``) vs
  user code filling every gradient array with zeros (``g.fill(0)`` per array, no
  ``zeroGradParameters()``) before each step (``fill_per_array``).
* ``ThreadingSplit``: BLAS thread pools limited to 1 vs 2 threads
  (``fastnn.set_num_threads``) on the whole step.
* ``BatchSplit``: the small CNN's step with Conv2d, MaxPool2d and its Linear layers
  splitting the batch over fastnn's two threads, BLAS single-threaded inside
  (``split``, the default) vs no split, every GEMM on BLAS's two threads (``blas_threads``,
  ``fastnn._runtime.parallel.set_threads(1)``).
* ``LinearSplit``: the MLP's step with its Linear layers left to BLAS's threads
  (``blas_threads``, the default outside a net with spatial layers) vs split over fastnn's
  threads as they are in the CNN (``split``).
* ``BlasLibrary``: the kernels' GEMMs on numpy's bundled OpenBLAS (``numpy``, the
  default) vs scipy's ``cython_blas`` (``scipy``, ``FASTNN_BLAS=scipy``). The library is
  bound when the kernels load, so each sample is a child process that reports the
  median step time (``track_``, milliseconds).
* ``ConvColumnsChunk``: the 32 -> 64 conv layer (forward + backward) with im2col
  chunks capped at 8 MiB so the columns are still in cache for the GEMM (``default``)
  vs the whole batch in one GEMM (``whole_batch``, the layout before that cap).
"""
import os
import subprocess
import sys

import fastnn

import numpy as np

from .common import (CNN_BATCHES, MLP_BATCHES, cnn_trainer, flat, import_conv, make_conv,
                     mlp_trainer, rng, seed)


class BufferReuse:
    params = (MLP_BATCHES, ["reused", "fresh"])
    param_names = ["batch", "buffers"]

    def setup(self, batch, buffers):
        self.t = mlp_trainer(batch)
        self.leaves = list(self.t.net.leaves())
        self.run_step = self.t.step if buffers == "reused" else self._fresh_step
        self.run_forward = self.t.net.forward if buffers == "reused" else self._fresh_forward
        self.run_step()
        self.run_forward(self.t.x)

    def _clear(self):
        for m in self.leaves:
            m._buffers.clear()
        self.t.criterion._buffers.clear()

    def _fresh_step(self):
        self._clear()
        self.t.step()

    def _fresh_forward(self, x):
        self._clear()
        return self.t.net.forward(x)

    def time_step(self, batch, buffers):
        self.run_step()

    def time_forward(self, batch, buffers):
        self.run_forward(self.t.x)


class FusedBiasActivation:
    params = (MLP_BATCHES, ["fused", "unfused"])
    param_names = ["batch", "mode"]
    trainer = staticmethod(mlp_trainer)

    def setup(self, batch, mode):
        self.t = self.trainer(batch)
        if mode == "fused":
            assert any(f for _, f in self.t.net._fusion_plan()), "nothing fused"
            self.run_step = self.t.step
        else:
            self.run_step = self._unfused_step
        self.run_step()

    def _unfused_step(self):
        t = self.t
        net, mods = t.net, t.net.modules
        net.zeroGradParameters()
        out = t.x
        for m in mods:
            out = m.forward(out)
        t.criterion.forward(out, t.y)
        g = t.criterion.backward(out, t.y)
        for i in range(len(mods) - 1, -1, -1):
            g = mods[i].backward(t.x if i == 0 else mods[i - 1].output, g)
        t.optimizer(net.getParameters(), net.getGradParameters(), t.config, t.state)

    def time_step(self, batch, mode):
        self.run_step()


class FusedConvActivation(FusedBiasActivation):
    params = (CNN_BATCHES, ["fused", "unfused"])
    trainer = staticmethod(cnn_trainer)


class LazyGradZeroing:
    params = (MLP_BATCHES, ["lazy", "eager_flat", "fill_per_array"])
    param_names = ["batch", "zeroing"]

    def setup(self, batch, zeroing):
        self.previous = _lazy_zero_grad_enabled()
        if zeroing == "lazy":
            if not hasattr(fastnn, "lazy_zero_grad"):
                raise NotImplementedError("this fastnn has no lazy_zero_grad()")
            fastnn.lazy_zero_grad(True)
        elif hasattr(fastnn, "lazy_zero_grad"):
            fastnn.lazy_zero_grad(False)
        self.t = mlp_trainer(batch)
        self.grads = flat(self.t.net.getGradParameters())
        self.run_step = self._fill_per_array_step if zeroing == "fill_per_array" else self.t.step
        self.run_step()

    def teardown(self, batch, zeroing):
        if hasattr(fastnn, "lazy_zero_grad") and self.previous is not None:
            fastnn.lazy_zero_grad(self.previous)

    def _fill_per_array_step(self):
        t = self.t
        for g in self.grads:
            g.fill(0)
        out = t.net.forward(t.x)
        t.criterion.forward(out, t.y)
        t.net.backward(t.x, t.criterion.backward(out, t.y))
        t.optimizer(t.net.getParameters(), t.net.getGradParameters(), t.config, t.state)

    def time_step(self, batch, zeroing):
        self.run_step()


def _limit_blas_threads(n):
    """fastnn.set_num_threads(n), after loading scipy's OpenBLAS (the library fastnn's
    GEMMs call): threadpoolctl only limits libraries already loaded, and fastnn loads its
    BLAS lazily, at the first kernel call."""
    import fastnn.kernels.cpu.blas  # noqa: F401
    return fastnn.set_num_threads(n)


def _lazy_zero_grad_enabled():
    try:
        from fastnn.module import _LAZY_ZERO_GRAD
    except ImportError:
        return None
    return _LAZY_ZERO_GRAD["enabled"]


class ThreadingSplit:
    params = (MLP_BATCHES, [1, 2])
    param_names = ["batch", "blas_threads"]

    def setup(self, batch, blas_threads):
        self.limiter = _limit_blas_threads(blas_threads)
        self.t = mlp_trainer(batch)
        self.t.step()

    def teardown(self, batch, blas_threads):
        self.limiter.restore_original_limits()

    def time_step(self, batch, blas_threads):
        self.t.step()


class ThreadingSplitCNN:
    params = (CNN_BATCHES, [1, 2])
    param_names = ["batch", "blas_threads"]
    timeout = 300

    def setup(self, batch, blas_threads):
        self.t = cnn_trainer(batch)
        self.limiter = _limit_blas_threads(blas_threads)
        self.t.step()

    def teardown(self, batch, blas_threads):
        self.limiter.restore_original_limits()

    def time_step(self, batch, blas_threads):
        self.t.step()


class ConvColumnsChunk:
    params = (CNN_BATCHES, ["default", "whole_batch"])
    param_names = ["batch", "chunk"]

    def setup(self, batch, chunk):
        Conv2d, _, _ = import_conv()
        from fastnn.kernels.cpu import conv
        seed()
        self.m = make_conv(Conv2d, 32, 64, 3, 1)
        r = rng()
        self.x = r.standard_normal((batch, 32, 14, 14)).astype(np.float32)
        out = self.m.forward(self.x)
        self.g = r.standard_normal(out.shape).astype(np.float32)
        if chunk == "whole_batch":  # the module keeps any scratch at least its default size
            size = conv.columns_size(self.x.shape, 64, 3, 1, 1, images=batch)
            self.m._buffers["columns"] = np.empty(size, np.float32)
        self.time_forward_backward(batch, chunk)

    def forward_backward(self):
        self.m.forward(self.x)
        self.m.backward(self.x, self.g)

    def time_forward_backward(self, batch, chunk):
        self.forward_backward()


class LinearSplit:
    params = ([128, 1024], ["blas_threads", "split"])
    param_names = ["batch", "linear"]

    def setup(self, batch, linear):
        from fastnn import Linear
        self.t = mlp_trainer(batch)
        for m in self.t.net.leaves():
            if isinstance(m, Linear):
                m.split_batch = linear == "split"
        self.t.step()

    def time_step(self, batch, linear):
        self.t.step()


# A child process times the step: the BLAS library is chosen when the kernels load.
STEP_MS_CHILD = """
import sys, time
import numpy as np
sys.path.insert(0, {root!r})
from benchmarks.common import cnn_trainer, mlp_trainer
t = {builder}({batch})
for _ in range(3):
    t.step()
times = []
end = time.perf_counter() + 3.0
while time.perf_counter() < end or len(times) < 10:
    t0 = time.perf_counter()
    t.step()
    times.append(time.perf_counter() - t0)
print(1e3 * float(np.median(times)))
"""


class BlasLibrary:
    params = (["mlp_128", "mlp_1024", "cnn_128"], ["numpy", "scipy"])
    param_names = ["step", "library"]
    unit = "ms"
    timeout = 300

    def setup(self, step, library):
        kind, batch = step.split("_")
        self.code = STEP_MS_CHILD.format(
            root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            builder=f"{kind}_trainer", batch=int(batch))
        self.env = dict(os.environ)
        self.env.pop("FASTNN_BLAS", None)
        if library == "scipy":
            self.env["FASTNN_BLAS"] = "scipy"

    def track_step_ms(self, step, library):
        out = subprocess.run([sys.executable, "-c", self.code], env=self.env, check=True,
                             capture_output=True, text=True)
        return float(out.stdout.split()[-1])


class BatchSplit:
    params = (CNN_BATCHES, ["split", "blas_threads"])
    param_names = ["batch", "threads"]
    timeout = 300

    def setup(self, batch, threads):
        from fastnn._runtime import parallel as _parallel
        self.saved = _parallel.threads()
        _parallel.set_threads(2 if threads == "split" else 1)
        self.t = cnn_trainer(batch)
        self.t.step()

    def teardown(self, batch, threads):
        from fastnn._runtime import parallel as _parallel
        _parallel.set_threads(self.saved)

    def time_step(self, batch, threads):
        self.t.step()
