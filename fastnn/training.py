"""Training loop, history and checkpoints.

``fit`` runs the homework's loop (``net.train()``; ``zeroGradParameters``; ``forward``;
criterion ``forward``/``backward``; ``backward``; optimizer step) with what a real run
needs around it: validation in ``evaluate()`` mode, learning-rate schedules, early
stopping, augmentation, a progress bar, divergence detection with the last good weights
restored, atomic ``.npz`` checkpoints and exact resumption.

Reproducibility: with a ``seed`` every source of randomness in epoch ``e`` is derived
from ``(seed, e)`` (shuffle order, augmentation, dropout masks), so a run stopped after
epoch ``e`` and resumed from its checkpoint ends with exactly the same weights as an
uninterrupted one. Without a seed, one is drawn and stored in the checkpoints.
"""
import inspect
import json
import math
import os
import tempfile
import time

import numpy as np

from .backend import CPUBackend, to_numpy
from .module import Container, Module

__all__ = ["fit", "evaluate", "predict", "History", "TrainingDiverged", "save_checkpoint",
           "load_checkpoint", "save_parameters", "load_parameters"]

CHECKPOINT_FORMAT = "fastnn-checkpoint"
CHECKPOINT_VERSION = 1


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or blew up. ``history`` holds what was recorded up to
    there (``history.stopped_reason`` says why); the network holds the weights of the
    last good snapshot (the start of the epoch, or of the last ``snapshot_every`` block)."""

    def __init__(self, message, history=None, epoch=None, step=None):
        super().__init__(message)
        self.history = history
        self.epoch = epoch
        self.step = step


# --------------------------------------------------------------------------- history

class History:
    """What ``fit`` recorded.

    Per step: ``step_loss``, ``step_accuracy`` (training batches, in training mode).
    Per epoch (lists of equal length): ``epochs`` (1-based numbers), ``train_loss``,
    ``train_accuracy``, ``val_loss``, ``val_accuracy`` (None where not measured),
    ``lr``, ``epoch_time`` (seconds), ``steps`` (steps in that epoch).
    Also ``stopped_reason`` (``"completed"``, ``"early_stopping"``, ``"diverged"``),
    ``best_epoch``/``best_value`` (the monitored quantity) and ``total_time``.
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
        return _jsonable(d)

    @classmethod
    def from_dict(cls, d):
        h = cls()
        for k, v in d.items():
            if hasattr(h, k):
                setattr(h, k, list(v) if isinstance(v, list) else v)
        return h

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

    def _step_positions(self):
        """x position (in epochs) of each recorded step."""
        xs = []
        for k, n in enumerate(self.steps):
            start = self.epochs[k] - 1
            xs.extend(start + (j + 1) / n for j in range(n))
        return xs[:len(self.step_loss)]

    def plot(self, path, title=None):
        """Write a PNG: loss (steps and epochs, train and validation) and, when
        measured, accuracy per epoch. Uses matplotlib's Agg canvas (no display)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        has_acc = any(a is not None for a in self.train_accuracy + self.val_accuracy)
        fig = Figure(figsize=(11 if has_acc else 6, 4.2))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2 if has_acc else 1)
        ax_loss = axes[0] if has_acc else axes
        xs = self._step_positions()
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


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else (1e308 if obj > 0 else -1e308)
    return obj


# --------------------------------------------------------------------------- module arrays

def _leaves(net):
    if isinstance(net, Container):
        return list(net._leaves())
    return [net]


def _module_arrays(net):
    """[(leaf index, module, kind, name)] for every parameter ('param') and moving
    statistic ('state') of the network, in a fixed order."""
    out = []
    for i, m in enumerate(_leaves(net)):
        for n in m._param_names:
            out.append((i, m, "param", n))
        for n in m._state_names:
            out.append((i, m, "state", n))
    return out


def _host(a):
    return a if isinstance(a, np.ndarray) else to_numpy(a)


def _set_array(m, name, value):
    """Write ``value`` into a module's parameter/state: into the existing array (views
    into the flat buffer stay views) or, when it is still None, as a new array."""
    current = m.__dict__.get(name)
    if current is None:
        setattr(m, name, m.backend.to_device(np.array(value, dtype=m.dtype), m.dtype))
    else:
        setattr(m, name, value)


class _Snapshot:
    """Copies of every parameter and moving statistic, in arrays allocated once."""

    def __init__(self):
        self._copies = {}
        self.valid = False

    def take(self, net):
        for i, m, kind, name in _module_arrays(net):
            live = m.__dict__.get(name)
            key = (i, name)
            if live is None:
                self._copies[key] = None
                continue
            host = _host(live)
            buf = self._copies.get(key)
            if buf is None or buf.shape != host.shape or buf.dtype != host.dtype:
                buf = np.empty_like(host)
                self._copies[key] = buf
            np.copyto(buf, host)
        self.valid = True

    def restore(self, net):
        if not self.valid:
            return
        for i, m, kind, name in _module_arrays(net):
            saved = self._copies.get((i, name))
            if saved is None:
                if kind == "state" and m.__dict__.get(name) is not None:
                    m._rebind(name, None)
                continue
            _set_array(m, name, saved)

    def equals(self, net):
        for i, m, kind, name in _module_arrays(net):
            saved = self._copies.get((i, name))
            live = m.__dict__.get(name)
            if (saved is None) != (live is None):
                return False
            if saved is not None and not np.array_equal(saved, _host(live)):
                return False
        return True


# --------------------------------------------------------------------------- checkpoints

def _optimizer_payload(optimizer):
    """(meta dict, arrays dict) for an optimizer's state_dict."""
    if optimizer is None:
        return None, {}
    sd = optimizer.state_dict()
    meta = {"type": type(optimizer).__name__, "config": _jsonable(sd.get("config", {})),
            "scalars": {}, "dicts": []}
    arrays = {}
    for key, val in sd.items():
        if key == "config":
            continue
        if isinstance(val, dict):
            meta["dicts"].append(key)
            for i, a in val.items():
                arrays[f"optim/{key}/{int(i)}"] = np.asarray(_host(a))
        else:
            meta["scalars"][key] = _jsonable(val)
    return meta, arrays


