"""Data-parallel training over MPI (mpi4py), shaped like Horovod's API.

Every rank holds the whole net and its own slice of each global batch; after
``backward`` one in-place allreduce averages the gradients, so every rank takes the
same optimizer step. Launch with ``mpiexec -n 4 python train.py`` (``pip install
'fastnn[mpi]'`` brings mpi4py and MPICH's ``mpiexec``). Without a launcher, or without
mpi4py, everything runs as a world of size 1.

Example
-------
>>> from fastnn import distributed as dist
>>> dist.init()
>>> dist.broadcast_parameters(net)                       # doctest: +SKIP
>>> for x, y in dist.shard(batches):                     # doctest: +SKIP
...     net.zeroGradParameters()
...     out = net.forward(x); criterion.forward(out, y)
...     net.backward(x, criterion.backward(out, y))
...     dist.allreduce_gradients(net)
...     sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)

``fit(..., distributed=True)`` does this, and the rest (``Distributed`` callback).
"""
from .collectives import (allreduce, allreduce_gradients, average_buffers,
                          broadcast_object, broadcast_parameters, flat_base, shard)
from .world import (INSTALL_HINT, DistributedError, comm, init, is_lead, launched_by_mpi,
                    local_rows, rank, silence_other_ranks, size)
from .overlap import OverlappedAllreduce
from .callback import Distributed

__all__ = ["init", "rank", "size", "comm", "is_lead", "local_rows", "launched_by_mpi",
           "broadcast_parameters", "allreduce_gradients", "average_buffers", "allreduce",
           "broadcast_object", "silence_other_ranks", "Distributed",
           "OverlappedAllreduce",
           "shard", "flat_base", "DistributedError", "INSTALL_HINT"]
