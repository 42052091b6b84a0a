"""A GPU training step makes no host round trip (numba CUDA simulator): counted
host<->device transfers and device allocations per steady-state step of the
homework loop, the loss kept on the device until read, and the criterions' input
checks run on the device and raise when the loss is read. See tests/cudasim.py for
how this file runs in a child process.
"""
import copy
import threading

import numpy as np
import pytest

from cudasim import IN_SIMULATOR, SKIP_REASON, small_launch_config

if not IN_SIMULATOR:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import numba.cuda  # noqa: E402  (the simulator, since NUMBA_ENABLE_CUDASIM=1)
from numba.cuda.simulator.cudadrv import devicearray as sim_devicearray  # noqa: E402

import fastnn  # noqa: E402
from fastnn import (ClassNLLCriterion, ClassNLLCriterionUnstable, Conv2d,  # noqa: E402
                    CrossEntropyCriterion, Dropout, Flatten, Linear, LogSoftMax, MaxPool2d,
                    MSECriterion, ReLU, Sequential, SoftMax, adam_optimizer, sgd_momentum,
                    to_numpy)
from fastnn.device_loss import DeviceLoss  # noqa: E402

pytestmark = pytest.mark.cudasim


@pytest.fixture(autouse=True)
def _launch_config():
    with small_launch_config() as config:
        yield config


class TransferCounter:
    """Counts, on the host thread, every numba.cuda allocation (``device_array``,
    ``device_array_like``, ``to_device``), every copy (``copy_to_host``,
    ``copy_to_device``, ``to_device``) and every element read or written from the host
    (each a copy on a real GPU). Kernels run on the simulator's own threads, whose
    element accesses are not counted."""

    def __init__(self, monkeypatch):
        self.events = []
        main = threading.main_thread()
        fake = sim_devicearray.FakeCUDAArray

        def on_host():
            return threading.current_thread() is main

        def wrap_module(name, kinds):
            original = getattr(numba.cuda, name)

            def wrapped(*args, **kwargs):
                if on_host():
                    self.events.extend(f"{k} ({name})" for k in kinds)
                return original(*args, **kwargs)
            monkeypatch.setattr(numba.cuda, name, wrapped)

        def wrap_method(name, kind, scalar_only=False):
            original = getattr(fake, name)

            def wrapped(arr, *args, **kwargs):
                result = original(arr, *args, **kwargs)
                if on_host() and not (scalar_only and isinstance(result, fake)):
                    self.events.append(f"{kind} ({name})")
                return result
            monkeypatch.setattr(fake, name, wrapped)

        wrap_module("to_device", ["alloc", "upload"])
        wrap_module("device_array", ["alloc"])
        wrap_module("device_array_like", ["alloc"])
        wrap_method("copy_to_host", "download")
        wrap_method("copy_to_device", "upload")
        wrap_method("__getitem__", "download", scalar_only=True)
        wrap_method("__setitem__", "upload")

    def take(self):
        events, self.events = self.events, []
        return events


def homework_step(net, crit, x, y, rule, config, state):
    net.zeroGradParameters()
    out = net.forward(x)
    loss = crit.forward(out, y)
    net.backward(x, crit.backward(out, y))
    rule(net.getParameters(), net.getGradParameters(), config, state)
    return loss


def mlp():
    return Sequential(Linear(6, 5), ReLU(), Dropout(0.3), Linear(5, 3), LogSoftMax())


