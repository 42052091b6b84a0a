"""Convolutional layers on NCHW input: Conv2d, MaxPool2d, AvgPool2d, Flatten.

Conv2d runs im2col + GEMM kernels (``fastnn.kernels.<device>.conv``) with a
scratch ``columns`` buffer the module owns and reuses between calls; MaxPool2d
remembers the arg-max of every window for its backward pass.
"""
import numpy as np

from ._contracts import Setting, ShapeOf, apart, nonnegative_int, positive_int
from ._runtime.rng import module_rng
from .activations import FUSABLE_ACTIVATIONS
from .module import GradientSlot, Module, rows

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "Flatten"]

#: Input elements below which a pooling call stays on one thread (a hand-off costs more).
POOL_SPLIT_MIN = 1 << 16


class _Spatial(Module):
    """Shared input checks for modules that take (N, C, H, W) batches."""

    #: Conv2d and MaxPool2d split their batch over fastnn's threads (fastnn/_runtime/parallel.py).
    always_splits_batch = True

    def _input4d(self, input):
        x = self._cast_input(input)
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected 4-D input (N, C, H, W), "
                             f"got input of shape {tuple(x.shape)}")
        return x

    def _fresh_input(self, input):
        # Forward always recasts: a caller may refill the same (say uint8) array
        # in place between batches; backward then reuses this cast.
        self.__dict__["_fwd_src"] = None
        return self._checked_input(input)