def _atomic_savez(path, arrays):
    """np.savez into a temp file in the target folder, fsync, then os.replace: readers
    see the old file or the new one, never a partial one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort; not possible everywhere)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def save_checkpoint(path, net, optimizer=None, epoch=0, extra=None, arrays=None):
    """Write ``net``'s parameters and moving statistics (each module's ``_state_names``,
    e.g. BatchNormalization's ``moving_mean``/``moving_variance``), ``optimizer``'s state
    (an ``SGD``/``Adam``-like object with ``state_dict``), ``epoch``, fastnn's init RNG
    state and ``extra`` (JSON-able) to ``path`` as ``.npz``, atomically.
    ``arrays`` adds named arrays (stored under ``extra/<name>``)."""
    from ._rng import module_rng

    out = {}
    modules = []
    for i, m in enumerate(_leaves(net)):
        shapes = {n: list(np.shape(m.__dict__[n])) for n in m._param_names}
        modules.append([type(m).__name__, shapes])
    for i, m, kind, name in _module_arrays(net):
        a = m.__dict__.get(name)
        if a is not None:
            out[f"{kind}/{i}/{name}"] = np.asarray(_host(a))
    opt_meta, opt_arrays = _optimizer_payload(optimizer)
    out.update(opt_arrays)
    for k, v in (arrays or {}).items():
        out[f"extra/{k}"] = np.asarray(v)
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": int(epoch),
            "modules": modules, "optimizer": opt_meta,
            "rng": {"init": _jsonable(module_rng().bit_generator.state)},
            "extra": _jsonable(extra or {})}
    out["__meta__"] = np.array(json.dumps(meta))
    return _atomic_savez(path, out)


def _read_checkpoint(path):
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except Exception as exc:
        raise ValueError(f"{path}: not a readable fastnn checkpoint ({exc})") from exc
    if "__meta__" not in arrays:
        raise ValueError(f"{path}: not a fastnn checkpoint (no __meta__ entry)")
    meta = json.loads(str(arrays.pop("__meta__")))
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a fastnn checkpoint (format {meta.get('format')!r})")
    return meta, arrays


def load_checkpoint(path, net, optimizer=None, restore_rng=True):
    """Load a ``save_checkpoint`` file into ``net`` (and ``optimizer``, when given).

    The network must have the same layers and shapes; errors name the first mismatch.
    Returns a dict: ``epoch``, ``extra``, ``arrays`` (the ``arrays=`` given at save),
    ``meta``. With ``restore_rng`` fastnn's parameter-init RNG gets its saved state."""
    from ._rng import module_rng

    path = os.fspath(path)
    meta, arrays = _read_checkpoint(path)
    leaves = _leaves(net)
    saved_modules = meta["modules"]
    if len(saved_modules) != len(leaves):
        raise ValueError(f"{path}: the checkpoint has {len(saved_modules)} modules, the network "
                         f"has {len(leaves)}: {[s[0] for s in saved_modules]} vs "
                         f"{[type(m).__name__ for m in leaves]}")
    for i, (m, (tname, shapes)) in enumerate(zip(leaves, saved_modules)):
        if tname != type(m).__name__:
            raise ValueError(f"{path}: module #{i} is {tname} in the checkpoint but "
                             f"{type(m).__name__} in the network")
        for n in m._param_names:
            have = list(np.shape(m.__dict__[n]))
            if shapes.get(n) != have:
                raise ValueError(f"{path}: module #{i} ({m!r}): {n} has shape {shapes.get(n)} "
                                 f"in the checkpoint, {have} in the network")
    for i, m, kind, name in _module_arrays(net):
        key = f"{kind}/{i}/{name}"
        if key in arrays:
            _set_array(m, name, arrays[key])
        elif kind == "param":
            raise ValueError(f"{path}: missing {key}")
    if optimizer is not None:
        opt_meta = meta.get("optimizer")
        if opt_meta is None:
            raise ValueError(f"{path}: the checkpoint holds no optimizer state")
        if opt_meta["type"] != type(optimizer).__name__:
            raise ValueError(f"{path}: optimizer state is for {opt_meta['type']}, "
                             f"got a {type(optimizer).__name__}")
        sd = {"config": dict(opt_meta["config"])}
        sd.update(opt_meta["scalars"])
        for key in opt_meta["dicts"]:
            prefix = f"optim/{key}/"
            sd[key] = {int(k[len(prefix):]): v for k, v in arrays.items() if k.startswith(prefix)}
        optimizer.load_state_dict(sd)
    if restore_rng and meta.get("rng", {}).get("init"):
        module_rng().bit_generator.state = meta["rng"]["init"]
    extra_arrays = {k[len("extra/"):]: v for k, v in arrays.items() if k.startswith("extra/")}
    return {"epoch": meta["epoch"], "extra": meta.get("extra", {}), "arrays": extra_arrays,
            "meta": meta}


