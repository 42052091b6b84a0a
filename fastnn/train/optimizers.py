"""The optimizer ``fit`` steps, built from what the caller passed."""
from .. import optim


def make_optimizer(net, optimizer, config):
    """The optimizer object ``fit`` steps: from a name, an object or a function.

    Parameters
    ----------
    net : Module
    optimizer : str or Optimizer or callable
        ``'sgd'``/``'adam'``, an optimizer object (its config is updated with
        ``config``), or a function with the homework signature (``sgd_momentum``, ...).
    config : dict or None

    Returns
    -------
    fastnn.optim.Optimizer or the object given
    """
    if isinstance(optimizer, str):
        name = optimizer.lower()
        if name in ("sgd", "sgd_momentum"):
            cfg = {"learning_rate": 0.01, "momentum": 0.9}
            cls = optim.SGD
        elif name in ("adam", "adam_optimizer"):
            cfg = {"learning_rate": 1e-3}
            cls = optim.Adam
        else:
            raise ValueError(f"fit: unknown optimizer {optimizer!r}; use 'sgd', 'adam', an "
                             f"optimizer object (fastnn.optim.SGD/Adam) or a function like "
                             f"sgd_momentum")
        cfg.update(config or {})
        return cls(net, **cfg)
    if hasattr(optimizer, "step") and hasattr(optimizer, "config"):
        if config:
            optimizer.config.update(config)
        return optimizer
    if callable(optimizer):
        if config is None or "learning_rate" not in config:
            raise ValueError("fit: a functional optimizer needs config={'learning_rate': ...}")
        opt = optim.Optimizer(net, rule=optimizer)
        opt.config.update(config)
        return opt
    raise TypeError(f"fit: optimizer must be 'sgd', 'adam', an optimizer object or a "
                    f"function, got {type(optimizer).__name__}")