class Conv2d(_Spatial):
    """2-D cross-correlation over NCHW input with a square kernel.

    Inside a ``Sequential`` a Conv2d followed by an activation runs fused, and a net with
    Conv2d layers splits its batch over fastnn's threads (``fastnn.set_num_threads``).

    Parameters
    ----------
    n_in : int
        Input channels.
    n_out : int
        Output channels.
    kernel_size : int
        The kernel's height and width, k.
    stride : int
        Step between windows, both directions.
    padding : int, optional
        Zeros added on each side; None means ``k // 2`` ("same" size for odd k at stride 1).

    Attributes
    ----------
    W : ndarray of shape (n_out, n_in, k, k)
        Weights, uniform in ±1/sqrt(n_in k k) at creation.
    b : ndarray of shape (n_out,)
        Bias, drawn like ``W``.
    gradW, gradb : ndarray
        Their accumulated gradients.

    Shape
    -----
    - input: (N, n_in, H, W)
    - output: (N, n_out, Ho, Wo) with ``Ho = (H + 2 padding - k) // stride + 1``, ``Wo`` alike

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> conv = fastnn.Conv2d(1, 4, 3)
    >>> conv.forward(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 4, 28, 28)
    >>> fastnn.Conv2d(1, 4, 3, stride=2, padding=0).forward(np.zeros((2, 1, 7, 7))).shape
    (2, 4, 3, 3)
    """

    _param_names = ("W", "b")
    _grad_names = ("gradW", "gradb")
    gradW = GradientSlot()
    gradb = GradientSlot()
    #: the sizes the kernels use: read from W (n_out, n_in, k, k), never stored apart
    n_out = ShapeOf("W", 0)
    n_in = ShapeOf("W", 1)
    kernel_size = ShapeOf("W", 2)
    stride = Setting(positive_int)
    padding = Setting(nonnegative_int)

    def __init__(self, n_in: int, n_out: int, kernel_size: int, stride: int = 1,
                 padding: "int | None" = None) -> None:
        super().__init__()
        owner = f"Conv2d({n_in!r}, {n_out!r}, {kernel_size!r}, stride={stride!r}, padding={padding!r})"
        n_in = positive_int(owner, "n_in", n_in)
        n_out = positive_int(owner, "n_out", n_out)
        k = positive_int(owner, "kernel_size", kernel_size)
        stride = positive_int(owner, "stride", stride)
        padding = k // 2 if padding is None else nonnegative_int(owner, "padding", padding)
        self.stride, self.padding = stride, padding
        stdv = 1.0 / np.sqrt(n_in * k * k)
        rng = module_rng()
        self.W = rng.uniform(-stdv, stdv, size=(n_out, n_in, k, k)).astype(self.dtype)
        self.b = rng.uniform(-stdv, stdv, size=n_out).astype(self.dtype)
        self.gradW = np.zeros_like(self.W)
        self.gradb = np.zeros_like(self.b)

    def _out_hw(self, h, w):
        k, s, p = self.W.shape[2], self.stride, self.padding
        return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1

    def _checked_input(self, input):
        x = self._input4d(input)
        n, c, h, w = x.shape
        if c != self.W.shape[1]:
            raise ValueError(f"{self!r}: expected {self.n_in} input channels, "
                             f"got input of shape {tuple(x.shape)}")
        p, k = self.padding, self.W.shape[2]
        if h + 2 * p < k or w + 2 * p < k:
            raise ValueError(f"{self!r}: input of shape {tuple(x.shape)} is smaller than the "
                             f"{k}x{k} kernel (padded size {h + 2 * p}x{w + 2 * p})")
        return x

    def _columns(self, x, part=0):
        # The kernels take any scratch at least this large (a larger one just means
        # more images per GEMM), so a smaller last batch keeps the buffer. Each part of
        # a batch split has its own.
        size = self.backend.kernels.conv.columns_size(
            x.shape, self.W.shape[0], self.W.shape[2], self.stride, self.padding)
        key = "columns" if part == 0 else f"columns{part}"
        buf = self._buffers.get(key)
        if buf is not None and buf.dtype == self.dtype and buf.shape[0] >= size:
            return buf
        return self._buffer(key, (size,))

    def _split(self, x):
        """Batch parts and a columns scratch for each (see Module._run_split)."""
        bounds = self._batch_parts(x.shape[0])
        return bounds, [self._columns(x, i) for i in range(len(bounds))]

    def updateOutput(self, input):
        x = self._fresh_input(input)
        ho, wo = self._out_hw(x.shape[2], x.shape[3])
        out = self._buffer("output", (x.shape[0], self.W.shape[0], ho, wo))
        x = self._apart_input(x, out)
        conv, W, b, s, p = self.backend.kernels.conv, self.W, self.b, self.stride, self.padding
        bounds, cols = self._split(x)
        self._run_split(lambda i, lo, hi: conv.conv2d_forward(
            rows(x, lo, hi), rows(out, lo, hi), cols[i], W, b, s, p), bounds)
        self.output = out
        return out

    def _grad_output(self, x, gradOutput):
        ho, wo = self._out_hw(x.shape[2], x.shape[3])
        return self._cast_grad(gradOutput, (x.shape[0], self.W.shape[0], ho, wo))

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get("_skip_grad_input"):  # gradInput = None: no GEMM
            return None
        self._require_forward(input)
        x = self._checked_input(input)
        g = self._grad_output(x, gradOutput)
        gi = self._buffer("gradInput", x.shape)
        g = apart(g, gi)
        conv, W, s, p = self.backend.kernels.conv, self.W, self.stride, self.padding
        bounds, cols = self._split(x)
        self._run_split(lambda i, lo, hi: conv.conv2d_backward_input(
            rows(g, lo, hi), rows(gi, lo, hi), cols[i], W, s, p), bounds)
        self.gradInput = gi
        return gi

    def accGradParameters(self, input, gradOutput):
        x = self._checked_input(input)
        g = self._grad_output(x, gradOutput)
        conv, s, p = self.backend.kernels.conv, self.stride, self.padding
        bounds, cols = self._split(x)
        grads = self._param_grad_parts(len(bounds), ("W", "b"))
        self._run_split(lambda i, lo, hi: conv.conv2d_backward_params(
            rows(x, lo, hi), rows(g, lo, hi), grads[i][0], grads[i][1], cols[i], s, p,
            grads[i][2]), bounds)
        self._sum_param_grad_parts(grads)

    # ---- fusion with a following activation (driven by Sequential, as for Linear) ----
    def can_fuse_with(self, nxt):
        # Built-in classes only: fusion skips both modules' own phases.
        return type(self) is Conv2d and type(nxt) in FUSABLE_ACTIVATIONS

    def forward_fused(self, input, act):
        x = self._fresh_input(input)
        ho, wo = self._out_hw(x.shape[2], x.shape[3])
        shape = (x.shape[0], self.W.shape[0], ho, wo)
        pre = self._buffer("output", shape)
        out = act.fused_output(shape)
        x = self._apart_input(self._apart_input(x, pre), out)
        conv, W, b, s, p = self.backend.kernels.conv, self.W, self.b, self.stride, self.padding
        code, alpha = act.fusion_spec()
        bounds, cols = self._split(x)
        self._run_split(lambda i, lo, hi: conv.conv2d_activation_forward(
            rows(x, lo, hi), rows(pre, lo, hi), rows(out, lo, hi), cols[i], W, b, s, p,
            code, alpha), bounds)
        self.output = pre
        act.output = out
        return out

    def backward_fused(self, input, gradOutput, act):
        x = self._checked_input(input)
        shape = (x.shape[0], self.W.shape[0]) + self._out_hw(x.shape[2], x.shape[3])
        self._require_forward(input, shape)
        g, delta = act.fused_backward_buffers(input, gradOutput, shape)
        need_gi = not self.__dict__.get("_skip_grad_input")
        # without gradInput the kernel skips that product and never touches its argument
        gi = self._buffer("gradInput", x.shape) if need_gi else delta
        # the kernel writes delta and gradInput (per chunk of images), then reads the input
        # and gradOutput of the next chunk
        x, g = apart(apart(x, gi), delta), apart(apart(g, gi), delta)
        conv, W, s, p = self.backend.kernels.conv, self.W, self.stride, self.padding
        (code, alpha), pre, out = act.fusion_spec(), self.output, act.output
        bounds, cols = self._split(x)
        grads = self._param_grad_parts(len(bounds), ("W", "b"))
        self._run_split(lambda i, lo, hi: conv.conv2d_activation_backward(
            rows(x, lo, hi), rows(g, lo, hi), rows(gi, lo, hi), rows(delta, lo, hi),
            grads[i][0], grads[i][1], cols[i], rows(pre, lo, hi), rows(out, lo, hi), W, s, p,
            code, alpha, grads[i][2], need_gi), bounds)
        self._sum_param_grad_parts(grads)
        act.gradInput = delta
        if not need_gi:
            return None
        self.gradInput = gi
        return gi

    def __repr__(self):
        k = self.kernel_size
        return (f"Conv2d {self.n_in} -> {self.n_out}, {k}x{k}, "
                f"stride {self.stride}, padding {self.padding}")


