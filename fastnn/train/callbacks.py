"""What ``fit`` does around each step, as small callbacks: divergence recovery, the
monitored quantity (best weights, early stopping), the progress bar, the epoch log and
the checkpoint. ``fit`` builds the list; each callback keeps its own state and, where a
resumed run needs it, saves and loads it through the checkpoint.

Hooks, in the order ``fit`` calls them (every hook is optional):

- ``on_epoch_start(run)``: before the epoch's first batch;
- ``reduce_loss(run, loss) -> loss``: the criterion's loss as the other hooks and the
  history will see it (``Distributed`` averages it over the ranks);
- ``on_loss(run, loss)``: after the criterion's forward, before ``backward``; may stop;
- ``on_backward_end(run)``: after ``backward``, before the optimizer's step
  (``Distributed`` averages the gradients here);
- ``on_step_end(run, loss)``: after the optimizer's step;
- ``on_batches_end(run)``: after the epoch's last batch, also when a step raised;
- ``on_epoch_measured(run, record)``: the epoch's figures, before they are recorded;
  may stop (the epoch is then not recorded);
- ``on_epoch_end(run, record)``: after the epoch is recorded in ``run.history``;
- ``on_fit_end(run)``: once, also after a stop;
- ``state()`` / ``load_state(run, extra, arrays)``: what a checkpoint keeps of the callback.
"""
import math

import numpy as np

from .checkpoint import Snapshot, host, module_arrays, save_checkpoint


class Callback:
    """Base class of ``fit``'s callbacks: every hook does nothing; a subclass overrides the
    ones it needs. Each hook gets the ``TrainingRun``; ``run.stop(...)`` ends the run.

    Hooks, in the order ``fit`` calls them: ``on_epoch_start(run)``, per step
    ``on_loss(run, loss)`` and ``on_step_end(run, loss)``, ``on_batches_end(run)``,
    ``on_epoch_measured(run, record)`` (the epoch's figures, before the log line),
    ``on_epoch_end(run, record)``, and ``on_fit_end(run)``. ``state()`` and
    ``load_state(run, extra, arrays)`` carry a callback's state through checkpoints.

    Examples
    --------
    >>> from fastnn.train import Callback
    >>> class CountSteps(Callback):
    ...     def __init__(self):
    ...         self.steps = 0
    ...     def on_step_end(self, run, loss):
    ...         self.steps += 1
    >>> CountSteps().steps
    0
    """

    def on_epoch_start(self, run):
        pass

    def reduce_loss(self, run, loss):
        return loss

    def on_loss(self, run, loss):
        pass

    def on_backward_end(self, run):
        pass

    def on_step_end(self, run, loss):
        pass

    def on_batches_end(self, run):
        pass

    def on_epoch_measured(self, run, record):
        pass

    def on_epoch_end(self, run, record):
        pass

    def on_fit_end(self, run):
        pass

    def state(self):
        """``(json_dict, arrays)`` to store in a checkpoint's ``extra``."""
        return {}, {}

    def load_state(self, run, extra, arrays):
        pass


def _fmt(v):
    return "n/a" if v is None else (f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}")


def optimizer_state(optimizer):
    """A copy of the optimizer's state (its ``state_dict`` without the config), or None
    for an optimizer object without ``state_dict``."""
    if not hasattr(optimizer, "state_dict"):
        return None
    sd = optimizer.state_dict()  # copies every array
    sd.pop("config", None)
    return sd


def restore_optimizer_state(optimizer, sd):
    """Put back a state from ``optimizer_state``, keeping the current config."""
    optimizer.load_state_dict(dict(sd, config=dict(optimizer.config)))


def params_finite(net):
    """True when every parameter and moving statistic of ``net`` is finite."""
    for _, m, _, name in module_arrays(net):
        a = getattr(m, name)
        if a is not None and not np.isfinite(host(a)).all():
            return False
    return True


