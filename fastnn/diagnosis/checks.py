"""Checks shared by ``diagnose`` and ``watch``: what kind of scores a criterion gets,
input scale, non-finite outputs, dead ReLU units. Each returns what it saw; the caller
decides whether that is a finding. All of them read arrays, none changes one."""
from __future__ import annotations

import math

import numpy as np

from ..activations import ReLU
from ..backend import to_numpy
from ..criterions import (ClassNLLCriterion, ClassNLLCriterionUnstable, CrossEntropyCriterion)

LOG_PROBABILITIES, PROBABILITIES, RAW_SCORES = "log-probabilities", "probabilities", "raw scores"

#: What each criterion class takes (the kinds it is right for).
EXPECTED_KIND = {
    ClassNLLCriterion: (LOG_PROBABILITIES, PROBABILITIES),
    ClassNLLCriterionUnstable: (PROBABILITIES,),
    CrossEntropyCriterion: (RAW_SCORES, LOG_PROBABILITIES),
}
CLASSIFICATION = tuple(EXPECTED_KIND)

#: Root-mean-square input values outside [INPUT_RMS_LOW, INPUT_RMS_HIGH] are off scale.
INPUT_RMS_LOW, INPUT_RMS_HIGH = 1e-3, 10.0
#: A ReLU layer with more than this fraction of units silent on a whole batch is dead.
DEAD_FRACTION = 0.9


def host(a):
    """``a`` as a NumPy array (device arrays are copied back)."""
    return a if isinstance(a, np.ndarray) else np.asarray(to_numpy(a))


def score_kind(scores) -> str:
    """Whether a (N, C) batch is log-probabilities, probabilities or raw scores."""
    x = host(scores).astype(np.float64, copy=False)
    if x.ndim != 2 or x.size == 0 or not np.all(np.isfinite(x)):
        return RAW_SCORES
    tol = 1e-3 * max(1, x.shape[1]) ** 0.5
    if np.all(x >= 0) and np.all(np.abs(x.sum(axis=1) - 1) <= tol):
        return PROBABILITIES
    if np.all(x <= 0):
        mx = x.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(x - mx).sum(axis=1))
        if np.all(np.abs(lse) <= tol):
            return LOG_PROBABILITIES
    return RAW_SCORES


def criterion_mismatch(criterion, scores):
    """A message when ``scores`` are not what ``criterion`` expects, else None."""
    expected = next((kinds for cls, kinds in EXPECTED_KIND.items()
                     if type(criterion) is cls), None)
    if expected is None:
        return None
    kind = score_kind(scores)
    if kind in expected:
        return None
    advice = {ClassNLLCriterion: "end the net with LogSoftMax",
              ClassNLLCriterionUnstable: "end the net with SoftMax (or use LogSoftMax + "
                                         "ClassNLLCriterion)",
              CrossEntropyCriterion: "drop the final SoftMax: it takes raw scores"}[type(criterion)]
    return (f"{criterion!r} expects {' or '.join(expected)} but gets {kind} "
            f"(shape {tuple(np.shape(scores))}): {advice}")


def saturated_fraction(probabilities) -> float:
    """Fraction of rows of a probability batch that are nearly one-hot (largest entry
    at least 0.99). An untrained net is close to uniform; a saturated SoftMax has
    vanishing gradients and the other classes' probabilities underflow towards 0."""
    p = host(probabilities)
    if p.ndim != 2 or p.size == 0:
        return 0.0
    return float(np.mean(p.max(axis=1) >= 0.99))


def input_scale(x):
    """(root mean square, all finite) of an input batch, from one dot product."""
    a = host(x)
    if a.dtype.kind not in "fiub" or a.size == 0:
        return 1.0, True
    flat = a.reshape(-1)
    if flat.dtype.kind != "f":
        flat = flat.astype(np.float64)
    ss = float(np.dot(flat, flat))  # NaN or inf anywhere makes the sum non-finite
    if not math.isfinite(ss):
        if np.all(np.isfinite(flat)):  # a finite sum of squares that overflowed float32
            return math.inf, True
        return math.nan, False
    return math.sqrt(ss / flat.size), True


def scale_message(rms: float):
    """A message when an input batch's RMS is off unit scale, else None."""
    if INPUT_RMS_LOW <= rms <= INPUT_RMS_HIGH or rms == 0:
        return None
    hint = " (0-255 pixels? divide by 255)" if rms > INPUT_RMS_HIGH else ""
    return (f"inputs have root-mean-square {rms:.3g}, far from unit scale{hint}; "
            f"large inputs saturate SoftMax and make the first layer's gradients huge")


def leaves(module):
    """The leaf modules of ``module`` in order."""
    return module.leaves()


def first_nonfinite(net):
    """The first leaf module of ``net`` whose last output holds NaN or inf, or None."""
    for m in leaves(net):
        out = m.output
        if out is None:
            continue
        a = host(out)
        if a.dtype.kind == "f" and a.size and not np.all(np.isfinite(a)):
            return m
    return None


def dead_relus(net, min_rows: int = 16):
    """[(module, dead fraction)] for ReLU layers whose last (N, units) output, N >=
    min_rows, has more than DEAD_FRACTION of its units at zero on every row."""
    found = []
    for m in leaves(net):
        if type(m) is not ReLU or m.output is None:
            continue
        out = host(m.output)
        if out.ndim < 2 or out.shape[0] < min_rows:
            continue
        active = np.any(out.reshape(out.shape[0], -1) > 0, axis=0)
        dead = 1.0 - float(np.mean(active))
        if dead > DEAD_FRACTION:
            found.append((m, dead))
    return found
