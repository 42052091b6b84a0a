"""Checkpoints: every parameter, moving statistic and optimizer state of a run in one
atomic ``.npz`` file, and the in-memory ``Snapshot`` that divergence recovery and
best-weight tracking use.

A checkpoint holds ``model/<key>`` arrays, one per ``net.state_dict()`` entry
(``model/0.weight``, ``model/1.running_mean``: named, so layers without parameters may change
between save and load), ``optim/<key>/<i>`` for the optimizer's per-variable state and a
JSON ``__meta__`` entry (format, version, epoch, module types and shapes, optimizer
config, the init RNG state and the caller's ``extra``). ``np.load`` reads it with
``allow_pickle=False``: a checkpoint cannot carry code. Version 1 checkpoints, which key
arrays by leaf position (``param/<leaf>/<name>``, ``state/<leaf>/<name>``), still load.
"""
import json
import os

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only
    from ..module import Module

from ..backend import to_numpy
from ..kernels._files import atomic_write
from ..state import StateDictError
from ._json import jsonable

CHECKPOINT_FORMAT = "fastnn-checkpoint"
CHECKPOINT_VERSION = 2  # 2: model/<state_dict key>; 1: param|state/<leaf index>/<name>


def module_arrays(net):
    """[(leaf index, module, kind, name)] for every parameter ('param') and moving
    statistic ('state') of the network, in a fixed order."""
    out = []
    for i, m in enumerate(net.leaves()):
        for n in m.parameter_names:
            out.append((i, m, "param", n))
        for n in m.state_names:
            out.append((i, m, "state", n))
    return out


def host(a):
    """``a`` as a NumPy array (a device array is copied to the host)."""
    return a if isinstance(a, np.ndarray) else to_numpy(a)


def set_array(m, name, value):
    """Write ``value`` into a module's parameter/state: into the existing array (views
    into the flat buffer stay views) or, when it is still None, as a new array."""
    current = getattr(m, name)
    if current is None:
        setattr(m, name, m.backend.to_device(np.array(value, dtype=m.dtype), m.dtype))
    else:
        setattr(m, name, value)


class Snapshot:
    """Copies of every parameter and moving statistic of a net, in arrays allocated once.

    ``take`` copies the net's arrays in, ``restore`` writes them back, ``arrays`` and
    ``load_arrays`` move them in and out of a checkpoint (keys ``<prefix>/<leaf>/<name>``).
    """

    def __init__(self):
        self._copies = {}
        self.valid = False

    def take(self, net):
        for i, m, kind, name in module_arrays(net):
            live = getattr(m, name)
            key = (i, name)
            if live is None:
                self._copies[key] = None
                continue
            value = host(live)
            buf = self._copies.get(key)
            if buf is None or buf.shape != value.shape or buf.dtype != value.dtype:
                buf = np.empty_like(value)
                self._copies[key] = buf
            np.copyto(buf, value)
        self.valid = True

    def restore(self, net):
        if not self.valid:
            return
        for i, m, kind, name in module_arrays(net):
            saved = self._copies.get((i, name))
            if saved is None:
                if kind == "state" and getattr(m, name) is not None:
                    setattr(m, name, None)
                continue
            set_array(m, name, saved)

    def equals(self, net):
        for i, m, kind, name in module_arrays(net):
            saved = self._copies.get((i, name))
            live = getattr(m, name)
            if (saved is None) != (live is None):
                return False
            if saved is not None and not np.array_equal(saved, host(live)):
                return False
        return True

    def arrays(self, prefix):
        """The copies as ``{f"{prefix}/{leaf}/{name}": array}`` (for a checkpoint)."""
        return {f"{prefix}/{i}/{name}": a for (i, name), a in self._copies.items()
                if a is not None}

    def load_arrays(self, net, arrays, prefix):
        """Fill the copies from ``arrays`` as ``arrays()`` wrote them."""
        for i, m, kind, name in module_arrays(net):
            a = arrays.get(f"{prefix}/{i}/{name}")
            self._copies[(i, name)] = None if a is None else np.array(a)
        self.valid = True