class DivergenceGuard(Callback):
    """Stops the run when the loss is NaN/inf or exceeds ``factor`` times the reference
    loss (the first step's, then the first epoch's mean), or when the weights or the
    validation loss stop being finite; the net then gets back the last good snapshot,
    taken at each epoch's start and every ``snapshot_every`` steps, and the optimizer
    gets back its state of that moment (momentum, Adam's moments and step count): the
    diverged velocity would otherwise throw the restored weights off again at the next
    step, even at the lowered learning rate the error message advises. The
    optimizer's config (learning rate) is left as the caller set it."""

    def __init__(self, factor, snapshot_every=None):
        self.factor = factor
        self.snapshot_every = int(snapshot_every) if snapshot_every else None
        self.ref_loss = None
        self.last_good = Snapshot()
        self.last_good_optimizer = None

    def _take(self, run):
        self.last_good.take(run.net)
        self.last_good_optimizer = optimizer_state(run.optimizer)

    def _limit(self, fallback):
        ref = self.ref_loss if self.ref_loss is not None else fallback
        return self.factor * max(abs(ref), 1e-3)

    def _restored(self, run):
        later = " or later" if self.snapshot_every else ""
        return (f"The weights and the optimizer state were restored to the last good "
                f"snapshot (start of epoch {run.epoch + 1}{later})")

    def on_epoch_start(self, run):
        self._take(run)

    def on_loss(self, run, loss):
        if self.ref_loss is None and math.isfinite(loss):
            self.ref_loss = loss
        if math.isfinite(loss) and loss <= self._limit(loss):
            return
        what = "not finite" if not math.isfinite(loss) else \
            f"more than {self.factor:g} x the reference loss {self.ref_loss:.4g}"
        restored = self._restored(run)
        run.stop("diverged", run.steps_done + 1,
                 f"training diverged at epoch {run.epoch + 1}, step {run.steps_done + 1}: loss "
                 f"is {loss:.4g} ({what}) with learning rate {run.lr:.4g}. {restored}. Lower "
                 f"the learning rate, check the input for NaN/inf, or use a schedule.")

    def on_step_end(self, run, loss):
        if self.snapshot_every and run.steps_done % self.snapshot_every == 0:
            self._take(run)

    def on_epoch_measured(self, run, record):
        if not params_finite(run.net):
            run.stop("diverged", run.steps_done,
                     f"training diverged in epoch {run.epoch + 1}: the weights are no longer "
                     f"finite (learning rate {run.lr:.4g}). They and the optimizer state "
                     f"were restored to the last good snapshot. Lower the learning rate.")
            return
        val_loss = record["val_loss"]
        if val_loss is not None and (not math.isfinite(val_loss) or
                                     val_loss > self._limit(record["train_loss"])):
            restored = self._restored(run)
            run.stop("diverged", run.steps_done,
                     f"training diverged in epoch {run.epoch + 1}: the validation loss is "
                     f"{val_loss:.4g} (learning rate {run.lr:.4g}). {restored}. Lower the "
                     f"learning rate.")
            return
        if run.epoch == 0 and math.isfinite(record["train_loss"]):
            self.ref_loss = record["train_loss"]  # from now on: the first epoch's mean

    def on_fit_end(self, run):
        if run.stopped is not None:
            self.last_good.restore(run.net)
            if self.last_good_optimizer is not None:
                restore_optimizer_state(run.optimizer, self.last_good_optimizer)

    def state(self):
        return {"ref_loss": self.ref_loss}, {}

    def load_state(self, run, extra, arrays):
        self.ref_loss = extra.get("ref_loss")


class Monitor(Callback):
    """Tracks the monitored quantity: the best epoch, the best weights (with
    ``keep_best``), early stopping after ``patience`` epochs without improvement, and
    restoring the best weights at the end (with ``restore_best``)."""

    def __init__(self, monitor, patience=None, keep_best=False, restore_best=False):
        self.monitor = monitor
        self.higher_better = monitor == "val_accuracy"
        self.patience = int(patience) if patience is not None else None
        self.restore_best = restore_best
        self.best = Snapshot() if keep_best else None
        self.bad_epochs = 0

    def on_epoch_end(self, run, record):
        h = run.history
        value = record[self.monitor]
        improved = False
        if value is not None and math.isfinite(value):
            if h.best_value is None or \
                    (value > h.best_value if self.higher_better else value < h.best_value):
                h.best_value, h.best_epoch = value, run.epoch + 1
                improved = True
        if improved:
            self.bad_epochs = 0
            if self.best is not None:
                self.best.take(run.net)
        else:
            self.bad_epochs += 1
        if self.patience is not None and self.bad_epochs >= self.patience and \
                not run.last_epoch and h.stopped_reason != "max_steps":
            h.stopped_reason = "early_stopping"
            h.message = (f"early stopping after epoch {run.epoch + 1}: {self.monitor} did not "
                         f"improve for {self.bad_epochs} epochs (best {h.best_value:.4g} at "
                         f"epoch {h.best_epoch})")

    def on_fit_end(self, run):
        if run.stopped is not None or not self.restore_best or self.best is None or \
                not self.best.valid:
            return
        self.best.restore(run.net)
        h = run.history
        if run.log and h.best_epoch != h.epochs[-1]:
            run.log(f"restored the weights of epoch {h.best_epoch} "
                    f"(best {self.monitor} {h.best_value:.4f})")

    def state(self):
        extra = {"bad_epochs": self.bad_epochs}
        if self.best is not None and self.best.valid:
            extra["best_arrays"] = True
            return extra, self.best.arrays("best")
        return extra, {}

    def load_state(self, run, extra, arrays):
        self.bad_epochs = int(extra.get("bad_epochs", 0))
        if self.best is not None and "best_arrays" in extra:
            self.best.load_arrays(run.net, arrays, "best")


