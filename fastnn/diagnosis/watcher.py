"""``fastnn.watch``: findings from a hand-written training loop, as it runs.

The watch replaces ``forward``, ``backward`` and ``zeroGradParameters`` of the net and
``forward`` of the criterion by instance attributes that call the originals
and look at what passes; leaving the ``with`` block deletes them again. Results are
unchanged: the wrappers only read. Every step costs a few counters and one
``math.isfinite``; the expensive looks (parameter deltas, input scale, dead units, the
loss windows) run every ``sample_every`` training steps. asv: ``diagnose.TimeWatchedStep``.
"""
from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from . import checks
from .findings import Diagnosis, Finding

if TYPE_CHECKING:
    from ..criterions import Criterion
    from ..module import Module

__all__ = ["watch", "Watch"]

#: Mean per-step update/weight ratio under which parameters "barely move".
UPDATE_RATIO_MIN = 1e-5
#: The loss is "at chance" when its recent mean lies within this fraction of ln(C).
CHANCE_TOLERANCE = 0.03


class Watch(Diagnosis):
    """Findings of a training loop run inside ``with fastnn.watch(net, criterion)``.

    Attributes
    ----------
    findings, codes : as in Diagnosis
    step : int
        Training steps seen (criterion forwards in training mode).
    """

    def __init__(self, net, criterion, *, sample_every: int = 25, window: int = 50,
                 on_finding: Optional[Callable[[Finding], None]] = None):
        super().__init__()
        if not (isinstance(sample_every, int) and sample_every > 0):
            raise ValueError(f"watch: sample_every must be a positive integer, got {sample_every!r}")
        self.net, self.criterion = net, criterion
        self.sample_every, self.window = sample_every, int(window)
        self.on_finding = on_finding
        self.step = 0
        self._losses = deque(maxlen=max(4 * sample_every, 2 * self.window))
        self._installed = []
        self._reported = set()
        self._backward_pending = False  # a backward since the last zeroGradParameters
        self._backwards = 0
        self._check_input = True
        self._classes = None
        self._snapshot = None  # (step, [(module, index, copy)]) for the update ratio
        self._diff = None
        self._backwards_at_snapshot = 0
        self._still_intervals = 0
        self._dead_seen = set()
        self._chunk_means = deque(maxlen=4)
        self._start_loss = None  # mean loss of the first sampled block

    # ---- installing and removing the wrappers -----------------------------------------
    def _wrap(self, obj, name, make):
        own = name in vars(obj)
        original = getattr(obj, name)
        wrapper = make(original)
        wrapper.transient = True  # copies and pickles of obj leave it out
        setattr(obj, name, wrapper)
        self._installed.append((obj, name, own, vars(obj).get(name) if own else None,
                                original))

    def __enter__(self) -> "Watch":
        if self._installed:
            raise RuntimeError("watch: this watch is already active")
        self._wrap(self.net, "forward", self._forward)
        self._wrap(self.net, "backward", self._backward)
        self._wrap(self.net, "zeroGradParameters", self._zero)
        self._wrap(self.criterion, "forward", self._criterion_forward)
        return self

    def __exit__(self, *exc) -> bool:
        for obj, name, own, _, original in reversed(self._installed):
            if own:
                setattr(obj, name, original)
            else:
                delattr(obj, name)
        self._installed = []
        return False

    # ---- the wrappers ----------------------------------------------------------------
    def _forward(self, original):
        def forward(input):
            if self._check_input:
                self._check_input = False
                self._look_at_input(input)
            return original(input)
        return forward

    def _backward(self, original):
        def backward(input, gradOutput):
            if self._backward_pending and "gradients_accumulate" not in self._reported:
                self._report("gradients_accumulate", "warning",
                             f"step {self.step}: backward ran again without "
                             f"zeroGradParameters() since the last backward, so this "
                             f"step's gradients add to the previous ones", self.net)
            self._backward_pending = True
            self._backwards += 1
            return original(input, gradOutput)
        return backward

    def _zero(self, original):
        def zeroGradParameters():
            self._backward_pending = False
            return original()
        return zeroGradParameters

    def _criterion_forward(self, original):
        def forward(input, target):
            loss = original(input, target)
            if not self.net.training or not isinstance(loss, float):
                # validation losses say nothing about training, and a GPU criterion's
                # loss is read from the device only when converted: not every step
                return loss
            self.step += 1
            self._losses.append(loss)
            if not math.isfinite(loss):
                self._nonfinite(loss)
            if self.step == 1:
                self._first_loss(input)
            if self.step % self.sample_every == 0:
                self._sample()
            return loss
        return forward

    # ---- what is looked at -----------------------------------------------------------
    def _report(self, code, severity, message, module=None):
        self._reported.add(code)
        finding = self.add(code, severity, message, module)
        if self.on_finding is not None:
            self.on_finding(finding)

    def _look_at_input(self, x):
        rms, finite = checks.input_scale(x)
        if not finite:
            if "input_nonfinite" not in self._reported:
                self._report("input_nonfinite", "error",
                             f"step {self.step + 1}: the input batch holds NaN or inf")
            return
        message = checks.scale_message(rms)
        if message and "input_scale" not in self._reported:
            self._report("input_scale", "warning", f"step {self.step + 1}: {message}")

    def _nonfinite(self, loss):
        if "nonfinite_loss" in self._reported:
            return
        culprit = checks.first_nonfinite(self.net)
        where = (f"the first module with a non-finite output is {culprit!r}" if culprit
                 is not None else f"every module's output is finite: {self.criterion!r} "
                                  f"made it (log of 0?)")
        self._report("nonfinite_loss", "error", f"step {self.step}: the loss is {loss}; {where}",
                     culprit if culprit is not None else self.criterion)

    def _first_loss(self, scores):
        shape = np.shape(scores)
        if isinstance(self.criterion, checks.CLASSIFICATION) and len(shape) == 2:
            self._classes = int(shape[1])
        message = checks.criterion_mismatch(self.criterion, scores)
        if message:
            self._report("criterion_input_mismatch", "error", f"step 1: {message}",
                         self.criterion)
        self._take_snapshot()

    def _sample(self):
        self._check_input = True
        self._check_losses()
        self._check_updates()
        if "nonfinite_loss" in self._reported:
            return  # NaN outputs are not dead units
        for m, dead in checks.dead_relus(self.net):
            key = id(m)
            if key in self._dead_seen and "dead_units" not in self._reported:
                self._report("dead_units", "warning",
                             f"step {self.step}: {dead:.0%} of {m!r}'s units were zero on "
                             f"every row of two sampled batches", m)
            self._dead_seen.add(key)

    def _take_snapshot(self):
        """Copy every parameter into the snapshot buffers (reused between samples)."""
        old = {(id(m), i): buf for m, i, buf in self._snapshot[1]} if self._snapshot else {}
        arrays = []
        for m in checks.leaves(self.net):
            for i, p in enumerate(m.getParameters()):
                now = checks.host(p).reshape(-1)
                buf = old.get((id(m), i))
                if buf is None or buf.shape != now.shape or buf.dtype != now.dtype:
                    buf = np.empty_like(now)
                np.copyto(buf, now)
                arrays.append((m, i, buf))
        self._snapshot = (self.step, arrays)
        self._backwards_at_snapshot = self._backwards

    def _check_updates(self):
        if self._snapshot is None or "updates_too_small" in self._reported:
            return
        start, arrays = self._snapshot
        steps = self._backwards - self._backwards_at_snapshot
        if steps == 0:
            return
        moved, size = 0.0, 0.0
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows
            for m, i, before in arrays:
                now = checks.host(m.getParameters()[i]).reshape(-1)
                diff = self._diff_buffer(now)
                np.subtract(now, before, out=diff)
                moved += float(np.dot(diff, diff))
                size += float(np.dot(before, before))
        self._take_snapshot()
        if not math.isfinite(moved):
            return
        if moved == 0.0:
            self._report("updates_too_small", "error",
                         f"steps {start}-{self.step}: backward ran {steps} times but no "
                         f"parameter changed: the optimizer is never applied (or its "
                         f"learning rate is 0)", self.net)
            return
        ratio = math.sqrt(moved / max(size, 1e-300)) / steps
        # a net that has learned (loss under half its start) may rightly move little
        learning = self._chunk_means and self._chunk_means[-1] < 0.5 * self._start_loss
        small = ratio < UPDATE_RATIO_MIN and not learning
        self._still_intervals = self._still_intervals + 1 if small else 0
        if self._still_intervals >= 2:
            self._report("updates_too_small", "warning",
                         f"steps {start}-{self.step}: each step moves the parameters by "
                         f"{ratio:.2g} of their norm (healthy training: ~1e-3): the "
                         f"learning rate is too small, or the gradients vanish", self.net)

    def _diff_buffer(self, like):
        buf = self._diff
        if buf is None or buf.size < like.size or buf.dtype != like.dtype:
            buf = self._diff = np.empty(like.size, like.dtype)
        return buf[:like.size]

    def _check_losses(self):
        recent = list(self._losses)[-self.sample_every:]
        finite = [v for v in recent if math.isfinite(v)]
        if len(finite) < len(recent) or not finite:
            return
        self._chunk_means.append(sum(finite) / len(finite))
        if self._start_loss is None:
            self._start_loss = self._chunk_means[-1]
        means = list(self._chunk_means)
        if len(means) >= 4 and "diverging" not in self._reported and \
                all(b > a for a, b in zip(means, means[1:])) and means[-1] > 1.5 * means[0]:
            self._report("diverging", "error",
                         f"steps {self.step - len(means) * self.sample_every + 1}-{self.step}: "
                         f"the mean loss rose {' -> '.join(f'{m:.4g}' for m in means)}")
        if self._classes and self._classes > 1 and self.step >= 2 * self.window \
                and "loss_at_chance" not in self._reported:
            last = list(self._losses)[-self.window:]
            mean = sum(last) / len(last)
            chance = math.log(self._classes)
            if abs(mean - chance) <= CHANCE_TOLERANCE * chance:
                self._report("loss_at_chance", "warning",
                             f"step {self.step}: the mean loss of the last {len(last)} steps "
                             f"is {mean:.4f}, ln({self._classes}) = {chance:.4f}: the net "
                             f"has learned nothing beyond the class frequencies")