class _Pool2d(_Spatial):
    """k x k windows of each channel, ``stride`` (default k) apart, no padding, floor
    output size: what MaxPool2d and AvgPool2d share."""

    kernel_size = Setting(positive_int)
    stride = Setting(positive_int)

    def __init__(self, kernel_size: int, stride: "int | None" = None) -> None:
        super().__init__()
        owner = f"{type(self).__name__}({kernel_size!r}, stride={stride!r})"
        self.kernel_size = positive_int(owner, "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else \
            positive_int(owner, "stride", stride)

    def _out_shape(self, x):
        k, s = self.kernel_size, self.stride
        n, c, h, w = x.shape
        return n, c, (h - k) // s + 1, (w - k) // s + 1

    def _checked_input(self, input):
        x = self._input4d(input)
        k = self.kernel_size
        if x.shape[2] < k or x.shape[3] < k:
            raise ValueError(f"{self!r}: input of shape {tuple(x.shape)} is smaller than the "
                             f"{k}x{k} pooling window")
        return x

    def _parts(self, x):
        return self._batch_parts(x.shape[0], x.size, POOL_SPLIT_MIN)

    def __repr__(self):
        k = self.kernel_size
        return f"{type(self).__name__} {k}x{k}, stride {self.stride}"


class MaxPool2d(_Pool2d):
    """Maximum over k x k windows of each channel, ``stride`` apart, without padding.

    A NaN in a window propagates to the output; backward routes each gradient to its
    window's arg-max (overlapping windows accumulate).

    Parameters
    ----------
    kernel_size : int
        The window's height and width, k.
    stride : int, optional
        Step between windows; None means ``kernel_size`` (windows that do not overlap).

    Shape
    -----
    - input: (N, C, H, W)
    - output: (N, C, (H - k) // stride + 1, (W - k) // stride + 1)

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> fastnn.MaxPool2d(2).forward(x)
    array([[[[ 5.,  7.],
             [13., 15.]]]], dtype=float32)
    """

    def _indices(self, shape):
        # int64 arg-max buffer; Module._buffer only makes arrays of the module dtype.
        buf = self._buffers.get("indices")
        if buf is None or tuple(buf.shape) != tuple(shape):
            buf = self.backend.empty(tuple(shape), np.int64)
            self._buffers["indices"] = buf
        return buf

    def updateOutput(self, input):
        x = self._fresh_input(input)
        shape = self._out_shape(x)
        out = self._buffer("output", shape)
        x = self._apart_input(x, out)
        pool, k, s = self.backend.kernels.pool, self.kernel_size, self.stride
        idx = self._indices(shape)
        # the indices address planes of this input's size: backward must write into one
        self.__dict__["_pooled_shape"] = x.shape
        self._run_split(lambda i, lo, hi: pool.maxpool2d_forward(
            rows(x, lo, hi), rows(out, lo, hi), rows(idx, lo, hi), k, s), self._parts(x))
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        self._require_forward(input)
        x = self._checked_input(input)
        shape = self._out_shape(x)
        idx = self._buffers.get("indices")
        pooled = self.__dict__.get("_pooled_shape")
        if idx is None or pooled is None or tuple(idx.shape) != tuple(shape) \
                or tuple(pooled) != tuple(x.shape):
            raise ValueError(f"{self!r}: backward input of shape {tuple(x.shape)} does not match "
                             f"the last forward (input shape {pooled}); call forward on it first")
        if idx.dtype != np.int64 or (type(idx) is np.ndarray and not idx.flags.c_contiguous):
            raise ValueError(f"{self!r}: the saved indices are not this module's own buffer "
                             f"(dtype {idx.dtype}); call forward again")
        g = self._cast_grad(gradOutput, shape)
        gi = self._buffer("gradInput", x.shape)
        g = apart(g, gi)
        pool, k, s = self.backend.kernels.pool, self.kernel_size, self.stride
        self._run_split(lambda i, lo, hi: pool.maxpool2d_backward(
            rows(g, lo, hi), rows(gi, lo, hi), rows(idx, lo, hi), k, s), self._parts(x))
        self.gradInput = gi
        return gi


class AvgPool2d(_Pool2d):
    """Mean over k x k windows of each channel, ``stride`` apart, without padding
    (torch's ``AvgPool2d(k, stride)``).

    Backward spreads each gradient evenly over its window (overlapping windows
    accumulate).

    Parameters
    ----------
    kernel_size : int
        The window's height and width, k.
    stride : int, optional
        Step between windows; None means ``kernel_size`` (windows that do not overlap).

    Shape
    -----
    - input: (N, C, H, W)
    - output: (N, C, (H - k) // stride + 1, (W - k) // stride + 1)

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> fastnn.AvgPool2d(2).forward(x)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]], dtype=float32)
    """

    def updateOutput(self, input):
        x = self._fresh_input(input)
        out = self._buffer("output", self._out_shape(x))
        x = self._apart_input(x, out)
        pool, k, s = self.backend.kernels.pool, self.kernel_size, self.stride
        self._run_split(lambda i, lo, hi: pool.avgpool2d_forward(
            rows(x, lo, hi), rows(out, lo, hi), k, s), self._parts(x))
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        x = self._checked_input(input)
        shape = self._out_shape(x)
        self._require_forward(input, shape)
        g = self._cast_grad(gradOutput, shape)
        gi = self._buffer("gradInput", x.shape)
        g = apart(g, gi)
        pool, k, s = self.backend.kernels.pool, self.kernel_size, self.stride
        self._run_split(lambda i, lo, hi: pool.avgpool2d_backward(
            rows(g, lo, hi), rows(gi, lo, hi), k, s), self._parts(x))
        self.gradInput = gi
        return gi


class Flatten(Module):
    """Reshapes each sample to one row: (N, C, H, W) to (N, C*H*W), and any (N, ...) to
    (N, prod(...)); backward reshapes the gradient back.

    A reshape, so contiguous input of the module's dtype is not copied.

    Shape
    -----
    - input: (N, ...)
    - output: (N, product of the other dimensions)

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.Flatten().forward(np.zeros((2, 3, 4, 5), np.float32)).shape
    (2, 60)
    """

    def _checked_input(self, input):
        x = self._cast_input(input)
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected input with a batch dimension (N, ...), "
                             f"got input of shape {tuple(x.shape)}")
        return x

    def updateOutput(self, input):
        self.__dict__["_fwd_src"] = None
        x = self._checked_input(input)
        self.output = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._require_forward(input)
        x = self._checked_input(input)
        g = self._cast_grad(gradOutput, (x.shape[0], int(np.prod(x.shape[1:]))))
        self.gradInput = g.reshape(x.shape)
        return self.gradInput
