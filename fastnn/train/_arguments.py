"""``fit``'s argument handling: validation (``_check_arguments``) and the augmentation
callable (``_augment_caller``). Separate from ``loop.py`` to keep that file to the loop."""
import inspect

from .._runtime.checks import positive_int
from ..module import Module

#: The quantities ``fit(monitor=...)`` accepts.
MONITORS = ("val_accuracy", "val_loss", "train_loss")


def _augment_caller(augment):
    if augment is None or augment is False:
        return None
    if augment is True:
        from ..data.augment import augment_batch
        augment = augment_batch
    if not callable(augment):
        raise TypeError(f"fit: augment must be a callable batch -> batch, got {augment!r}")
    try:
        params = inspect.signature(augment).parameters
        takes_rng = "rng" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                           for p in params.values())
    except (TypeError, ValueError):
        takes_rng = False
    if takes_rng:
        return lambda xb, rng: augment(xb, rng=rng)
    return lambda xb, rng: augment(xb)


def _check_arguments(net, X, y, batch_size, metric, X_val, y_val, monitor, early_stopping,
                     restore_best, epochs=0):
    """Validate ``fit``'s arguments; returns (batch_size, metric, monitor, restore_best)."""
    if not isinstance(net, Module):
        raise TypeError(f"fit: net must be a fastnn Module, got {type(net).__name__}")
    n = len(X)
    if n == 0:
        raise ValueError("fit: no training samples")
    if y is not None and len(y) != n:
        raise ValueError(f"fit: X has {n} samples but y has {len(y)}")
    positive_int(epochs, "fit: epochs", 0)
    batch_size = positive_int(batch_size, "fit: batch_size")
    if metric not in ("accuracy", None):
        raise ValueError(f"fit: metric must be 'accuracy' or None, got {metric!r}")
    if y is None:
        metric = None
    has_val = X_val is not None
    if has_val and y_val is None and y is not None:
        raise ValueError("fit: X_val given without y_val")
    if monitor is None:
        monitor = "val_accuracy" if (metric == "accuracy" and has_val) else "val_loss"
    if monitor not in MONITORS:
        raise ValueError(f"fit: monitor must be 'val_accuracy', 'val_loss' or 'train_loss', "
                         f"got {monitor!r}")
    if early_stopping is not None:
        positive_int(early_stopping, "fit: early_stopping (a patience in epochs)")
        if monitor.startswith("val") and not has_val:
            raise ValueError("fit: early_stopping needs validation data (X_val, y_val)")
    if restore_best is None:
        restore_best = early_stopping is not None
    if (early_stopping is not None or restore_best) and monitor.startswith("val") \
            and not has_val:
        raise ValueError("fit: restore_best needs validation data (X_val, y_val)")
    return int(batch_size), metric, monitor, restore_best
