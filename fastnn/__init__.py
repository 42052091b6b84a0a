"""fastnn: Torch7-style neural networks (``forward``/``backward``/``Sequential``,
criterions, functional optimizers) with Numba kernels and numba.cuda twins.

``from fastnn import *`` gives the homework API. Nothing is compiled at import:
kernels compile (or load from Numba's cache) on first use.
"""
from ._runtime import cache as _cache, exit as _exit
_cache.configure()  # before anything imports Numba
from ._runtime.threads import configure_from_env as _configure_threads
from ._runtime.threads import set_num_threads
from ._runtime.rng import manual_seed
from .backend import cuda_available, to_numpy
from .module import Module, Container, Sequential, lazy_zero_grad
# the layer files' own __all__: a new layer there is exported without an edit here
from .layers import *  # noqa: F401,F403  (Linear, Dropout, BatchNormalization, ...)
from .activations import *  # noqa: F401,F403  (ReLU, ..., SoftMax, LogSoftMax)
from .criterions import (Criterion, MSECriterion, ClassNLLCriterion, ClassNLLCriterionUnstable,
                         CrossEntropyCriterion)
from .optim import sgd_momentum, adam_optimizer
from .gradcheck import gradcheck, gradcheck_criterion
from . import optim
from .train import (fit, History, TrainingDiverged, save_checkpoint, load_checkpoint,
                       save_parameters, load_parameters)

from .conv import *  # noqa: F401,F403  (Conv2d, MaxPool2d, AvgPool2d, Flatten)
from . import layers as _layers, activations as _activations, conv as _conv
from .state import StateDictError
from .torch_interop import from_torch, to_torch, UnsupportedLayerError
from . import onnx  # fastnn.onnx.export; the onnx package is imported inside it
from .diagnosis import Diagnosis, Finding, diagnose, watch

from ._version import __version__

__all__ = [
    "Module", "Container", "Sequential",
    *_layers.__all__, *_activations.__all__, *_conv.__all__,
    "Criterion", "MSECriterion", "ClassNLLCriterion", "ClassNLLCriterionUnstable",
    "CrossEntropyCriterion",
    "sgd_momentum", "adam_optimizer",
    "gradcheck", "gradcheck_criterion", "manual_seed", "set_num_threads", "lazy_zero_grad",
    "cuda_available", "to_numpy",
    "fit", "History", "TrainingDiverged", "save_checkpoint", "load_checkpoint",
    "save_parameters", "load_parameters",
    "StateDictError", "from_torch", "to_torch", "UnsupportedLayerError",
    "diagnose", "watch", "Diagnosis", "Finding",
]

_configure_threads()
_exit.install()
