"""Criterions: ``forward(input, target)`` returns the loss (a float on the CPU, a
:class:`~fastnn.device_loss.DeviceLoss` on the GPU, which copies it back only when
read) and ``backward(input, target)`` returns and stores ``gradInput``. They are the
only place that divides by the batch size. Targets are class indices (1-D ints) or
rows of the input's width (one-hot or soft labels).

On the GPU a training step makes no host round trip: host targets are copied into
reused device buffers (once per forward/backward pair), and the label range check and
ClassNLL's input classification run on the device; their errors raise when the loss
is read (see ``device_loss``)."""
import numpy as np

from ._contracts import apart
from .backend import CPUBackend, is_cuda_object, to_numpy
from .criterion_base import Criterion

__all__ = ["Criterion", "MSECriterion", "ClassNLLCriterion", "ClassNLLCriterionUnstable",
           "CrossEntropyCriterion"]

from .kernels.codes import (LOG_PROBABILITIES as _LOG_PROBABILITIES,
                           PROBABILITIES as _PROBABILITIES, RAW_SCORES as _RAW_SCORES)
_FLOAT32_EPS = float(np.finfo(np.float32).eps)


class MSECriterion(Criterion):
    """Squared error summed over each sample's values, averaged over the batch:
    ``sum((input - target) ** 2) / N``.

    The homework's definition (a per-sample sum, not torch's per-element mean). For (N, C)
    input the target may also be class labels, compared with their one-hot rows.

    Shape
    -----
    - input: (N, ...)
    - target: the input's shape, or class indices (N,) for (N, C) input
    - output: a float

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.MSECriterion().forward(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
    5.0
    """

    def _pair(self, input, target):
        backend, x = self._input(input)
        if backend is CPUBackend:
            t = np.asarray(to_numpy(target))
        else:
            t = target if is_cuda_object(target) else np.asarray(target)
        if tuple(t.shape) == tuple(x.shape):
            if backend is not CPUBackend:
                return backend, x, self._upload(backend, "target", t, x.dtype)
            return backend, x, backend.to_device(t, x.dtype)
        if x.ndim == 2 and x.shape[1] > 1 and len(t.shape) in (1, 2):
            # class labels (the criterions' target contract) compare with their one-hot rows;
            # _dense_target validates them and names the shapes when they do not fit. One
            # column is regression: (N,) targets there are values, not labels.
            return backend, x, self._dense_target(backend, x, target)
        raise ValueError(f"{self!r}: target of shape {tuple(t.shape)} does not match input of "
                         f"shape {tuple(x.shape)}")

    def updateOutput(self, input, target):
        backend, x, t = self._pair(input, target)
        loss = self._loss(backend, x.dtype)
        backend.kernels.softmax_nll.mse_forward(x, t, loss, 1.0 / max(x.shape[0], 1))
        self.output = self._read_loss(loss)
        return self.output

    def updateGradInput(self, input, target):
        backend, x, t = self._pair(input, target)
        gi = self._buffer(backend, "gradInput", x.shape, x.dtype)
        # fed its own gradInput (as input or target): the kernels write it while reading them
        x, t = apart(x, gi), apart(t, gi)
        backend.kernels.softmax_nll.mse_backward(x, t, gi, 1.0 / max(x.shape[0], 1))
        self.gradInput = gi
        return gi


class ClassNLLCriterion(Criterion):
    """Negative log-likelihood with Torch's semantics: the input holds log-probabilities
    (``LogSoftMax``'s output).

    Probabilities (``SoftMax``'s output, as the homework feeds it) are detected exactly and
    work too; raw scores raise an error that says to add a LogSoftMax or use
    ``CrossEntropyCriterion``. Probabilities are clamped to at least 1e-15 (the homework's
    clip) before the log, so a SoftMax saturated by unscaled inputs gives a large finite
    loss, never ``ZeroDivisionError``; ``fastnn.diagnose`` names the cause.

    Shape
    -----
    - input: (N, classes), log-probabilities or probabilities
    - target: class indices (N,), or rows of the input's shape (one-hot or soft labels)
    - output: a float

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> logp = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
    >>> round(fastnn.ClassNLLCriterion().forward(logp, np.array([0, 1])), 6)
    0.490415
    """

    def _kind(self, backend, x):
        res = self._buffer(backend, "kind", (1,), np.int64)
        n, c = x.shape
        # float32 rounding even for float64 input: float32 probabilities (every fastnn
        # SoftMax by default) upcast by the caller still sum to 1 only to float32 precision
        tol = 64 * max(c, 1) * _FLOAT32_EPS
        backend.kernels.softmax_nll.classify_scores(x, res, tol)
        if backend is not CPUBackend:
            return res  # read by the loss kernels on the device; errors via check_targets
        kind = int(res[0])
        if kind == _RAW_SCORES:
            raise ValueError(self._raw_scores_message(tuple(x.shape)))
        return 1 if kind == _PROBABILITIES else 0

    def updateOutput(self, input, target):
        backend, x = self._input(input)
        kind, t = self._target(backend, x, target)
        is_prob = self._kind(backend, x)
        if backend is not CPUBackend:
            self._check_on_device(backend, x, t if kind == "index" else None, is_prob)
        loss = self._loss(backend, x.dtype)
        k = backend.kernels.softmax_nll
        fn = k.class_nll_forward if kind == "index" else k.class_nll_dense_forward
        fn(x, t, loss, is_prob, 1.0 / max(x.shape[0], 1))
        self.output = self._read_loss(loss)
        return self.output

    def updateGradInput(self, input, target):
        backend, x = self._input(input)
        kind, t = self._target(backend, x, target)
        is_prob = self._kind(backend, x)
        gi = self._buffer(backend, "gradInput", x.shape, x.dtype)
        # fed its own gradInput (as input or target): the kernels write it while reading them
        x = apart(x, gi)
        if kind != "index":  # labels are integers: never the float gradInput
            t = apart(t, gi)
        k = backend.kernels.softmax_nll
        fn = k.class_nll_backward if kind == "index" else k.class_nll_dense_backward
        fn(x, t, gi, is_prob, 1.0 / max(x.shape[0], 1))
        self.gradInput = gi
        return gi


