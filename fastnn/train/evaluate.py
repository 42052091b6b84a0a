"""``predict`` and ``evaluate``: a net's outputs, loss and accuracy in evaluate mode."""
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only
    from ..criterions import Criterion
    from ..module import Module

from .checkpoint import host


def labels_of(y):
    """Class indices of ``y``: argmax of one-hot rows, else ``y`` flattened (None stays)."""
    if y is None:
        return None
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.reshape(-1)


def predict(net: "Module", X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The outputs of ``net`` on ``X`` in evaluate mode, batch by batch (the mode is
    restored after).

    Parameters
    ----------
    net : Module
        The network.
    X : ndarray
        The inputs, first dimension N.
    batch_size : int
        Samples per forward.

    Returns
    -------
    ndarray
        The outputs, a new host array of N rows.
    """
    was_training = net.training
    net.evaluate()
    try:
        parts = [np.array(host(net.forward(X[s:s + batch_size])))
                 for s in range(0, len(X), batch_size)]
    finally:
        if was_training:
            net.train()
    return np.concatenate(parts) if parts else np.empty((0,))


def evaluate(net: "Module", criterion: "Criterion | None", X: np.ndarray,
             y: "np.ndarray | None" = None, batch_size: int = 1024,
             metric: "str | None" = "accuracy") -> "tuple[float | None, float | None]":
    """The loss and accuracy of ``net`` over ``X`` in evaluate mode (the mode is restored
    after).

    Parameters
    ----------
    net : Module
        The network.
    criterion : Criterion or None
        The loss; None skips it.
    X : ndarray
        The inputs.
    y : ndarray, optional
        Labels or one-hot rows; None means the target is the input (an autoencoder).
    batch_size : int
        Samples per forward.
    metric : {"accuracy", None}
        None skips the accuracy.

    Returns
    -------
    (float or None, float or None)
        The loss averaged over the samples, and the accuracy.
    """
    n = len(X)
    if n == 0:
        raise ValueError("evaluate: empty data")
    labels = labels_of(y) if metric == "accuracy" and y is not None else None
    was_training = net.training
    net.evaluate()
    total, correct = 0.0, 0
    try:
        for s in range(0, n, batch_size):
            xb = X[s:s + batch_size]
            out = net.forward(xb)
            if criterion is not None:
                tb = xb if y is None else y[s:s + batch_size]
                total += criterion.forward(out, tb) * len(xb)
            if labels is not None:
                correct += int(np.count_nonzero(
                    np.argmax(host(out), axis=1) == labels[s:s + batch_size]))
    finally:
        if was_training:
            net.train()
    loss = total / n if criterion is not None else None
    acc = correct / n if labels is not None else None
    return loss, acc
