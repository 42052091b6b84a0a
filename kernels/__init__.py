"""Numba kernels, installed as ``fastnn.kernels``: ``cpu`` (always) and ``cuda`` (numba.cuda).

Nothing here compiles or imports numba.cuda at import time."""