class ClassNLLCriterionUnstable(Criterion):
    """The homework's negative log-likelihood on probabilities, each clipped to
    ``[EPS, 1 - EPS]`` before the log.

    Kept for the homework's comparison; ``ClassNLLCriterion`` accepts probabilities too and
    is exact.

    Shape
    -----
    - input: (N, classes), probabilities
    - target: class indices (N,), or rows of the input's shape (one-hot or soft labels)
    - output: a float

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> p = np.array([[0.5, 0.5], [0.25, 0.75]])
    >>> round(fastnn.ClassNLLCriterionUnstable().forward(p, np.array([0, 1])), 6)
    0.490415
    """

    EPS = 1e-15

    def _dense(self, backend, x, target):
        return self._dense_target(backend, x, target)

    def updateOutput(self, input, target):
        backend, x = self._input(input)
        t = self._dense(backend, x, target)
        loss = self._loss(backend, x.dtype)
        backend.kernels.softmax_nll.clipped_nll_forward(x, t, loss, self.EPS,
                                                        1.0 / max(x.shape[0], 1))
        self.output = self._read_loss(loss)
        return self.output

    def updateGradInput(self, input, target):
        backend, x = self._input(input)
        t = self._dense(backend, x, target)
        gi = self._buffer(backend, "gradInput", x.shape, x.dtype)
        # fed its own gradInput (as input or target): the kernels write it while reading them
        x, t = apart(x, gi), apart(t, gi)
        backend.kernels.softmax_nll.clipped_nll_backward(x, t, gi, self.EPS,
                                                         1.0 / max(x.shape[0], 1))
        self.gradInput = gi
        return gi


class CrossEntropyCriterion(Criterion):
    """Cross-entropy on raw scores: ``LogSoftMax`` and the negative log-likelihood fused
    in one kernel (no log of a rounded probability).

    Shape
    -----
    - input: (N, classes), raw scores
    - target: class indices (N,), or rows of the input's shape (one-hot or soft labels)
    - output: a float

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> round(fastnn.CrossEntropyCriterion().forward(np.zeros((2, 4)), np.array([0, 3])), 6)
    1.386294
    """

    def updateOutput(self, input, target):
        backend, x = self._input(input)
        kind, t = self._target(backend, x, target)
        if backend is not CPUBackend and kind == "index":
            self._check_on_device(backend, x, t)
        loss = self._loss(backend, x.dtype)
        probs = self._buffer(backend, "probabilities", x.shape, x.dtype)
        k = backend.kernels.softmax_nll
        fn = k.cross_entropy_forward if kind == "index" else k.cross_entropy_dense_forward
        fn(x, t, loss, probs, 1.0 / max(x.shape[0], 1))
        self._probs_source = input
        self.output = self._read_loss(loss)
        return self.output

    def updateGradInput(self, input, target):
        backend, x = self._input(input)
        kind, t = self._target(backend, x, target)
        probs = self._buffers.get("probabilities")
        if probs is None or tuple(probs.shape) != tuple(x.shape) or \
                getattr(self, "_probs_source", None) is not input:
            # backward without a matching forward: recompute the softmax
            self.updateOutput(input, target)
            probs = self._buffers["probabilities"]
        gi = self._buffer(backend, "gradInput", x.shape, x.dtype)
        # fed its own gradInput (as input or target): the kernels write it while reading them
        x = apart(x, gi)
        if kind != "index":  # labels are integers: never the float gradInput
            t = apart(t, gi)
        k = backend.kernels.softmax_nll
        fn = k.cross_entropy_backward if kind == "index" else k.cross_entropy_dense_backward
        fn(t, gi, probs, 1.0 / max(x.shape[0], 1))
        # the kept softmax serves one backward: a net refills the same output array every
        # step, so a later backward without forward would pass the identity check stale
        self._probs_source = None
        self.gradInput = gi
        return gi