def cnn():
    return Sequential(Conv2d(1, 2, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(8, 3),
                      LogSoftMax())


SGD = (sgd_momentum, {"learning_rate": 0.1, "momentum": 0.9})
ADAM = (adam_optimizer, {"learning_rate": 0.01})


@pytest.mark.parametrize("make,shape,crit,opt", [
    (mlp, (4, 6), ClassNLLCriterion, SGD),
    (cnn, (2, 1, 5, 5), ClassNLLCriterion, ADAM),
    (lambda: Sequential(Linear(6, 3), SoftMax()), (4, 6), ClassNLLCriterionUnstable, SGD),
    (lambda: Sequential(Linear(6, 3)), (4, 6), CrossEntropyCriterion, SGD),
], ids=["mlp-nll-sgd", "cnn-nll-adam", "homework-unstable", "cross-entropy"])
def test_steady_state_step_transfers_only_the_batch(monkeypatch, make, shape, crit, opt):
    """Per steady-state step: no allocation, no download, and two uploads: the batch's
    input and its labels (each into a reused device buffer)."""
    fastnn.manual_seed(0)
    net, criterion = make().cuda(), crit()
    rule, config = opt
    state = {}
    rng = np.random.default_rng(1)
    counter = TransferCounter(monkeypatch)
    losses = []
    for step in range(4):
        x = rng.standard_normal(shape).astype(np.float32)  # a fresh host batch every step
        y = rng.integers(0, 3, shape[0])
        counter.take()
        losses.append(homework_step(net, criterion, x, y, rule, config, state))
        events = counter.take()
        if step >= 2:  # buffers, optimizer state and kernel constants exist by now
            assert sorted(events) == ["upload (copy_to_device)"] * 2, events
    assert all(isinstance(v, DeviceLoss) for v in losses)
    assert all(np.isfinite(float(v)) for v in losses)  # every slot still readable


def test_device_loss_reads_each_step_value_later():
    """Each forward writes its own slot: a loss read after later steps is its own."""
    fastnn.manual_seed(2)
    cpu_net = Sequential(Linear(6, 3), LogSoftMax()).double()
    gpu_net = copy.deepcopy(cpu_net).cuda()
    rng = np.random.default_rng(3)
    cpu_losses, gpu_losses = [], []
    for net, losses in ((cpu_net, cpu_losses), (gpu_net, gpu_losses)):
        crit, state = ClassNLLCriterion(), {}
        for step in range(3):
            x = np.random.default_rng(step).standard_normal((4, 6))
            y = np.array([0, 1, 2, step % 3])
            losses.append(homework_step(net, crit, x, y, *SGD, state))
    assert all(isinstance(v, float) for v in cpu_losses)
    np.testing.assert_allclose([float(v) for v in gpu_losses], cpu_losses, rtol=1e-12)
    loss = gpu_losses[-1]
    assert f"{loss:.3f}" == f"{cpu_losses[-1]:.3f}" and loss + 1 == cpu_losses[-1] + 1 or \
        abs((loss + 1) - (cpu_losses[-1] + 1)) < 1e-12
    assert np.asarray(loss).shape == ()


def test_overwritten_loss_slot_raises():
    from fastnn.device_loss import LOSS_RING
    crit = MSECriterion()
    x = numba.cuda.to_device(np.ones((2, 3), np.float32))
    first = crit.forward(x, np.zeros((2, 3)))
    assert float(first) == pytest.approx(3.0)
    crit._loss_serial += LOSS_RING  # as if LOSS_RING more forwards had run
    with pytest.raises(RuntimeError, match="overwritten on the device"):
        float(first)


@pytest.mark.parametrize("crit", [ClassNLLCriterion, CrossEntropyCriterion,
                                  ClassNLLCriterionUnstable])
def test_bad_label_raises_when_the_loss_is_read(crit):
    x = np.log(np.full((3, 4), 0.25, np.float32))
    if crit is ClassNLLCriterionUnstable:
        x = np.exp(x)
    labels = np.array([1, 7, -1])
    with pytest.raises(ValueError) as cpu_error:
        crit().forward(x, labels)
    gpu = crit()
    loss = gpu.forward(numba.cuda.to_device(x), labels)  # no error yet: nothing was read
    with pytest.raises(ValueError) as gpu_error:
        float(loss)
    assert str(gpu_error.value) == str(cpu_error.value)
    # the error was reported once: a good batch reads fine afterwards
    assert np.isfinite(float(gpu.forward(numba.cuda.to_device(x), np.array([0, 1, 2]))))


def test_raw_scores_raise_when_the_loss_is_read():
    x = np.array([[0.5, -1.0, 2.0], [1.0, 0.1, -0.3]], np.float32)
    with pytest.raises(ValueError) as cpu_error:
        ClassNLLCriterion().forward(x, np.array([0, 1]))
    loss = ClassNLLCriterion().forward(numba.cuda.to_device(x), np.array([0, 1]))
    with pytest.raises(ValueError) as gpu_error:
        float(loss)
    assert str(gpu_error.value) == str(cpu_error.value)
    assert "looks like raw scores" in str(gpu_error.value)


def test_gpu_dropout_follows_manual_seed():
    """The GPU generator is seeded through fastnn.manual_seed (the kernel module reads
    no fastnn state)."""
    masks = []
    for _ in range(2):
        fastnn.manual_seed(5)
        layer = Dropout(0.5).cuda()
        layer.forward(np.ones((6, 7), np.float32))
        masks.append(to_numpy(layer.output).copy())
    np.testing.assert_array_equal(masks[0], masks[1])
    fastnn.manual_seed(6)
    layer.forward(np.ones((6, 7), np.float32))
    assert not np.array_equal(to_numpy(layer.output), masks[0])


class _Window:
    """A fit callback that counts the transfers of each epoch's batch loop only (the
    epoch's start, e.g. the divergence guard's snapshot, is outside)."""

    def __init__(self, counter):
        self.counter = counter
        self.epochs = []

    def on_epoch_start(self, run):
        self.counter.take()

    def on_batches_end(self, run):
        self.epochs.append(self.counter.take())


@pytest.mark.parametrize("make,shape", [(mlp, (8, 6)), (cnn, (8, 1, 5, 5))],
                         ids=["mlp", "cnn"])
def test_fit_on_gpu_reads_every_sync_every_steps(monkeypatch, make, shape):
    """fit on a GPU net: per step only the batch's upload (input and labels); per group
    of ``sync_every`` steps (and at the epoch's end) one read of the loss ring, one of
    the check status and one of the predictions. History as on the CPU."""
    from fastnn import fit
    from fastnn.train.callbacks import Callback
    rng = np.random.default_rng(4)
    X = rng.standard_normal(shape)
    y = rng.integers(0, 3, shape[0])
    histories = []
    window = None
    for device in ("cpu", "cuda"):
        fastnn.manual_seed(0)
        net = make()
        net.modules = [m for m in net.modules if not isinstance(m, Dropout)]  # same masks
        net = net.double() if device == "cpu" else net.double().cuda()
        callbacks = ()
        if device == "cuda":
            window = type("W", (_Window, Callback), {})(TransferCounter(monkeypatch))
            callbacks = (window,)
        histories.append(fit(net, ClassNLLCriterion(), X, y, epochs=2, batch_size=2,
                             sync_every=3, seed=1, progress=False, log=None,
                             callbacks=callbacks))
    cpu, gpu = histories
    np.testing.assert_allclose(gpu.step_loss, cpu.step_loss, rtol=1e-10)
    assert gpu.step_accuracy == cpu.step_accuracy and len(gpu.step_loss) == 8
    steady = window.epochs[1]  # 4 steps: groups after steps 3 and 4 (the epoch's end)
    assert sorted(steady) == sorted(["upload (copy_to_device)"] * 8 +
                                    ["download (copy_to_host)"] * 6), steady


def test_device_targets_are_not_copied_to_the_host(monkeypatch):
    """Device labels and device one-hot rows stay on the device (a dtype cast, if any,
    runs as a kernel into a reused buffer)."""
    x = numba.cuda.to_device(np.log(np.full((3, 4), 0.25, np.float32)))
    labels = np.array([0, 3, 1])
    onehot = np.eye(4, dtype=np.float32)[labels]
    cases = [(ClassNLLCriterion(), numba.cuda.to_device(labels)),
             (ClassNLLCriterion(), numba.cuda.to_device(onehot)),
             (CrossEntropyCriterion(), numba.cuda.to_device(onehot.astype(np.float64)))]
    for crit, target in cases:
        crit.forward(x, target)
        crit.backward(x, target)  # buffers exist now
        counter = TransferCounter(monkeypatch)
        loss = crit.forward(x, target)
        crit.backward(x, target)
        assert counter.take() == [], type(crit).__name__
        assert np.isfinite(float(loss))
        monkeypatch.undo()
