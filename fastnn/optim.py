"""Optimizers, functional as in the homework (``sgd_momentum``, ``adam_optimizer``)
and as classes (``SGD``, ``Adam``), plus learning-rate schedules.

When the variables are the lists a fastnn container's ``getParameters()`` hands out
(they carry its flat-buffer record, ``module.ParameterList``) the update is one fused
kernel pass over the whole buffer. Any other nested lists of arrays take the
per-array path: one kernel call per array. State keeps the homework's layout (dicts indexed by variable
number); on the fused path those arrays are views into flat state buffers.
"""
import math
from operator import is_

import numpy as np

from .backend import CPUBackend, get_backend, to_numpy

__all__ = ["sgd_momentum", "adam_optimizer", "SGD", "Adam", "StepDecay", "ExponentialDecay",
           "CosineDecay", "step_decay"]


def _flatten(nested):
    if not isinstance(nested, (list, tuple)):
        return [nested]  # one bare array is one variable
    out = []
    # fast path for what containers hand out, a list of per-module lists of arrays
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
    while stack:  # iterative: this runs every optimizer step
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _structure(nested):
    if isinstance(nested, (list, tuple)):
        return [_structure(x) for x in nested]
    if not hasattr(nested, "shape"):  # a stray scalar: report it, do not crash on .shape
        return type(nested).__name__
    return tuple(nested.shape)


def _pairs(variables, gradients, where, state):
    """(flat variables, flat gradients, the cached fused layout or None), validated.
    The validation is skipped when these are exactly the arrays of the cached layout."""
    vs = _flatten(variables)
    gs = _flatten(gradients)
    if _same_as_cached(state, vs, gs):
        return vs, gs, state["_fused"]
    if _structure(variables) != _structure(gradients):
        raise ValueError(f"{where}: variables and gradients differ in structure or shapes: "
                         f"{_structure(variables)} vs {_structure(gradients)}")
    for i, (v, g) in enumerate(zip(vs, gs)):
        if not hasattr(v, "shape") or not hasattr(g, "dtype"):
            raise TypeError(f"{where}: variable #{i} is not an array (got {type(v).__name__})")
        if np.dtype(v.dtype).kind != "f":
            raise TypeError(f"{where}: variable #{i} has dtype {v.dtype}; parameters must be floats")
    return vs, gs, None


def _same_as_cached(state, vs, gs):
    """True if vs and gs are exactly the arrays of the cached fused layout."""
    cache = state.get("_fused")
    return cache is not None and len(cache["vs"]) == len(vs) == len(gs) and \
        all(map(is_, cache["vs"], vs)) and all(map(is_, cache["gs"], gs))


def _backend_of(arrays):
    if arrays and not isinstance(arrays[0], np.ndarray):
        return get_backend("cuda")
    return CPUBackend


def _flat_layout(variables, gradients, vs, gs):
    """(flat_params, flat_grads) when ``variables`` and ``gradients`` are the lists a
    container handed out (``ParameterList``, carrying its flat-buffer record) and still
    hold exactly the record's views, in order; else None. Identity checks only: the
    record says which buffer the views tile, on the CPU and on a GPU alike."""
    flat = getattr(variables, "flat", None)
    if flat is None or getattr(gradients, "flat", None) is not flat:
        return None
    views = flat["views"]
    if len(views) != len(vs) or len(vs) != len(gs):
        return None
    for (_, _, vp, _, vg), v, g in zip(views, vs, gs):
        if vp is not v or vg is not g:
            return None
    return flat["params"], flat["grads"]


def _fused_state(state, keys, variables, gradients, vs, gs, backend):
    """Build the fused layout for these arrays (when ``_pairs`` found no cached one for
    them) and the flat state buffers, with per-variable views stored in
    ``state[key][i]``; None when the arrays do not tile one flat buffer."""
    layout = _flat_layout(variables, gradients, vs, gs)
    if layout is None:
        state.pop("_fused", None)
        return None
    P, G = layout
    cache = {"vs": list(vs), "gs": list(gs), "P": P, "G": G, "buffers": {}}
    for key in keys:
        flat = backend.zeros(tuple(P.shape), P.dtype)
        per_var = state.setdefault(key, {})
        off = 0
        for i, v in enumerate(vs):
            view = flat[off:off + v.size].reshape(v.shape)
            old = per_var.get(i)
            if old is not None and tuple(np.shape(old)) == tuple(v.shape):
                # keep momentum from earlier per-array steps
                host = np.ascontiguousarray(to_numpy(old), dtype=P.dtype)
                if backend is CPUBackend:
                    view[...] = host
                else:
                    view.copy_to_device(host)
            per_var[i] = view
            off += v.size
        cache["buffers"][key] = flat
    state["_fused"] = cache
    return cache