def _optimizer_payload(optimizer):
    """(meta dict, arrays dict) for an optimizer's state_dict."""
    if optimizer is None:
        return None, {}
    sd = optimizer.state_dict()
    meta = {"type": type(optimizer).__name__, "config": jsonable(sd.get("config", {})),
            "scalars": {}, "dicts": []}
    arrays = {}
    for key, val in sd.items():
        if key == "config":
            continue
        if isinstance(val, dict):
            meta["dicts"].append(key)
            for i, a in val.items():
                arrays[f"optim/{key}/{int(i)}"] = np.asarray(host(a))
        else:
            meta["scalars"][key] = jsonable(val)
    return meta, arrays


def _atomic_savez(path, arrays):
    """np.savez through ``atomic_write``: readers see the old file or the new one."""
    path = os.fspath(path)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def save_checkpoint(path: "str | os.PathLike", net: "Module", optimizer: object = None,
                    epoch: int = 0, extra: "dict | None" = None,
                    arrays: "dict | None" = None) -> None:
    """Write a training checkpoint to ``path`` as ``.npz``, atomically (a crash leaves the
    old file or the new one, never half of one).

    It holds ``net``'s parameters and moving statistics (each module's ``state_names``,
    e.g. BatchNormalization's ``moving_mean``/``moving_variance``), the optimizer's state,
    ``epoch``, fastnn's initialisation RNG state (NumPy's global generator) and ``extra``.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    net : Module
        The network.
    optimizer : object, optional
        An ``SGD``/``Adam``-like object with ``state_dict``.
    epoch : int
        Epochs done.
    extra : dict, optional
        JSON-able values to keep (``load_checkpoint`` returns them).
    arrays : dict, optional
        Named arrays to keep (stored under ``extra/<name>``).
    """
    from .._runtime import rng as _rng

    out = {}
    modules = []
    for i, m in enumerate(net.leaves()):
        shapes = {n: list(np.shape(getattr(m, n))) for n in m.parameter_names}
        modules.append([type(m).__name__, shapes])
    for key, a in net.state_dict().items():
        out["model/" + key] = a
    opt_meta, opt_arrays = _optimizer_payload(optimizer)
    out.update(opt_arrays)
    for k, v in (arrays or {}).items():
        out[f"extra/{k}"] = np.asarray(v)
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": int(epoch),
            "modules": modules, "optimizer": opt_meta,
            "rng": {"init": jsonable(_rng.get_state())},
            "extra": jsonable(extra or {})}
    out["__meta__"] = np.array(json.dumps(meta))
    return _atomic_savez(path, out)


def _read_checkpoint(path):
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except Exception as exc:
        raise ValueError(f"{path}: not a readable fastnn checkpoint ({exc})") from exc
    if "__meta__" not in arrays:
        raise ValueError(f"{path}: not a fastnn checkpoint (no __meta__ entry)")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except ValueError as exc:  # json.JSONDecodeError
        raise ValueError(f"{path}: corrupt checkpoint: its __meta__ entry is not JSON "
                         f"({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        what = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: not a fastnn checkpoint (format {what!r})")
    _check_meta(path, meta)
    return meta, arrays


