"""Finite-difference gradient checking for modules and criterions (float64)."""
import copy
from typing import TYPE_CHECKING

import numpy as np

from .nested import flatten

if TYPE_CHECKING:  # for the annotations only: module.py imports nothing from here
    from .criterions import Criterion
    from .module import Module

__all__ = ["gradcheck", "gradcheck_criterion", "GradcheckError"]


class GradcheckError(AssertionError):
    """A gradient differs from its finite-difference estimate; the message names the
    module, the array and the first wrong entry."""


def _numeric_grad(f, x, eps):
    grad = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        old = flat_x[i]
        flat_x[i] = old + eps
        fp = f()
        flat_x[i] = old - eps
        fm = f()
        flat_x[i] = old
        flat_g[i] = (fp - fm) / (2 * eps)
    return grad


def _compare(name, analytic, numeric, atol, rtol, where):
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise GradcheckError(f"{where}: {name} has shape {analytic.shape}, expected {numeric.shape}")
    err = np.abs(analytic - numeric)
    tol = atol + rtol * np.abs(numeric)
    if not np.all(err <= tol):
        i = np.unravel_index(np.argmax(err - tol), err.shape)
        raise GradcheckError(
            f"{where}: {name} differs from finite differences at index {tuple(int(j) for j in i)}: "
            f"analytic {analytic[i]:.6g}, numeric {numeric[i]:.6g} (max abs error {err.max():.3g})")


def gradcheck(module: "Module", input: np.ndarray, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-4, seed: int = 0, check_params: bool = True) -> bool:
    """Check ``module``'s gradInput and parameter gradients against central finite
    differences of ``sum(output * R)`` for a fixed random R, in float64.

    The module is copied and converted with ``.double()``; the original is untouched.
    Stochastic modules (Dropout), also inside containers, are checked in evaluate mode.

    Parameters
    ----------
    module : Module
        The module (or net) to check.
    input : ndarray
        A batch it accepts; small, since every element is perturbed twice.
    eps : float
        The finite-difference step.
    atol, rtol : float
        Tolerances of the comparison.
    seed : int
        Seeds R.
    check_params : bool
        Also check the parameter gradients.

    Returns
    -------
    bool
        True; a mismatch raises ``GradcheckError`` naming the first wrong entry.

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.gradcheck(fastnn.Linear(3, 2), np.random.default_rng(0).normal(size=(4, 3)))
    True
    """
    where = f"gradcheck({module!r})"
    m = copy.deepcopy(module).double()
    modules = m.leaves()
    for sub in modules:
        # a fresh random mask at every forward would make finite differences meaningless,
        # and a nested Dropout is as random as a top-level one
        if sub.stochastic_in_training:
            sub.evaluate()
    x = np.array(input, dtype=np.float64, copy=True)
    rng = np.random.default_rng(seed)
    out = np.array(m.forward(x), dtype=np.float64)
    R = rng.standard_normal(out.shape)

    def loss():
        return float(np.sum(np.asarray(m.forward(x), dtype=np.float64) * R))

    # Analytic gradients; keep stateful modules' moving statistics from drifting by
    # restoring them after each forward.
    saved_state = [(sub, n, np.array(getattr(sub, n), copy=True)) for sub in modules
                   for n in sub.state_names if getattr(sub, n) is not None]

    def restore():
        for sub, n, v in saved_state:
            getattr(sub, n)[...] = v

    m.zeroGradParameters()
    m.forward(x)
    restore()
    grad_in = np.array(m.backward(x, R), dtype=np.float64, copy=True)
    grads = [np.array(g, dtype=np.float64, copy=True) for g in flatten(m.getGradParameters())]
    params = flatten(m.getParameters())

    def loss_restoring():
        v = loss()
        restore()
        return v

    _compare("gradInput", grad_in, _numeric_grad(loss_restoring, x, eps), atol, rtol, where)
    if check_params:
        for k, (p, g) in enumerate(zip(params, grads)):
            _compare(f"parameter gradient #{k} (shape {p.shape})", g,
                     _numeric_grad(loss_restoring, p, eps), atol, rtol, where)
    return True


def gradcheck_criterion(criterion: "Criterion", input: np.ndarray, target: np.ndarray,
                        eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Check ``criterion.backward`` against central finite differences of
    ``criterion.forward``, in float64.

    Parameters
    ----------
    criterion : Criterion
        The criterion to check.
    input : ndarray
        A batch it accepts.
    target : ndarray
        Its target.
    eps : float
        The finite-difference step.
    atol, rtol : float
        Tolerances of the comparison.

    Returns
    -------
    bool
        True; a mismatch raises ``GradcheckError``.
    """
    where = f"gradcheck({criterion!r})"
    x = np.array(input, dtype=np.float64, copy=True)
    analytic = np.array(criterion.backward(x, target), dtype=np.float64, copy=True)

    def f():
        return float(criterion.forward(x, target))

    _compare("gradInput", analytic, _numeric_grad(f, x, eps), atol, rtol, where)
    return True
