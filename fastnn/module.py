"""Module protocol (Torch7 ``nn.Module``), containers and their flat parameters
(``Sequential`` is in ``sequential.py``).

A module's phases are thin: each casts/validates its input, then makes one kernel
call that writes into buffers the module owns and reuses between calls.
"""
import copy
import threading
from operator import is_

import numpy as np

from ._contracts import apart, name_of
from ._runtime import parallel as _parallel
from .backend import CPUBackend, get_backend, is_cuda_object, to_numpy

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


_LAZY_ZERO_GRAD = {"enabled": False, "ever": False}

#: state_dict key of each parameter/state attribute whose name differs from torch's.
STATE_KEYS = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias",
              "moving_mean": "running_mean", "moving_variance": "running_var"}


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


class Module:
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

    # ---- named parameters (fastnn/state.py builds state_dict on these hooks) ----
    def local_state(self) -> list:
        """``[(key, array or None)]``: this module's own parameters, then its moving
        statistics, under the names torch gives them (``W`` -> ``weight``, ``b``/``beta``
        -> ``bias``, ``gamma`` -> ``weight``, ``moving_mean`` -> ``running_mean``,
        ``moving_variance`` -> ``running_var``). A moving statistic that has not been
        created yet (BatchNormalization before its first forward) is None. The arrays
        are the live ones (views into the container's flat buffer; device arrays on a
        GPU).

        Returns
        -------
        list of (str, array or None)
        """
        d = self.__dict__
        return [(STATE_KEYS.get(n, n), d.get(n)) for n in self._param_names + self._state_names]

    def set_local_state(self, key: str, value) -> None:
        """Copy ``value`` into the parameter or moving statistic named ``key`` (a key
        of ``local_state``): into the existing array, so views into the flat buffer
        stay views; a moving statistic not created yet is created from it.

        Parameters
        ----------
        key : str
            A key of ``local_state()`` (``weight``, ``bias``, ``running_mean``, ...).
        value : array
            The values, of the array's shape.
        """
        names = {STATE_KEYS.get(n, n): n for n in self._param_names + self._state_names}
        if key not in names:
            raise KeyError(f"{self!r}: no parameter or buffer named {key!r}; "
                           f"has {sorted(names)}")
        name = names[key]
        if self.__dict__.get(name) is None:
            value = np.array(to_numpy(value), dtype=self.dtype)  # a copy it owns
            # through setattr: a module may check what it is given (BatchNormalization)
            setattr(self, name, self.backend.to_device(value, self.dtype))
        else:
            setattr(self, name, value)

    def state_dict(self) -> dict:
        """Parameters and moving statistics by name, as torch's ``nn.Sequential``
        names them (``0.weight``, ``0.bias``, ``2.running_mean``; see
        ``fastnn.state.state_dict``).

        Returns
        -------
        dict
            ``{key: live array}``.
        """
        from .state import state_dict
        return state_dict(self)

    def load_state_dict(self, state, strict: bool = True):
        """Copy ``state`` (as from ``state_dict``) into this module's arrays; see
        ``fastnn.state.load_state_dict``.

        Parameters
        ----------
        state : Mapping
            ``{key: array}``.
        strict : bool
            Raise when keys are missing or unexpected.

        Returns
        -------
        LoadResult
            ``(missing_keys, unexpected_keys)``.
        """
        from .state import load_state_dict
        return load_state_dict(self, state, strict=strict)

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

    # ---- dtype and device -----------------------------------------------------
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

    def _convert_arrays(self, convert):
        names = self._param_names + self._state_names
        for n in names:
            if self.__dict__.get(n) is not None:
                self._rebind(n, convert(self.__dict__[n]))
        for g in self._grad_names:
            self._rebind(g, convert(self.__dict__["_raw_" + g]))
        self.__dict__["_buffers"] = {}
        self.__dict__["_fwd_src"] = None
        self.__dict__["_fwd_input"] = None
        self.__dict__["output"] = None
        self.__dict__["gradInput"] = None

    def type(self, dtype):
        """Convert the parameters, gradients and statistics to ``dtype``.

        Parameters
        ----------
        dtype : numpy dtype
            ``np.float32`` or ``np.float64``.

        Returns
        -------
        Module
            ``self``.
        """
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"{self!r}: dtype must be float32 or float64, got {dtype}")
        if self.backend is not CPUBackend:
            raise RuntimeError(f"{self!r}: change the dtype on the CPU, before .cuda()")
        self.__dict__["dtype"] = dtype
        self._convert_arrays(lambda a: np.ascontiguousarray(a, dtype=dtype))
        return self

    def double(self):
        """Convert to float64 (``type(np.float64)``).

        Returns
        -------
        Module
            ``self``.
        """
        return self.type(np.float64)

    def float(self):
        """Convert to float32 (``type(np.float32)``).

        Returns
        -------
        Module
            ``self``.
        """
        return self.type(np.float32)

    def cuda(self):
        """Move the arrays to the GPU; later inputs may be NumPy or device arrays, outputs are
        device arrays (``fastnn.to_numpy`` brings them back).

        Returns
        -------
        Module
            ``self``.
        """
        backend = get_backend("cuda")
        if self.backend is not backend:
            self._convert_arrays(lambda a: backend.to_device(self.backend.to_numpy(a), a.dtype))
            self.__dict__["backend"] = backend
        return self

    def cpu(self):
        """Move the arrays back to the host.

        Returns
        -------
        Module
            ``self``.
        """
        if self.backend is not CPUBackend:
            old = self.backend
            self._convert_arrays(lambda a: np.ascontiguousarray(old.to_numpy(a)))
            self.__dict__["backend"] = CPUBackend
        return self

    # ---- helpers for subclasses -------------------------------------------------
    def _buffer(self, key, shape):
        """A reusable buffer: same array while the shape and dtype stay the same."""
        buf = self._buffers.get(key)
        # the short test first: it decides every step after the first
        if buf is None or buf.dtype != self.dtype or (
                buf.shape != shape and tuple(buf.shape) != tuple(shape)):
            buf = self.backend.empty(tuple(shape), self.dtype)
            self._buffers[key] = buf
        return buf

    def _kernel_ready(self, a):
        """A CPU module's kernels take ``a`` as it is: a C-contiguous ndarray of the
        module's dtype (the common case, tested first and cheaply)."""
        d = self.__dict__
        return type(a) is np.ndarray and a.dtype == d["dtype"] and a.flags.c_contiguous \
            and d["backend"] is CPUBackend

    def _cast_input(self, input):
        """Input as a contiguous array of the module's dtype on its device.
        The result is remembered so that backward on the same input skips the cast."""
        d = self.__dict__
        if input is d["_fwd_src"] and d["_fwd_input"] is not None:
            return d["_fwd_input"]
        if self._kernel_ready(input) and input.ndim:
            d["_fwd_src"] = d["_fwd_input"] = input
            return input
        if self.backend is CPUBackend:
            if not isinstance(input, np.ndarray):
                if is_cuda_object(input):
                    raise TypeError(f"{self!r}: got a GPU array but the module is on the CPU; "
                                    f"call .cuda() on the module or fastnn.to_numpy() on the input")
                input = np.asarray(input)
            if input.dtype.kind not in "fiub":
                raise TypeError(f"{self!r}: input must be real numbers, got dtype {input.dtype}")
        if len(input.shape) == 0:  # np.ascontiguousarray would make it 1-D, unannounced
            raise ValueError(f"{self!r}: got a 0-d input (a scalar); modules take batches "
                             f"(N, ...): wrap it, e.g. np.array([[x]])")
        if self.backend is CPUBackend or is_cuda_object(input):
            x = self.backend.to_device(input, self.dtype)
        else:  # host data into a reused device buffer: a GPU step allocates nothing
            x = self.backend.to_device(input, self.dtype, out=self._buffers.get("input upload"))
            self._buffers["input upload"] = x
        d["_fwd_src"] = input
        d["_fwd_input"] = x
        return x

    def _cast_grad(self, gradOutput, expected_shape):
        if self._kernel_ready(gradOutput):
            g = gradOutput
        elif self.backend is not CPUBackend:
            g = self.backend.to_device(gradOutput, self.dtype)
        else:
            g = np.ascontiguousarray(gradOutput, dtype=self.dtype)
        if g.shape != expected_shape and tuple(g.shape) != tuple(expected_shape):
            raise ValueError(f"{self!r}: gradOutput has shape {tuple(g.shape)}, expected "
                             f"{tuple(expected_shape)} (the shape of this module's output)")
        return g

    def _require_forward(self, input, output_shape=None):
        """Backward needs a forward first; with ``output_shape`` (what ``input`` would
        give), also that the last forward was on such an input: kernels read the saved
        output, and a mismatch would make them read past its end (Numba does not check).
        The saved ``output`` is a public attribute, so then its dtype and layout are
        checked too (a float64 array handed to a float32 kernel is read with the wrong
        stride); modules whose kernels read it without a shape to check call
        ``_check_saved`` themselves."""
        out = self.output
        if out is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        if output_shape is not None:  # given by the modules whose kernels read the output
            if out.shape != output_shape and tuple(out.shape) != tuple(output_shape):
                raise ValueError(f"{self!r}: backward input of shape {tuple(np.shape(input))} "
                                 f"does not match the last forward (output shape "
                                 f"{tuple(out.shape)}); call forward on it first")
            self._check_saved("output", out)

    def _check_saved(self, name, a, shape=None):
        """A saved array a kernel will read: of the module's dtype, C-contiguous, on
        the module's device and, given ``shape``, of that shape (O(1) checks)."""
        if not self._kernel_ready(a) and (self.backend is CPUBackend or a.dtype != self.dtype):
            raise ValueError(f"{self!r}: {name} is not this module's own buffer (got "
                             f"{type(a).__name__} of dtype {getattr(a, 'dtype', None)}, "
                             f"expected a C-contiguous {self.dtype} array); call forward again")
        if shape is not None and a.shape != shape and tuple(a.shape) != tuple(shape):
            raise ValueError(f"{self!r}: {name} has shape {tuple(a.shape)}, expected "
                             f"{tuple(shape)} from the last forward; call forward again")

    def _apart_input(self, x, buf):
        """The input ``x`` for a kernel that writes ``buf``: a copy when it overlaps
        ``buf`` (see _contracts.apart), also kept as the cast input so that backward on
        the same array sees what forward read."""
        y = apart(x, buf)
        if y is not x:
            self.__dict__["_fwd_input"] = y
        return y

    def _check_ndim(self, x, ndims, what):
        if x.ndim not in ndims:
            raise ValueError(f"{self!r}: expected {what}, got input of shape {tuple(x.shape)}")

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


