"""One seed for everything random in fastnn: parameter init (NumPy) and dropout
masks (Numba's RNG, which lives in compiled code)."""
import numpy as np

_state = {"rng": np.random.default_rng()}


def manual_seed(seed):
    """Seed parameter initialisation and dropout, for reproducible runs."""
    _state["rng"] = np.random.default_rng(seed)
    from ..kernels.cpu import dropout
    dropout.seed(int(seed) % (2 ** 32))


def module_rng():
    return _state["rng"]
