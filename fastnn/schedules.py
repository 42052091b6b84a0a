"""Learning-rate schedules: callables epoch -> learning rate, which ``fit`` (or a
homework loop) applies to the optimizer's config each epoch. Also importable from
``fastnn.optim``."""
import math

from ._runtime.checks import positive_int

__all__ = ["StepDecay", "ExponentialDecay", "CosineDecay", "step_decay"]


# ---- learning-rate schedules: callables epoch -> learning rate --------------
class _Schedule:
    def __init__(self, initial_lr):
        if not initial_lr > 0:
            raise ValueError(f"{type(self).__name__}: initial_lr must be > 0, got {initial_lr!r}")
        self.initial_lr = float(initial_lr)

    def apply(self, config, epoch):
        """Set ``config['learning_rate']`` for ``epoch`` (0-based) and return it."""
        lr = self(epoch)
        config["learning_rate"] = lr
        return lr


class StepDecay(_Schedule):
    """lr = initial_lr * gamma ** (epoch // step_size); e.g. halve every 3 epochs."""

    def __init__(self, initial_lr, step_size=3, gamma=0.5):
        super().__init__(initial_lr)
        self.step_size = positive_int(step_size, "StepDecay: step_size")
        self.gamma = float(gamma)

    def __call__(self, epoch):
        return self.initial_lr * self.gamma ** (int(epoch) // self.step_size)

    def __repr__(self):
        return f"StepDecay({self.initial_lr}, step_size={self.step_size}, gamma={self.gamma})"


class ExponentialDecay(_Schedule):
    def __init__(self, initial_lr, gamma=0.95):
        super().__init__(initial_lr)
        self.gamma = float(gamma)

    def __call__(self, epoch):
        return self.initial_lr * self.gamma ** int(epoch)

    def __repr__(self):
        return f"ExponentialDecay({self.initial_lr}, gamma={self.gamma})"


class CosineDecay(_Schedule):
    def __init__(self, initial_lr, total_epochs, min_lr=0.0):
        super().__init__(initial_lr)
        self.total_epochs, self.min_lr = max(int(total_epochs), 1), float(min_lr)

    def __call__(self, epoch):
        frac = min(int(epoch), self.total_epochs) / self.total_epochs
        return self.min_lr + 0.5 * (self.initial_lr - self.min_lr) * (1 + math.cos(math.pi * frac))

    def __repr__(self):
        return f"CosineDecay({self.initial_lr}, total_epochs={self.total_epochs})"


def step_decay(config, epoch, initial_lr, step_size=3, gamma=0.5):
    """Functional form: set config['learning_rate'] for the epoch and return it."""
    return StepDecay(initial_lr, step_size, gamma).apply(config, epoch)
