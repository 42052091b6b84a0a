"""``fit``: the homework's training loop (``zeroGradParameters``; ``forward``; criterion
``forward``/``backward``; ``backward``; optimizer step) with what a real run needs around
it, as callbacks (``callbacks.py``): validation in evaluate mode, learning-rate schedules,
early stopping, augmentation, a progress bar, divergence recovery and atomic
checkpoints with exact resumption.

Reproducibility: with a ``seed`` every source of randomness in epoch ``e`` is derived
from ``(seed, e)`` (shuffle order, augmentation, dropout masks), so a run stopped after
epoch ``e`` and resumed from its checkpoint ends with exactly the same weights as an
uninterrupted one, on a fixed thread count (see ``tune_threads``). Without a seed, one is
drawn and stored in the checkpoints.
"""
import os
import time
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .._runtime.threads import chosen_by_user
from ..backend import CPUBackend
from ..device_loss import DeviceLoss
from ..module import Module
from ._arguments import _augment_caller, _check_arguments
from .callbacks import (Checkpointer, DivergenceGuard, EpochLog, Monitor, ProgressBar,
                        SkipInputGradient, Watcher)
from .checkpoint import host, load_checkpoint
from .deferred import DeferredSteps
from .evaluate import evaluate, labels_of
from .history import History
from .optimizers import make_optimizer
from .run import TrainingDiverged, TrainingRun
from .threads import ThreadTuner

if TYPE_CHECKING:  # annotations only
    from ..criterions import Criterion
    from .callbacks import Callback

__all__ = ["fit", "TrainingDiverged"]


def _seed_dropout(net, value):
    """Seed the generators dropout masks come from: NumPy's global one (CPU masks draw
    their keys from it) and the device kernels' own."""
    np.random.seed(int(value) % (2 ** 32))
    backend = getattr(net, "backend", CPUBackend)
    for b in (backend, CPUBackend) if backend is not CPUBackend else (CPUBackend,):
        try:
            seed = getattr(b.kernels.dropout, "seed", None)
        except ImportError:
            seed = None
        if seed is not None:
            seed(int(value))


def _epoch_streams(seed, epoch, rank=0, size=1):
    """Independent generators for the shuffle and the augmentation of one epoch, and a
    32-bit dropout seed, all from (seed, epoch). With ``size`` ranks the shuffle is
    shared and rank ``rank`` gets its own augmentation and dropout streams."""
    ss = np.random.SeedSequence([int(seed), int(epoch)])
    s_shuffle, s_aug, s_drop = ss.spawn(3)
    if size > 1:
        s_aug, s_drop = s_aug.spawn(size)[rank], s_drop.spawn(size)[rank]
    return (np.random.default_rng(s_shuffle), np.random.default_rng(s_aug),
            int(s_drop.generate_state(1)[0]))