class Container(Module):
    """A module made of child modules.

    ``getParameters()`` and ``getGradParameters()`` give one list per child, and every
    child's arrays live in one flat buffer (``flatten_parameters``), so that
    ``sgd_momentum``/``adam_optimizer`` update the whole net in one kernel pass.

    Parameters
    ----------
    *modules : Module
        The children, in order.
    """

    def __init__(self, *modules: "Module") -> None:
        super().__init__()
        self.__dict__["modules"] = []
        self.__dict__["_flat"] = None
        for m in modules:
            self.add(m)

    def add(self, module):
        """Append ``module`` as the last child.

        Parameters
        ----------
        module : Module
            The child to add.

        Returns
        -------
        Container
            ``self``, so calls chain.
        """
        if not isinstance(module, Module):
            raise TypeError(f"{self!r}.add: expected a Module, got {type(module).__name__}")
        self.modules.append(module)
        self._invalidate()
        return self

    def _invalidate(self):
        self.__dict__["_flat"] = None
        self.__dict__["_plan"] = None

    # parameters: one list per child, children's arrays live in one flat buffer
    def flatten_parameters(self) -> "FlatParameters":
        """Move every leaf parameter (and gradient) into one contiguous buffer, so that
        the fused optimizer updates the whole net in one kernel pass (Torch7's
        ``getParameters()``). Idempotent: it rebuilds only when children, dtypes or
        devices changed.

        Returns
        -------
        FlatParameters
            The flat buffers and the views the leaves now hold. The container keeps it
            (and nothing else does), so it goes when the container goes.
        """
        flat = self._flat
        if flat is not None and flat.is_current():
            return flat
        leaves = [m for m in self.leaves() if m._param_names]
        backend = self._leaf_backend(leaves)
        dtypes = {m.dtype for m in leaves}
        if len(dtypes) > 1:
            raise ValueError(f"{self!r}: children have mixed dtypes {sorted(map(str, dtypes))}; "
                             f"call .float() or .double() on the container")
        dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        flat = FlatParameters(leaves, backend, dtype)
        self.__dict__["_flat"] = flat
        return flat

    @staticmethod
    def _leaf_backend(leaves):
        return leaves[0].backend if leaves else CPUBackend

    def leaves(self):
        """Every descendant that is not a container, in order (Torch7's ``listModules``
        without the containers): the modules that hold parameters and state.

        Returns
        -------
        list of Module
        """
        out = []
        for m in self.modules:
            out.extend(m.leaves())
        return out

    def named_leaves(self, prefix: str = "") -> list:
        out = []
        for i, m in enumerate(self.modules):
            out.extend(m.named_leaves(f"{prefix}{i}."))
        return out

    def listModules(self) -> list:
        out = [self]
        for m in self.modules:
            out.extend(m.listModules())
        return out

    def getParameters(self):
        return self._nested_lists("getParameters")

    def getGradParameters(self):
        return self._nested_lists("getGradParameters")

    def _nested_lists(self, method):
        """The children's lists, tagged with the container's ``FlatParameters`` (the link
        the optimizer follows to the flat buffers). When every child is a plain fastnn
        leaf module they are built once per flat buffer and children list (the optimizer
        asks for them every step) and copied on each call, so that callers may edit them.
        Lazy zeroing reads gradients through their descriptors, which must run, so it
        takes the slow path."""
        flat = self.flatten_parameters()
        if _LAZY_ZERO_GRAD["ever"]:
            return _tagged(self._nested(method), flat)
        cached = flat._lists.get(method)
        if cached is None or cached[0] != self.modules:
            nested = self._nested(method)
            if not all(type(m).getParameters is Module.getParameters and
                       type(m).getGradParameters is Module.getGradParameters
                       for m in self.modules):
                return _tagged(nested, flat)
            flat._lists[method] = cached = (list(self.modules), nested)
        out = ParameterList(_copy_lists(cached[1]))  # _tagged, inlined: this runs every step
        out.flat = flat
        return out

    def _nested(self, method):
        # children's lists without letting a nested container re-flatten its leaves
        return [m._nested(method) if isinstance(m, Container) else getattr(m, method)()
                for m in self.modules]

    def zeroGradParameters(self):
        flat = self._flat
        if _LAZY_ZERO_GRAD["enabled"] or flat is None or not flat.is_current():
            for m in self.modules:
                m.zeroGradParameters()
            return
        # one fill over the flat gradient buffer instead of one per array
        self.backend.kernels.elementwise.fill(flat.grads, 0.0)
        if _LAZY_ZERO_GRAD["ever"]:  # only lazy zeroing leaves zeros pending
            for m, *_ in flat.views:
                m.__dict__["_grad_zero_pending"] = False

    def train(self):
        self.training = True
        for m in self.modules:
            m.train()
        return self

    def evaluate(self):
        self.training = False
        for m in self.modules:
            m.evaluate()
        return self

    def type(self, dtype):
        for m in self.modules:
            m.type(dtype)
        self.__dict__["dtype"] = np.dtype(dtype)
        self._invalidate()
        return self

    def cuda(self):
        for m in self.modules:
            m.cuda()
        self.__dict__["backend"] = self.modules[0].backend if self.modules else get_backend("cuda")
        self._invalidate()
        return self

    def cpu(self):
        for m in self.modules:
            m.cpu()
        self.__dict__["backend"] = CPUBackend
        self._invalidate()
        return self

    def __getstate__(self):
        state = super().__getstate__()
        state["_flat"] = None
        state["_plan"] = None
        return state