def watch(net: "Module", criterion: "Criterion", *, sample_every: int = 25, window: int = 50,
          on_finding: Optional[Callable[[Finding], None]] = None) -> Watch:
    """Watch a hand-written training loop and report what goes wrong, as it happens.

    Parameters
    ----------
    net : Module
        The net the loop trains (its ``forward``, ``backward`` and
        ``zeroGradParameters`` are observed while the ``with`` block runs).
    criterion : Criterion
        The loop's criterion (its ``forward`` is observed).
    sample_every : int
        Training steps between the expensive looks (parameter movement, input scale,
        dead units, loss trend).
    window : int
        Steps whose mean loss is compared with ln(C) for ``loss_at_chance``.
    on_finding : callable, optional
        Called with each new Finding as it is made (``fit`` prints them).

    Returns
    -------
    Watch
        A context manager; after (or during) the loop, ``.findings``, ``.codes`` and
        ``str()`` as for ``Diagnosis``.

    Examples
    --------
    >>> with fastnn.watch(net, criterion) as w:          # doctest: +SKIP
    ...     for x, y in batches:
    ...         net.zeroGradParameters()
    ...         out = net.forward(x)
    ...         loss = criterion.forward(out, y)
    ...         net.backward(x, criterion.backward(out, y))
    ...         sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
    >>> print(w)                                          # doctest: +SKIP
    """
    return Watch(net, criterion, sample_every=sample_every, window=window,
                 on_finding=on_finding)
