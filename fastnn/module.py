"""Module protocol (Torch7 ``nn.Module``). Containers and their flat parameters are in
``container.py``, ``Sequential`` in ``sequential.py``, lazy gradient zeroing in
``_grads.py``; all stay importable from here. ``Module``'s array conversions and its
subclasses' cast/check helpers are mixins in ``_module_arrays.py`` and
``_module_checks.py``.

A module's phases are thin: each casts/validates its input, then makes one kernel
call that writes into buffers the module owns and reuses between calls.
"""
import copy
import threading

import numpy as np

from ._contracts import apart, name_of
from ._grads import _LAZY_ZERO_GRAD, GradientSlot, lazy_zero_grad  # noqa: F401 (re-exported)
from ._module_arrays import FLOAT_DTYPES, STATE_KEYS, ModuleArrays  # noqa: F401
from ._module_checks import ModuleChecks, rows  # noqa: F401 (rows: re-exported)
from ._runtime import parallel as _parallel
from .backend import CPUBackend


class Module(ModuleArrays, ModuleChecks):
    """Base class of every layer: Torch7's protocol.

    ``forward(input)`` computes and returns ``output``; ``backward(input, gradOutput)``
    computes ``gradInput`` (``updateGradInput``) and adds the parameters' gradients
    (``accGradParameters``), then returns ``gradInput``. Both results are buffers the module
    owns and reuses: the next call of the same shape overwrites them, so copy what you keep.

    A subclass implements ``updateOutput`` and ``updateGradInput`` (and
    ``accGradParameters`` when it has parameters), and lists its arrays in
    ``_param_names``/``_grad_names`` (parallel tuples) and ``_state_names`` (arrays that
    are not trained, such as moving statistics). ``copy.deepcopy`` and pickle give
    independent modules.

    Attributes
    ----------
    output, gradInput : ndarray or None
        The results of the last ``forward`` and ``backward``.
    training : bool
        True in training mode (``train()``), False in evaluate mode (``evaluate()``).
    dtype : numpy.dtype
        float32 (the default) or float64 (``double()``).
    """

    _param_names = ()
    _grad_names = ()
    _state_names = ()

    def __init__(self):
        d = self.__dict__
        d["output"] = None
        d["gradInput"] = None
        d["training"] = True
        d["dtype"] = np.dtype(np.float32)
        d["backend"] = CPUBackend
        d["_buffers"] = {}
        d["_grad_zero_pending"] = False
        d["_fwd_src"] = None
        d["_fwd_input"] = None
        d["_busy"] = threading.RLock()
        d["_skip_grad_input"] = False

    #: True for modules that draw random numbers in training (Dropout): gradcheck checks
    #: them in evaluate mode.
    stochastic_in_training = False

    @property
    def parameter_names(self) -> tuple:
        """The names of the trained arrays (``("W", "b")`` for Linear), in
        ``getParameters()`` order."""
        return self._param_names

    @property
    def state_names(self) -> tuple:
        """The names of the non-trained arrays a checkpoint keeps (BatchNormalization's
        ``moving_mean``, ``moving_variance``); each may be None until the first forward."""
        return self._state_names

    # ---- parameter assignment: store values, check shape -------------------
    def __setattr__(self, name, value):
        if name == "gradInput":
            # Torch7's ``module.gradInput = nil``: from now on backward skips this
            # module's input gradient (``skips_grad_input = False`` turns it back on)
            d = self.__dict__
            d["gradInput"] = value
            d["_skip_grad_input"] = value is None
            return
        if name in _SET_BY_METHODS:
            # kernels pick their BLAS routine and loops by dtype: a float64 module with
            # float32 weights would read past them
            raise AttributeError(f"{name_of(self)}: {name} is set by "
                                 f"{_SET_BY_METHODS[name]}, not by assignment")
        if (name in self._param_names or name in self._state_names) and \
                self.__dict__.get(name) is not None and not self.__dict__.get("_rebinding"):
            if value is None and name in self._state_names:
                self._rebind(name, None)  # forget it: the next forward starts it afresh
                return
            self._assign_into(name, self.__dict__[name], value)
            return
        object.__setattr__(self, name, value)

    def _assign_into(self, name, current, value):
        value = self.backend.to_numpy(value) if not isinstance(value, np.ndarray) else value
        value = np.asarray(value)
        if value.shape != tuple(current.shape):
            raise ValueError(f"{self!r}: cannot assign {name} of shape {value.shape}; "
                             f"expected shape {tuple(current.shape)}")
        if self.backend is CPUBackend:
            current[...] = value
        else:
            current.copy_to_device(np.ascontiguousarray(value, dtype=current.dtype))

    def _rebind(self, name, array):
        """Point a parameter/gradient/state attribute at a new array (flattening,
        dtype or device moves) instead of copying values into the old one."""
        self.__dict__["_rebinding"] = True
        try:
            setattr(self, name, array)
        finally:
            self.__dict__["_rebinding"] = False

    def _raw_grad(self, name):
        return self.__dict__["_raw_" + name]

    def _materialize_zero_grads(self):
        self.__dict__["_grad_zero_pending"] = False
        for g in self._grad_names:
            self.backend.kernels.elementwise.fill(self.__dict__["_raw_" + g], 0.0)

    def _take_accumulate_flag(self):
        """For accGradParameters: False if gradients are lazily zero (overwrite)."""
        pending = self.__dict__["_grad_zero_pending"]
        self.__dict__["_grad_zero_pending"] = False
        return not pending

    # ---- batch split over fastnn's threads (CPU only; see _parallel.py) ------
    def _batch_parts(self, n, work=None, min_work=0):
        """(lo, hi) parts of a batch of n rows: one per fastnn thread on the CPU (a single
        part elsewhere, or when ``work`` < ``min_work``)."""
        if self.backend is not CPUBackend:
            return ((0, n),)
        return _parallel.parts(n, work, min_work)

    def _run_split(self, fn, bounds, work=None):
        """fn(part, lo, hi) over ``bounds`` from _batch_parts: on fastnn's threads on the
        CPU, one direct call on a device (whose kernels never touch the CPU's BLAS)."""
        if self.backend is not CPUBackend:
            fn(0, *bounds[0])
        else:
            _parallel.run(fn, bounds, work)

    def _param_grad_parts(self, count, param_names):
        """For each of ``count`` parts, the gradients of ``param_names`` and the
        accumulate flag: part 0 writes the module's own gradients (accumulating unless
        they are lazily zero), the others overwrite buffers of their own, added in by
        _sum_param_grad_parts."""
        grad_of = dict(zip(self._param_names, self._grad_names))
        names = [(grad_of[p], self.__dict__[p].shape) for p in param_names]
        grads = [tuple(self._raw_grad(g) for g, _ in names) + (self._take_accumulate_flag(),)]
        for i in range(1, count):
            grads.append(tuple(self._buffer(f"{g}_part{i}", shape) for g, shape in names)
                         + (False,))
        return grads

    @staticmethod
    def _sum_param_grad_parts(grads):
        first = grads[0][:-1]
        for part in grads[1:]:  # fixed order: the sums do not depend on timing
            for total, g in zip(first, part[:-1]):
                total += g

    #: True for layers that always split their batch over fastnn's threads (Conv2d,
    #: MaxPool2d; fastnn/_runtime/parallel.py).
    always_splits_batch = False

    def use_batch_split(self) -> None:
        """Hint from a container that holds a layer which always splits its batch: a
        layer that can split too (Linear) then does, since a two-thread BLAS call between
        two splits leaves OpenBLAS's worker spinning on the core the next split needs.
        Does nothing by default."""

    # ---- the protocol -------------------------------------------------------
    def forward(self, input):
        """Compute and return ``output`` for ``input``.

        A module is used by one thread at a time: it keeps its output, its saved
        forward state and its scratch in buffers it reuses, so a second thread
        entering while one is inside raises RuntimeError instead of returning the
        other thread's numbers. Give each thread its own copy
        (``copy.deepcopy(net)``) for concurrent inference.

        Parameters
        ----------
        input : ndarray
            A batch, first dimension N; cast to the module's dtype when needed.

        Returns
        -------
        ndarray
            ``output``, a buffer the module reuses.
        """
        d = self.__dict__
        busy = d["_busy"]
        if not busy.acquire(False):
            raise _concurrent_use(self, "forward")
        try:
            d["_fwd_src"] = None  # a reused input buffer may hold new values
            out = self.updateOutput(input)
            d["output"] = out
            return out
        finally:
            busy.release()

    def backward(self, input, gradOutput):
        """Backpropagate ``gradOutput``: ``updateGradInput`` then ``accGradParameters``
        (which adds the parameters' gradients). One thread at a time (see ``forward``).
        After ``module.gradInput = None`` (Torch7's ``gradInput = nil``) only the
        parameter gradients are computed and None is returned.

        Parameters
        ----------
        input : ndarray
            The input given to the last ``forward``.
        gradOutput : ndarray
            The gradient of the loss with respect to ``output``.

        Returns
        -------
        ndarray or None
            ``gradInput``, the gradient with respect to ``input``.
        """
        busy = self.__dict__["_busy"]
        if not busy.acquire(False):
            raise _concurrent_use(self, "backward")
        try:
            if self.__dict__.get("_skip_grad_input"):
                self.accGradParameters(input, gradOutput)
                return None
            if self._grad_names:
                # accGradParameters reads input and gradOutput after updateGradInput
                # has rewritten the gradInput buffer: neither may live in it
                gi = self.__dict__["gradInput"]
                if gi is not None:
                    input, gradOutput = apart(input, gi), apart(gradOutput, gi)
            self.updateGradInput(input, gradOutput)
            self.accGradParameters(input, gradOutput)
            return self.gradInput
        finally:
            busy.release()

    @property
    def skips_grad_input(self) -> bool:
        """True after ``module.gradInput = None`` (Torch7's ``gradInput = nil``): backward
        then computes parameter gradients only and returns None, as for a first layer,
        whose input never needs a gradient."""
        return bool(self.__dict__.get("_skip_grad_input"))

    @skips_grad_input.setter
    def skips_grad_input(self, skip: bool) -> None:
        self.__dict__["_skip_grad_input"] = bool(skip)
        if skip:
            self.__dict__["gradInput"] = None

    def updateOutput(self, input):
        """Compute ``output`` from ``input`` (what ``forward`` calls; a subclass overrides it).

        Parameters
        ----------
        input : ndarray
            A batch.

        Returns
        -------
        ndarray
            ``output``.
        """
        self.output = input
        return self.output

    def updateGradInput(self, input, gradOutput):
        """Compute ``gradInput`` (what ``backward`` calls first; a subclass overrides it).
        Skipped (returns None) after ``module.gradInput = None``.

        Parameters
        ----------
        input : ndarray
            The input given to the last ``forward``.
        gradOutput : ndarray
            The gradient with respect to ``output``.

        Returns
        -------
        ndarray or None
            ``gradInput``.
        """
        if self.__dict__.get("_skip_grad_input"):
            return None
        self.gradInput = gradOutput
        return self.gradInput

    def accGradParameters(self, input, gradOutput):
        """Add the parameters' gradients for this batch to ``gradW``, ``gradb``, ...
        (``backward`` calls it after ``updateGradInput``; a module without parameters does
        nothing).

        Parameters
        ----------
        input : ndarray
            The input given to the last ``forward``.
        gradOutput : ndarray
            The gradient with respect to ``output``.
        """
        pass

    def zeroGradParameters(self):
        """Set every parameter gradient to zero (``backward`` accumulates into them).
        """
        if not self._grad_names:
            return
        if _LAZY_ZERO_GRAD["enabled"]:
            self.__dict__["_grad_zero_pending"] = True
        else:
            self._materialize_zero_grads()

    def getParameters(self):
        """The parameter arrays, live: an optimizer updates them in place.

        Returns
        -------
        list
            A layer's arrays (``[W, b]``); a container gives one list per child.
        """
        return [self.__dict__[n] for n in self._param_names]

    def getGradParameters(self):
        """The parameter gradients, in ``getParameters()``'s order and nesting.

        Returns
        -------
        list
            A layer's gradient arrays (``[gradW, gradb]``); a container, one list per child.
        """
        return [getattr(self, n) for n in self._grad_names]

    def train(self):
        """Switch to training mode (Dropout drops, BatchNormalization uses batch statistics).

        Returns
        -------
        Module
            ``self``.
        """
        self.training = True
        return self

    def evaluate(self):
        """Switch to evaluate mode (Dropout is the identity, BatchNormalization uses its moving
        statistics).

        Returns
        -------
        Module
            ``self``.
        """
        self.training = False
        return self

    # ---- the module tree (dtype and device moves: _module_arrays.py) -----------
    def leaves(self):
        """The modules that hold parameters and state: ``[self]`` for a layer, every
        descendant layer for a container.

        Returns
        -------
        list of Module
        """
        return [self]

    def named_leaves(self, prefix: str = "") -> list:
        """``leaves()`` with each leaf's ``state_dict`` prefix: a child's position and a
        dot per level of nesting (``"3."``, ``"4.0."``; ``prefix`` for a lone layer).

        Parameters
        ----------
        prefix : str, default ""
            Put in front of every prefix.

        Returns
        -------
        list of (str, Module)
        """
        return [(prefix, self)]

    def listModules(self) -> list:
        """This module and every module inside it, containers included, depth first
        (Torch7's ``listModules``).

        Returns
        -------
        list of Module
        """
        return [self]

    def __repr__(self):
        return type(self).__name__

    def __getstate__(self):
        state = self.__dict__.copy()
        if self.backend is not CPUBackend:
            raise RuntimeError(f"{self!r}: call .cpu() before pickling a GPU module")
        # Buffers and cached inputs are scratch; flat-buffer views are copied so the
        # copy owns its memory (rebuilt lazily by the container).
        state["_buffers"] = {}
        state["_fwd_src"] = None
        state["_fwd_input"] = None
        state.pop("_busy", None)  # a lock: per object, rebuilt by __setstate__
        for k, v in list(state.items()):
            if isinstance(v, np.ndarray) and v.base is not None:
                state[k] = v.copy()
            elif getattr(v, "transient", False):  # e.g. fastnn.watch's method wrappers
                del state[k]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__["_busy"] = threading.RLock()

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new


# attributes that only these methods may change (see Module.__setattr__)
_SET_BY_METHODS = {"dtype": ".type(), .float() or .double()", "backend": ".cuda() or .cpu()"}


def _concurrent_use(module, phase):
    return RuntimeError(
        f"{name_of(module)}: {phase} called while another thread is inside this module. "
        f"A module reuses its output and scratch buffers, so it serves one thread at a "
        f"time; give each thread its own copy (copy.deepcopy(net)).")


# Container, FlatParameters, ParameterList, Sequential: own files, importable from here too
from .container import Container, FlatParameters, ParameterList  # noqa: E402,F401
from .sequential import Sequential  # noqa: E402,F401
