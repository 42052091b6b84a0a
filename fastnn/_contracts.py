"""What a module checks before a kernel call (Numba kernels do not bounds-check).

Every number a kernel takes its loop bounds from must agree with the arrays it
writes. A module derives such numbers from one source of truth (a layer's sizes from
its weight's shape: :class:`ShapeOf`), validates the settings a user may change
between calls when they are set (:class:`Setting`), and copies an input that overlaps
the buffer a call is about to write (:func:`apart`). All checks are O(1): shapes,
dtypes, flags and identities, never a pass over the data.
"""
import numpy as np

from ._runtime.checks import positive_int as _checked_int

__all__ = ["ShapeOf", "Setting", "apart", "name_of", "positive_int", "nonnegative_int"]


def name_of(obj) -> str:
    """``repr(obj)`` for error messages, or the class name while ``obj`` is still being
    built (a repr may read settings that are not set yet)."""
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001 - any failure of a half-built repr
        return type(obj).__name__


class ShapeOf:
    """A read-only size taken from a parameter's shape (``Linear.n_in`` is
    ``W.shape[1]``), so that the size checked against the input is the one the kernel
    loops over; a stored copy could be edited apart from the weight.

    Parameters
    ----------
    param : str
        The parameter attribute whose shape holds the size.
    axis : int
        The axis of that shape.
    """

    def __init__(self, param: str, axis: int):
        self.param, self.axis = param, axis

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return int(obj.__dict__[self.param].shape[self.axis])

    def __set__(self, obj, value):
        raise AttributeError(f"{name_of(obj)}: {self.name} is read-only: it is "
                             f"{self.param}.shape[{self.axis}]; build a new layer to change it")


class Setting:
    """A module setting validated on every assignment, not only in ``__init__``: a
    forward after ``pool.kernel_size = 0`` would write past its output.

    Parameters
    ----------
    check : callable
        ``check(owner_name, name, value)`` returns the value to store or raises
        ValueError naming the module.
    """

    def __init__(self, check):
        self.check = check

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(f"{type(obj).__name__} has no {self.name} yet") from None

    def __set__(self, obj, value):
        obj.__dict__[self.name] = self.check(name_of(obj), self.name, value)


def positive_int(owner: str, name: str, value) -> int:
    """``value`` as an int >= 1, else ValueError naming ``owner`` (``Setting``'s signature
    for ``_runtime.checks.positive_int``, the one integer validator)."""
    return _checked_int(value, f"{owner}: {name}")


def nonnegative_int(owner: str, name: str, value) -> int:
    """``value`` as an int >= 0, else ValueError naming ``owner``."""
    return _checked_int(value, f"{owner}: {name}", 0)


def apart(a, buf):
    """``a``, or a copy of it when its memory overlaps ``buf``, the buffer a kernel is
    about to write (``h = lin.forward(h)`` with ``h`` the layer's own output: the GEMM
    would read what it is overwriting).

    ``np.may_share_memory`` compares the two address ranges only (O(ndim), no data
    pass): it never misses an overlap, and for arrays of separate allocations it is
    exact, so a false positive costs at most one copy. ``np.shares_memory`` would
    solve an integer program over the strides: exact, but not O(1). Two distinct
    arrays that both own their memory (``base`` None: a module's buffers, the previous
    layer's output) cannot overlap, which settles the common case without the call.
    """
    if a is buf:
        return _copy(a)
    if type(a) is np.ndarray and type(buf) is np.ndarray:
        if a.base is None and buf.base is None:
            return a
        return np.array(a) if np.may_share_memory(a, buf) else a
    return a  # device arrays are compared by identity only (they have no address range here)


def _copy(a):
    if isinstance(a, np.ndarray):
        return np.array(a)
    from numba import cuda  # only a GPU module gets here
    out = cuda.device_array_like(a)
    out.copy_to_device(a)
    return out
