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
import tracemalloc

from .common import CNN_BATCHES, MLP_BATCHES, cnn_trainer, mlp_trainer


class TimeMLPStep:
    params = [MLP_BATCHES]
    param_names = ["batch"]

    def setup(self, batch):
        self.t = mlp_trainer(batch)
        self.t.step()

    def time_step(self, batch):
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
