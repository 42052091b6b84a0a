"""The state a ``fit`` run shares with its callbacks (``TrainingRun``) and the error a
diverged run raises (``TrainingDiverged``)."""
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # annotations only
    from ..criterions import Criterion
    from ..module import Module
    from .callbacks import Callback
    from .history import History


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or blew up; raised by ``fit``.

    The network holds the weights of the last good snapshot (the start of the epoch, or of
    the last ``snapshot_every`` block).

    Parameters
    ----------
    message : str
        What happened and what to try.
    history : History, optional
        What was recorded up to there (``history.stopped_reason`` is ``"diverged"``).
    epoch, step : int, optional
        Where it happened (1-based).
    """

    def __init__(self, message: str, history: "History | None" = None,
                 epoch: "int | None" = None, step: "int | None" = None) -> None:
        super().__init__(message)
        self.history = history
        self.epoch = epoch
        self.step = step


class TrainingRun:
    """The state a run shares with its callbacks: the net, criterion, optimizer and
    history, where the loop is (``epoch``, ``batch``, ``steps_done``, ``lr``) and how it
    ends (``stop``). ``fit`` builds it; a ``Callback`` reads it.

    Parameters
    ----------
    net : Module
        The network being trained.
    criterion : Criterion
        The loss.
    optimizer : object
        What ``fit`` steps (``step()``).
    history : History
        Where the run records.
    seed : int
        The run's seed.
    epochs : int
        Epochs to run in all.
    batches_per_epoch : int
        Steps per epoch.
    log : callable or None
        Where the epoch lines go.
    callbacks : list of Callback
        Called at each hook, in order.
    """

    def __init__(self, net: "Module", criterion: "Criterion", optimizer: object,
                 history: "History", seed: int, epochs: int, batches_per_epoch: int,
                 log: "Callable[[str], object] | None", callbacks: "list[Callback]") -> None:
        self.net, self.criterion, self.optimizer = net, criterion, optimizer
        self.history, self.seed, self.epochs = history, seed, epochs
        self.batches_per_epoch = batches_per_epoch
        self.log, self.callbacks = log, callbacks
        self.epoch = self.batch = 0
        self.steps_done = len(history.step_loss)
        self.lr = float("nan")
        self.stopped = None
        # data parallelism (``Distributed``): this process's rank among ``size``, and
        # the share of the current global batch it trains on
        self.rank, self.size = 0, 1
        self.batch_share = 1.0

    @property
    def last_epoch(self):
        return self.epoch + 1 >= self.epochs

    def stop(self, reason, step, message):
        """End the run after the current step: ``fit`` restores the last good weights
        and raises ``TrainingDiverged(message)``."""
        self.stopped = (reason, self.epoch, step, message)

    def call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def reduce_loss(self, loss: float) -> float:
        """The step's loss as every hook and the history see it: each callback's
        ``reduce_loss`` in turn (``Distributed`` averages it over the ranks)."""
        for cb in self.callbacks:
            loss = cb.reduce_loss(self, loss)
        return loss

    def local_indices(self, idx: np.ndarray) -> "np.ndarray | None":
        """This rank's rows of the global batch ``idx`` (all of them in a world of 1),
        or None when the batch has fewer rows than ranks (every rank skips it)."""
        n = len(idx)
        if n < self.size:
            return None
        lo, hi = self.rank * n // self.size, (self.rank + 1) * n // self.size
        self.batch_share = (hi - lo) / n
        return idx[lo:hi]