def fit(net: Module, criterion: "Criterion", X: np.ndarray, y: "np.ndarray | None" = None, *,
        optimizer: object = "sgd", config: "dict | None" = None, epochs: int = 10,
        batch_size: int = 128, schedule: "Callable[[int], float] | None" = None,
        X_val: "np.ndarray | None" = None, y_val: "np.ndarray | None" = None,
        early_stopping: "int | None" = None, monitor: "str | None" = None,
        restore_best: "bool | None" = None, augment: "Callable | bool | None" = None,
        seed: "int | None" = None, progress: bool = True,
        log: "Callable[[str], object] | None" = print,
        checkpoint: "str | os.PathLike | None" = None,
        resume: "str | os.PathLike | None" = None, metric: "str | None" = "accuracy",
        eval_batch_size: int = 1024, shuffle: bool = True, divergence_factor: float = 1e3,
        snapshot_every: "int | None" = None, max_steps: "int | None" = None,
        tune_threads: "bool | None" = None, callbacks: "Sequence[Callback]" = (),
        sync_every: int = 50, watch: bool = True, input_gradient: bool = False,
        distributed: "bool | Callback" = False) -> History:
    """Train ``net`` on ``(X, y)`` with ``criterion``.

    Parameters
    ----------
    net : Module
        The network (trained in place).
    criterion : Criterion
        The loss, e.g. ``ClassNLLCriterion()`` after a ``LogSoftMax``.
    X : ndarray
        Training inputs, first axis the samples.
    y : ndarray or None
        Targets (class indices or one-hot rows). ``None`` trains to reproduce the input
        (autoencoder; the augmented batch is the target too) and turns accuracy off.
    optimizer : str, optimizer object or callable
        ``'sgd'`` (the homework's SGD with momentum, default config
        ``learning_rate=0.01, momentum=0.9``), ``'adam'``, an optimizer object
        (``fastnn.optim.SGD``/``Adam``) or a function with ``sgd_momentum``'s signature.
    config : dict, optional
        Updates the optimizer's config (a function optimizer needs ``learning_rate``).
    epochs : int
        Epochs to train (in total, counting a resumed run's).
    batch_size : int
        Samples per step.
    schedule : callable, optional
        Epoch (0-based) -> learning rate, e.g. ``fastnn.optim.StepDecay``.
    X_val, y_val : ndarray, optional
        Validation data, evaluated after every epoch in evaluate mode.
    early_stopping : int, optional
        Patience in epochs on ``monitor``; restores the best weights (``restore_best``).
    monitor : str, optional
        ``'val_accuracy'`` (default with labels and validation data), ``'val_loss'`` or
        ``'train_loss'``.
    restore_best : bool, optional
        Restore the best epoch's weights at the end (default: with early stopping).
    augment : callable or bool, optional
        Batch -> batch (``True``: ``fastnn.data.augment_batch``); one that takes ``rng=``
        gets the epoch's generator.
    seed : int, optional
        Makes the shuffle, augmentation and dropout masks reproducible.
    progress : bool
        Show a progress bar per epoch.
    log : callable or None
        Called with one line per epoch (None: silent).
    checkpoint : path, optional
        Written atomically after every epoch.
    resume : path, optional
        A checkpoint to continue from (its epoch, optimizer state, history and seed).
    metric : {'accuracy', None}
        Whether to measure accuracy.
    eval_batch_size : int
        Batch size for validation.
    shuffle : bool
        Shuffle the samples every epoch.
    divergence_factor : float
        A loss above this times the reference loss counts as diverged.
    snapshot_every : int, optional
        Also snapshot the weights every that many steps (for divergence recovery).
    max_steps : int, optional
        Stop after that many steps in total (quick runs and tests).
    tune_threads : bool, optional
        At each epoch's start, time a few steps at the configured thread count and a few
        at one thread, and keep the faster (``fastnn.train.threads.ThreadTuner``): on a
        host where another process holds a core, two-thread steps can be several times
        slower. Default: on, unless the thread count was fixed with
        ``set_num_threads``/``FASTNN_NUM_THREADS``. BLAS sums in another order on
        another thread count, so with tuning two runs agree to float rounding; for
        bit-identical runs and resumption, fix the thread count or pass ``False``. CPU
        nets only (a GPU net's steps do not run on fastnn's threads).
    callbacks : sequence of Callback
        Extra callbacks (``fastnn.train.callbacks.Callback``), called after the built-in ones.
    sync_every : int
        GPU criterions only: read the loss and the accuracy from the device every this
        many steps, at every ``snapshot_every`` step and at the epoch's end, so the
        steps in between make no host round trip (``train/deferred.py``); the
        callbacks still see every step's loss, in order, a group late. CPU runs read
        every step.
    watch : bool
        CPU nets: run the loop inside ``fastnn.watch`` and log each new finding as it
        appears (a NaN loss and the module that made it, a loss stuck at chance, ...).
    input_gradient : bool
        Compute the first module's input gradient. By default the first module of a
        Sequential gets Torch7's ``gradInput = nil`` for the run (restored afterwards):
        the data never needs a gradient, and a Linear or Conv2d saves a GEMM a step.
    distributed : bool or Distributed
        Data-parallel over MPI (launch with ``mpiexec -n N``; ``fastnn.distributed``), CPU
        nets: ``batch_size`` is the global batch, each rank trains on its share of every
        batch and the gradients are averaged before each step. Only rank 0 logs, shows
        the progress bar and writes the checkpoint. A world of size 1 without a launcher.
        A ``fastnn.distributed.Distributed`` object sets its options (overlap).

    Returns
    -------
    History
        What was recorded, per step and per epoch.

    Raises
    ------
    TrainingDiverged
        When the loss becomes NaN/inf or exceeds ``divergence_factor`` times the
        reference loss (the first epoch's mean, the first step's until then); the net
        then holds the last good snapshot.

    Example
    -------
    >>> import fastnn as nn
    >>> net = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10),
    ...                     nn.LogSoftMax())
    >>> history = nn.fit(net, nn.ClassNLLCriterion(), X, y, epochs=3,
    ...                  seed=0)  # doctest: +SKIP
    """
    batch_size, metric, monitor, restore_best = _check_arguments(
        net, X, y, batch_size, metric, X_val, y_val, monitor, early_stopping, restore_best,
        epochs)
    opt = make_optimizer(net, optimizer, config)
    aug = _augment_caller(augment)
    labels = labels_of(y) if metric == "accuracy" else None
    n = len(X)

    watchers = [DivergenceGuard(divergence_factor, snapshot_every),
                Monitor(monitor, early_stopping, keep_best=early_stopping is not None or
                        restore_best, restore_best=restore_best)]
    on_cpu = getattr(net, "backend", CPUBackend) is CPUBackend  # threads: the CPU's kernels
    lead = True
    if distributed:
        from ..distributed import Distributed
        # first: rank 0's weights before any snapshot
        watchers.insert(0, distributed if isinstance(distributed, Distributed) else Distributed())
        lead = watchers[0].rank == 0
        log = log if lead else None
    if on_cpu and (tune_threads or (tune_threads is None and not chosen_by_user())):
        watchers.append(ThreadTuner())
    if progress and lead:
        watchers.append(ProgressBar())
    if log:
        watchers.append(EpochLog())
    if checkpoint is not None and lead:
        watchers.append(Checkpointer(checkpoint))
    if watch and on_cpu:  # a GPU loss is read every sync_every steps, not every step
        watchers.append(Watcher())
    if not input_gradient:
        watchers.append(SkipInputGradient())
    watchers.extend(callbacks)

    history = History()
    if hasattr(net, "flatten_parameters"):
        net.flatten_parameters()  # before any snapshot or load
    start_epoch, resumed = 0, None
    if resume is not None:
        if not os.path.exists(os.fspath(resume)):
            raise FileNotFoundError(f"fit: resume checkpoint {os.fspath(resume)} does not exist")
        resumed = load_checkpoint(resume, net, opt)
        if config:
            opt.config.update(config)
        start_epoch = int(resumed["epoch"])
        history = History.from_dict(resumed["extra"].get("history", {}))
        if seed is None:
            seed = resumed["extra"].get("seed")
    history.monitor = monitor
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2 ** 63))
    run = TrainingRun(net, criterion, opt, history, int(seed), epochs, -(-n // batch_size),
                      log, watchers)
    if distributed:
        run.rank, run.size = watchers[0].rank, watchers[0].size
    if resumed is not None:
        run.call("load_state", resumed["extra"], resumed["arrays"])

    if start_epoch >= epochs:
        if log:
            log(f"nothing to do: the checkpoint is at epoch {start_epoch} of {epochs}")
        history.stopped_reason = history.stopped_reason or "completed"
        return history

    t_fit = time.perf_counter()
    net.train()
    deferred = DeferredSteps(sync_every, getattr(net, "backend", CPUBackend))
    for epoch in range(start_epoch, epochs):
        run.epoch = epoch
        t0 = time.perf_counter()
        if schedule is not None:
            opt.config["learning_rate"] = float(schedule(epoch))
        run.lr = float(opt.config.get("learning_rate", float("nan")))
        run.call("on_epoch_start")
        rng_shuffle, rng_aug, drop_seed = _epoch_streams(run.seed, epoch, run.rank, run.size)
        order = rng_shuffle.permutation(n) if shuffle else np.arange(n)
        _seed_dropout(net, drop_seed)
        net.train()

        totals = [0.0, 0, 0]  # loss * rows, correct, rows
        steps_this_epoch = 0

        def account(loss, idx, predicted, steps_before, replayed):
            """One step's figures; ``replayed``: a GPU step read a group late, whose
            on_loss comes now (False: it came before the step's backward)."""
            steps_now = run.steps_done
            run.steps_done = steps_before
            if replayed:
                run.call("on_loss", loss)
                if run.stopped is not None:
                    return False
            run.steps_done = steps_before + 1
            totals[0] += loss * len(idx)
            totals[2] += len(idx)
            history.step_loss.append(loss)
            if labels is not None:
                c = int(np.count_nonzero(predicted == labels[idx]))
                totals[1] += c
                history.step_accuracy.append(c / len(idx))
            run.call("on_step_end", loss)
            run.steps_done = steps_now
            return True

        def drain():
            for entry in deferred.drain(labels is not None):
                if not account(*entry, replayed=True):
                    return

        try:
            for b in range(run.batches_per_epoch):
                run.batch = b
                idx = run.local_indices(order[b * batch_size:(b + 1) * batch_size])
                if idx is None:
                    break
                xb = X[idx]
                if aug is not None:
                    xb = aug(xb, rng_aug)
                tb = xb if y is None else y[idx]
                net.zeroGradParameters()
                out = net.forward(xb)
                loss = criterion.forward(out, tb)
                on_device = isinstance(loss, DeviceLoss)
                if not on_device:
                    loss = run.reduce_loss(float(loss))
                    run.call("on_loss", loss)
                    if run.stopped is not None:
                        break
                net.backward(xb, criterion.backward(out, tb))
                run.call("on_backward_end")
                opt.step()
                steps_before = run.steps_done
                run.steps_done += 1
                steps_this_epoch += 1
                last = (b == run.batches_per_epoch - 1 or
                        (max_steps is not None and run.steps_done >= max_steps))
                if on_device:
                    deferred.add(loss, out, idx, steps_before, labels is not None)
                    if len(deferred) >= deferred.every or last or (
                            snapshot_every and run.steps_done % int(snapshot_every) == 0):
                        drain()
                        if run.stopped is not None:
                            break
                else:
                    predicted = None if labels is None else np.argmax(host(out), axis=1)
                    account(loss, idx, predicted, steps_before, replayed=False)
                if max_steps is not None and run.steps_done >= max_steps:
                    break
        finally:
            run.call("on_batches_end")
        sum_loss, sum_correct, seen = totals
        if run.stopped is not None:
            break

        record = {"epochs": epoch + 1, "train_loss": sum_loss / seen if seen else float("nan"),
                  "train_accuracy": sum_correct / seen if labels is not None and seen else None,
                  "val_loss": None, "val_accuracy": None, "lr": run.lr}
        if X_val is not None:
            record["val_loss"], record["val_accuracy"] = evaluate(
                net, criterion, X_val, y_val, eval_batch_size, metric)
            net.train()
        run.call("on_epoch_measured", record)
        if run.stopped is not None:
            break
        record.update(epoch_time=time.perf_counter() - t0, steps=steps_this_epoch)
        history.append(record)
        if max_steps is not None and run.steps_done >= max_steps and not run.last_epoch:
            history.stopped_reason = "max_steps"
            history.message = f"stopped after {run.steps_done} steps (max_steps)"
        run.call("on_epoch_end", record)
        if history.stopped_reason in ("early_stopping", "max_steps"):
            if log:
                log(history.message)
            break

    history.total_time += time.perf_counter() - t_fit
    run.call("on_fit_end")
    net.train()
    if run.stopped is not None:
        reason, epoch, step, message = run.stopped
        history.stopped_reason, history.message = reason, message
        raise TrainingDiverged(message, history=history, epoch=epoch + 1, step=step)
    if history.stopped_reason is None:
        history.stopped_reason = "completed"
    return history
