"""Lazy gradient zeroing (``lazy_zero_grad``) and ``GradientSlot``, the descriptor a
layer declares its gradient arrays with, so that reading one while a zero is pending
materializes the zeros. Separate from ``module.py`` to keep that file to the protocol;
``fastnn.module`` re-exports both names."""

#: the switch ``lazy_zero_grad`` sets; ``ever`` stays True once lazy zeroing was used
#: (containers then read gradients through their descriptors).
_LAZY_ZERO_GRAD = {"enabled": False, "ever": False}


def lazy_zero_grad(enabled: bool = True) -> None:
    """Opt in to lazy gradient zeroing: ``zeroGradParameters()`` then only marks the
    gradients as zero and the next ``accGradParameters`` overwrites instead of
    accumulating, saving a memset and a read of every gradient per step (asv
    ``ablations.LazyGradZeroing``). Off by default: gradient arrays fetched *before*
    ``zeroGradParameters()`` keep their old values until backward runs, which breaks
    code that edits held gradients (weight decay) before backward.

    Parameters
    ----------
    enabled : bool
        True to zero lazily from now on, False for the default eager zeroing.
    """
    _LAZY_ZERO_GRAD["enabled"] = bool(enabled)
    _LAZY_ZERO_GRAD["ever"] |= bool(enabled)


class GradientSlot:
    """Data descriptor for a gradient array, for lazy zeroing (``lazy_zero_grad``):
    reading the attribute while a zero is pending materializes the zeros."""

    def __set_name__(self, owner, name):
        self.name = name
        self.slot = "_raw_" + name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        if obj.__dict__.get("_grad_zero_pending"):
            obj._materialize_zero_grads()
        return obj.__dict__.get(self.slot)

    def __set__(self, obj, value):
        current = obj.__dict__.get(self.slot)
        if current is None or getattr(obj, "_rebinding", False):
            obj.__dict__[self.slot] = value
            return
        obj._assign_into(self.name, current, value)
        obj.__dict__["_grad_zero_pending"] = False
