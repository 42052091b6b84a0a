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


def mlp() -> nn.Sequential:
    """The MNIST MLP that ``fastnn train mnist --model mlp`` trains.

    784-1024-1024-10, ReLU, dropout 0.2 on the hidden layers, log-probabilities out
    (train it with ``ClassNLLCriterion``).

    Returns
    -------
    Sequential
        A new net, initialised from fastnn's generator (``fastnn.manual_seed``).

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> from fastnn.models import mlp
    >>> net = mlp().evaluate()
    >>> net.forward(np.zeros((2, 784), np.float32)).shape
    (2, 10)
    """
    return nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(1024, 1024), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(1024, 10), nn.LogSoftMax())


def cnn(c1: int = 24, c2: int = 48, hidden: int = 128) -> nn.Sequential:
    """The small MNIST CNN that ``fastnn train mnist --model cnn`` trains.

    Conv(1->c1, 3x3)-BN-ReLU-pool, Conv(c1->c2, 3x3)-BN-ReLU-pool,
    Linear(c2*7*7->hidden)-ReLU-Dropout(0.3)-Linear(hidden->10)-LogSoftMax.

    Parameters
    ----------
    c1, c2 : int
        Channels of the first and second convolution.
    hidden : int
        Units of the hidden Linear layer.

    Returns
    -------
    Sequential
        A new net taking (N, 1, 28, 28) images, giving (N, 10) log-probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.models import cnn
    >>> cnn(4, 8, 16).evaluate().forward(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 10)
    """
    return nn.Sequential(
        nn.Conv2d(1, c1, 3), nn.BatchNormalization(0.9), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3), nn.BatchNormalization(0.9), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(hidden, 10), nn.LogSoftMax())


def autoencoder(recipe: str = "best", mean_image: "np.ndarray | None" = None,
                hidden_scale: float = 1.0, output_scale: float = 0.1) -> nn.Sequential:
    """The homework's MNIST autoencoder, 784-512-256-128-30-128-256-512-784.

    A linear 30-d code; every other Linear is followed by BatchNormalization and an
    activation (``seed``: ReLU, ``best``: ELU), and the output by a Sigmoid: pixels lie in
    [0, 1], and a bounded output also keeps SGD at lr 0.1 stable on the summed squared
    error and fits the black background. ``seed`` also normalises the code
    (BatchNormalization after the 30-unit Linear), which the seed recipe's SGD needs.
    ``scripts/autoencoder_seed_variants.py`` tries each of these choices.

    Parameters
    ----------
    recipe : {"best", "seed"}
        Which of the CLI's recipes the net is for (``fastnn.cli.experiments.AE_RECIPES``).
    mean_image : ndarray of shape (784,), optional
        The training set's mean, pixels in [0, 1]. When given, the output Linear starts
        at bias logit(mean) with its weights scaled by ``output_scale``, so the untrained
        net already outputs about the mean image instead of 0.5 everywhere and SGD does
        not spend its first steps getting there.
    hidden_scale : float
        Multiplies the initial weights of every Linear but the output one. Each of them
        feeds a BatchNormalization, which makes its output independent of the weights'
        scale, so the only effect is on the step: the effective learning rate of such a
        layer falls as the square of its weights' norm (2 divides it by 4).
    output_scale : float
        Multiplies the output Linear's initial weights when ``mean_image`` is given.

    Returns
    -------
    Sequential
        A new net, (N, 784) in and out; ``split_autoencoder`` cuts it at the code.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.models import autoencoder
    >>> autoencoder().evaluate().forward(np.zeros((2, 784), np.float32)).shape
    (2, 784)
    """
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


def split_autoencoder(net: nn.Sequential) -> "tuple[nn.Sequential, nn.Sequential]":
    """Cut an ``autoencoder`` net after its 30-unit code Linear.

    Parameters
    ----------
    net : Sequential
        A net built by ``autoencoder``.

    Returns
    -------
    (Sequential, Sequential)
        The encoder and the decoder; they share ``net``'s modules (and so its weights).
    """
    mods = list(net.modules)
    cut = next(i for i, m in enumerate(mods)
               if isinstance(m, nn.Linear) and m.n_out == AE_SIZES[-1]) + 1
    return nn.Sequential(*mods[:cut]), nn.Sequential(*mods[cut:])


def activation_mlp(act: str = "ReLU", batchnorm: bool = False,
                   hidden: "tuple[int, ...]" = (256, 128), *,
                   norm: "str | None" = None, dropout: float = 0.0) -> nn.Sequential:
    """The MLP the comparisons train (``fastnn compare``): 784-256-128-10 by default,
    each hidden Linear followed by the normalization, the activation and the dropout.

    Parameters
    ----------
    act : str
        ``"ReLU"``, ``"ELU"``, ``"LeakyReLU"``, ``"SoftPlus"`` (any fastnn activation
        class name) or ``"none"``.
    batchnorm : bool
        ``BatchNormalization(0.9)`` after every hidden Linear (the older spelling of
        ``norm="BatchNormalization"`` without the ``ChannelwiseScaling``).
    hidden : tuple of int
        Hidden layer sizes.
    norm : str, optional
        ``"BatchMeanSubtraction"`` or ``"BatchNormalization"`` (followed by
        ``ChannelwiseScaling``, the homework's learnable scale and shift), after every
        hidden Linear.
    dropout : float
        ``Dropout(dropout)`` after every hidden activation when positive.

    Returns
    -------
    Sequential
        Ending in ``LogSoftMax`` (train with ``ClassNLLCriterion``).
    """
    if norm not in (None, "BatchMeanSubtraction", "BatchNormalization"):
        raise ValueError(f"activation_mlp: norm must be None, 'BatchMeanSubtraction' or "
                         f"'BatchNormalization', got {norm!r}")
    layers = []
    sizes = (784,) + tuple(hidden)
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(a, b))
        if batchnorm:
            layers.append(nn.BatchNormalization(0.9))
        if norm == "BatchMeanSubtraction":
            layers.append(nn.BatchMeanSubtraction(0.9))
        elif norm == "BatchNormalization":
            layers += [nn.BatchNormalization(0.9), nn.ChannelwiseScaling(b)]
        if act != "none":
            layers.append(getattr(nn, act)())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(sizes[-1], 10), nn.LogSoftMax()]
    return nn.Sequential(*layers)
