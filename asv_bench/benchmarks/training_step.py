"""Whole training steps, the homework loop verbatim:

    net.zeroGradParameters()
    out = net.forward(x)
    criterion.forward(out, y)
    net.backward(x, criterion.backward(out, y))
    sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)

MLP 784-500-300-100-10 (ReLU, LogSoftMax, ClassNLLCriterion) and the small CNN
(CrossEntropyCriterion; skipped until ``fastnn.conv`` lands). ``peakmem_`` is the peak
RSS of the benchmark process (asv counts setup, imports and the compile/cache load too);
``track_step_allocated_bytes`` is the tracemalloc peak of one steady-state step, i.e.
what the step itself allocates (0 would mean every buffer is reused).
"""
import os
import subprocess
import sys
import time
import tracemalloc
import warnings

from .common import CNN_BATCHES, MLP_BATCHES, cnn_trainer, mlp_trainer


def _load_average():
    """The 1-minute load average, with a warning when it exceeds the core count: a
    step timed then measures the other processes as much as fastnn."""
    load, ncpu = os.getloadavg()[0], os.cpu_count() or 1
    if load > ncpu:
        warnings.warn(f"load average {load:.2f} on {ncpu} CPUs: these timings are inflated",
                      RuntimeWarning)
    return load


class TimeMLPStep:
    params = [MLP_BATCHES]
    param_names = ["batch"]

    def setup(self, batch):
        self.t = mlp_trainer(batch)
        self.t.step()
        _load_average()

    def time_step(self, batch):
        self.t.step()

    def track_load_average(self, batch):
        """Recorded beside the timings, so that a run taken on a busy host shows."""
        return _load_average()

    track_load_average.unit = "load"


class ContendedMLPStep:
    """The MLP step next to one competing busy process (a Python busy loop, as another
    user's job), at two threads and at one: on two cores every two-thread join can wait
    a scheduler time slice. ``fit``'s ThreadTuner picks between the two per epoch; this
    shows the gap it chooses across."""

    params = ([32, 128], [2, 1])
    param_names = ["batch", "threads"]
    timeout = 300

    def setup(self, batch, threads):
        import fastnn
        self.t = mlp_trainer(batch)
        self.limiter = fastnn.set_num_threads(threads)
        self.busy = subprocess.Popen([sys.executable, "-c",
                                      "import time\nend = time.time() + 600\n"
                                      "while time.time() < end:\n    pass\n"])
        time.sleep(0.5)
        self.t.step()

    def teardown(self, batch, threads):
        import fastnn
        self.busy.kill()
        self.busy.wait()
        fastnn.set_num_threads(os.cpu_count() or 1)

    def time_step(self, batch, threads):
        self.t.step()


class TimeMLPForward:
    """Inference: forward only, evaluate mode."""

    params = [MLP_BATCHES]
    param_names = ["batch"]

    def setup(self, batch):
        self.t = mlp_trainer(batch)
        self.t.net.evaluate()
        self.t.net.forward(self.t.x)

    def time_forward(self, batch):
        self.t.net.forward(self.t.x)


class TimeCNNStep:
    params = [CNN_BATCHES]
    param_names = ["batch"]
    timeout = 300

    def setup(self, batch):
        self.t = cnn_trainer(batch)
        self.t.step()

    def time_step(self, batch):
        self.t.step()


def _allocated_by_step(trainer):
    trainer.step()
    tracemalloc.start()
    try:
        trainer.step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class MemMLPStep:
    params = [MLP_BATCHES]
    param_names = ["batch"]

    def setup(self, batch):
        self.t = mlp_trainer(batch)
        self.t.step()

    def peakmem_step(self, batch):
        self.t.step()

    def track_step_allocated_bytes(self, batch):
        return _allocated_by_step(self.t)

    track_step_allocated_bytes.unit = "bytes"


class MemCNNStep:
    params = [CNN_BATCHES]
    param_names = ["batch"]
    timeout = 300

    def setup(self, batch):
        self.t = cnn_trainer(batch)
        self.t.step()

    def peakmem_step(self, batch):
        self.t.step()

    def track_step_allocated_bytes(self, batch):
        return _allocated_by_step(self.t)

    track_step_allocated_bytes.unit = "bytes"