def save_parameters(path, net):
    """Parameters and moving statistics only (atomic ``.npz``)."""
    return save_checkpoint(path, net)


def load_parameters(path, net):
    """Load ``save_parameters`` (or ``save_checkpoint``) weights into ``net``."""
    load_checkpoint(path, net, restore_rng=False)
    return net


# --------------------------------------------------------------------------- evaluation

def _labels(y):
    if y is None:
        return None
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.reshape(-1)


def predict(net, X, batch_size=1024):
    """Outputs of ``net`` on ``X`` in evaluate mode, batch by batch (a new array)."""
    was_training = net.training
    net.evaluate()
    try:
        parts = [np.array(_host(net.forward(X[s:s + batch_size])))
                 for s in range(0, len(X), batch_size)]
    finally:
        if was_training:
            net.train()
    return np.concatenate(parts) if parts else np.empty((0,))


def evaluate(net, criterion, X, y=None, batch_size=1024, metric="accuracy"):
    """``(loss, accuracy)`` over ``X`` in evaluate mode (the mode is restored after).
    ``y=None`` means the target is the input (autoencoder); ``criterion=None`` skips
    the loss; ``metric=None`` skips the accuracy (returned as None)."""
    n = len(X)
    if n == 0:
        raise ValueError("evaluate: empty data")
    labels = _labels(y) if metric == "accuracy" and y is not None else None
    was_training = net.training
    net.evaluate()
    total, correct = 0.0, 0
    try:
        for s in range(0, n, batch_size):
            xb = X[s:s + batch_size]
            out = net.forward(xb)
            if criterion is not None:
                tb = xb if y is None else y[s:s + batch_size]
                total += criterion.forward(out, tb) * len(xb)
            if labels is not None:
                correct += int(np.count_nonzero(
                    np.argmax(_host(out), axis=1) == labels[s:s + batch_size]))
    finally:
        if was_training:
            net.train()
    loss = total / n if criterion is not None else None
    acc = correct / n if labels is not None else None
    return loss, acc