class FlatParameters:
    """A container's parameters and gradients in two flat buffers (Torch7's
    ``getParameters()``), and the per-parameter views its leaves hold.

    ``Container.flatten_parameters()`` builds it and the container keeps it; the lists
    ``getParameters()``/``getGradParameters()`` hand out carry it (``ParameterList.flat``),
    which is how an optimizer knows it may update the flat buffers in one pass.

    Parameters
    ----------
    leaves : list of Module
        The parameterised leaves, in ``Container.leaves()`` order.
    backend : CPUBackend or CUDABackend
        Where the buffers live (the leaves' device).
    dtype : numpy.dtype
        The leaves' common dtype.

    Attributes
    ----------
    params, grads : array of shape (total,)
        The flat parameter and gradient buffers.
    views : list of tuple
        ``(module, param_name, param_view, grad_name, grad_view)`` per parameter, in order.
    param_views, grad_views : list of array
        The views alone, in the order ``getParameters()`` flattens to.

    Examples
    --------
    >>> import fastnn
    >>> net = fastnn.Sequential(fastnn.Linear(3, 2), fastnn.ReLU(), fastnn.Linear(2, 1))
    >>> flat = net.flatten_parameters()
    >>> flat.params.shape, net.getParameters().flat is flat
    ((11,), True)
    """

    __slots__ = ("params", "grads", "views", "param_views", "grad_views", "_checks", "_lists")

    def __init__(self, leaves, backend, dtype):
        total = sum(int(np.prod(m.__dict__[n].shape)) for m in leaves for n in m._param_names)
        self.params = flat_p = backend.empty((total,), dtype)
        self.grads = flat_g = backend.zeros((total,), dtype)
        views = []
        off = 0
        for m in leaves:
            for pn, gn in zip(m._param_names, m._grad_names):
                p = m.__dict__[pn]
                n = int(np.prod(p.shape))
                view_p = flat_p[off:off + n].reshape(p.shape)
                view_g = flat_g[off:off + n].reshape(p.shape)
                if backend is CPUBackend:
                    view_p[...] = p
                    view_g[...] = m.__dict__["_raw_" + gn]
                else:
                    view_p.copy_to_device(p)
                    view_g.copy_to_device(m.__dict__["_raw_" + gn])
                m._rebind(pn, view_p)
                m._rebind(gn, view_g)
                views.append((m, pn, view_p, gn, view_g))
                off += n
        self.views = views
        self.param_views = [v[2] for v in views]
        self.grad_views = [v[4] for v in views]
        # what is_current compares, with the dict keys spelled out once
        self._checks = [(m.__dict__, pn, vp, "_raw_" + gn, vg) for m, pn, vp, gn, vg in views]
        self._lists = {}  # the nested lists per method, see Container._nested_lists

    def __getitem__(self, key):
        # the dict-style access of older code: flat["params"], flat["grads"], flat["views"]
        if key not in ("params", "grads", "views"):
            raise KeyError(key)
        return getattr(self, key)

    def is_current(self) -> bool:
        """True while the leaves still hold these views (no dtype or device move since).

        Returns
        -------
        bool
        """
        return all(d[pn] is vp and d[raw_gn] is vg for d, pn, vp, raw_gn, vg in self._checks)

    def holds(self, variables: list, gradients: list) -> bool:
        """True if ``variables``/``gradients`` (flat lists) are exactly these views, in
        order, and the leaves still hold them: then updating ``params`` from ``grads``
        updates every one of them.

        Parameters
        ----------
        variables, gradients : list of array
            Flat lists, as the optimizer sees them.

        Returns
        -------
        bool
        """
        pv, gv = self.param_views, self.grad_views
        return len(variables) == len(pv) == len(gradients) and \
            all(map(is_, variables, pv)) and all(map(is_, gradients, gv)) and self.is_current()


