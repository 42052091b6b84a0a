"""``predict`` and ``evaluate``: a net's outputs, loss and accuracy in evaluate mode."""
import numpy as np

from .checkpoint import host


def labels_of(y):
    """Class indices of ``y``: argmax of one-hot rows, else ``y`` flattened (None stays)."""
    if y is None:
        return None
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.reshape(-1)


def predict(net, X, batch_size=1024):
    """Outputs of ``net`` on ``X`` in evaluate mode, batch by batch (a new array)."""
    was_training = net.training
    net.evaluate()
    try:
        parts = [np.array(host(net.forward(X[s:s + batch_size])))
                 for s in range(0, len(X), batch_size)]
    finally:
        if was_training:
            net.train()
    return np.concatenate(parts) if parts else np.empty((0,))


def evaluate(net, criterion, X, y=None, batch_size=1024, metric="accuracy"):
    """``(loss, accuracy)`` over ``X`` in evaluate mode (the mode is restored after).
    ``y=None`` means the target is the input (autoencoder); ``criterion=None`` skips
    the loss; ``metric=None`` skips the accuracy (returned as None)."""
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
