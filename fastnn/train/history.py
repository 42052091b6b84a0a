"""``History``: what ``fit`` recorded, per step and per epoch, and its plot."""
import math
import os

from ._json import jsonable


class History:
    """What ``fit`` recorded, returned by it (and kept in its checkpoints).

    Attributes
    ----------
    step_loss, step_accuracy : list of float
        Per training step (in training mode).
    epochs : list of int
        Per epoch, 1-based; the lists below have one entry per epoch.
    train_loss, train_accuracy, val_loss, val_accuracy : list
        None where not measured.
    lr : list of float
        The learning rate of each epoch.
    epoch_time : list of float
        Seconds per epoch.
    steps : list of int
        Steps in each epoch.
    stopped_reason : str
        ``"completed"``, ``"early_stopping"`` or ``"diverged"``.
    best_epoch, best_value
        The best epoch of the monitored quantity and its value.
    total_time : float
        Seconds of the whole run.

    Examples
    --------
    >>> from fastnn import History
    >>> h = History.from_dict(History().to_dict())
    >>> h.epochs
    []
    """

    _EPOCH_KEYS = ("epochs", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                   "epoch_time", "steps")

    def __init__(self):
        self.step_loss = []
        self.step_accuracy = []
        for k in self._EPOCH_KEYS:
            setattr(self, k, [])
        self.stopped_reason = None
        self.message = None
        self.monitor = None
        self.best_epoch = None
        self.best_value = None
        self.total_time = 0.0

    def __len__(self):
        return len(self.epochs)

    def to_dict(self):
        d = {k: list(getattr(self, k)) for k in ("step_loss", "step_accuracy") + self._EPOCH_KEYS}
        d.update(stopped_reason=self.stopped_reason, message=self.message, monitor=self.monitor,
                 best_epoch=self.best_epoch, best_value=self.best_value,
                 total_time=self.total_time)
        return jsonable(d)

    @classmethod
    def from_dict(cls, d):
        h = cls()
        for k, v in d.items():
            if hasattr(h, k):
                setattr(h, k, list(v) if isinstance(v, list) else v)
        return h

    def append(self, record):
        """Record one epoch: ``record`` has a value for every per-epoch key."""
        for k in self._EPOCH_KEYS:
            getattr(self, k).append(record[k])

    def last(self):
        """The last epoch's record as a dict (empty if nothing was recorded)."""
        if not self.epochs:
            return {}
        return {k: getattr(self, k)[-1] for k in self._EPOCH_KEYS}

    def __repr__(self):
        if not self.epochs:
            return "History(no epochs)"
        last = self.last()
        parts = [f"{len(self)} epochs", f"train_loss={last['train_loss']:.4g}"]
        if last["val_accuracy"] is not None:
            parts.append(f"val_accuracy={last['val_accuracy']:.4f}")
        elif last["val_loss"] is not None:
            parts.append(f"val_loss={last['val_loss']:.4g}")
        parts.append(f"stopped_reason={self.stopped_reason!r}")
        return f"History({', '.join(parts)})"

    def step_positions(self):
        """x position (in epochs) of each recorded step (for plots)."""
        xs = []
        for k, n in enumerate(self.steps):
            start = self.epochs[k] - 1
            xs.extend(start + (j + 1) / n for j in range(n))
        return xs[:len(self.step_loss)]

    def plot(self, path, title=None):
        """Write a PNG: loss (steps and epochs, train and validation) and, when
        measured, accuracy per epoch. Uses matplotlib's Agg canvas (no display); without
        matplotlib, an ImportError names the ``[plot]`` extra."""
        from .._optional import require
        require("matplotlib", "plot", "History.plot")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        has_acc = any(a is not None for a in self.train_accuracy + self.val_accuracy)
        fig = Figure(figsize=(11 if has_acc else 6, 4.2))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2 if has_acc else 1)
        ax_loss = axes[0] if has_acc else axes
        xs = self.step_positions()
        if xs:
            ax_loss.plot(xs, self.step_loss[:len(xs)], color="tab:blue", alpha=0.25, lw=0.7,
                         label="train loss (step)")
        ax_loss.plot(self.epochs, self.train_loss, "o-", color="tab:blue", label="train loss")
        _plot_optional(ax_loss, self.epochs, self.val_loss, "s-", "tab:orange", "val loss")
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("loss")
        finite = [v for v in self.step_loss + self.train_loss if v is not None and math.isfinite(v)]
        if finite and min(finite) > 0 and max(finite) / min(finite) > 50:
            ax_loss.set_yscale("log")
        ax_loss.grid(alpha=0.3)
        ax_loss.legend()
        if has_acc:
            ax_acc = axes[1]
            _plot_optional(ax_acc, self.epochs, self.train_accuracy, "o-", "tab:blue",
                           "train accuracy")
            _plot_optional(ax_acc, self.epochs, self.val_accuracy, "s-", "tab:orange",
                           "val accuracy")
            ax_acc.set_xlabel("epoch")
            ax_acc.set_ylabel("accuracy")
            ax_acc.grid(alpha=0.3)
            ax_acc.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(os.fspath(path), dpi=100)
        return path


def _plot_optional(ax, xs, ys, style, color, label):
    pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, label=label)
