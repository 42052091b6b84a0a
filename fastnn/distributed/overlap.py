"""Allreduce overlapped with ``backward`` (DDP's and Horovod's buckets): a
non-blocking allreduce of each bucket of layers' gradients starts as soon as
``backward`` has produced them, while the earlier layers still run.

A fastnn container keeps its gradients in one flat buffer in layer order, and
``backward`` runs the layers last to first, so the gradients that are final at any point
are a suffix of the buffer: each bucket is one contiguous slice of it.
"""
import numpy as np

from .collectives import _flatten, _address, flat_base
from .world import comm, size


class OverlappedAllreduce:
    """Average a ``Sequential``'s gradients over the ranks while its ``backward`` runs.

    Parameters
    ----------
    net : Sequential
        A container whose gradients tile one flat buffer (``flatten_parameters``).
    bucket_bytes : int
        Start an allreduce once this many bytes of gradients are final.

    Example
    -------
    >>> overlap = OverlappedAllreduce(net)      # doctest: +SKIP
    >>> overlap.begin()                          # before backward
    >>> net.backward(x, criterion.backward(out, y))
    >>> overlap.end()                            # before the optimizer's step
    """

    def __init__(self, net, bucket_bytes: int = 256 << 10):
        self.net = net
        self.base = flat_base(net.getGradParameters())
        if self.base is None:
            raise ValueError(f"OverlappedAllreduce: {type(net).__name__}'s gradients are not "
                             f"one flat buffer; use allreduce_gradients")
        self.bucket = max(1, int(bucket_bytes) // self.base.itemsize)
        # ready[i]: where the gradients of children i, i+1, ... start in the flat buffer
        start, item = _address(self.base), self.base.itemsize
        ready, lo = [], self.base.size
        for child in reversed(net.modules):
            grads = [g for g in _flatten(child.getGradParameters()) if hasattr(g, "size")]
            if grads:
                lo = min(lo, min((_address(g) - start) // item for g in grads))
            ready.append(lo)
        self.ready = ready[::-1]
        self.pending, self.cursor, self.weight = [], self.base.size, 1.0
        self.comm = comm()
        #: allreduces the last ``backward`` started (the last bucket included)
        self.buckets = 0

    def begin(self, weight: float = None) -> None:
        """Arm the hook for one ``backward``; ``weight`` as in ``allreduce_gradients``
        (a no-op in a world of size 1)."""
        if self.comm is None or size() == 1:
            return
        self.weight = 1.0 / size() if weight is None else float(weight)
        self.cursor = self.base.size
        self.pending = []
        self.buckets = 0
        self.net.set_backward_hook(self._after_child)

    def _start(self, lo):
        from mpi4py import MPI
        part = self.base[lo:self.cursor]
        if self.weight != 1.0:
            np.multiply(part, self.weight, out=part)
        self.pending.append(self.comm.Iallreduce(MPI.IN_PLACE, part, op=MPI.SUM))
        self.cursor = lo
        self.buckets += 1

    def _after_child(self, net, index):
        lo = self.ready[index]
        if self.cursor - lo >= self.bucket:
            self._start(lo)
        elif self.pending:
            from mpi4py import MPI
            MPI.Request.Testall(self.pending)  # MPI progresses only inside its calls

    def end(self) -> None:
        """Start the last bucket and wait for all of them."""
        if self.comm is None or size() == 1:
            return
        from mpi4py import MPI
        self.net.set_backward_hook(None)
        if self.cursor > 0:
            self._start(0)
        MPI.Request.Waitall(self.pending)
        self.pending = []