def _per_var_state(state, key, i, v, backend):
    """The state array ``key`` of variable ``i``, made to match ``v``: the kernel walks
    ``v``'s length through it with ``v``'s dtype."""
    d = state.setdefault(key, {})
    buf = d.get(i)
    if buf is None:
        buf = backend.zeros(tuple(v.shape), v.dtype)
        d[i] = buf
    elif tuple(np.shape(buf)) != tuple(v.shape):
        raise ValueError(f"optimizer state {key}[{i}] has shape {tuple(np.shape(buf))} but the "
                         f"variable now has shape {tuple(v.shape)}; start with a fresh state dict")
    elif not backend.is_device_array(buf) or buf.dtype != v.dtype or (
            backend is CPUBackend and not buf.flags.c_contiguous):
        # state from a checkpoint, from before a .cuda()/.cpu()/.double() move, or
        # assigned by hand: bring it over as the kernel's own array
        buf = backend.to_device(np.ascontiguousarray(to_numpy(buf)), v.dtype)
        d[i] = buf
    return buf


def _config_value(config, key, where, default=None):
    if key in config:
        try:
            value = float(config[key])
        except (TypeError, ValueError):
            raise TypeError(f"{where}: config[{key!r}] must be a number, "
                            f"got {config[key]!r}") from None
        if not math.isfinite(value):  # NaN would turn every parameter into NaN, silently
            raise ValueError(f"{where}: config[{key!r}] must be a finite number, "
                             f"got {config[key]!r}")
        return value
    if default is None:
        raise KeyError(f"{where}: config needs the key {key!r}")
    return default


def sgd_momentum(variables: list, gradients: list, config: dict, state: dict) -> None:
    """The homework's SGD with momentum: ``v = momentum * v + learning_rate * g``, then
    ``variable -= v``, for every array, in place.

    A container's ``getParameters()`` lives in one flat buffer, which is updated in one
    kernel pass; any other nested list of float arrays works too, one call per array.

    Parameters
    ----------
    variables : list
        Arrays to update, nested lists allowed (``net.getParameters()``).
    gradients : list
        Their gradients, in the same nesting (``net.getGradParameters()``).
    config : dict
        ``learning_rate`` (required) and ``momentum`` (default 0).
    state : dict
        The optimizer's memory, empty at the start and passed again at every step;
        ``state['accumulated_grads']`` holds v per variable index.

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> w, g = np.ones(3), np.full(3, 0.5)
    >>> state = {}
    >>> fastnn.sgd_momentum([w], [g], {"learning_rate": 0.1, "momentum": 0.9}, state)
    >>> w
    array([0.95, 0.95, 0.95])
    """
    where = "sgd_momentum"
    lr = _config_value(config, "learning_rate", where)
    momentum = _config_value(config, "momentum", where, 0.0)
    vs, gs, fused = _pairs(variables, gradients, where, state)
    state.setdefault("accumulated_grads", {})
    backend = _backend_of(vs)
    kernel = backend.kernels.optim.sgd_momentum_update
    if fused is None:
        fused = _fused_state(state, ("accumulated_grads",), variables, gradients, vs, gs,
                             backend)
    if fused is not None:
        t = np.dtype(fused["P"].dtype).type  # scalars in the buffer's dtype keep the loop in float32
        kernel(fused["G"], fused["P"], fused["buffers"]["accumulated_grads"], t(lr), t(momentum))
        return
    for i, (v, g) in enumerate(zip(vs, gs)):
        vel = _per_var_state(state, "accumulated_grads", i, v, backend)
        t = np.dtype(v.dtype).type
        p = _as_kernel_param(v, backend)
        kernel(_as_kernel_array(g, v.dtype, backend), p, vel, t(lr), t(momentum))
        if p is not v:
            v[...] = p


def adam_optimizer(variables: list, gradients: list, config: dict, state: dict) -> None:
    """Adam with bias correction, for every array, in place.

    Parameters
    ----------
    variables : list
        Arrays to update, nested lists allowed (``net.getParameters()``).
    gradients : list
        Their gradients, in the same nesting (``net.getGradParameters()``).
    config : dict
        ``learning_rate`` (required), ``beta1`` (0.9), ``beta2`` (0.999), ``epsilon`` (1e-8).
    state : dict
        The optimizer's memory, empty at the start and passed again at every step:
        ``m`` and ``v`` (dicts per variable index) and ``t`` (the step count).
    """
    where = "adam_optimizer"
    lr = _config_value(config, "learning_rate", where)
    beta1 = _config_value(config, "beta1", where, 0.9)
    beta2 = _config_value(config, "beta2", where, 0.999)
    eps = _config_value(config, "epsilon", where, 1e-8)
    vs, gs, fused = _pairs(variables, gradients, where, state)
    state.setdefault("m", {})
    state.setdefault("v", {})
    state["t"] = state.get("t", 0) + 1
    t_step = state["t"]
    lr_t = lr * math.sqrt(1 - beta2 ** t_step) / (1 - beta1 ** t_step)
    backend = _backend_of(vs)
    kernel = backend.kernels.optim.adam_update
    if fused is None:
        fused = _fused_state(state, ("m", "v"), variables, gradients, vs, gs, backend)
    if fused is not None:
        t = np.dtype(fused["P"].dtype).type
        kernel(fused["G"], fused["P"], fused["buffers"]["m"], fused["buffers"]["v"],
               t(lr_t), t(beta1), t(beta2), t(eps))
        return
    for i, (v, g) in enumerate(zip(vs, gs)):
        m_i = _per_var_state(state, "m", i, v, backend)
        v_i = _per_var_state(state, "v", i, v, backend)
        t = np.dtype(v.dtype).type
        p = _as_kernel_param(v, backend)
        kernel(_as_kernel_array(g, v.dtype, backend), p, m_i, v_i, t(lr_t), t(beta1), t(beta2),
               t(eps))
        if p is not v:
            v[...] = p


