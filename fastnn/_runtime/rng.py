"""fastnn's randomness is NumPy's global generator, as in the homework: parameter
initialisation draws from ``np.random``, and every Dropout forward on the CPU draws its
mask's key from it (``dropout_key``), so ``np.random.seed(s)`` reproduces nets and
masks. ``manual_seed(s)`` seeds it too, and the GPU's dropout generator states."""
import sys

import numpy as np

_state = {"seed": None}
_CUDA_DROPOUT = "fastnn.kernels.cuda.dropout"


def manual_seed(seed: int) -> None:
    """Seed everything random in fastnn: parameter initialisation and Dropout masks
    (``np.random.seed(seed % 2**32)``, and the GPU's dropout generators).

    Parameters
    ----------
    seed : int
        The seed; the same seed builds the same weights and draws the same masks.
    """
    _state["seed"] = int(seed) % (2 ** 32)
    np.random.seed(_state["seed"])
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
    """The generator parameter initialisation draws from: NumPy's global one (the
    ``np.random`` module, whose ``uniform`` the layers call, as the homework's do)."""
    return np.random


def dropout_key() -> int:
    """A fresh 32-bit seed for one CPU dropout mask, from NumPy's global generator."""
    return int(np.random.random() * 4294967296.0)


def get_state() -> dict:
    """NumPy's global generator state, as a JSON-friendly dict (for checkpoints)."""
    state = np.random.get_state(legacy=False)
    state["state"] = {"key": state["state"]["key"].tolist(), "pos": int(state["state"]["pos"])}
    return state


def set_state(state: dict) -> bool:
    """Restore a state from ``get_state``; False (and nothing changed) for a state of
    another generator kind (checkpoints written before fastnn used NumPy's global one)."""
    if not isinstance(state, dict) or state.get("bit_generator") != "MT19937":
        return False
    s = state["state"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": np.asarray(s["key"], dtype=np.uint32),
                                   "pos": int(s["pos"])},
                         "has_gauss": int(state.get("has_gauss", 0)),
                         "gauss": float(state.get("gauss", 0.0))})
    return True
