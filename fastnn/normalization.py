"""Normalization layers: BatchNormalization, BatchMeanSubtraction, ChannelwiseScaling
(per-feature or per-channel statistics and affine maps). ``fastnn.layers`` re-exports
them."""
import numpy as np

from ._contracts import Setting, ShapeOf, apart, name_of
from .module import STATE_KEYS, GradientSlot, Module
from ._runtime.checks import positive_int

__all__ = ["BatchNormalization", "ChannelwiseScaling", "BatchMeanSubtraction"]


def _moving_alpha(owner, name, alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) \
            or not 0 <= alpha <= 1:
        raise ValueError(f"{owner}: alpha must lie in [0, 1], got {alpha!r}")
    return float(alpha)


def _as_channels(owner, x):
    """(N, C) -> (N, C, 1); (N, C, H, W) -> (N, C, H*W): views, no copies."""
    if x.ndim == 2:
        return x.reshape(x.shape[0], x.shape[1], 1)
    if x.ndim == 4:
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
    raise ValueError(f"{owner!r}: expected 2-D (N, features) or 4-D (N, C, H, W) input, "
                     f"got shape {tuple(x.shape)}")


class BatchNormalization(Module):
    """Normalises each feature (2-D input) or each channel (4-D input) to zero mean and unit
    variance.

    Training uses the batch mean and biased variance and updates the moving statistics,
    ``moving = alpha * moving + (1 - alpha) * batch``; evaluate mode uses the moving ones.
    The moving statistics are created at the first forward (mean 0, variance 1). There is
    no scale and shift: follow it with ``ChannelwiseScaling`` for those, as in the homework.

    Parameters
    ----------
    alpha : float
        Weight of the old moving statistics, in [0, 1] (0 keeps only the last batch's).
    eps : float, optional
        Added to the variance; default ``EPS`` (1e-3; torch's BatchNorm uses 1e-5).

    Attributes
    ----------
    moving_mean, moving_variance : ndarray of shape (C,) or None
        The moving statistics; None before the first forward.

    Shape
    -----
    - input: (N, C) or (N, C, H, W); training needs more than one value per feature
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> bn = fastnn.BatchNormalization(0.9)
    >>> out = bn.forward(np.array([[1.0, 10.0], [3.0, 30.0]], np.float32))
    >>> np.round(out, 2)
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> bn.moving_mean
    array([0.2, 2. ], dtype=float32)
    """

    EPS = 1e-3
    _state_names = ("moving_mean", "moving_variance")
    _center_only = False
    alpha = Setting(_moving_alpha)

    def __init__(self, alpha: float = 0., eps: "float | None" = None) -> None:
        super().__init__()
        self.alpha = alpha
        if eps is not None:  # torch's BatchNorm uses 1e-5 (fastnn.from_torch passes it)
            if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) \
                    or not eps > 0:
                raise ValueError(f"{type(self).__name__}: eps must be > 0, got {eps!r}")
            self.EPS = float(eps)
        self.moving_mean = None
        self.moving_variance = None

    def __setattr__(self, name, value):
        # The kernels index both statistics by channel: they must be 1-D, of one length
        # (also after a checkpoint load, which assigns them), of the module's dtype.
        if name in self._state_names and value is not None and not self.__dict__.get("_rebinding"):
            value = self._statistic(name, value)
        super().__setattr__(name, value)

    def validate_states(self, states: dict) -> None:
        """Raise ValueError unless ``states`` (``{name: array or None}``, e.g. read from
        a checkpoint) can be assigned as this module's moving statistics: each 1-D and
        numeric, both of one length, and none missing where the other is given.

        Parameters
        ----------
        states : dict
            ``moving_mean``/``moving_variance`` (or torch's ``running_mean``/``running_var``)
            arrays; None for absent ones.
        """
        names = {STATE_KEYS.get(n, n): n for n in self._state_names}  # torch's names too
        merged = {n: self.__dict__.get(n) for n in self._state_names}
        merged.update({names.get(n, n): a for n, a in states.items()
                       if a is not None and names.get(n, n) in merged})
        for n, a in merged.items():
            if a is not None and (len(a.shape) != 1 or np.dtype(a.dtype).kind not in "fiu"):
                raise ValueError(f"{self!r}: {n} must be a 1-D array of numbers, got "
                                 f"{np.dtype(a.dtype)} of shape {tuple(a.shape)}")
        (na, a), (nb, b) = merged.items()
        if (a is None) != (b is None):
            raise ValueError(f"{self!r}: {nb if b is None else na} is missing while "
                             f"{na if b is None else nb} is given")
        if a is not None and tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"{self!r}: {na} has shape {tuple(a.shape)} but {nb} has "
                             f"{tuple(b.shape)}; both hold one value per feature/channel")

    def _statistic(self, name, value):
        a = value if isinstance(value, np.ndarray) else np.asarray(self.backend.to_numpy(value))
        if a.ndim != 1 or a.dtype.kind not in "fiu":
            raise ValueError(f"{name_of(self)}: {name} must be a 1-D array of numbers (one per "
                             f"feature/channel), got shape {a.shape} and dtype {a.dtype}")
        other = self._state_names[name == self._state_names[0]]
        b = self.__dict__.get(other)
        if b is not None and tuple(b.shape) != a.shape:
            raise ValueError(f"{name_of(self)}: {name} of shape {a.shape} does not match "
                             f"{other} of shape {tuple(b.shape)}: both hold one value per "
                             f"feature/channel")
        if self.__dict__.get(name) is not None:
            return a  # Module.__setattr__ copies it into the current array (same shape)
        # a copy of our own: training updates it in place, and the caller keeps theirs
        return self.backend.to_device(np.array(a, dtype=self.dtype), self.dtype)

    def _input(self, input):
        x = self._cast_input(input)
        x3 = _as_channels(self, x)
        n, c, s = x3.shape
        d = self.__dict__
        if d["moving_mean"] is None and d["moving_variance"] is None:
            self.moving_mean = self.backend.zeros((c,), self.dtype)
            self.moving_variance = self.backend.to_device(np.ones(c, self.dtype), self.dtype)
        for name in self._state_names:
            self._check_statistic(name, c, x.shape)
        if self.training and (n * s == 0 or (n < 2 and s == 1)):
            raise ValueError(f"{self!r}: training needs a batch of at least 2 values per "
                             f"feature/channel to compute batch statistics, got input of "
                             f"shape {tuple(x.shape)}")
        return x, x3

    def _check_statistic(self, name, c, shape):
        a = self.__dict__[name]
        if a is None:
            raise ValueError(f"{self!r}: {name} is None but the other moving statistic is "
                             f"set; assign both (one value per feature/channel)")
        if a.shape != (c,) and tuple(a.shape) != (c,):
            raise ValueError(f"{self!r}: input has {c} features/channels (shape {tuple(shape)}), "
                             f"but {name} has shape {tuple(a.shape)}")
        self._check_saved(name, a)

    def updateOutput(self, input):
        x, x3 = self._input(input)
        out = self._buffer("output", x.shape)
        x3 = self._apart_input(x, out).reshape(x3.shape)
        out3 = out.reshape(x3.shape)
        k = self.backend.kernels.batchnorm
        if self.training:
            c = x3.shape[1]
            k.batchnorm_forward_train(x3, out3, self._buffer("mean", (c,)),
                                      self._buffer("invstd", (c,)), self.moving_mean,
                                      self.moving_variance, self.alpha, self.EPS,
                                      self._center_only)
        else:
            k.batchnorm_forward_eval(x3, out3, self.moving_mean, self.moving_variance,
                                     self.EPS, self._center_only)
        self._trained_forward = self.training
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        self._require_forward(input)
        g = self._cast_grad(gradOutput, self.output.shape)
        g3 = _as_channels(self, g)
        gi = self._buffer("gradInput", g.shape)
        g3 = apart(g, gi).reshape(g3.shape)
        k = self.backend.kernels.batchnorm
        c = g3.shape[1]
        self._check_saved("output", self.output)  # backward_train reads it
        if self._trained_forward:
            self._check_saved("the saved invstd", self._buffers["invstd"], (c,))
            k.batchnorm_backward_train(g3, gi.reshape(g3.shape),
                                       self.output.reshape(g3.shape),
                                       self._buffers["invstd"], self._center_only)
        else:
            self._check_statistic("moving_variance", c, g.shape)
            k.batchnorm_backward_eval(g3, gi.reshape(g3.shape), self.moving_variance,
                                      self.EPS, self._center_only)
        self.gradInput = gi
        return gi

    def __repr__(self):
        eps = "" if self.EPS == type(self).EPS else f", eps={self.EPS}"
        return f"{type(self).__name__}(alpha={self.alpha}{eps})"