def _check_meta(path, meta):
    """Every field ``load_checkpoint`` reads, with its type: a hand-edited or foreign file
    fails here with the file's name instead of a bare KeyError later."""
    def bad(what):
        return ValueError(f"{path}: corrupt checkpoint metadata: {what}")
    if not isinstance(meta.get("modules"), list):
        raise bad(f"'modules' must be a list of [type, shapes], got {meta.get('modules')!r:.80}")
    for i, entry in enumerate(meta["modules"]):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], dict)):
            raise bad(f"module #{i} must be [type name, {{parameter: shape}}], got {entry!r:.80}")
    if not isinstance(meta.get("epoch"), int):
        raise bad(f"'epoch' must be an integer, got {meta.get('epoch')!r:.80}")
    if not isinstance(meta.get("version", 1), int):
        raise bad(f"'version' must be an integer, got {meta.get('version')!r:.80}")
    if not isinstance(meta.get("extra", {}), dict):
        raise bad("'extra' must be a JSON object")
    rng = meta.get("rng", {})
    if not isinstance(rng, dict):
        raise bad("'rng' must be a JSON object")
    if rng.get("init"):
        try:  # on a scratch generator: a bad state must fail before anything is loaded
            init = rng["init"]
            if isinstance(init, dict) and init.get("bit_generator") == "MT19937":
                np.random.MT19937().state = {  # the kind of NumPy's global generator
                    "bit_generator": "MT19937",
                    "state": {"key": np.asarray(init["state"]["key"], dtype=np.uint32),
                              "pos": int(init["state"]["pos"])}}
            else:
                np.random.PCG64().state = init  # what checkpoints held before
        except (TypeError, ValueError, KeyError) as exc:
            raise bad(f"'rng' holds no usable generator state ({exc!r:.80})") from None
    opt = meta.get("optimizer")
    if opt is not None:
        if not (isinstance(opt, dict) and isinstance(opt.get("type"), str)
                and isinstance(opt.get("config"), dict) and isinstance(opt.get("scalars"), dict)
                and isinstance(opt.get("dicts"), list)):
            raise bad("'optimizer' must hold 'type', 'config', 'scalars' and 'dicts'")


def load_checkpoint(path: "str | os.PathLike", net: "Module", optimizer: object = None,
                    restore_rng: bool = True) -> dict:
    """Load a ``save_checkpoint`` file into ``net`` (and ``optimizer``, when given).

    The network must have parameters and moving statistics of the same names and shapes
    (``load_state_dict``, strict; errors list every missing, unexpected and wrong-shape key);
    for a version 1 (positional) checkpoint, the same layers; errors name the first mismatch.

    Parameters
    ----------
    path : str or path-like
        The checkpoint.
    net : Module
        Receives the parameters and moving statistics, in place.
    optimizer : object, optional
        Receives the optimizer state; it must be of the saved kind.
    restore_rng : bool
        Give NumPy's global generator (fastnn's parameter initialisation and CPU dropout
        masks) its saved state.

    Returns
    -------
    dict
        ``epoch``, ``extra``, ``arrays`` (the ``arrays=`` given at save) and ``meta``.
    """
    from .._runtime import rng as _rng

    path = os.fspath(path)
    meta, arrays = _read_checkpoint(path)
    # the optimizer's state is checked before the net's arrays are copied, and the net's
    # loaders check all of theirs before copying any: a failed load changes nothing
    sd = _optimizer_state(path, meta, arrays, net, optimizer) if optimizer is not None else None
    if meta.get("version", 1) >= 2:
        _load_named(path, meta, arrays, net)
    else:
        _load_positional(path, meta, arrays, net)
    if sd is not None:
        optimizer.load_state_dict(sd)
    if restore_rng and meta.get("rng", {}).get("init"):  # checked by _check_meta
        _rng.set_state(meta["rng"]["init"])
    extra_arrays = {k[len("extra/"):]: v for k, v in arrays.items() if k.startswith("extra/")}
    return {"epoch": meta["epoch"], "extra": meta.get("extra", {}), "arrays": extra_arrays,
            "meta": meta}


def _load_named(path, meta, arrays, net):
    """Version 2: ``model/<key>`` arrays through ``net.load_state_dict``."""
    state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        net.load_state_dict(state, strict=True)
    except StateDictError as exc:
        saved = [s[0] for s in meta.get("modules", [])]
        raise StateDictError(f"{path}: {exc}\n  the checkpoint's modules: {saved}\n  the "
                             f"network's modules:    {[type(m).__name__ for m in net.leaves()]}"
                             ) from None


