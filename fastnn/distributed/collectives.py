"""What data-parallel training communicates: rank 0's weights to every rank at the
start, the gradients every step (one in-place allreduce over the net's flat gradient
buffer), BatchNormalization's moving statistics every epoch, and small figures (the
loss, accuracy counts).

Every function is a collective: all ranks call it, in the same order. In a world of
size 1 each is a no-op (or returns its input).
"""
from typing import Iterable, Iterator

import numpy as np

from .world import comm, local_rows, rank, size


def _flatten(nested):
    if isinstance(nested, (list, tuple)):
        return [a for item in nested for a in _flatten(item)]
    return [nested]


def _address(a):
    return a.__array_interface__["data"][0]


def flat_base(arrays) -> "np.ndarray | None":
    """The 1-D buffer that ``arrays`` tile end to end, in order, or None.

    A fastnn container's ``getParameters()``/``getGradParameters()`` hand out views into
    one flat buffer (``Container.flatten_parameters``): the whole net then communicates
    in one call instead of one per array.

    Parameters
    ----------
    arrays : list of ndarray, nested lists allowed (``getGradParameters()``)

    Returns
    -------
    ndarray or None
    """
    arrays = _flatten(arrays)
    if not arrays or not all(type(a) is np.ndarray for a in arrays):
        return None
    base = arrays[0].base
    if type(base) is not np.ndarray or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    start, item, off = _address(base), base.itemsize, 0
    for a in arrays:
        if a.base is not base or a.dtype != base.dtype or not a.flags.c_contiguous or \
                _address(a) - start != off * item:
            return None
        off += a.size
    return base if off == base.size else None


def _buffers(arrays, what):
    """The arrays to communicate: the flat buffer when ``arrays`` tile one, else each
    array (which must be a contiguous NumPy array: MPI reads and writes it in place)."""
    base = flat_base(arrays)
    if base is not None:
        return [base]
    for i, a in enumerate(arrays):
        if type(a) is not np.ndarray or not a.flags.c_contiguous:
            raise TypeError(f"fastnn.distributed.{what}: array #{i} is a "
                            f"{type(a).__name__}{'' if type(a) is not np.ndarray else ' (not contiguous)'}; "
                            f"distributed training communicates contiguous NumPy arrays "
                            f"(train on the CPU)")
    return arrays


def _states(net):
    """[(module, name)] of every moving statistic (BatchNormalization's mean and
    variance), in the checkpoint's fixed order."""
    from ..train.checkpoint import module_arrays
    return [(m, name) for _, m, kind, name in module_arrays(net) if kind == "state"]


def broadcast_parameters(net, root: int = 0) -> None:
    """Copy rank ``root``'s parameters and moving statistics to every rank.

    Parameters
    ----------
    net : Module
        The same architecture on every rank. A container's flat parameter buffer goes
        in one ``Bcast``; other parameters one call per array. Moving statistics that
        rank ``root`` has and another rank has not yet created are created there.
    root : int
        The rank whose weights win.

    Example
    -------
    >>> dist.init(); dist.broadcast_parameters(net)  # doctest: +SKIP
    """
    c = comm()
    if c is None or size() == 1:
        return
    for a in _buffers(_flatten(net.getParameters()), "broadcast_parameters"):
        c.Bcast(a, root=root)
    states = _states(net)
    shapes = c.bcast([None if getattr(m, n) is None else
                      (tuple(np.shape(getattr(m, n))), str(getattr(m, n).dtype))
                      for m, n in states], root=root)
    if len(shapes) != len(states):
        raise ValueError(f"fastnn.distributed.broadcast_parameters: rank {root}'s network has "
                         f"{len(shapes)} moving statistics, rank {rank()}'s has {len(states)}")
    from ..train.checkpoint import set_array
    for (m, name), spec in zip(states, shapes):
        if spec is None:
            continue
        a = getattr(m, name)
        if a is None or tuple(a.shape) != spec[0]:
            set_array(m, name, np.zeros(spec[0], dtype=spec[1]))
            a = getattr(m, name)
        c.Bcast(_buffers([a], "broadcast_parameters")[0], root=root)