def _as_kernel_param(v, backend):
    """The kernels flatten their arrays, which needs C order: a transposed or strided
    variable is updated through a contiguous copy that the caller writes back."""
    if backend is CPUBackend and not v.flags.c_contiguous:
        return np.ascontiguousarray(v)
    return v


def _as_kernel_array(g, dtype, backend):
    if backend is CPUBackend:
        return np.ascontiguousarray(g, dtype=dtype)
    return g


class _Optimizer:
    """Class form: ``opt = SGD(net, learning_rate=0.1); ...; opt.step()``."""

    _rule = None
    _defaults = {}

    def __init__(self, module, **config):
        unknown = set(config) - set(self._defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)}; "
                            f"expected {sorted(self._defaults)}")
        self.module = module
        self.config = dict(self._defaults, **config)
        for key in self.config:  # fail here, not at the first step
            _config_value(self.config, key, type(self).__name__)
        self.state = {}

    def zero_grad(self):
        self.module.zeroGradParameters()

    def step(self):
        type(self)._rule(self.module.getParameters(), self.module.getGradParameters(),
                         self.config, self.state)

    def state_dict(self):
        """Arrays and scalars of the optimizer state, flat, for checkpoints."""
        out = {"config": dict(self.config)}
        for key, val in self.state.items():
            if key.startswith("_"):
                continue
            if isinstance(val, dict):
                out[key] = {i: np.array(to_numpy(a)) if not isinstance(a, np.ndarray)
                            else np.array(a) for i, a in val.items()}
            else:
                out[key] = val
        return out

    def load_state_dict(self, sd):
        self.config.update(sd.get("config", {}))
        self.state = {}
        for key, val in sd.items():
            if key == "config":
                continue
            self.state[key] = {int(i): np.array(a) for i, a in val.items()} \
                if isinstance(val, dict) else val

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.config.items())})"


class SGD(_Optimizer):
    _rule = staticmethod(sgd_momentum)
    _defaults = {"learning_rate": 0.01, "momentum": 0.0}


class Adam(_Optimizer):
    _rule = staticmethod(adam_optimizer)
    _defaults = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


# ---- learning-rate schedules: callables epoch -> learning rate --------------
class _Schedule:
    def __init__(self, initial_lr):
        if not initial_lr > 0:
            raise ValueError(f"{type(self).__name__}: initial_lr must be > 0, got {initial_lr!r}")
        self.initial_lr = float(initial_lr)

    def apply(self, config, epoch):
        """Set ``config['learning_rate']`` for ``epoch`` (0-based) and return it."""
        lr = self(epoch)
        config["learning_rate"] = lr
        return lr


class StepDecay(_Schedule):
    """lr = initial_lr * gamma ** (epoch // step_size); e.g. halve every 3 epochs."""

    def __init__(self, initial_lr, step_size=3, gamma=0.5):
        super().__init__(initial_lr)
        if int(step_size) <= 0:
            raise ValueError(f"StepDecay: step_size must be a positive integer, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, epoch):
        return self.initial_lr * self.gamma ** (int(epoch) // self.step_size)

    def __repr__(self):
        return f"StepDecay({self.initial_lr}, step_size={self.step_size}, gamma={self.gamma})"


class ExponentialDecay(_Schedule):
    def __init__(self, initial_lr, gamma=0.95):
        super().__init__(initial_lr)
        self.gamma = float(gamma)

    def __call__(self, epoch):
        return self.initial_lr * self.gamma ** int(epoch)

    def __repr__(self):
        return f"ExponentialDecay({self.initial_lr}, gamma={self.gamma})"


class CosineDecay(_Schedule):
    def __init__(self, initial_lr, total_epochs, min_lr=0.0):
        super().__init__(initial_lr)
        self.total_epochs, self.min_lr = max(int(total_epochs), 1), float(min_lr)

    def __call__(self, epoch):
        frac = min(int(epoch), self.total_epochs) / self.total_epochs
        return self.min_lr + 0.5 * (self.initial_lr - self.min_lr) * (1 + math.cos(math.pi * frac))

    def __repr__(self):
        return f"CosineDecay({self.initial_lr}, total_epochs={self.total_epochs})"


def step_decay(config, epoch, initial_lr, step_size=3, gamma=0.5):
    """Functional form: set config['learning_rate'] for the epoch and return it."""
    return StepDecay(initial_lr, step_size, gamma).apply(config, epoch)
