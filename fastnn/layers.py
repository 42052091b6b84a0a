"""Linear and Dropout; the normalization layers (BatchNormalization,
ChannelwiseScaling, BatchMeanSubtraction) are in ``normalization.py`` and importable
from here, and this file's ``__all__`` lists them too (``fastnn`` exports it)."""
import numpy as np

from ._contracts import Setting, ShapeOf, apart
from .activations import FUSABLE_ACTIVATIONS
from .backend import CPUBackend
from .module import GradientSlot, Module, rows
from ._runtime.checks import positive_int
from ._runtime.rng import dropout_key, module_rng
from .normalization import BatchMeanSubtraction, BatchNormalization, ChannelwiseScaling

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
