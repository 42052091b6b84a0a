"""Max and average pooling (``fastnn.conv.MaxPool2d``/``AvgPool2d`` on
``fastnn.kernels.cpu.pool``) and Flatten at the small CNN's shapes. Skipped while
``fastnn.conv`` (or, for older commits, its AvgPool2d) is not importable."""
import numpy as np

from .common import CNN_BATCHES, import_conv, rng

SHAPES = {"32x28x28": (32, 28), "64x14x14": (64, 14)}


class MaxPool2dModule:
    params = (CNN_BATCHES, list(SHAPES))
    param_names = ["batch", "shape"]

    def setup(self, batch, shape):
        _, MaxPool2d, _ = import_conv()
        c, hw = SHAPES[shape]
        self.m = MaxPool2d(2)
        r = rng()
        self.x = r.standard_normal((batch, c, hw, hw)).astype(np.float32)
        out = self.m.forward(self.x)
        self.g = r.standard_normal(out.shape).astype(np.float32)
        self.time_forward(batch, shape)
        self.time_backward(batch, shape)

    def time_forward(self, batch, shape):
        self.m.forward(self.x)

    def time_backward(self, batch, shape):
        self.m.backward(self.x, self.g)


class AvgPool2dModule:
    """The same shapes as MaxPool2dModule: the two side by side show what the arg-max
    bookkeeping costs."""

    params = (CNN_BATCHES, list(SHAPES))
    param_names = ["batch", "shape"]

    def setup(self, batch, shape):
        import_conv()
        try:
            from fastnn.conv import AvgPool2d
        except ImportError as exc:
            raise NotImplementedError(f"fastnn.conv.AvgPool2d is not available: {exc}")
        c, hw = SHAPES[shape]
        self.m = AvgPool2d(2)
        r = rng()
        self.x = r.standard_normal((batch, c, hw, hw)).astype(np.float32)
        out = self.m.forward(self.x)
        self.g = r.standard_normal(out.shape).astype(np.float32)
        self.time_forward(batch, shape)
        self.time_backward(batch, shape)

    def time_forward(self, batch, shape):
        self.m.forward(self.x)

    def time_backward(self, batch, shape):
        self.m.backward(self.x, self.g)


class FlattenModule:
    params = [CNN_BATCHES]
    param_names = ["batch"]

    def setup(self, batch):
        _, _, Flatten = import_conv()
        self.m = Flatten()
        r = rng()
        self.x = r.standard_normal((batch, 64, 7, 7)).astype(np.float32)
        self.g = r.standard_normal((batch, 64 * 7 * 7)).astype(np.float32)
        self.time_forward_backward(batch)

    def time_forward_backward(self, batch):
        self.forward_backward()

    def forward_backward(self):
        self.m.forward(self.x)
        self.m.backward(self.x, self.g)
