"""``ModuleArrays``: the part of ``Module`` that handles its arrays as a whole, by
name (the ``state_dict`` hooks) and by dtype and device (``type``/``float``/``double``/
``cuda``/``cpu``). A mixin in its own file only to keep ``module.py`` to the protocol
(forward/backward and parameter assignment); ``Module`` inherits it and nothing else
should."""
import numpy as np

from .backend import CPUBackend, get_backend, to_numpy

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: state_dict key of each parameter/state attribute whose name differs from torch's.
STATE_KEYS = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias",
              "moving_mean": "running_mean", "moving_variance": "running_var"}


class ModuleArrays:
    """Mixin of ``Module``: ``state_dict`` naming hooks and dtype/device conversion of
    the arrays listed in ``_param_names``, ``_grad_names`` and ``_state_names``."""

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

    # ---- dtype and device -----------------------------------------------------
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
