"""Parametric and normalization layers: Linear, Dropout, BatchNormalization,
ChannelwiseScaling, BatchMeanSubtraction."""
import numpy as np

from .activations import FUSABLE_ACTIVATIONS
from .module import GradientSlot, Module, rows
from ._runtime.rng import module_rng

__all__ = ["Linear", "Dropout", "BatchNormalization", "ChannelwiseScaling",
           "BatchMeanSubtraction"]


def _check_positive_int(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


#: Multiply-adds (rows x n_in x n_out) below which a Linear call stays on one thread.
LINEAR_SPLIT_MIN = 1 << 24


class Linear(Module):
    """y = x @ W.T + b, W of shape (n_out, n_in), uniform init in ±1/sqrt(n_in)."""

    _param_names = ("W", "b")
    _grad_names = ("gradW", "gradb")
    gradW = GradientSlot()
    gradb = GradientSlot()

    def __init__(self, n_in, n_out):
        super().__init__()
        n_in = _check_positive_int(f"Linear({n_in!r}, {n_out!r})", "n_in", n_in)
        n_out = _check_positive_int(f"Linear({n_in!r}, {n_out!r})", "n_out", n_out)
        self.n_in, self.n_out = n_in, n_out
        stdv = 1.0 / np.sqrt(n_in)
        rng = module_rng()
        self.W = rng.uniform(-stdv, stdv, size=(n_out, n_in)).astype(self.dtype)
        self.b = rng.uniform(-stdv, stdv, size=n_out).astype(self.dtype)
        self.gradW = np.zeros_like(self.W)
        self.gradb = np.zeros_like(self.b)

    def _input(self, input):
        x = self._cast_input(input)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.n_in}), "
                             f"got {tuple(x.shape)}")
        return x

    #: Set by a container that holds layers which split their batch (Conv2d, MaxPool2d):
    #: this Linear then splits too. Elsewhere it leaves its GEMMs to BLAS's threads,
    #: which the MLP's step prefers (asv ``ablations.LinearSplit``).
    _split_batch = False

    # Each phase calls its kernel directly unless split: the closure and the slicing
    # cost microseconds, which is what batch 1 is made of.

    def _bounds(self, x):
        """(batch parts, multiply-adds of one GEMM of this call) for a split call."""
        work = x.shape[0] * self.n_in * self.n_out
        return self._batch_parts(x.shape[0], work, LINEAR_SPLIT_MIN), work

    def _run(self, x, fn):
        self._run_split(fn, *self._bounds(x))

    def updateOutput(self, input):
        x = self._input(input)
        out = self._buffer("output", (x.shape[0], self.n_out))
        affine, W, b = self.backend.kernels.affine, self.W, self.b
        if not self._split_batch:
            affine.affine_forward(x, out, W, b)
        else:
            self._run(x, lambda i, lo, hi: affine.affine_forward(
                rows(x, lo, hi), rows(out, lo, hi), W, b))
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        self._require_forward(input)
        x = self._input(input)
        g = self._cast_grad(gradOutput, (x.shape[0], self.n_out))
        gi = self._buffer("gradInput", x.shape)
        affine, W = self.backend.kernels.affine, self.W
        if not self._split_batch:
            affine.affine_backward_input(g, gi, W)
        else:
            self._run(x, lambda i, lo, hi: affine.affine_backward_input(
                rows(g, lo, hi), rows(gi, lo, hi), W))
        self.gradInput = gi
        return gi

    def accGradParameters(self, input, gradOutput):
        x = self._input(input)
        g = self._cast_grad(gradOutput, (x.shape[0], self.n_out))
        affine = self.backend.kernels.affine
        if not self._split_batch:
            affine.affine_backward_params(x, g, self._raw_grad("gradW"), self._raw_grad("gradb"),
                                          self._take_accumulate_flag())
            return
        bounds, work = self._bounds(x)
        grads = self._param_grad_parts(len(bounds))
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
        shape = (x.shape[0], self.n_out)
        pre = self._buffer("output", shape)
        out = act._buffer("output", shape)
        affine, W, b = self.backend.kernels.affine, self.W, self.b
        code, alpha = act._fusable_code, act._alpha_value()
        if not self._split_batch:
            affine.affine_activation_forward(x, pre, out, W, b, code, alpha)
        else:
            self._run(x, lambda i, lo, hi: affine.affine_activation_forward(
                rows(x, lo, hi), rows(pre, lo, hi), rows(out, lo, hi), W, b, code, alpha))
        self.output = pre
        act.output = out
        return out

    def backward_fused(self, input, gradOutput, act):
        x = self._input(input)
        shape = (x.shape[0], self.n_out)
        self._require_forward(input, shape)
        act._require_forward(input, shape)
        g = act._cast_grad(gradOutput, shape)
        delta = act._buffer("gradInput", shape)
        gi = self._buffer("gradInput", x.shape)
        affine, W = self.backend.kernels.affine, self.W
        code, alpha, pre, out = act._fusable_code, act._alpha_value(), self.output, act.output
        if not self._split_batch:
            affine.affine_activation_backward(
                x, g, gi, delta, self._raw_grad("gradW"), self._raw_grad("gradb"), pre, out, W,
                code, alpha, self._take_accumulate_flag(), True)
        else:
            bounds, work = self._bounds(x)
            grads = self._param_grad_parts(len(bounds))
            self._run_split(lambda i, lo, hi: affine.affine_activation_backward(
                rows(x, lo, hi), rows(g, lo, hi), rows(gi, lo, hi), rows(delta, lo, hi),
                grads[i][0], grads[i][1], rows(pre, lo, hi), rows(out, lo, hi), W, code, alpha,
                grads[i][2], True), bounds, work)
            self._sum_param_grad_parts(grads)
        act.gradInput = delta
        self.gradInput = gi
        return gi

    def __repr__(self):
        return f"Linear {self.n_in} -> {self.n_out}"