class BatchMeanSubtraction(BatchNormalization):
    """The seed notebook's mean-only normalisation: subtracts the batch mean per feature or
    channel (the moving mean in evaluate mode), with BatchNormalization's moving-average
    rule.

    Parameters
    ----------
    alpha : float
        Weight of the old moving mean, in [0, 1].
    eps : float, optional
        Unused (the mean needs no variance); kept for BatchNormalization's signature.

    Shape
    -----
    - input: (N, C) or (N, C, H, W)
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.BatchMeanSubtraction().forward(np.array([[1.0], [3.0]], np.float32))
    array([[-1.],
           [ 1.]], dtype=float32)
    """

    _center_only = True


class ChannelwiseScaling(Module):
    """Learned scale and shift per feature (2-D input) or per channel (4-D input):
    ``output = input * gamma + beta``.

    Parameters
    ----------
    n_out : int
        Features or channels.

    Attributes
    ----------
    gamma : ndarray of shape (n_out,)
        Scales, ones at creation.
    beta : ndarray of shape (n_out,)
        Shifts, zeros at creation.
    gradGamma, gradBeta : ndarray
        Their accumulated gradients.

    Shape
    -----
    - input: (N, n_out) or (N, n_out, H, W)
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> scale = fastnn.ChannelwiseScaling(2)
    >>> scale.gamma[:] = [2.0, 3.0]
    >>> scale.forward(np.ones((1, 2), np.float32))
    array([[2., 3.]], dtype=float32)
    """

    _param_names = ("gamma", "beta")
    _grad_names = ("gradGamma", "gradBeta")
    gradGamma = GradientSlot()
    gradBeta = GradientSlot()
    n_out = ShapeOf("gamma", 0)

    def __init__(self, n_out: int) -> None:
        super().__init__()
        n_out = positive_int(n_out, f"ChannelwiseScaling({n_out!r}): n_out")
        self.gamma = np.ones(n_out, self.dtype)
        self.beta = np.zeros(n_out, self.dtype)
        self.gradGamma = np.zeros_like(self.gamma)
        self.gradBeta = np.zeros_like(self.beta)

    def _input(self, input):
        x = self._cast_input(input)
        x3 = _as_channels(self, x)
        if x3.shape[1] != self.gamma.shape[0]:
            raise ValueError(f"{self!r}: expected {self.n_out} features/channels, got input "
                             f"of shape {tuple(x.shape)}")
        return x, x3

    def updateOutput(self, input):
        x, x3 = self._input(input)
        out = self._buffer("output", x.shape)
        x3 = self._apart_input(x, out).reshape(x3.shape)
        self.backend.kernels.scaling.channelwise_scaling_forward(
            x3, out.reshape(x3.shape), self.gamma, self.beta)
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        self._require_forward(input)
        x, x3 = self._input(input)
        g = self._cast_grad(gradOutput, x.shape)
        gi = self._buffer("gradInput", x.shape)
        g = apart(g, gi)
        self.backend.kernels.scaling.channelwise_scaling_backward_input(
            g.reshape(x3.shape), gi.reshape(x3.shape), self.gamma)
        self.gradInput = gi
        return gi

    def accGradParameters(self, input, gradOutput):
        x, x3 = self._input(input)
        g = self._cast_grad(gradOutput, x.shape)
        self.backend.kernels.scaling.channelwise_scaling_backward_params(
            x3, g.reshape(x3.shape), self._raw_grad("gradGamma"), self._raw_grad("gradBeta"),
            self._take_accumulate_flag())

    def __repr__(self):
        return f"ChannelwiseScaling {self.n_out}"