def allreduce_gradients(net, weight: float = None) -> None:
    """Average the gradients over all ranks, in place.

    Each rank scales its gradients by ``weight`` and one in-place ``Allreduce`` (sum,
    ``MPI.IN_PLACE``) runs over the net's flat gradient buffer; a net whose gradients are
    not views into one buffer makes one call per array.

    Parameters
    ----------
    net : Module
        After ``backward``, before the optimizer's step.
    weight : float, optional
        This rank's share of the global batch, ``local rows / global rows`` (default
        ``1 / size()``: equal shards). With unequal shards the sum is the gradient of the
        mean loss over the global batch.

    Example
    -------
    >>> net.backward(x, criterion.backward(out, y))
    >>> dist.allreduce_gradients(net)  # doctest: +SKIP
    """
    c = comm()
    if c is None or size() == 1:
        return
    from mpi4py import MPI
    w = 1.0 / size() if weight is None else float(weight)
    for g in _buffers(_flatten(net.getGradParameters()), "allreduce_gradients"):
        if w != 1.0:
            np.multiply(g, w, out=g)
        c.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)


def average_buffers(net) -> None:
    """Average every moving statistic (BatchNormalization's ``moving_mean`` and
    ``moving_variance``) over the ranks, in one ``Allreduce``.

    Each rank's statistics follow its own shards' batches. Averaged, the moving mean is
    exactly the single-process one for equal shards (it is linear in the batch means);
    the moving variance is the mean of the per-rank batch variances, which leaves out
    the spread between the ranks' batch means.

    Parameters
    ----------
    net : Module
    """
    c = comm()
    if c is None or size() == 1:
        return
    from mpi4py import MPI
    arrays = [getattr(m, n) for m, n in _states(net) if getattr(m, n) is not None]
    if not arrays:
        return
    packed = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    c.Allreduce(MPI.IN_PLACE, packed, op=MPI.SUM)
    packed /= size()
    off = 0
    for a in arrays:
        a[...] = packed[off:off + a.size].reshape(a.shape)
        off += a.size


def allreduce(values, average: bool = True) -> np.ndarray:
    """The sum (or mean) over ranks of a few numbers, as float64 (a new array).

    Parameters
    ----------
    values : float or array_like
    average : bool
        Divide the sum by ``size()``.

    Returns
    -------
    ndarray
    """
    a = np.array(values, dtype=np.float64)
    c = comm()
    if c is None or size() == 1:
        return a
    from mpi4py import MPI
    c.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)
    if average:
        a /= size()
    return a


def broadcast_object(value, root: int = 0):
    """Rank ``root``'s ``value`` (any picklable object) on every rank.

    Parameters
    ----------
    value : object
    root : int

    Returns
    -------
    object
    """
    c = comm()
    if c is None or size() == 1:
        return value
    return c.bcast(value, root=root)


def shard(batches: Iterable) -> Iterator:
    """Each rank's slice of every global batch (Horovod's data split, per batch).

    Parameters
    ----------
    batches : iterable
        The same global batches on every rank (same data, same shuffle seed): arrays,
        or tuples/lists of arrays with the samples on the first axis (``(x, y)``).

    Yields
    ------
    The batch's rows ``local_rows(len(batch))`` (a tuple for a tuple). A global batch
    with fewer rows than ranks is skipped on every rank: a rank without rows could not
    take part in the step.

    Example
    -------
    >>> for x, y in dist.shard(iterate_minibatches(X, Y, 128, seed=0)):  # doctest: +SKIP
    ...     ...
    """
    s, r = size(), rank()
    for batch in batches:
        items = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        n = len(items[0])
        if n < s:
            continue
        rows = local_rows(n, r, s)
        part = tuple(x[rows] for x in items)
        yield part if isinstance(batch, (tuple, list)) else part[0]