def _load_positional(path, meta, arrays, net):
    """Version 1: ``param|state/<leaf index>/<name>``; the leaves must match one to one."""
    leaves = net.leaves()
    saved_modules = meta["modules"]
    if len(saved_modules) != len(leaves):
        raise ValueError(f"{path}: the checkpoint has {len(saved_modules)} modules, the network "
                         f"has {len(leaves)}: {[s[0] for s in saved_modules]} vs "
                         f"{[type(m).__name__ for m in leaves]}")
    for i, (m, (tname, shapes)) in enumerate(zip(leaves, saved_modules)):
        if tname != type(m).__name__:
            raise ValueError(f"{path}: module #{i} is {tname} in the checkpoint but "
                             f"{type(m).__name__} in the network")
        for n in m.parameter_names:
            have = list(np.shape(getattr(m, n)))
            if shapes.get(n) != have:
                raise ValueError(f"{path}: module #{i} ({m!r}): {n} has shape {shapes.get(n)} "
                                 f"in the checkpoint, {have} in the network")
            a = arrays.get(f"param/{i}/{n}")
            if a is None:
                raise ValueError(f"{path}: missing param/{i}/{n}")
            if list(a.shape) != have:
                raise ValueError(f"{path}: module #{i} ({m!r}): param/{i}/{n} has shape "
                                 f"{list(a.shape)}, expected {have}")
        states = {n: arrays.get(f"state/{i}/{n}") for n in m.state_names}
        for n, a in states.items():
            current = getattr(m, n)
            if a is not None and current is not None and tuple(a.shape) != tuple(current.shape):
                raise ValueError(f"{path}: module #{i} ({m!r}): state/{i}/{n} has shape "
                                 f"{list(a.shape)}, the network's {n} {list(current.shape)}")
        if hasattr(m, "validate_states"):
            try:
                m.validate_states(states)
            except ValueError as exc:
                raise ValueError(f"{path}: module #{i}: {exc}") from None
    for i, m, kind, name in module_arrays(net):
        key = f"{kind}/{i}/{name}"
        if key in arrays:
            set_array(m, name, arrays[key])
        elif kind == "param":
            raise ValueError(f"{path}: missing {key}")


def _optimizer_state(path, meta, arrays, net, optimizer):
    """The optimizer's state_dict from the checkpoint, checked against ``optimizer`` and
    the net's parameters (``optim/<key>/<i>`` goes with parameter i)."""
    opt_meta = meta.get("optimizer")
    if opt_meta is None:
        raise ValueError(f"{path}: the checkpoint holds no optimizer state")
    if opt_meta["type"] != type(optimizer).__name__:
        raise ValueError(f"{path}: optimizer state is for {opt_meta['type']}, "
                         f"got a {type(optimizer).__name__}")
    params = [getattr(m, n) for m in net.leaves() for n in m.parameter_names]
    sd = {"config": dict(opt_meta["config"])}
    sd.update(opt_meta["scalars"])
    for key in opt_meta["dicts"]:
        prefix = f"optim/{key}/"
        entries = {}
        for k, v in arrays.items():
            if not k.startswith(prefix):
                continue
            i = k[len(prefix):]
            if not i.isdigit() or int(i) >= len(params) or \
                    tuple(v.shape) != tuple(params[int(i)].shape):
                want = tuple(params[int(i)].shape) if i.isdigit() and int(i) < len(params) \
                    else f"an index below {len(params)}"
                raise ValueError(f"{path}: optimizer state {k} has shape {tuple(v.shape)}; "
                                 f"expected {want} (the network's parameter {i})")
            entries[int(i)] = v
        sd[key] = entries
    return sd


def save_parameters(path: "str | os.PathLike", net: "Module") -> None:
    """Write ``net``'s parameters and moving statistics only, as an atomic ``.npz``.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    net : Module
        The network.
    """
    return save_checkpoint(path, net)


def load_parameters(path: "str | os.PathLike", net: "Module") -> "Module":
    """Load ``save_parameters`` (or ``save_checkpoint``) weights into ``net``.

    Parameters
    ----------
    path : str or path-like
        The file.
    net : Module
        A network of the same layers and shapes.

    Returns
    -------
    Module
        ``net``.
    """
    load_checkpoint(path, net, restore_rng=False)
    return net
