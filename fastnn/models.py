"""The models the ``fastnn`` command trains, public so that a script can build the same
net: ``from fastnn.models import cnn``.

- ``mlp()``: the MNIST MLP 784-1024-1024-10;
- ``cnn(c1, c2, hidden)``: the small MNIST CNN;
- ``autoencoder(recipe, ...)``: the homework's 784-...-30-...-784 autoencoder, and
  ``split_autoencoder`` to cut it into encoder and decoder;
- ``activation_mlp(act, batchnorm, hidden)``: the MLP the activation comparisons use.
"""
import numpy as np

import fastnn as nn  # the package is initialised before any of its submodules runs

__all__ = ["mlp", "cnn", "autoencoder", "split_autoencoder", "activation_mlp", "AE_SIZES"]


AE_SIZES = (784, 512, 256, 128, 30)


def mlp():
    """784-1024-1024-10, ReLU, dropout 0.2 on the hidden layers."""
    return nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(1024, 1024), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(1024, 10), nn.LogSoftMax())


def cnn(c1=24, c2=48, hidden=128):
    """Conv(1->c1, 3x3)-BN-ReLU-pool, Conv(c1->c2, 3x3)-BN-ReLU-pool,
    Linear(c2*7*7->hidden)-ReLU-Dropout(0.3)-Linear(hidden->10)."""
    return nn.Sequential(
        nn.Conv2d(1, c1, 3), nn.BatchNormalization(0.9), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3), nn.BatchNormalization(0.9), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(hidden, 10), nn.LogSoftMax())


def autoencoder(recipe="best", mean_image=None, hidden_scale=1.0, output_scale=0.1):
    """784-512-256-128-30-128-256-512-784: a linear 30-d code, every other Linear
    followed by BatchNormalization and an activation (``seed``: ReLU, ``best``: ELU),
    and a Sigmoid output (pixels lie in [0, 1]; a bounded output also keeps SGD at
    lr 0.1 stable on the summed squared error and fits the black background).
    ``seed`` also normalises the code (BatchNormalization after the 30-unit Linear):
    with SGD at lr 0.1 (momentum 0.6) that took the test reconstruction from 7.17
    (momentum 0.5, no code normalisation) to 6.84.

    With ``mean_image`` (the training set's mean, pixels in [0, 1]) the output Linear
    starts at bias logit(mean) and weights scaled by ``output_scale``, so the untrained net already
    outputs about the mean image instead of 0.5 everywhere (seed recipe: 6.84 -> 6.53).

    ``hidden_scale`` multiplies the initial weights of every Linear but the output one.
    Each of them feeds a BatchNormalization, which makes its output independent of the
    weights' scale, so the only effect is on the step: the effective learning rate of
    such a layer falls as the square of its weights' norm. The seed recipe's lr 0.1 on
    the summed error is too large a step for these layers; a scale of 2 divides it by 4
    for them, leaving the output layer's step as it is."""
    sizes = AE_SIZES + AE_SIZES[-2::-1]
    code = len(AE_SIZES) - 2  # index of the Linear whose output is the code
    last = len(sizes) - 2
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i == code:
            if recipe == "seed":
                layers.append(nn.BatchNormalization(0.9))
            continue  # linear code
        if i == last:
            layers.append(nn.Sigmoid())
            continue
        layers.append(nn.BatchNormalization(0.9))
        layers.append(nn.ELU() if recipe == "best" else nn.ReLU())
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    for m in linears[:-1]:
        m.W *= hidden_scale
    if mean_image is not None:
        out = linears[-1]
        mean = np.clip(np.asarray(mean_image, np.float64), 1e-3, 1 - 1e-3)
        out.b[:] = np.log(mean / (1 - mean))
        out.W *= output_scale
    return nn.Sequential(*layers)


def split_autoencoder(net):
    """(encoder, decoder) Sequentials sharing the modules of ``net`` (cut after the
    30-unit Linear)."""
    mods = list(net.modules)
    cut = next(i for i, m in enumerate(mods)
               if isinstance(m, nn.Linear) and m.n_out == AE_SIZES[-1]) + 1
    return nn.Sequential(*mods[:cut]), nn.Sequential(*mods[cut:])


def activation_mlp(act, batchnorm=False, hidden=(256, 128)):
    layers = []
    sizes = (784,) + tuple(hidden)
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(a, b))
        if batchnorm:
            layers.append(nn.BatchNormalization(0.9))
        if act != "none":
            layers.append(getattr(nn, act)())
    layers += [nn.Linear(sizes[-1], 10), nn.LogSoftMax()]
    return nn.Sequential(*layers)
