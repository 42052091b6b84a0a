"""One seed for everything random in fastnn: parameter init (NumPy) and dropout
masks (Numba's RNG, which lives in compiled code, and the GPU's generator states)."""
import sys

import numpy as np

_state = {"rng": np.random.default_rng(), "seed": None}
_CUDA_DROPOUT = "fastnn.kernels.cuda.dropout"


def manual_seed(seed: int) -> None:
    """Seed everything random in fastnn: parameter initialisation and Dropout masks.

    Parameters
    ----------
    seed : int
        The seed; the same seed builds the same weights and draws the same masks.
    """
    _state["rng"] = np.random.default_rng(seed)
    _state["seed"] = int(seed) % (2 ** 32)
    from ..kernels.cpu import dropout
    dropout.seed(_state["seed"])
    gpu = sys.modules.get(_CUDA_DROPOUT)  # never imports numba.cuda
    if gpu is not None:
        gpu.seed(_state["seed"])


def seed_kernel_family(module):
    """Called by the backend when it first loads a kernel family: the GPU dropout
    twin takes the last ``manual_seed`` (kernels never read fastnn's state)."""
    if module.__name__ == _CUDA_DROPOUT and _state["seed"] is not None:
        module.seed(_state["seed"])


def module_rng():
    return _state["rng"]