# --------------------------------------------------------------------------- optimizer

class _RuleOptimizer:
    """A functional optimizer (``sgd_momentum``, ``adam_optimizer`` or any function with
    their signature) with the class interface ``fit`` uses."""

    def __init__(self, module, rule, config):
        from .optim import _Optimizer
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


def _make_optimizer(net, optimizer, config):
    from . import optim
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


def _augment_caller(augment):
    if augment is None or augment is False:
        return None
    if augment is True:
        from .datasets import augment_batch
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


def _seed_dropout(net, value):
    """Seed the RNG that dropout masks come from (Numba's, on the CPU)."""
    backend = getattr(net, "backend", CPUBackend)
    for b in (backend, CPUBackend) if backend is not CPUBackend else (CPUBackend,):
        try:
            seed = getattr(b.kernels.dropout, "seed", None)
        except ImportError:
            seed = None
        if seed is not None:
            seed(int(value))


def _epoch_streams(seed, epoch):
    """Independent generators for the shuffle and the augmentation of one epoch, and a
    32-bit dropout seed, all from (seed, epoch)."""
    ss = np.random.SeedSequence([int(seed), int(epoch)])
    s_shuffle, s_aug, s_drop = ss.spawn(3)
    return (np.random.default_rng(s_shuffle), np.random.default_rng(s_aug),
            int(s_drop.generate_state(1)[0]))


def _default_line(epoch, epochs, rec, metric):
    parts = [f"epoch {epoch:>{len(str(epochs))}}/{epochs}",
             f"train loss {_fmt(rec['train_loss'])}"]
    if metric == "accuracy":
        parts.append(f"train acc {rec['train_accuracy']:.4f}")
    if rec["val_loss"] is not None:
        parts.append(f"val loss {_fmt(rec['val_loss'])}")
    if rec["val_accuracy"] is not None:
        parts.append(f"val acc {rec['val_accuracy']:.4f}")
    parts.append(f"lr {rec['lr']:.4g}")
    parts.append(f"{rec['epoch_time']:.1f}s")
    return "  ".join(parts)


def _fmt(v):
    return "n/a" if v is None else (f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}")


# --------------------------------------------------------------------------- fit

