"""One MNIST training epoch (60,000 images, shuffled) of the homework MLP at batch 128,
the plain homework loop. Data: ``fastnn.datasets.load_mnist`` from ``$FASTNN_DATA``
(no download); skipped when the files are not there."""
import os

from fastnn import ClassNLLCriterion

from .common import Trainer, build_mlp

BATCH = 128


class MNISTEpoch:
    number = 1
    repeat = (1, 3, 120.0)
    timeout = 900

    def setup(self):
        if not os.environ.get("FASTNN_DATA"):
            raise NotImplementedError("set FASTNN_DATA to the folder holding mnist/")
        try:
            from fastnn.datasets import iterate_minibatches, load_mnist
            X, y, _, _ = load_mnist(download=False, progress=False)
        except (ImportError, OSError, ValueError) as exc:
            raise NotImplementedError(f"MNIST not available: {exc}")
        self.X, self.y, self.batches = X, y, iterate_minibatches
        self.t = Trainer(build_mlp(), ClassNLLCriterion(), X[:BATCH], y[:BATCH])
        self.t.step()
        rem = len(X) % BATCH or BATCH  # warm the last, partial batch's shapes too
        self.t.x, self.t.y = X[-rem:], y[-rem:]
        self.t.step()

    def epoch(self):
        t = self.t
        for xb, yb in self.batches(self.X, self.y, BATCH, shuffle=True, seed=0):
            t.x, t.y = xb, yb
            t.step()

    def time_epoch(self):
        self.epoch()
