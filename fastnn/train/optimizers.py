"""The optimizer ``fit`` steps, built from what the caller passed."""


class _RuleOptimizer:
    """A functional optimizer (``sgd_momentum``, ``adam_optimizer`` or any function with
    their signature) with the class interface ``fit`` uses."""

    def __init__(self, module, rule, config):
        from ..optim import _Optimizer
        self._base = _Optimizer
        self.module = module
        self.rule = rule
        self.config = dict(config)
        self.state = {}

    def step(self):
        self.rule(self.module.getParameters(), self.module.getGradParameters(), self.config,
                  self.state)

    def state_dict(self):
        return self._base.state_dict(self)

    def load_state_dict(self, sd):
        return self._base.load_state_dict(self, sd)

    def __repr__(self):
        return f"{getattr(self.rule, '__name__', 'rule')}({self.config})"


def make_optimizer(net, optimizer, config):
    """The optimizer object ``fit`` steps: from a name, an object or a function."""
    from .. import optim
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
        return _RuleOptimizer(net, optimizer, config)
    raise TypeError(f"fit: optimizer must be 'sgd', 'adam', an optimizer object or a "
                    f"function, got {type(optimizer).__name__}")
