"""The training half of ``diagnose``: short runs on deep copies of the user's net
(learning-rate probe, one-step update ratios, overfitting 32 examples, held-out
accuracy), and the directional gradient check of one module."""
from __future__ import annotations

import copy
import math

import numpy as np

from ..layers import Dropout
from ..optim import adam_optimizer, sgd_momentum
from . import checks

OPTIMIZERS = {"sgd_momentum": (sgd_momentum, {"momentum": 0.9}),
              "adam": (adam_optimizer, {})}
#: Learning rates the probe tries, per optimizer.
PROBE_RATES = {"sgd_momentum": (1e-3, 1e-2, 1e-1, 1.0), "adam": (1e-4, 1e-3, 1e-2, 1e-1)}


def optimizer_of(optimizer):
    """(update function, extra config) for a name in OPTIMIZERS or a homework-style
    ``f(variables, gradients, config, state)``."""
    if callable(optimizer):
        return optimizer, {}
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"diagnose: optimizer must be one of {sorted(OPTIMIZERS)} or a "
                         f"function f(variables, gradients, config, state); got {optimizer!r}")
    return OPTIMIZERS[optimizer]


class Trainer:
    """The homework loop on a deep copy of a net, batches drawn with a seeded generator."""

    def __init__(self, net, criterion, optimizer, learning_rate):
        self.net = copy.deepcopy(net).train()
        self.criterion = copy.deepcopy(criterion)
        self.update, extra = optimizer_of(optimizer)
        self.config = dict(extra, learning_rate=learning_rate)
        self.state = {}

    def step(self, x, y):
        net, crit = self.net, self.criterion
        net.zeroGradParameters()
        out = net.forward(x)
        loss = crit.forward(out, y)
        net.backward(x, crit.backward(out, y))
        self.update(net.getParameters(), net.getGradParameters(), self.config, self.state)
        return loss

    def run(self, X, y, steps, batch, rng):
        """Losses of ``steps`` steps (stops at the first non-finite one)."""
        losses = []
        for _ in range(steps):
            idx = rng.integers(0, len(X), min(batch, len(X)))
            loss = self.step(X[idx], y[idx])
            losses.append(loss)
            if not math.isfinite(loss):
                break
        return losses


def parameter_copies(net):
    return [(m, [checks.host(p).copy() for p in m.getParameters()])
            for m in checks.leaves(net) if m.getParameters()]


def update_ratios(net, criterion, optimizer, learning_rate, x, y):
    """[(module, |update|/|weight|, |gradient|/|weight|)] of one step on a copy."""
    t = Trainer(net, criterion, optimizer, learning_rate)
    before = parameter_copies(t.net)
    t.step(x, y)
    rows = []
    for m, olds in before:
        moved = sum(float(np.sum((checks.host(p) - o) ** 2))
                    for p, o in zip(m.getParameters(), olds))
        size = sum(float(np.sum(o.astype(np.float64) ** 2)) for o in olds)
        grad = sum(float(np.sum(checks.host(g).astype(np.float64) ** 2))
                   for g in m.getGradParameters())
        norm = math.sqrt(max(size, 1e-300))
        rows.append((m, math.sqrt(moved) / norm, math.sqrt(grad) / norm))
    return rows


def lr_probe(net, criterion, optimizer, rates, X, y, steps, seed):
    """{rate: losses} of ``steps`` steps from the same start and batches."""
    return {lr: Trainer(net, criterion, optimizer, lr).run(
        X, y, steps, 32, np.random.default_rng(seed)) for lr in rates}


def probe_score(losses):
    """Mean of the last losses; inf when the run went non-finite or grew."""
    if not losses or not all(math.isfinite(v) for v in losses):
        return math.inf
    tail = losses[-10:]
    score = sum(tail) / len(tail)
    return math.inf if score > 1.5 * losses[0] else score


def overfit(net, criterion, optimizer, learning_rate, x, y, steps=300):
    """(first loss, best loss) of full-batch training on (x, y); stops once the loss
    falls under 2% of the first."""
    t = Trainer(net, criterion, optimizer, learning_rate)
    first = best = None
    for _ in range(steps):
        loss = t.step(x, y)
        if not math.isfinite(loss):
            break
        first = loss if first is None else first
        best = loss if best is None else min(best, loss)
        if best <= 0.02 * first:
            break
    return first, best


def held_out_accuracy(net, criterion, optimizer, learning_rate, X, y, Xh, yh, steps, seed):
    """Accuracy on (Xh, yh) after ``steps`` steps on (X, y)."""
    t = Trainer(net, criterion, optimizer, learning_rate)
    t.run(X, y, steps, 32, np.random.default_rng(seed))
    t.net.evaluate()
    pred = np.argmax(checks.host(t.net.forward(Xh)), axis=1)
    labels = yh if yh.ndim == 1 else np.argmax(yh, axis=1)
    return float(np.mean(pred == labels))


def module_inputs(net, x):
    """[(leaf, its input)] along a chain of Sequential containers, or [(net, x)]."""
    from ..sequential import Sequential
    if not isinstance(net, Sequential):
        return [(net, x)]
    pairs = []
    for child in net.modules:
        sub = module_inputs(child, x)
        pairs += sub
        x = child.forward(x)
    return pairs


def directional_gradcheck(module, x, rng, eps=1e-6, directions=2):
    """None if ``module``'s backward agrees with finite differences along random
    directions of its input and of its parameters (float64), else what disagrees."""
    m = copy.deepcopy(module).double()
    for sub in checks.leaves(m):
        if isinstance(sub, Dropout):
            sub.evaluate()
    x = np.array(x, dtype=np.float64, copy=True)
    R = rng.standard_normal(np.shape(checks.host(m.forward(x))))

    def f():
        return float(np.sum(checks.host(m.forward(x)) * R))

    m.zeroGradParameters()
    m.forward(x)
    gi = m.backward(x, R)
    gi = None if gi is None else np.array(checks.host(gi), dtype=np.float64)
    params = [p for p in _flat(m.getParameters())]
    grads = [np.array(checks.host(g), dtype=np.float64) for g in _flat(m.getGradParameters())]
    scale = 1.0 + float(np.sum(np.abs(checks.host(m.forward(x)) * R)))
    failures = []
    targets = ([("gradInput", [x], [gi])] if gi is not None else []) + \
        ([("parameter gradients", params, grads)] if params else [])
    for what, arrays, analytic in targets:
        bad = 0
        for _ in range(directions):
            ds = [rng.standard_normal(a.shape) for a in arrays]
            a_dir = sum(float(np.sum(g * d)) for g, d in zip(analytic, ds))
            for a, d in zip(arrays, ds):
                a += eps * d
            fp = f()
            for a, d in zip(arrays, ds):
                a -= 2 * eps * d
            fm = f()
            for a, d in zip(arrays, ds):
                a += eps * d
            n_dir = (fp - fm) / (2 * eps)
            if abs(a_dir - n_dir) > 1e-4 * (abs(a_dir) + abs(n_dir)) + 1e-7 * scale:
                bad += 1
                last = (a_dir, n_dir)
        if bad == directions:  # one bad direction may sit on a kink (ReLU, max)
            failures.append(f"{what}: analytic directional derivative {last[0]:.6g}, "
                            f"finite differences {last[1]:.6g}")
    return "; ".join(failures) or None


def _flat(nested):
    out = []
    for item in nested:
        out.extend(_flat(item) if isinstance(item, (list, tuple)) else [item])
    return out
