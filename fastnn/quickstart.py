"""The README's quickstart, which ``fastnn demo`` runs: the README shows this file's
code below the docstring, and ``tests/test_readme.py`` checks that the two match and
print the same figures."""
import numpy as np

import fastnn as nn
from fastnn.data import iterate_minibatches


def quickstart(epochs: int = 20, seed: int = 0) -> float:
    """Train a small MLP on two Gaussian blobs with the Torch7 loop; return its accuracy.

    Parameters
    ----------
    epochs : int
        Passes over the 1,000 points.
    seed : int
        Seeds the weights, the data and the batch order: the same seed prints the same
        figures.

    Returns
    -------
    float
        The accuracy over all 1,000 points after the last epoch.
    """
    nn.manual_seed(seed)                # the initial weights
    rng = np.random.default_rng(seed)   # the data and the batch order
    X = np.vstack([rng.normal(size=(500, 2)) + 2,
                   rng.normal(size=(500, 2)) - 2]).astype(np.float32)
    y = np.repeat([0, 1], 500)

    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2), nn.LogSoftMax())
    criterion = nn.ClassNLLCriterion()
    config, state = {"learning_rate": 1e-2, "momentum": 0.9}, {}
    print(net)
    for epoch in range(epochs):
        for xb, yb in iterate_minibatches(X, y, 50, shuffle=True, seed=rng):
            net.zeroGradParameters()
            out = net.forward(xb)
            criterion.forward(out, yb)
            net.backward(xb, criterion.backward(out, yb))
            nn.sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
        net.evaluate()                  # the figures are over all the data, not one batch
        out = net.forward(X)
        loss = criterion.forward(out, y)
        accuracy = float(np.mean(out.argmax(axis=1) == y))
        net.train()
        print(f"epoch {epoch + 1:2d}/{epochs}  loss {loss:.4f}  accuracy {accuracy:.4f}")
    print(f"accuracy: {accuracy:.4f}")
    return accuracy
