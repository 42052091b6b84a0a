"""``Distributed``: what ``fit(..., distributed=True)`` adds to the training loop.

``fit`` keeps its batch size as the *global* batch: with N ranks each step takes
``batch_size / N`` rows on every rank, so one run computes the same steps on any number
of ranks (up to the order of floating-point sums) and a checkpoint saved by N ranks
resumes on M. What differs with the world size: dropout masks and augmentation draw
from per-rank streams (reproducible for a given seed and world size), and
BatchNormalization normalises with each rank's own batch statistics.
"""
import sys

from ..train.callbacks import Callback
from . import collectives, world


class Distributed(Callback):
    """Data parallelism as callbacks: rank 0's seed and weights at the start, the mean
    loss every step (so every rank takes the same divergence decision), the gradients
    averaged between ``backward`` and the optimizer's step, BatchNormalization's moving
    statistics averaged at the end of every epoch's batches (before validation and the
    checkpoint), and the train accuracy averaged over the ranks.

    ``fit(..., distributed=True)`` builds one; pass your own as
    ``fit(..., distributed=Distributed(overlap=True))``. ``fit`` puts it first among the
    callbacks and gives the progress bar, the epoch log and the checkpoint to rank 0.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        Passed to ``fastnn.distributed.init``.
    overlap : bool
        Overlap the gradients' allreduce with ``backward`` (``OverlappedAllreduce``) when
        the net is a ``Sequential`` with flat gradients. Off by default: on 2 ranks over
        shared memory it tied with the one blocking allreduce after ``backward``
        (docs/performance.md, "Distributed training"), which is simpler.
    bucket_bytes : int
        The overlap's bucket size.
    """

    def __init__(self, comm=None, overlap: bool = False, bucket_bytes: int = 256 << 10):
        world.init(comm)
        self.rank = world.rank()
        self.size = world.size()
        self.overlap = bool(overlap) and self.size > 1
        self.bucket_bytes = int(bucket_bytes)
        self._started = False
        self._overlapped = None

    def on_epoch_start(self, run):
        if self._started:
            return
        self._started = True
        # one seed for all: each rank drew its own when fit was given none
        run.seed = int(collectives.broadcast_object(run.seed))
        collectives.broadcast_parameters(run.net)
        if self.overlap and hasattr(run.net, "set_backward_hook") and \
                collectives.flat_base(run.net.getGradParameters()) is not None:
            from .overlap import OverlappedAllreduce
            self._overlapped = OverlappedAllreduce(run.net, self.bucket_bytes)

    def reduce_loss(self, run, loss):
        return float(collectives.allreduce(loss * run.batch_share, average=False))

    def on_loss(self, run, loss):
        if self._overlapped is not None:
            self._overlapped.begin(run.batch_share)  # backward comes next

    def on_backward_end(self, run):
        if self._overlapped is not None:
            self._overlapped.end()
        else:
            collectives.allreduce_gradients(run.net, weight=run.batch_share)

    def on_batches_end(self, run):
        if self._overlapped is not None:
            run.net.set_backward_hook(None)  # a stop between on_loss and backward
        if sys.exc_info()[1] is not None:
            return  # this rank is failing: its excepthook aborts the job, no collective
        collectives.average_buffers(run.net)

    def on_epoch_measured(self, run, record):
        if record["train_accuracy"] is not None:
            record["train_accuracy"] = float(collectives.allreduce(record["train_accuracy"]))
