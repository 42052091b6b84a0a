"""``fit`` on a GPU net reads its figures in groups: a step's loss stays on the device
(a :class:`~fastnn.device_loss.DeviceLoss`) and its predictions (the arg-max of each
output row, for the accuracy) go into a small device buffer, and both are read every
``sync_every`` steps and at the epoch's end, so the steps in between make no host
round trip. The callbacks then see each step's loss in order, as on the CPU.
"""
import numpy as np

from ..device_loss import LOSS_RING, read_losses


class DeferredSteps:
    """Steps of the current group: (loss, rows, batch indices, steps done before it).

    Parameters
    ----------
    every : int
        Steps per group (at most ``LOSS_RING``, the criterion's loss slots).
    backend : type
        The net's backend (its kernels fill the prediction buffer).
    """

    def __init__(self, every: int, backend):
        every = int(every)
        if not 1 <= every <= LOSS_RING:
            raise ValueError(f"fit: sync_every must lie in [1, {LOSS_RING}] (the GPU "
                             f"criterion keeps that many losses), got {every}")
        self.every = every
        self.backend = backend
        self.pending = []
        self._predictions = None

    def __len__(self):
        return len(self.pending)

    def add(self, loss, out, idx, steps_before, with_predictions):
        """Queue one step; with_predictions: keep the arg-max of each row of ``out``."""
        if with_predictions:
            shape = (self.every, int(out.shape[0]))
            buf = self._predictions
            if buf is None or buf.shape[1] < shape[1]:
                buf = self._predictions = self.backend.empty(shape, np.int64)
            self.backend.kernels.targets.argmax_rows(out, buf[len(self.pending)][:shape[1]])
        self.pending.append((loss, idx, steps_before))

    def drain(self, with_predictions):
        """[(loss as float, batch indices, predictions or None, steps before)], in step
        order; one copy for all the predictions, one for the losses (and their check status)."""
        pending, self.pending = self.pending, []  # a read that raises drops the group
        preds = None
        if with_predictions and pending:
            preds = self._predictions.copy_to_host()
        values = read_losses([loss for loss, _, _ in pending])
        return [(value, idx, None if preds is None else preds[k, :len(idx)], steps_before)
                for k, (value, (_, idx, steps_before)) in enumerate(zip(values, pending))]
