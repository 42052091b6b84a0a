"""Optimizers, functional as in the homework (``sgd_momentum``, ``adam_optimizer``)
and as classes (``SGD``, ``Adam``), plus learning-rate schedules.

``Optimizer.apply`` is the one place that decides how an update runs. When the lists
come from a fastnn container's ``getParameters()``/``getGradParameters()`` they carry
the container's ``FlatParameters`` (``ParameterList.flat``), and the update is one
fused kernel pass over the whole flat buffer. Any other nested lists of arrays take the
per-array path: one kernel call per array. Each rule (``SGD``, ``Adam``) gives only its
kernel, its per-variable state and its scalars. State keeps the homework's layout
(dicts indexed by variable number); on the fused path those arrays are views into flat
state buffers.
"""
import math
from functools import partial
from operator import is_
from typing import Callable, Optional

import numpy as np

from .backend import CPUBackend, get_backend, to_numpy
from .nested import flatten, structure

__all__ = ["Optimizer", "SGD", "Adam", "sgd_momentum", "adam_optimizer", "StepDecay",
           "ExponentialDecay", "CosineDecay", "step_decay"]


def _pairs(variables, gradients, where, state):
    """(flat variables, flat gradients, the cached fused layout or None), validated.
    The validation is skipped when these are exactly the arrays of the cached layout."""
    vs = flatten(variables)
    gs = flatten(gradients)
    if _same_as_cached(state, vs, gs):
        return vs, gs, state["_fused"]
    if structure(variables) != structure(gradients):
        raise ValueError(f"{where}: variables and gradients differ in structure or shapes: "
                         f"{structure(variables)} vs {structure(gradients)}")
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


def _flat_record(variables, gradients, vs, gs):
    """The ``FlatParameters`` both lists came from, when they are exactly its views."""
    flat = getattr(variables, "flat", None)
    if flat is None or getattr(gradients, "flat", None) is not flat or not flat.holds(vs, gs):
        return None
    return flat


def _fused_state(state, rule, variables, gradients, vs, gs):
    """Build the fused layout for these arrays (when ``_pairs`` found no cached one for
    them) and the flat state buffers, with per-variable views stored in
    ``state[key][i]``; None when the lists are not a container's flat parameters."""
    flat = _flat_record(variables, gradients, vs, gs)
    if flat is None:
        state.pop("_fused", None)
        return None
    P, G = flat.params, flat.grads
    backend = _backend_of(vs)
    cache = {"vs": list(vs), "gs": list(gs), "P": P, "G": G, "buffers": {},
             "kernel": getattr(backend.kernels.optim, rule.kernel),
             # scalars in the buffer's dtype keep the loop in float32
             "scalar_type": np.dtype(P.dtype).type}
    for key in rule.state_keys:
        buf = backend.zeros(tuple(P.shape), P.dtype)
        per_var = state.setdefault(key, {})
        off = 0
        for i, v in enumerate(vs):
            view = buf[off:off + v.size].reshape(v.shape)
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
        cache["buffers"][key] = buf
    # the kernel with its array arguments bound: each step adds only the scalars
    cache["update"] = partial(cache["kernel"], G, P,
                              *[cache["buffers"][key] for key in rule.state_keys])
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


