"""Parametric and normalization layers: Linear, Dropout, BatchNormalization,
ChannelwiseScaling, BatchMeanSubtraction."""
import numpy as np

from ._contracts import Setting, ShapeOf, apart, name_of
from .activations import FUSABLE_ACTIVATIONS
from .backend import CPUBackend
from .module import STATE_KEYS, GradientSlot, Module, rows
from ._runtime.checks import positive_int
from ._runtime.rng import dropout_key, module_rng

__all__ = ["Linear", "Dropout", "BatchNormalization", "ChannelwiseScaling",
           "BatchMeanSubtraction"]


#: Multiply-adds (rows x n_in x n_out) below which a Linear call stays on one thread.
LINEAR_SPLIT_MIN = 1 << 24


class Linear(Module):
    """Fully connected layer: ``output = input @ W.T + b``.

    Inside a ``Sequential``, a Linear followed by an activation (ReLU, LeakyReLU, ELU,
    SoftPlus, Sigmoid, Tanh) runs as one fused kernel per phase; both modules' ``output``
    and ``gradInput`` are still filled in.

    Parameters
    ----------
    n_in : int
        Features of each input row.
    n_out : int
        Features of each output row.

    Attributes
    ----------
    W : ndarray of shape (n_out, n_in)
        Weights, uniform in ±1/sqrt(n_in) at creation (seeded by ``fastnn.manual_seed``).
    b : ndarray of shape (n_out,)
        Bias, drawn like ``W``.
    gradW, gradb : ndarray
        Their gradients: ``backward`` adds to them until ``zeroGradParameters``.

    Shape
    -----
    - input: (N, n_in); float32 by default (``.double()`` for float64), other dtypes are cast
    - output: (N, n_out)

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.manual_seed(0)
    >>> layer = fastnn.Linear(3, 2)
    >>> out = layer.forward(np.ones((4, 3), np.float32))
    >>> out.shape, layer.W.shape
    ((4, 2), (2, 3))
    >>> layer.backward(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)).shape
    (4, 3)
    """

    _param_names = ("W", "b")
    _grad_names = ("gradW", "gradb")
    gradW = GradientSlot()
    gradb = GradientSlot()
    #: the sizes the GEMMs use: read from W, so they cannot disagree with it
    n_in = ShapeOf("W", 1)
    n_out = ShapeOf("W", 0)

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        owner = f"Linear({n_in!r}, {n_out!r})"
        n_in = positive_int(n_in, f"{owner}: n_in")
        n_out = positive_int(n_out, f"{owner}: n_out")
        stdv = 1.0 / np.sqrt(n_in)
        rng = module_rng()
        self.W = rng.uniform(-stdv, stdv, size=(n_out, n_in)).astype(self.dtype)
        self.b = rng.uniform(-stdv, stdv, size=n_out).astype(self.dtype)
        self.gradW = np.zeros_like(self.W)
        self.gradb = np.zeros_like(self.b)

    def _input(self, input):
        x = self._cast_input(input)
        if x.ndim != 2 or x.shape[1] != self.W.shape[1]:  # n_in, without the descriptor
            raise ValueError(f"{self!r}: expected input of shape (N, {self.n_in}), "
                             f"got {tuple(x.shape)}")
        return x

    #: True when this Linear splits its batch over fastnn's threads: set by a container
    #: that holds layers which always split (Conv2d, MaxPool2d; see ``use_batch_split``).
    #: Elsewhere it leaves its GEMMs to BLAS's threads, which the MLP's step prefers
    #: (asv ``ablations.LinearSplit``).
    split_batch = False

    def use_batch_split(self) -> None:
        """Split this layer's batch over fastnn's threads from now on (a container's
        hint: see ``Module.use_batch_split``)."""
        self.split_batch = True

    # Each phase calls its kernel directly unless split: the closure and the slicing
    # cost microseconds, which is what batch 1 is made of.

    def _bounds(self, x):
        """(batch parts, multiply-adds of one GEMM of this call) for a split call."""
        work = x.shape[0] * self.W.size
        return self._batch_parts(x.shape[0], work, LINEAR_SPLIT_MIN), work

    def _run(self, x, fn):
        self._run_split(fn, *self._bounds(x))

    def updateOutput(self, input):
        x = self._input(input)
        out = self._buffer("output", (x.shape[0], self.W.shape[0]))
        x = self._apart_input(x, out)
        affine, W, b = self.backend.kernels.affine, self.W, self.b
        if not self.split_batch:
            affine.affine_forward(x, out, W, b)
        else:
            self._run(x, lambda i, lo, hi: affine.affine_forward(
                rows(x, lo, hi), rows(out, lo, hi), W, b))
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get("_skip_grad_input"):  # gradInput = None: no GEMM
            return None
        self._require_forward(input)
        x = self._input(input)
        g = self._cast_grad(gradOutput, (x.shape[0], self.W.shape[0]))
        gi = self._buffer("gradInput", x.shape)
        g = apart(g, gi)
        affine, W = self.backend.kernels.affine, self.W
        if not self.split_batch:
            affine.affine_backward_input(g, gi, W)
        else:
            self._run(x, lambda i, lo, hi: affine.affine_backward_input(
                rows(g, lo, hi), rows(gi, lo, hi), W))
        self.gradInput = gi
        return gi

    def accGradParameters(self, input, gradOutput):
        x = self._input(input)
        g = self._cast_grad(gradOutput, (x.shape[0], self.W.shape[0]))
        affine = self.backend.kernels.affine
        if not self.split_batch:
            affine.affine_backward_params(x, g, self._raw_grad("gradW"), self._raw_grad("gradb"),
                                          self._take_accumulate_flag())
            return
        bounds, work = self._bounds(x)
        grads = self._param_grad_parts(len(bounds), ("W", "b"))
        self._run_split(lambda i, lo, hi: affine.affine_backward_params(
            rows(x, lo, hi), rows(g, lo, hi), *grads[i]), bounds, work)
        self._sum_param_grad_parts(grads)

    # ---- fusion with a following activation (driven by Sequential) ----
    def can_fuse_with(self, nxt):
        # Built-in classes only: fusion skips both modules' own phases, so a subclass
        # (which may override updateOutput/updateGradInput) has to run unfused.
        return type(self) is Linear and type(nxt) in FUSABLE_ACTIVATIONS

    def forward_fused(self, input, act):
        self.__dict__["_fwd_src"] = None  # a reused input buffer may hold new values
        x = self._input(input)
        shape = (x.shape[0], self.W.shape[0])
        pre = self._buffer("output", shape)
        out = act.fused_output(shape)
        x = self._apart_input(self._apart_input(x, pre), out)
        affine, W, b = self.backend.kernels.affine, self.W, self.b
        code, alpha = act.fusion_spec()
        if not self.split_batch:
            affine.affine_activation_forward(x, pre, out, W, b, code, alpha)
        else:
            self._run(x, lambda i, lo, hi: affine.affine_activation_forward(
                rows(x, lo, hi), rows(pre, lo, hi), rows(out, lo, hi), W, b, code, alpha))
        self.output = pre
        act.output = out
        return out

    def backward_fused(self, input, gradOutput, act):
        x = self._input(input)
        shape = (x.shape[0], self.W.shape[0])
        self._require_forward(input, shape)
        g, delta = act.fused_backward_buffers(input, gradOutput, shape)
        need_gi = not self.__dict__.get("_skip_grad_input")
        # without gradInput the kernel skips that GEMM and never touches its argument
        gi = self._buffer("gradInput", x.shape) if need_gi else delta
        # the kernel writes delta, then gradInput, then reads the input again; gradOutput
        # is read once, element by element, before anything else is written
        x = apart(apart(x, gi), delta)
        affine, W = self.backend.kernels.affine, self.W
        (code, alpha), pre, out = act.fusion_spec(), self.output, act.output
        if not self.split_batch:
            affine.affine_activation_backward(
                x, g, gi, delta, self._raw_grad("gradW"), self._raw_grad("gradb"), pre, out, W,
                code, alpha, self._take_accumulate_flag(), need_gi)
        else:
            bounds, work = self._bounds(x)
            grads = self._param_grad_parts(len(bounds), ("W", "b"))
            self._run_split(lambda i, lo, hi: affine.affine_activation_backward(
                rows(x, lo, hi), rows(g, lo, hi), rows(gi, lo, hi), rows(delta, lo, hi),
                grads[i][0], grads[i][1], rows(pre, lo, hi), rows(out, lo, hi), W, code, alpha,
                grads[i][2], need_gi), bounds, work)
            self._sum_param_grad_parts(grads)
        act.gradInput = delta
        if not need_gi:
            return None
        self.gradInput = gi
        return gi

    def __repr__(self):
        return f"Linear {self.n_in} -> {self.n_out}"