def fit(net, criterion, X, y=None, *, optimizer="sgd", config=None, epochs=10, batch_size=128,
        schedule=None, X_val=None, y_val=None, early_stopping=None, monitor=None,
        restore_best=None, augment=None, seed=None, progress=True, log=print, checkpoint=None,
        resume=None, metric="accuracy", eval_batch_size=1024, shuffle=True,
        divergence_factor=1e3, snapshot_every=None, max_steps=None):
    """Train ``net`` on ``(X, y)`` with ``criterion``; returns a :class:`History`.

    ``y=None`` trains to reproduce the input (autoencoder; the augmented batch is the
    target too) and turns the accuracy off. ``optimizer``: ``'sgd'`` (homework SGD with
    momentum, default config ``learning_rate=0.01, momentum=0.9``), ``'adam'``, an
    optimizer object (``fastnn.optim.SGD``/``Adam``) or a function with the
    ``sgd_momentum`` signature; ``config`` updates its config. ``schedule``: a callable
    epoch (0-based) -> learning rate, e.g. ``StepDecay``. ``early_stopping``: patience in
    epochs on ``monitor`` (default ``'val_accuracy'`` when there are labels, else
    ``'val_loss'``; needs ``X_val``), restoring the best weights (``restore_best``).
    ``augment``: callable batch -> batch (``True`` = ``augment_batch``); one that takes
    ``rng=`` gets the epoch's generator. ``checkpoint``: path written after every epoch
    (atomically); ``resume``: a checkpoint path to continue from (its epoch, optimizer
    state, history and seed). ``metric``: ``'accuracy'`` or None. ``log``: called with
    one line per epoch (None: silent). ``max_steps``: stop after that many steps in
    total (for quick runs and tests).

    Raises :class:`TrainingDiverged` when the loss becomes NaN/inf or exceeds
    ``divergence_factor`` times the reference loss (the first epoch's mean, the first
    step's until then); the net then holds the last good snapshot (taken at each epoch
    start and every ``snapshot_every`` steps).
    """
    if not isinstance(net, Module):
        raise TypeError(f"fit: net must be a fastnn Module, got {type(net).__name__}")
    n = len(X)
    if n == 0:
        raise ValueError("fit: no training samples")
    if y is not None and len(y) != n:
        raise ValueError(f"fit: X has {n} samples but y has {len(y)}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"fit: batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    if metric not in ("accuracy", None):
        raise ValueError(f"fit: metric must be 'accuracy' or None, got {metric!r}")
    if y is None:
        metric = None
    has_val = X_val is not None
    if has_val and y_val is None and y is not None:
        raise ValueError("fit: X_val given without y_val")
    if monitor is None:
        monitor = "val_accuracy" if (metric == "accuracy" and has_val) else "val_loss"
    if monitor not in ("val_accuracy", "val_loss", "train_loss"):
        raise ValueError(f"fit: monitor must be 'val_accuracy', 'val_loss' or 'train_loss', "
                         f"got {monitor!r}")
    if early_stopping is not None:
        if int(early_stopping) < 1:
            raise ValueError(f"fit: early_stopping is a patience in epochs (>= 1), got "
                             f"{early_stopping!r}")
        if monitor.startswith("val") and not has_val:
            raise ValueError("fit: early_stopping needs validation data (X_val, y_val)")
    if restore_best is None:
        restore_best = early_stopping is not None
    track_best = early_stopping is not None or restore_best
    if track_best and monitor.startswith("val") and not has_val:
        raise ValueError("fit: restore_best needs validation data (X_val, y_val)")
    higher_better = monitor == "val_accuracy"

    opt = _make_optimizer(net, optimizer, config)
    aug = _augment_caller(augment)
    labels = _labels(y) if metric == "accuracy" else None

    history = History()
    history.monitor = monitor
    start_epoch = 0
    ref_loss = None
    best = _Snapshot() if track_best else None
    bad_epochs = 0
    if hasattr(net, "getParameters"):
        net.getParameters()  # flatten once, before any snapshot or load
    if resume is not None and os.path.exists(os.fspath(resume)):
        info = load_checkpoint(resume, net, opt)
        if config:
            opt.config.update(config)
        ex = info["extra"]
        start_epoch = int(info["epoch"])
        history = History.from_dict(ex.get("history", {}))
        history.monitor = monitor
        if seed is None:
            seed = ex.get("seed")
        ref_loss = ex.get("ref_loss")
        bad_epochs = int(ex.get("bad_epochs", 0))
        if best is not None and "best_arrays" in ex:
            # The best weights live in the checkpoint under extra/best/<key>.
            _load_best(best, net, info["arrays"])
    elif resume is not None:
        raise FileNotFoundError(f"fit: resume checkpoint {os.fspath(resume)} does not exist")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2 ** 63))
    seed = int(seed)

    if start_epoch >= epochs:
        if log:
            log(f"nothing to do: the checkpoint is at epoch {start_epoch} of {epochs}")
        history.stopped_reason = history.stopped_reason or "completed"
        return history

    nb = -(-n // batch_size)
    steps_done = len(history.step_loss)
    last_good = _Snapshot()
    t_fit = time.perf_counter()
    stop = None
    net.train()
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        if schedule is not None:
            lr = float(schedule(epoch))
            opt.config["learning_rate"] = lr
        lr = float(opt.config.get("learning_rate", float("nan")))
        rng_shuffle, rng_aug, drop_seed = _epoch_streams(seed, epoch)
        order = rng_shuffle.permutation(n) if shuffle else np.arange(n)
        _seed_dropout(net, drop_seed)
        last_good.take(net)
        net.train()

        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=nb, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                       leave=False, dynamic_ncols=True)
        sum_loss, sum_correct, seen = 0.0, 0, 0
        steps_this_epoch = 0
        try:
            for b in range(nb):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb = X[idx]
                if aug is not None:
                    xb = aug(xb, rng_aug)
                tb = xb if y is None else y[idx]
                net.zeroGradParameters()
                out = net.forward(xb)
                loss = float(criterion.forward(out, tb))
                step_no = steps_done + 1
                if ref_loss is None and math.isfinite(loss):
                    ref_loss = loss
                if not math.isfinite(loss) or \
                        loss > divergence_factor * max(abs(ref_loss), 1e-3):
                    what = "not finite" if not math.isfinite(loss) else \
                        f"more than {divergence_factor:g} x the reference loss {ref_loss:.4g}"
                    stop = ("diverged", epoch, step_no,
                            f"training diverged at epoch {epoch + 1}, step {step_no}: loss is "
                            f"{loss:.4g} ({what}) with learning rate {lr:.4g}. The weights were "
                            f"restored to the last good snapshot (start of epoch {epoch + 1}"
                            f"{' or later' if snapshot_every else ''}). Lower the learning rate, "
                            f"check the input for NaN/inf, or use a schedule.")
                    break
                net.backward(xb, criterion.backward(out, tb))
                opt.step()
                steps_done += 1
                steps_this_epoch += 1
                k = len(xb)
                sum_loss += loss * k
                seen += k
                history.step_loss.append(loss)
                if labels is not None:
                    c = int(np.count_nonzero(np.argmax(_host(out), axis=1) == labels[idx]))
                    sum_correct += c
                    history.step_accuracy.append(c / k)
                if bar is not None:
                    bar.update(1)
                    if b % 20 == 0:
                        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                if snapshot_every and steps_done % int(snapshot_every) == 0:
                    last_good.take(net)
                if max_steps is not None and steps_done >= max_steps:
                    break
        finally:
            if bar is not None:
                bar.close()

        if stop is not None:
            break

        if seen:
            train_loss = sum_loss / seen
        else:
            train_loss = float("nan")
        train_acc = sum_correct / seen if labels is not None and seen else None
        if not _params_finite(net):
            stop = ("diverged", epoch, steps_done,
                    f"training diverged in epoch {epoch + 1}: the weights are no longer finite "
                    f"(learning rate {lr:.4g}). They were restored to the last good snapshot. "
                    f"Lower the learning rate.")
            break
        val_loss = val_acc = None
        if has_val:
            val_loss, val_acc = evaluate(net, criterion, X_val, y_val, eval_batch_size, metric)
            net.train()
            limit = divergence_factor * max(abs(ref_loss if ref_loss is not None
                                                else train_loss), 1e-3)
            if not math.isfinite(val_loss) or val_loss > limit:
                stop = ("diverged", epoch, steps_done,
                        f"training diverged in epoch {epoch + 1}: the validation loss is "
                        f"{val_loss:.4g} (learning rate {lr:.4g}). The weights were restored "
                        f"to the last good snapshot (start of epoch {epoch + 1}"
                        f"{' or later' if snapshot_every else ''}). Lower the learning rate.")
                break
        if epoch == 0 and math.isfinite(train_loss):
            ref_loss = train_loss  # from now on the reference is the first epoch's mean

        dt = time.perf_counter() - t0
        history.epochs.append(epoch + 1)
        history.train_loss.append(train_loss)
        history.train_accuracy.append(train_acc)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_acc)
        history.lr.append(lr)
        history.epoch_time.append(dt)
        history.steps.append(steps_this_epoch)

        value = {"val_accuracy": val_acc, "val_loss": val_loss, "train_loss": train_loss}[monitor]
        improved = False
        if value is not None and math.isfinite(value):
            if history.best_value is None or \
                    (value > history.best_value if higher_better else value < history.best_value):
                history.best_value, history.best_epoch = value, epoch + 1
                improved = True
        if improved:
            bad_epochs = 0
            if best is not None:
                best.take(net)
        else:
            bad_epochs += 1

        if log:
            log(_default_line(epoch + 1, epochs, history.last(), metric))

        finished = epoch + 1 >= epochs
        if early_stopping is not None and bad_epochs >= int(early_stopping) and not finished:
            history.stopped_reason = "early_stopping"
            history.message = (f"early stopping after epoch {epoch + 1}: {monitor} did not "
                               f"improve for {bad_epochs} epochs (best {history.best_value:.4g} "
                               f"at epoch {history.best_epoch})")
        if max_steps is not None and steps_done >= max_steps and not finished:
            history.stopped_reason = "max_steps"
            history.message = f"stopped after {steps_done} steps (max_steps)"
        if checkpoint is not None:
            extra = {"history": history.to_dict(), "seed": seed, "ref_loss": ref_loss,
                     "bad_epochs": bad_epochs}
            extra_arrays = None
            if best is not None and best.valid:
                extra["best_arrays"] = True
                extra_arrays = _best_arrays(best)
            save_checkpoint(checkpoint, net, opt, epoch=epoch + 1, extra=extra,
                            arrays=extra_arrays)
        if history.stopped_reason in ("early_stopping", "max_steps"):
            if log:
                log(history.message)
            break

    history.total_time += time.perf_counter() - t_fit
    if stop is not None:
        reason, epoch, step, message = stop
        last_good.restore(net)
        net.train()
        history.stopped_reason = reason
        history.message = message
        raise TrainingDiverged(message, history=history, epoch=epoch + 1, step=step)
    if history.stopped_reason is None:
        history.stopped_reason = "completed"
    if restore_best and best is not None and best.valid:
        best.restore(net)
        if log and history.best_epoch != history.epochs[-1]:
            log(f"restored the weights of epoch {history.best_epoch} "
                f"(best {monitor} {history.best_value:.4f})")
    net.train()
    return history


def _params_finite(net):
    flat = getattr(net, "_flat", None)
    if isinstance(flat, dict) and isinstance(flat.get("params"), np.ndarray):
        return bool(np.isfinite(flat["params"]).all())
    for i, m, kind, name in _module_arrays(net):
        a = m.__dict__.get(name)
        if a is not None and not np.isfinite(_host(a)).all():
            return False
    return True


def _best_arrays(snapshot):
    return {f"best/{i}/{name}": a for (i, name), a in snapshot._copies.items() if a is not None}


def _load_best(snapshot, net, arrays):
    for i, m, kind, name in _module_arrays(net):
        a = arrays.get(f"best/{i}/{name}")
        snapshot._copies[(i, name)] = None if a is None else np.array(a)
    snapshot.valid = True
