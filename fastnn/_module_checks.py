"""``ModuleChecks``: the helpers a layer's phases call before their kernel: reused
buffers, input and gradient casts, and the checks that a backward matches the last
forward. A mixin in its own file only to keep ``module.py`` to the protocol;
``Module`` inherits it and nothing else should."""
import numpy as np

from ._contracts import apart
from .backend import CPUBackend, is_cuda_object


class ModuleChecks:
    """Mixin of ``Module``: buffers, casts and validation for subclasses' phases."""

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


def rows(a, lo, hi):
    """a[lo:hi] along the batch axis (the array itself when that is all of it)."""
    return a if lo == 0 and hi == a.shape[0] else a[lo:hi]
