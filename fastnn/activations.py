"""Activation modules. Each is one elementwise kernel call per phase; a Linear
followed by one of these runs fused in a Sequential (see Linear.forward_fused)."""
import numpy as np

from ._contracts import Setting, apart
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "ELU", "SoftPlus", "Sigmoid", "Tanh", "SoftMax", "LogSoftMax"]

# codes shared with the kernels; kernels/codes.py imports no numba
from .kernels.codes import (NONE as _NONE, RELU as _RELU, LEAKY_RELU as _LEAKY_RELU,
                           ELU as _ELU, SOFTPLUS as _SOFTPLUS, SIGMOID as _SIGMOID,
                           TANH as _TANH)


def _finite_nonnegative(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


class _Elementwise(Module):
    _fusable_code = None

    def _alpha_value(self):
        return 0.0

    # ---- the hooks a layer fused with this activation uses (Linear, Conv2d) ----
    def fusion_spec(self) -> tuple:
        """What a layer's fused ``<op>_activation_*`` kernels need to apply this
        activation.

        Returns
        -------
        tuple of (int, float)
            The activation code (``fastnn.kernels.codes``) and its alpha (slope).
        """
        return self._fusable_code, self._alpha_value()

    def fused_output(self, shape: tuple):
        """The reused buffer a fused forward writes this activation's output into (the
        layer then sets ``output``).

        Parameters
        ----------
        shape : tuple of int

        Returns
        -------
        array of ``shape``
        """
        return self._buffer("output", shape)

    def fused_backward_buffers(self, input, gradOutput, shape: tuple) -> tuple:
        """For a fused backward: checks that the last forward gave an output of
        ``shape``, and returns ``gradOutput`` cast to this module's dtype and device and
        the reused buffer the layer writes this activation's ``gradInput`` into.

        Parameters
        ----------
        input : array
            The fused layer's input (named in the error).
        gradOutput : array of ``shape``
        shape : tuple of int
            The activation's output shape.

        Returns
        -------
        tuple of (array, array)
        """
        self._require_forward(input, shape)
        return self._cast_grad(gradOutput, shape), self._buffer("gradInput", shape)

    def updateOutput(self, input):
        x = self._cast_input(input)
        out = self._buffer("output", x.shape)
        # in place would be right for forward, but backward reads the input again
        x = self._apart_input(x, out)
        self.backend.kernels.activation.activation_forward(x, out, self._fusable_code,
                                                           self._alpha_value())
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        x = self._cast_input(input)
        self._require_forward(input, x.shape)
        g = self._cast_grad(gradOutput, x.shape)
        gi = self._buffer("gradInput", x.shape)
        self.backend.kernels.activation.activation_backward(
            x, g, gi, self.output, self._fusable_code, self._alpha_value())
        self.gradInput = gi
        return gi


class ReLU(_Elementwise):
    """Rectified linear unit: ``max(0, x)`` elementwise.

    Inside a ``Sequential`` it fuses with a preceding ``Linear`` or ``Conv2d`` (one kernel
    per phase).

    Shape
    -----
    - input: any shape
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.ReLU().forward(np.array([[-1.0, 0.0, 2.0]], np.float32))
    array([[0., 0., 2.]], dtype=float32)
    """

    _fusable_code = _RELU


class LeakyReLU(_Elementwise):
    """``x`` where positive, ``slope * x`` elsewhere.

    Inside a ``Sequential`` it fuses with a preceding ``Linear`` or ``Conv2d`` (one kernel
    per phase).

    Parameters
    ----------
    slope : float
        The slope for negative inputs, finite and >= 0.

    Shape
    -----
    - input: any shape
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.LeakyReLU(0.1).forward(np.array([[-1.0, 2.0]], np.float32))
    array([[-0.1,  2. ]], dtype=float32)
    """

    _fusable_code = _LEAKY_RELU
    slope = Setting(_finite_nonnegative)

    def __init__(self, slope: float = 0.03) -> None:
        super().__init__()
        self.slope = slope

    def _alpha_value(self):
        return self.slope

    def __repr__(self):
        return f"LeakyReLU(slope={self.slope})"


class ELU(_Elementwise):
    """Exponential linear unit: ``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    Inside a ``Sequential`` it fuses with a preceding ``Linear`` or ``Conv2d`` (one kernel
    per phase).

    Parameters
    ----------
    alpha : float
        The value the output tends to for very negative inputs is ``-alpha``; finite, >= 0.

    Shape
    -----
    - input: any shape
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.ELU().forward(np.array([[0.0, 2.0]], np.float32))
    array([[0., 2.]], dtype=float32)
    """

    _fusable_code = _ELU
    alpha = Setting(_finite_nonnegative)

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def _alpha_value(self):
        return self.alpha

    def __repr__(self):
        return f"ELU(alpha={self.alpha})"


class SoftPlus(_Elementwise):
    """Smooth ReLU: ``log(1 + exp(x))`` elementwise, computed without overflow.

    Inside a ``Sequential`` it fuses with a preceding ``Linear`` or ``Conv2d`` (one kernel
    per phase).

    Shape
    -----
    - input: any shape
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.SoftPlus().forward(np.array([[0.0]], np.float32))
    array([[0.6931472]], dtype=float32)
    """

    _fusable_code = _SOFTPLUS


class Sigmoid(_Elementwise):
    """Logistic function: ``1 / (1 + exp(-x))`` elementwise.

    Inside a ``Sequential`` it fuses with a preceding ``Linear`` or ``Conv2d`` (one kernel
    per phase).

    Shape
    -----
    - input: any shape
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.Sigmoid().forward(np.array([[0.0]], np.float32))
    array([[0.5]], dtype=float32)
    """

    _fusable_code = _SIGMOID


class Tanh(_Elementwise):
    """Hyperbolic tangent elementwise.

    Inside a ``Sequential`` it fuses with a preceding ``Linear`` or ``Conv2d`` (one kernel
    per phase).

    Shape
    -----
    - input: any shape
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.Tanh().forward(np.array([[0.0]], np.float32))
    array([[0.]], dtype=float32)
    """

    _fusable_code = _TANH


# the classes a Linear may fuse with in a Sequential (exact types, not subclasses)
FUSABLE_ACTIVATIONS = (ReLU, LeakyReLU, ELU, SoftPlus, Sigmoid, Tanh)


class _RowwiseSoftmax(Module):
    _forward_kernel = None
    _backward_kernel = None

    def updateOutput(self, input):
        x = self._cast_input(input)
        self._check_ndim(x, (2,), "2-D input (N, classes)")
        if x.shape[1] == 0 and x.shape[0]:
            raise ValueError(f"{self!r}: input of shape {tuple(x.shape)} has no classes; "
                             f"a softmax needs at least one per row")
        out = self._buffer("output", x.shape)
        x = self._apart_input(x, out)
        getattr(self.backend.kernels.softmax_nll, self._forward_kernel)(x, out)
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        self._require_forward(input)
        self._check_saved("output", self.output)  # the kernel reads it
        g = self._cast_grad(gradOutput, self.output.shape)
        gi = self._buffer("gradInput", g.shape)
        g = apart(g, gi)
        getattr(self.backend.kernels.softmax_nll, self._backward_kernel)(g, gi, self.output)
        self.gradInput = gi
        return gi


class SoftMax(_RowwiseSoftmax):
    """Row-wise softmax: ``exp(x) / sum(exp(x))`` over each row, computed stably.

    For a loss on class scores prefer ``LogSoftMax`` + ``ClassNLLCriterion`` or
    ``CrossEntropyCriterion``: they never take the log of a rounded-to-zero probability.

    Shape
    -----
    - input: (N, classes)
    - output: (N, classes), each row summing to 1

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.SoftMax().forward(np.zeros((1, 4), np.float32))
    array([[0.25, 0.25, 0.25, 0.25]], dtype=float32)
    """

    _forward_kernel = "softmax_forward"
    _backward_kernel = "softmax_backward"


class LogSoftMax(_RowwiseSoftmax):
    """Row-wise log-softmax: ``x - log(sum(exp(x)))`` over each row, computed stably; the
    input ``ClassNLLCriterion`` expects.

    Shape
    -----
    - input: (N, classes)
    - output: (N, classes), log-probabilities

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> out = fastnn.LogSoftMax().forward(np.zeros((1, 2), np.float32))
    >>> np.exp(out)
    array([[0.5, 0.5]], dtype=float32)
    """

    _forward_kernel = "log_softmax_forward"
    _backward_kernel = "log_softmax_backward"
