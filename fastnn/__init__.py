"""fastnn: Torch7-style neural networks (``forward``/``backward``/``Sequential``,
criterions, functional optimizers) with Numba kernels and numba.cuda twins.

``from fastnn import *`` gives the homework API. Nothing is compiled at import:
kernels compile (or load from Numba's cache) on first use.
"""
from ._threads import configure_from_env as _configure_threads
from ._threads import set_num_threads
from ._rng import manual_seed
from .backend import cuda_available, to_numpy
from .module import Module, Container, Sequential
from .layers import (Linear, Dropout, BatchNormalization, ChannelwiseScaling,
                     BatchMeanSubtraction)
from .activations import ReLU, LeakyReLU, ELU, SoftPlus, Sigmoid, Tanh, SoftMax, LogSoftMax
from .criterions import (Criterion, MSECriterion, ClassNLLCriterion, ClassNLLCriterionUnstable,
                         CrossEntropyCriterion)
from .optim import sgd_momentum, adam_optimizer
from .gradcheck import gradcheck, gradcheck_criterion
from . import optim

try:  # TEMP until conv lands
    from .conv import Conv2d, MaxPool2d, Flatten
except ImportError:
    pass

__version__ = "0.1.0"

__all__ = [
    "Module", "Container", "Sequential",
    "Linear", "Dropout", "BatchNormalization", "ChannelwiseScaling", "BatchMeanSubtraction",
    "ReLU", "LeakyReLU", "ELU", "SoftPlus", "Sigmoid", "Tanh", "SoftMax", "LogSoftMax",
    "Conv2d", "MaxPool2d", "Flatten",
    "Criterion", "MSECriterion", "ClassNLLCriterion", "ClassNLLCriterionUnstable",
    "CrossEntropyCriterion",
    "sgd_momentum", "adam_optimizer",
    "gradcheck", "gradcheck_criterion", "manual_seed", "set_num_threads",
    "cuda_available", "to_numpy",
]

_configure_threads()
__all__ = [n for n in __all__ if n in globals()]  # TEMP