class ParameterList(list):
    """The list a container's ``getParameters()``/``getGradParameters()`` returns: a
    plain list of the children's lists, plus ``flat``, the container's
    ``FlatParameters`` (the optimizer's explicit link to the flat buffers).

    Attributes
    ----------
    flat : FlatParameters
        The record the arrays are views of.
    """

    __slots__ = ("flat",)

    def __reduce__(self):
        # copies and pickles are plain lists: the link is to this container's buffers
        return list, (list(self),)


def _tagged(items, flat):
    # list's own constructor (no Python __init__): getParameters runs every step
    out = ParameterList(items)
    out.flat = flat
    return out


# attributes that only these methods may change (see Module.__setattr__)
_SET_BY_METHODS = {"dtype": ".type(), .float() or .double()", "backend": ".cuda() or .cpu()"}


def _concurrent_use(module, phase):
    return RuntimeError(
        f"{name_of(module)}: {phase} called while another thread is inside this module. "
        f"A module reuses its output and scratch buffers, so it serves one thread at a "
        f"time; give each thread its own copy (copy.deepcopy(net)).")


def _copy_lists(nested):
    return [_copy_lists(x) if type(x) is list else x for x in nested]


def rows(a, lo, hi):
    """a[lo:hi] along the batch axis (the array itself when that is all of it)."""
    return a if lo == 0 and hi == a.shape[0] else a[lo:hi]


# Sequential lives in its own file; importable from here as before (fastnn.module.Sequential)
from .sequential import Sequential  # noqa: E402,F401