class Optimizer:
    """Base class of the optimizers, and the class form of any functional rule.

    A subclass is one update rule: ``kernel`` (the name of its kernel in
    ``fastnn.kernels.<device>.optim``, called as ``kernel(grad, param, *state, *scalars)``),
    ``state_keys`` (its per-variable state, e.g. SGD's ``accumulated_grads``) and
    ``scalars`` (its hyperparameters for this step). ``apply`` decides, here and
    nowhere else, between one fused pass over a container's flat buffers and one
    kernel call per array.

    Parameters
    ----------
    module : Module
        What ``step`` updates (its ``getParameters()``/``getGradParameters()``).
    rule : callable, optional
        A function with the homework signature ``rule(variables, gradients, config,
        state)``; ``step`` then calls it (any config keys are accepted). Without it the
        class's own rule runs, and options outside ``defaults`` are an error.
    **config
        The rule's options, e.g. ``learning_rate``.

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> net = fastnn.Sequential(fastnn.Linear(4, 2))
    >>> opt = fastnn.optim.SGD(net, learning_rate=0.1, momentum=0.9)
    >>> x = np.ones((3, 4), np.float32)
    >>> opt.zero_grad()
    >>> _ = net.backward(x, net.forward(x))
    >>> opt.step()
    >>> sorted(opt.state)
    ['_fused', 'accumulated_grads']
    """

    #: options the class form accepts, with their defaults
    defaults: dict = {}
    #: per-variable state dicts the rule keeps (``state[key][i]``)
    state_keys: tuple = ()
    #: kernel name in ``fastnn.kernels.<device>.optim``
    kernel: Optional[str] = None
    #: the name errors use (the functional form's)
    name = "optimizer"

    def __init__(self, module, rule: Optional[Callable] = None, **config):
        if rule is None:
            if self.kernel is None:
                raise TypeError(f"{type(self).__name__}: give a rule function, or use a "
                                f"subclass such as SGD or Adam")
            unknown = set(config) - set(self.defaults)
            if unknown:
                raise TypeError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)}; "
                                f"expected {sorted(self.defaults)}")
        self.module = module
        self.rule = rule
        self._update = type(self).apply if rule is None else rule
        self.config = dict(self.defaults, **config)
        if rule is None:
            for key in self.config:  # fail here, not at the first step
                _config_value(self.config, key, type(self).__name__)
        self.state = {}

    @classmethod
    def scalars(cls, config: dict, state: dict, scalar_type) -> tuple:
        """The rule's scalar kernel arguments for this step, as ``scalar_type``.

        Parameters
        ----------
        config : dict
            The options (``learning_rate``, ...).
        state : dict
            The state; a rule may advance a step count in it.
        scalar_type : type
            ``numpy.float32`` or ``numpy.float64``, the parameters' dtype (``float`` on
            the per-array path, which converts per variable).

        Returns
        -------
        tuple
        """
        raise NotImplementedError

    @classmethod
    def apply(cls, variables, gradients, config: dict, state: dict) -> None:
        """One update of ``variables`` in place from ``gradients``: the functional form.

        Parameters
        ----------
        variables, gradients : nested lists of arrays
            Same structure and shapes; a container's ``getParameters()`` and
            ``getGradParameters()`` take the fused path.
        config : dict
            The rule's options.
        state : dict
            The rule's state, created on the first call (the homework's layout:
            ``state[key][i]`` per variable index).
        """
        vs, gs, fused = _pairs(variables, gradients, cls.name, state)
        if fused is None:
            fused = _fused_state(state, cls, variables, gradients, vs, gs)
        if fused is not None:
            fused["update"](*cls.scalars(config, state, fused["scalar_type"]))
            return
        backend = _backend_of(vs)
        kernel = getattr(backend.kernels.optim, cls.kernel)
        for key in cls.state_keys:
            state.setdefault(key, {})
        scalars = cls.scalars(config, state, float)  # once per step: a rule may count steps
        for i, (v, g) in enumerate(zip(vs, gs)):
            buffers = [_per_var_state(state, key, i, v, backend) for key in cls.state_keys]
            t = np.dtype(v.dtype).type
            p = _as_kernel_param(v, backend)
            kernel(_as_kernel_array(g, v.dtype, backend), p, *buffers, *[t(x) for x in scalars])
            if p is not v:
                v[...] = p

    def zero_grad(self) -> None:
        """Zero the module's gradients (``zeroGradParameters``)."""
        self.module.zeroGradParameters()

    def step(self) -> None:
        """One update of the module's parameters from its gradients."""
        self._update(self.module.getParameters(), self.module.getGradParameters(),
                     self.config, self.state)

    def state_dict(self) -> dict:
        """Arrays and scalars of the optimizer state, flat, for checkpoints.

        Returns
        -------
        dict
            ``config`` and each state entry (per-variable dicts as NumPy arrays).
        """
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

    def load_state_dict(self, sd: dict) -> None:
        """Restore what ``state_dict`` returned.

        Parameters
        ----------
        sd : dict
        """
        self.config.update(sd.get("config", {}))
        self.state = {}
        for key, val in sd.items():
            if key == "config":
                continue
            self.state[key] = {int(i): np.array(a) for i, a in val.items()} \
                if isinstance(val, dict) else val

    def __repr__(self):
        name = type(self).__name__ if self.rule is None else getattr(self.rule, "__name__", "rule")
        return f"{name}({', '.join(f'{k}={v}' for k, v in self.config.items())})"


class SGD(Optimizer):
    """SGD with momentum, the homework's rule: ``v = momentum * v + learning_rate * g``,
    then ``param -= v``; ``state['accumulated_grads'][i]`` is v.

    Parameters
    ----------
    module : Module
    learning_rate : float, default 0.01
    momentum : float, default 0.0
    """

    defaults = {"learning_rate": 0.01, "momentum": 0.0}
    state_keys = ("accumulated_grads",)
    kernel = "sgd_momentum_update"
    name = "sgd_momentum"

    @classmethod
    def scalars(cls, config, state, scalar_type):
        return (scalar_type(_config_value(config, "learning_rate", cls.name)),
                scalar_type(_config_value(config, "momentum", cls.name, 0.0)))


class Adam(Optimizer):
    """Bias-corrected Adam (the homework's formulation): per-variable ``state['m']``,
    ``state['v']`` and the step count ``state['t']``.

    Parameters
    ----------
    module : Module
    learning_rate : float, default 1e-3
    beta1 : float, default 0.9
    beta2 : float, default 0.999
    epsilon : float, default 1e-8
    """

    defaults = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    state_keys = ("m", "v")
    kernel = "adam_update"
    name = "adam_optimizer"

    @classmethod
    def scalars(cls, config, state, scalar_type):
        lr = _config_value(config, "learning_rate", cls.name)
        beta1 = _config_value(config, "beta1", cls.name, 0.9)
        beta2 = _config_value(config, "beta2", cls.name, 0.999)
        eps = _config_value(config, "epsilon", cls.name, 1e-8)
        state["t"] = t = state.get("t", 0) + 1
        lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        return scalar_type(lr_t), scalar_type(beta1), scalar_type(beta2), scalar_type(eps)


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
    SGD.apply(variables, gradients, config, state)


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
    Adam.apply(variables, gradients, config, state)


# the learning-rate schedules live in schedules.py; fastnn.optim.StepDecay etc. as before
from .schedules import CosineDecay, ExponentialDecay, StepDecay, step_decay  # noqa: E402,F401
