"""Nested lists of arrays, as ``getParameters()`` and the homework's optimizers use
them: the one flattener and the structure used to compare two of them."""

__all__ = ["flatten", "structure"]


def flatten(nested) -> list:
    """The arrays of a nested list (or tuple) in depth-first order.

    Parameters
    ----------
    nested : array or list or tuple
        Lists/tuples of arrays to any depth, e.g. ``net.getParameters()``. Anything that
        is not a list or tuple is one item: a bare array is one variable.

    Returns
    -------
    list
        The items, in order.

    Examples
    --------
    >>> flatten([[1, 2], [3, [4]]])
    [1, 2, 3, 4]
    """
    if not isinstance(nested, (list, tuple)):
        return [nested]
    out = []
    # fast path for what containers hand out, a list of per-module lists of arrays (the
    # optimizer flattens its arguments every step)
    for item in nested:
        if not isinstance(item, (list, tuple)):
            out.append(item)
            continue
        for leaf in item:
            if isinstance(leaf, (list, tuple)):
                return _flatten_deep(nested)
            out.append(leaf)
    return out


def _flatten_deep(nested):
    out = []
    stack = [nested]
    while stack:  # iterative: no recursion limit for deep nets
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def structure(nested):
    """The shapes of a nested list, nested the same way (a non-array names its type).

    Parameters
    ----------
    nested : array or list or tuple

    Returns
    -------
    tuple or list
        A shape tuple for an array, the type name for anything without ``.shape``, and a
        list of those for a list or tuple.
    """
    if isinstance(nested, (list, tuple)):
        return [structure(x) for x in nested]
    if not hasattr(nested, "shape"):  # a stray scalar: report it, do not crash on .shape
        return type(nested).__name__
    return tuple(nested.shape)