class Dropout(Module):
    """Drops each unit with probability p in training and scales the kept ones by
    1/(1-p); identity in evaluate mode."""

    _gradcheck_eval_only = True

    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p is the drop probability and must lie in [0, 1), got {p!r}")
        self.p = float(p)

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
        gi = self._buffer("gradInput", g.shape)
        self.backend.kernels.dropout.dropout_backward(g, gi, mask)
        self.gradInput = gi
        return gi

    def __repr__(self):
        return f"Dropout(p={self.p})"


def _as_channels(owner, x):
    """(N, C) -> (N, C, 1); (N, C, H, W) -> (N, C, H*W): views, no copies."""
    if x.ndim == 2:
        return x.reshape(x.shape[0], x.shape[1], 1)
    if x.ndim == 4:
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
    raise ValueError(f"{owner!r}: expected 2-D (N, features) or 4-D (N, C, H, W) input, "
                     f"got shape {tuple(x.shape)}")


class BatchNormalization(Module):
    """Normalizes per feature (2-D input) or per channel (4-D input). Training uses the
    batch mean and biased variance and updates
    ``moving = alpha * moving + (1 - alpha) * batch``; evaluate mode uses the moving ones.
    The moving statistics are created at the first forward (mean 0, variance 1).
    ``eps`` (default ``EPS`` = 1e-3) is added to the variance."""

    EPS = 1e-3
    _state_names = ("moving_mean", "moving_variance")
    _center_only = False

    def __init__(self, alpha=0., eps=None):
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) \
                or not 0 <= alpha <= 1:
            raise ValueError(f"{type(self).__name__}: alpha must lie in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        if eps is not None:  # torch's BatchNorm uses 1e-5 (fastnn.from_torch passes it)
            if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) \
                    or not eps > 0:
                raise ValueError(f"{type(self).__name__}: eps must be > 0, got {eps!r}")
            self.EPS = float(eps)
        self.moving_mean = None
        self.moving_variance = None

    def _input(self, input):
        x = self._cast_input(input)
        x3 = _as_channels(self, x)
        c = x3.shape[1]
        if self.moving_mean is None:
            self.moving_mean = self.backend.zeros((c,), self.dtype)
            ones = np.ones(c, self.dtype)
            self.moving_variance = self.backend.to_device(ones, self.dtype)
        elif self.moving_mean.shape[0] != c:
            raise ValueError(f"{self!r}: input has {c} features/channels (shape {tuple(x.shape)}), "
                             f"but the moving statistics have {self.moving_mean.shape[0]}")
        if x.shape[0] < 2 and self.training and x3.shape[2] == 1:
            raise ValueError(f"{self!r}: training needs a batch of at least 2 to compute "
                             f"batch statistics, got input of shape {tuple(x.shape)}")
        return x, x3

    def updateOutput(self, input):
        x, x3 = self._input(input)
        out = self._buffer("output", x.shape)
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
        k = self.backend.kernels.batchnorm
        if self._trained_forward:
            k.batchnorm_backward_train(g3, gi.reshape(g3.shape),
                                       self.output.reshape(g3.shape),
                                       self._buffers["invstd"], self._center_only)
        else:
            k.batchnorm_backward_eval(g3, gi.reshape(g3.shape), self.moving_variance,
                                      self.EPS, self._center_only)
        self.gradInput = gi
        return gi

    def __repr__(self):
        eps = "" if self.EPS == type(self).EPS else f", eps={self.EPS}"
        return f"{type(self).__name__}(alpha={self.alpha}{eps})"


class BatchMeanSubtraction(BatchNormalization):
    """The seed notebook's mean-only layer: subtracts the batch mean (moving mean in
    evaluate mode), with the same moving-average rule as BatchNormalization."""

    _center_only = True


class ChannelwiseScaling(Module):
    """y = x * gamma + beta per feature (2-D input) or per channel (4-D input)."""

    _param_names = ("gamma", "beta")
    _grad_names = ("gradGamma", "gradBeta")
    gradGamma = GradientSlot()
    gradBeta = GradientSlot()

    def __init__(self, n_out):
        super().__init__()
        self.n_out = _check_positive_int(f"ChannelwiseScaling({n_out!r})", "n_out", n_out)
        self.gamma = np.ones(self.n_out, self.dtype)
        self.beta = np.zeros(self.n_out, self.dtype)
        self.gradGamma = np.zeros_like(self.gamma)
        self.gradBeta = np.zeros_like(self.beta)

    def _input(self, input):
        x = self._cast_input(input)
        x3 = _as_channels(self, x)
        if x3.shape[1] != self.n_out:
            raise ValueError(f"{self!r}: expected {self.n_out} features/channels, got input "
                             f"of shape {tuple(x.shape)}")
        return x, x3

    def updateOutput(self, input):
        x, x3 = self._input(input)
        out = self._buffer("output", x.shape)
        self.backend.kernels.scaling.channelwise_scaling_forward(
            x3, out.reshape(x3.shape), self.gamma, self.beta)
        self.output = out
        return out

    def updateGradInput(self, input, gradOutput):
        self._require_forward(input)
        x, x3 = self._input(input)
        g = self._cast_grad(gradOutput, x.shape)
        gi = self._buffer("gradInput", x.shape)
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