class ProgressBar(Callback):
    """A tqdm bar per epoch, showing the loss every 20 steps."""

    def __init__(self):
        self.bar = None

    def on_epoch_start(self, run):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=run.batches_per_epoch, desc=f"epoch {run.epoch + 1}/{run.epochs}",
                        unit="batch", leave=False, dynamic_ncols=True)

    def on_step_end(self, run, loss):
        self.bar.update(1)
        if run.batch % 20 == 0:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_batches_end(self, run):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochLog(Callback):
    """One line per epoch through ``run.log``."""

    def on_epoch_end(self, run, record):
        width = len(str(run.epochs))
        parts = [f"epoch {run.epoch + 1:>{width}}/{run.epochs}",
                 f"train loss {_fmt(record['train_loss'])}"]
        if record["train_accuracy"] is not None:
            parts.append(f"train acc {record['train_accuracy']:.4f}")
        if record["val_loss"] is not None:
            parts.append(f"val loss {_fmt(record['val_loss'])}")
        if record["val_accuracy"] is not None:
            parts.append(f"val acc {record['val_accuracy']:.4f}")
        parts.append(f"lr {record['lr']:.4g}")
        parts.append(f"{record['epoch_time']:.1f}s")
        run.log("  ".join(parts))


class Checkpointer(Callback):
    """Writes ``path`` (atomically) after every epoch: weights, optimizer state, the
    history, the seed and every callback's state, so that a resumed run continues
    exactly where this one stopped."""

    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, run, record):
        extra = {"history": run.history.to_dict(), "seed": run.seed}
        arrays = {}
        for cb in run.callbacks:
            cb_extra, cb_arrays = cb.state()
            extra.update(cb_extra)
            arrays.update(cb_arrays)
        save_checkpoint(self.path, run.net, run.optimizer, epoch=run.epoch + 1, extra=extra,
                        arrays=arrays or None)


class Watcher(Callback):
    """``fastnn.watch`` around every epoch's batches: each new finding (NaN loss and the
    module that made it, gradients that accumulate, updates too small, loss at chance,
    ...) goes through ``run.log`` as it appears. ``watch`` holds them all afterwards."""

    def __init__(self):
        self.watch = None

    def on_epoch_start(self, run):
        from ..diagnosis import Watch
        if self.watch is None:
            self.watch = Watch(run.net, run.criterion, on_finding=lambda f: run.log(
                f"fastnn.watch: {f}") if run.log else None)
        self.watch.__enter__()

    def on_batches_end(self, run):
        if self.watch is not None:
            self.watch.__exit__(None, None, None)


class SkipInputGradient(Callback):
    """Torch7's ``net.modules[1].gradInput = nil`` for the run: the first module of a
    Sequential skips its input gradient (the data never needs one; for a Linear or
    Conv2d that is one GEMM a step). Undone at the end of the run."""

    def __init__(self):
        self.module = None

    def on_epoch_start(self, run):
        from ..sequential import Sequential
        net = run.net
        if self.module is not None or not isinstance(net, Sequential) or not net.modules:
            return
        first = net.modules[0]
        if first.leaves() == [first] and not first.skips_grad_input:
            first.skips_grad_input = True
            self.module = first

    def on_fit_end(self, run):
        if self.module is not None:
            self.module.skips_grad_input = False
            self.module = None
