"""Elementwise helpers (``fastnn.kernels.cpu.elementwise``) on the homework MLP's flat
gradient buffer (573,910 float32): ``fill`` is what ``zeroGradParameters`` runs every
step, against ``ndarray.fill`` (what it ran before) and ``copy`` against ``np.copyto``."""
import numpy as np

from .common import rng

N_PARAMETERS = 573910


class Fill:
    params = [["fastnn", "numpy"]]
    param_names = ["impl"]

    def setup(self, impl):
        from fastnn.kernels.cpu import elementwise
        self.a = rng().standard_normal(N_PARAMETERS).astype(np.float32)
        self.fill = (lambda: elementwise.fill(self.a, 0.0)) if impl == "fastnn" \
            else (lambda: self.a.fill(0))
        self.fill()

    def time_fill(self, impl):
        self.fill()


class Copy:
    params = [["fastnn", "numpy"]]
    param_names = ["impl"]

    def setup(self, impl):
        from fastnn.kernels.cpu import elementwise
        self.src = rng().standard_normal(N_PARAMETERS).astype(np.float32)
        self.dst = np.empty(N_PARAMETERS, np.float64)
        self.copy = (lambda: elementwise.copy(self.src, self.dst)) if impl == "fastnn" \
            else (lambda: np.copyto(self.dst, self.src))
        self.copy()

    def time_copy(self, impl):
        self.copy()
