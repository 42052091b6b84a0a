"""``fastnn.diagnose``: a short battery of checks on the user's own net and data.

Everything runs on deep copies; NumPy's global generator (which also drives fastnn's
parameter initialisation and dropout masks) is restored afterwards, so the caller's
net, criterion and random stream are as they were.
"""
from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import checks, probe
from .findings import Diagnosis

if TYPE_CHECKING:
    from ..criterions import Criterion
    from ..module import Module

__all__ = ["diagnose"]

#: Rows used for the forward-pass checks, and for the directional gradient check.
INSPECT_ROWS, GRADCHECK_ROWS = 256, 4
#: Steps of each learning-rate probe run, of the overfit test and of the held-out run.
PROBE_STEPS, OVERFIT_STEPS, HELD_OUT_STEPS = 60, 300, 300
#: A user learning rate whose probe loss fell by less than this share of the best
#: rate's fall moves the parameters too little.
SLOW_SHARE = 0.1


def diagnose(net: "Module", criterion: "Criterion", X: np.ndarray, y: np.ndarray, *,
             learning_rate: "float | None" = None, optimizer: "str | Callable" = "sgd_momentum",
             seed: int = 0) -> Diagnosis:
    """Run a short battery of checks on ``net`` and the data, and say what is wrong.

    Parameters
    ----------
    net : Module
        The net as it is about to be trained (it is copied, never changed).
    criterion : Criterion
        The criterion the training uses.
    X : array_like, shape (N, ...)
        Training inputs (a few hundred rows or more make the held-out check possible).
    y : array_like, shape (N,) or (N, C)
        Class labels or target rows.
    learning_rate : float, optional
        The learning rate the training uses; checked against a short probe.
    optimizer : {"sgd_momentum", "adam"} or callable
        The update rule (a callable takes the homework's
        ``(variables, gradients, config, state)``).
    seed : int
        Seeds the rows chosen and the training runs of the battery.

    Returns
    -------
    Diagnosis
        ``.findings``, ``.codes``, and ``str()`` for a ranked report with fixes.

    Examples
    --------
    >>> report = fastnn.diagnose(net, ClassNLLCriterion(), X_train, y_train,
    ...                          learning_rate=0.1)          # doctest: +SKIP
    >>> print(report)                                         # doctest: +SKIP
    """
    probe.optimizer_of(optimizer)  # a bad name fails before any work
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"diagnose: X has {len(X)} rows but y has {len(y)}")
    if len(X) < 2:
        raise ValueError(f"diagnose: needs at least 2 examples, got {len(X)}")
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        return _Battery(net, criterion, X, y, learning_rate, optimizer, seed).run()
    finally:
        np.random.set_state(saved)