class Dropout(Module):
    """Drops each unit with probability ``p`` in training and scales the kept ones by
    ``1 / (1 - p)``; the identity in evaluate mode.

    The mask comes from fastnn's generator (``fastnn.manual_seed``), a fresh one per
    ``forward``; ``backward`` applies the same mask.

    Parameters
    ----------
    p : float
        The drop probability, in [0, 1).

    Shape
    -----
    - input: any shape
    - output: the input's shape

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> drop = fastnn.Dropout(0.5)
    >>> out = drop.forward(np.ones((2, 1000), np.float32))
    >>> sorted(set(out.ravel().tolist()))
    [0.0, 2.0]
    >>> drop.evaluate().forward(np.ones((1, 3), np.float32))
    array([[1., 1., 1.]], dtype=float32)
    """

    stochastic_in_training = True
    p = Setting(lambda owner, name, p: _drop_probability(p))

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def updateOutput(self, input):
        x = self._cast_input(input)
        # backward follows the mode of this forward, not the current one: a mask left
        # from an earlier batch may have another size (the kernel does not bounds-check)
        self._masked_forward = self.training and self.p != 0
        if not self._masked_forward:
            self.output = x
            return x
        out = self._buffer("output", x.shape)
        mask = self._buffer("mask", x.shape)
        x = self._apart_input(x, out)
        if self.backend is CPUBackend:
            # each mask's key comes from NumPy's global generator, as the homework's masks
            # do: np.random.seed fixes them (the GPU's follow fastnn.manual_seed)
            self.backend.kernels.dropout.seed(dropout_key())
        self.backend.kernels.dropout.dropout_forward(x, out, mask, self.p)
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        self._require_forward(input)
        g = self._cast_grad(gradOutput, self.output.shape)
        if not self._masked_forward:
            self.gradInput = g
            return g
        mask = self._buffers.get("mask")
        if mask is None:  # e.g. a copy made between forward and backward
            raise RuntimeError(f"{self!r}: backward called before forward")
        # the kernel walks gradOutput's length through the mask
        self._check_saved("the saved mask", mask, g.shape)
        gi = self._buffer("gradInput", g.shape)
        self.backend.kernels.dropout.dropout_backward(g, gi, mask)
        self.gradInput = gi
        return gi

    def __repr__(self):
        return f"Dropout(p={self.p})"


def _drop_probability(p):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p < 1:
        raise ValueError(f"Dropout: p is the drop probability and must lie in [0, 1), got {p!r}")
    return float(p)


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
