"""The value a criterion on the GPU returns: its loss, still on the device.

Reading a loss from the GPU waits for every kernel queued before it and copies it
back: once per training step, that host round trip keeps the GPU idle between steps.
A CUDA criterion therefore returns a :class:`DeviceLoss`, a 1-element slot of a small
ring of device scalars, and copies it to the host only when it is read
(``float(loss)``, formatting, arithmetic or comparisons). The criterion's device-side
input checks (labels out of range, raw scores given to ClassNLLCriterion) raise at
that read, with the messages the CPU criterion raises at once.
"""
from __future__ import annotations

import numpy as np

__all__ = ["DeviceLoss", "LOSS_RING", "read_losses"]

#: Loss slots per criterion: a loss can still be read up to this many forward calls later.
LOSS_RING = 256


def read_losses(losses) -> list:
    """Python floats for a list of losses (floats or :class:`DeviceLoss`), reading each
    criterion's ring once: one copy per criterion rather than one per loss."""
    values = [None] * len(losses)
    groups = {}
    for i, loss in enumerate(losses):
        if isinstance(loss, DeviceLoss):
            groups.setdefault(id(loss.owner), []).append(i)
        else:
            values[i] = float(loss)
    for where in groups.values():
        owner = losses[where[0]].owner
        for i, v in zip(where, owner.read_device_losses([losses[i] for i in where])):
            values[i] = v
    return values


class DeviceLoss:
    """A scalar loss kept on the GPU until it is read.

    Parameters
    ----------
    ring : device array
        The criterion's loss slots (``LOSS_RING`` of them).
    slot : int
        The slot the loss kernel wrote.
    owner : Criterion
        The criterion that wrote it: it checks that the slot still holds this loss
        and raises its pending device-side input errors when the loss is read.
    serial : int
        The criterion's forward count when the loss was written.

    Example
    -------
    >>> loss = criterion.forward(net.forward(x), y)   # doctest: +SKIP
    >>> float(loss)                                   # doctest: +SKIP
    2.302
    """

    __slots__ = ("ring", "slot", "owner", "serial")

    def __init__(self, ring, slot: int, owner, serial: int):
        self.ring = ring
        self.slot = slot
        self.owner = owner
        self.serial = serial

    def __float__(self) -> float:
        return self.owner.read_device_losses([self])[0]

    def item(self) -> float:
        """The loss as a Python float (copies it from the device)."""
        return float(self)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(float(self), dtype=dtype)

    def __repr__(self) -> str:
        return f"DeviceLoss({float(self)!r})"

    def __format__(self, spec: str) -> str:
        return format(float(self), spec)

    def __bool__(self) -> bool:
        return bool(float(self))

    def __round__(self, ndigits=None):
        return round(float(self), ndigits)

    # arithmetic and comparisons read the value (the loss is one scalar)
    def __add__(self, o): return float(self) + float(o)
    def __radd__(self, o): return float(o) + float(self)
    def __sub__(self, o): return float(self) - float(o)
    def __rsub__(self, o): return float(o) - float(self)
    def __mul__(self, o): return float(self) * float(o)
    def __rmul__(self, o): return float(o) * float(self)
    def __truediv__(self, o): return float(self) / float(o)
    def __rtruediv__(self, o): return float(o) / float(self)
    def __neg__(self): return -float(self)
    def __abs__(self): return abs(float(self))
    def __eq__(self, o): return float(self) == o
    def __ne__(self, o): return float(self) != o
    def __lt__(self, o): return float(self) < o
    def __le__(self, o): return float(self) <= o
    def __gt__(self, o): return float(self) > o
    def __ge__(self, o): return float(self) >= o
    __hash__ = None
