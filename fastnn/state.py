"""Named parameters: ``state_dict`` and ``load_state_dict``.

Keys follow torch's ``nn.Sequential``: a child's position, a dot, then the array's
torch name, with one dotted prefix per level of nesting (``0.weight``, ``0.bias``,
``2.running_mean``, ``3.1.weight`` for child 1 of child 3). fastnn's arrays get torch's
names: Linear/Conv2d ``W``/``b`` -> ``weight``/``bias`` (same layouts: ``(out, in)`` and
``(out, in, k, k)``), ChannelwiseScaling ``gamma``/``beta`` -> ``weight``/``bias``,
BatchNormalization ``moving_mean``/``moving_variance`` -> ``running_mean``/``running_var``.

Positions are fastnn's: torch's affine ``BatchNorm`` is two fastnn modules
(BatchNormalization + ChannelwiseScaling), so the keys of a net with an affine
BatchNorm differ from torch's from that layer on. ``fastnn.from_torch`` and
``fastnn.to_torch`` translate between the two; a fastnn net without affine BatchNorm
has torch's keys except torch's ``num_batches_tracked``, which fastnn does not keep
(``load_state_dict`` ignores it).

A BatchNormalization creates its moving statistics at its first forward, when it learns
the number of channels. Before that, ``state_dict`` leaves them out, and
``load_state_dict`` creates them from the dict when it holds them (they are not missing
when it does not).
"""
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from .backend import to_numpy
from .module import Module

__all__ = ["state_dict", "load_state_dict", "StateDictError", "LoadResult"]

#: What ``load_state_dict(strict=False)`` skipped, as torch's ``load_state_dict`` returns.
LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])

# buffers torch keeps that have no fastnn counterpart (accepted and ignored)
_IGNORED_SUFFIXES = (".num_batches_tracked",)


class StateDictError(ValueError):
    """A state dict does not fit the network: lists every missing, unexpected and
    wrong-shape key."""


def _entries(module: Module):
    """(key, module, local key, live array or None) for every array, in order."""
    for prefix, leaf in module.named_leaves():
        for local, array in leaf.local_state():
            yield prefix + local, leaf, local, array


def state_dict(module: Module) -> dict:
    """Parameters and moving statistics of ``module`` by name.

    Parameters
    ----------
    module : Module
        A layer or a container (nested containers give dotted prefixes).

    Returns
    -------
    dict
        Ordered ``{key: numpy.ndarray}``: host copies (of a GPU module's arrays too),
        so later training does not change them. Moving statistics not created yet
        (BatchNormalization before its first forward) are left out.

    Example
    -------
    >>> import fastnn as nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> list(net.state_dict())
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """
    return {key: np.array(to_numpy(a)) for key, _, _, a in _entries(module) if a is not None}


def load_state_dict(module: Module, state: Mapping, strict: bool = True) -> LoadResult:
    """Copy ``state`` into ``module``'s existing arrays (views into the flat parameter
    buffer stay views; values are cast to the module's dtype).

    Parameters
    ----------
    module : Module
        The network to load into.
    state : Mapping
        ``{key: array}`` as ``state_dict`` returns (an ``np.load`` result works too);
        torch tensors are accepted when they convert with ``numpy.asarray``.
    strict : bool
        Raise when keys are missing or unexpected. Wrong shapes always raise.

    Returns
    -------
    LoadResult
        ``(missing_keys, unexpected_keys)``: empty lists under ``strict``.

    Raises
    ------
    StateDictError
        Listing every missing, unexpected and wrong-shape key; nothing is copied then.
    """
    if not isinstance(state, Mapping) and not hasattr(state, "keys"):
        raise TypeError(f"{module!r}: load_state_dict expects a mapping of names to arrays, "
                        f"got {type(state).__name__}")
    entries = list(_entries(module))
    known = {key for key, *_ in entries}
    given = {key: _host(state[key]) for key in state.keys()}
    missing = [key for key, _, _, a in entries if a is not None and key not in given]
    unexpected = [key for key in given if key not in known
                  and not key.endswith(_IGNORED_SUFFIXES)]
    wrong = []
    for key, m, local, a in entries:
        if key not in given:
            continue
        want = tuple(a.shape) if a is not None else None
        got = given[key].shape
        if (want is not None and got != want) or (want is None and len(got) != 1):
            wrong.append(f"{key}: got {got}, expected "
                         f"{want if want is not None else '(channels,)'} ({m!r})")
    # a module whose arrays must agree with each other (BatchNormalization's two moving
    # statistics, one value per channel) checks them as a set, before anything is copied
    together = {}
    for key, m, local, _ in entries:
        if key in given and hasattr(m, "validate_states"):
            together.setdefault(id(m), (m, {}))[1][local] = given[key]
    for m, arrays in together.values():
        try:
            m.validate_states(arrays)
        except ValueError as exc:
            wrong.append(str(exc))
    problems = []
    if strict and missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {'; '.join(wrong)}")
    if problems:
        name = repr(module).split("\n")[0]
        raise StateDictError(f"{name}: cannot load the state dict: " + " | ".join(problems))
    for key, m, local, _ in entries:
        if key in given:
            m.set_local_state(local, given[key])
    return LoadResult(missing, unexpected)


def _host(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor: no gradient, on the host
        value = value.detach().cpu().numpy()
    return np.asarray(to_numpy(value))