class _Battery:
    def __init__(self, net, criterion, X, y, learning_rate, optimizer, seed):
        self.net = copy.deepcopy(net)
        self.criterion = copy.deepcopy(criterion)
        self.X = X if X.dtype.kind == "f" else X.astype(np.float32)
        self.y, self.lr, self.optimizer, self.seed = y, learning_rate, optimizer, seed
        self.rng = np.random.default_rng(seed)
        self.d = Diagnosis()
        self.classes = None

    def run(self) -> Diagnosis:
        if not self._inputs():
            return self.d
        if not self._forward_checks():
            return self.d
        self._gradcheck()
        if "criterion_input_mismatch" in self.d.codes:
            self.d.notes.append("training checks skipped: the criterion gets the wrong kind "
                                "of input, so their losses would mean nothing")
        else:
            self._training_checks()
        return self.d

    # ---- the data -------------------------------------------------------------------
    def _inputs(self):
        rms, finite = checks.input_scale(self.X)
        if not finite:
            bad = int(np.sum(~np.all(np.isfinite(self.X.reshape(len(self.X), -1)), axis=1)))
            self.d.add("input_nonfinite", "error", f"{bad} of {len(self.X)} input rows hold "
                                                   f"NaN or inf; nothing else can be checked")
            return False
        self.d.notes.append(f"inputs: root-mean-square {rms:.3g}, range "
                            f"[{float(self.X.min()):.3g}, {float(self.X.max()):.3g}]")
        message = checks.scale_message(rms)
        if message:
            self.d.add("input_scale", "warning", message)
        flat = self.X.reshape(len(self.X), -1)
        constant = float(np.mean(np.all(flat == flat[0], axis=0)))
        if constant > 0.9:
            self.d.add("constant_inputs", "warning",
                       f"{constant:.0%} of the {flat.shape[1]} input columns hold one value")
        return True

    def _labels(self, scores):
        """labels_invalid findings; the class count, or None for non-class targets."""
        y, (n, c) = self.y, scores.shape
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            labels = y.reshape(-1)
            if labels.dtype.kind == "f" and np.any(np.floor(labels) != labels):
                self.d.add("labels_invalid", "error", f"labels are not integers (e.g. "
                           f"{labels[np.floor(labels) != labels][0]!r}) but {self.criterion!r} "
                           f"takes class labels")
                return None
            lo, hi = labels.min(), labels.max()
            if lo < 0 or hi >= c:
                hint = " (1-based labels? subtract 1)" if lo >= 1 and hi == c else ""
                self.d.add("labels_invalid", "error", f"labels span [{lo}, {hi}] but the net "
                           f"has {c} outputs, so they must lie in [0, {c - 1}]{hint}")
                return None
            labels = labels.astype(np.int64)
        elif y.ndim == 2 and y.shape[1] == c:
            if np.any(y < 0) or np.any(np.abs(y.sum(axis=1) - 1) > 1e-3):
                self.d.add("labels_invalid", "error", "target rows are not one-hot or "
                           "probability rows (negative, or not summing to 1)")
                return None
            labels = np.argmax(y, axis=1)
        else:
            self.d.add("labels_invalid", "error", f"targets of shape {y.shape} do not fit "
                       f"the net's output of shape (N, {c})")
            return None
        counts = np.bincount(labels, minlength=c)
        present = int(np.sum(counts > 0))
        self.d.notes.append(f"labels: {present} of {c} classes present, most frequent "
                            f"{counts.max() / len(labels):.1%}, least {counts.min() / len(labels):.1%}")
        if present == 1:
            self.d.add("labels_invalid", "error", f"every label is {int(np.argmax(counts))}: "
                                                  f"there is nothing to learn")
            return None
        return c

    # ---- one forward on the user's net ------------------------------------------------
    def _forward_checks(self):
        net, crit = self.net, self.criterion
        rows = self.rng.permutation(len(self.X))[:INSPECT_ROWS]
        x, y = self.X[rows], self.y[rows]
        net.evaluate()
        scores = checks.host(net.forward(x))
        if isinstance(crit, checks.CLASSIFICATION) and scores.ndim == 2:
            self.classes = self._labels(scores)
            if self.classes is None:
                return False
            kind = checks.score_kind(scores)
            self.d.notes.append(f"the net's output: {kind}")
            mismatch = checks.criterion_mismatch(crit, scores)
            if mismatch:
                self.d.add("criterion_input_mismatch", "error", mismatch, crit)
            saturated = checks.saturated_fraction(scores) if kind == checks.PROBABILITIES else 0
            if saturated > 0.5:
                self.d.add("saturated_softmax", "warning",
                           f"{saturated:.0%} of the untrained net's probability rows are "
                           f"nearly one-hot: SoftMax is saturated, its gradient vanishes and "
                           f"the other probabilities underflow to 0 (log(0) = -inf)")
        for m, dead in checks.dead_relus(net):
            self.d.add("dead_units", "warning", f"{dead:.0%} of the units are zero on all "
                       f"{len(x)} rows of a batch, so they get no gradient", m)
        try:
            loss = crit.forward(scores, y)
        except (ValueError, TypeError, ZeroDivisionError) as exc:
            if not self.d.findings:
                raise
            self.d.notes.append(f"the criterion refused the net's output: {exc}")
            return False
        if not math.isfinite(loss):
            culprit = checks.first_nonfinite(net)
            self.d.add("nonfinite_loss", "error", f"the loss of the untrained net is {loss}",
                       culprit if culprit is not None else crit)
            return False
        self.d.notes.append(f"initial loss {loss:.4g}" + (
            f" (ln({self.classes}) = {math.log(self.classes):.4g})" if self.classes else ""))
        net.train()
        return True

    def _gradcheck(self):
        x = np.asarray(self.X[:GRADCHECK_ROWS], dtype=np.float64)
        dbl = copy.deepcopy(self.net).double()
        for m, inp in probe.module_inputs(dbl, x):
            failure = probe.directional_gradcheck(m, inp, np.random.default_rng(self.seed))
            if failure:
                self.d.add("gradcheck_failed", "error",
                           f"backward disagrees with finite differences on "
                           f"{len(x)} rows: {failure}", m)

    # ---- short training runs ----------------------------------------------------------
    def _training_checks(self):
        net, crit, opt = self.net, self.criterion, self.optimizer
        rates = sorted(set(probe.PROBE_RATES.get(opt, probe.PROBE_RATES["sgd_momentum"]))
                       | ({self.lr} if self.lr else set()))
        runs = probe.lr_probe(net, crit, opt, rates, self.X, self.y, PROBE_STEPS, self.seed)
        scores = {lr: probe.probe_score(losses) for lr, losses in runs.items()}
        self.d.notes.append("learning-rate probe (mean loss after %d steps): " % PROBE_STEPS +
                            ", ".join(f"{lr:g}: {s:.4g}" for lr, s in scores.items()))
        best = min(scores, key=scores.get)
        if not math.isfinite(scores[best]):
            self.d.add("diverging", "error", f"every learning rate tried ({rates}) made the "
                       f"loss grow or become non-finite within {PROBE_STEPS} steps")
            return
        if self.lr:
            self._user_rate(runs, scores, best)
        batch = self.rng.permutation(len(self.X))[:32]
        for m, update, grad in probe.update_ratios(net, crit, opt, self.lr or best,
                                                   self.X[batch], self.y[batch]):
            self.d.notes.append(f"{m!r}: update/weight {update:.2g}, gradient/weight {grad:.2g}")
        first, final = probe.overfit(net, crit, opt, best, self.X[batch], self.y[batch],
                                     OVERFIT_STEPS)
        memorised = first is not None and final <= 0.1 * first
        self.d.notes.append(f"overfit test (32 examples, learning rate {best:g}): loss "
                            f"{first:.4g} -> {final:.4g}" if first is not None else
                            "overfit test: the loss went non-finite")
        if memorised and self.classes:
            self._held_out(best)

    def _user_rate(self, runs, scores, best):
        lr, losses = self.lr, runs[self.lr]
        if not math.isfinite(scores[lr]):
            self.d.add("diverging", "error", f"with learning_rate={lr:g} the loss went "
                       f"{losses[0]:.4g} -> {losses[-1]:.4g} in {len(losses)} steps; "
                       f"learning_rate={best:g} reached {scores[best]:.4g}")
            return
        fall = runs[lr][0] - scores[lr]
        best_fall = runs[best][0] - scores[best]
        if lr < best and best_fall > 0 and fall < SLOW_SHARE * best_fall:
            self.d.add("updates_too_small", "warning",
                       f"with learning_rate={lr:g} the loss fell {fall:.3g} in {PROBE_STEPS} "
                       f"steps, with {best:g} it fell {best_fall:.3g}: the learning rate is "
                       f"too small")

    def _held_out(self, lr):
        n = len(self.X)
        if n < 200:
            self.d.notes.append(f"held-out check skipped: {n} examples (needs 200)")
            return
        order = self.rng.permutation(n)
        held = order[:min(n // 4, 1000)]
        train = order[len(held):]
        acc = probe.held_out_accuracy(self.net, self.criterion, self.optimizer, lr,
                                      self.X[train], self.y[train], self.X[held],
                                      self.y[held], HELD_OUT_STEPS, self.seed)
        labels = self.y[held] if self.y.ndim == 1 else np.argmax(self.y[held], axis=1)
        chance = float(np.max(np.bincount(labels.reshape(-1).astype(np.int64)))) / len(held)
        margin = 3 * math.sqrt(chance * (1 - chance) / len(held)) + 0.02
        self.d.notes.append(f"held-out accuracy after {HELD_OUT_STEPS} steps: {acc:.3f} "
                            f"(chance {chance:.3f})")
        if acc <= chance + margin:
            self.d.add("labels_unlearnable", "error",
                       f"the net memorises 32 examples but reaches only {acc:.3f} accuracy "
                       f"on {len(held)} held-out examples (chance {chance:.3f}): the labels "
                       f"do not seem to belong to the inputs")
