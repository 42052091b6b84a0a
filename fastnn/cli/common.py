"""What the CLI's commands share: the one-line error, loading and splitting MNIST, output
paths and the training recipes' pieces (schedule, augmentation, checkpoint paths)."""
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

from ..kernels._files import atomic_write
from ..nested import flatten


EXIT_USAGE = 2


class CLIError(Exception):
    """A one-line error for the user; ``main`` prints it and exits with ``code``."""

    def __init__(self, message, code=EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _shorten(text, limit):
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[:limit - 1].rsplit(" ", 1)[0] + " …"


@dataclass(frozen=True)
class RunOptions:
    """What every MNIST command shares, as plain values: ``main.py`` fills it once from the
    parsed options, and no argparse namespace travels past it.

    Parameters
    ----------
    data : str, optional
        ``--data``: a folder holding the MNIST files or ``mnist/`` with them.
    download : bool
        Fetch MNIST when no searched folder holds it.
    out : str, optional
        Where plots, checkpoints and results go; None writes nothing.
    seed : int
        Seeds the weights, the split, the batch order and the augmentation.
    progress : bool
        Show progress bars.
    resume : bool
        Continue from the checkpoint in ``out``.
    limit_train, limit_test, max_steps : int, optional
        Small runs (the tests' hidden options).
    """
    data: "str | None" = None
    download: bool = True
    out: "str | None" = None
    seed: int = 0
    progress: bool = True
    resume: bool = False
    limit_train: "int | None" = None
    limit_test: "int | None" = None
    max_steps: "int | None" = None


def _one_line(text):
    return " ".join(str(text).split())


def _load_mnist(run, flatten=True):
    from ..data import cache_dir, load_mnist, partial_folders, search_dirs
    try:
        return load_mnist(root=run.data, download=run.download, flatten=flatten,
                          progress=run.progress)
    except FileNotFoundError as exc:
        looked = ", ".join(search_dirs(run.data))
        partial = "".join(f"; {folder} lacks {', '.join(names)}"
                          for folder, names in partial_folders(run.data).items())
        failed = getattr(exc, "download_error", None)
        why = (f"; downloading failed ({_shorten(_one_line(failed), 300)})" if failed
               else "; downloading is off (--no-download)" if not run.download else "")
        target = run.data or os.path.join(cache_dir(), "mnist")
        raise CLIError(f"MNIST not found (looked in {looked}){partial}{why}; put the four IDX "
                       f"files in {target}, or set FASTNN_DATA to a folder that holds them or "
                       f"mnist/ with them (e.g. FASTNN_DATA=../shared/data), or pass --data DIR"
                       ) from None
    except ValueError as exc:  # a corrupt, truncated or mismatched file
        raise CLIError(f"MNIST: {_shorten(_one_line(exc), 400)}") from None


def _split(run, flatten=True, val_size=5000):
    """Train/validation (55k/5k, seeded) and test arrays, cut by the hidden
    --limit-train/--limit-test options."""
    from ..data import train_val_split
    X, y, Xt, yt = _load_mnist(run, flatten)
    X_tr, y_tr, X_val, y_val = train_val_split(X, y, val_size=val_size, seed=0)
    if run.limit_train:
        n = run.limit_train
        X_tr, y_tr = X_tr[:n], y_tr[:n]
        m = min(len(X_val), max(n // 5, 200))
        X_val, y_val = X_val[:m], y_val[:m]
    if run.limit_test:
        Xt, yt = Xt[:run.limit_test], yt[:run.limit_test]
    return X_tr, y_tr, X_val, y_val, Xt, yt


def _out_path(run, name):
    if not run.out:
        return None
    os.makedirs(run.out, exist_ok=True)
    return os.path.join(run.out, name)


def _write_json(path, obj):
    if path is None:
        return
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=1)


def _count_params(net):
    return int(sum(np.size(p) for p in flatten(net.getParameters())))


def _pick(value, default):
    return default if value is None else value


def _schedule(kind, lr, epochs):
    from ..optim import CosineDecay, StepDecay
    if kind == "cosine":
        return CosineDecay(lr, total_epochs=epochs, min_lr=lr * 0.01)
    if kind == "step3":
        return StepDecay(lr, step_size=3, gamma=0.5)
    return None


def _augmenter(settings):
    if not settings:
        return None
    from ..data import augment_batch

    def augment(xb, rng):
        return augment_batch(xb, rng=rng, **settings)
    return augment


def _checkpoint_args(run, name):
    """(checkpoint path, the path to resume from or None). ``main.py`` has checked that
    ``--resume`` comes with ``--out``; a run that has not written its checkpoint yet
    starts afresh. Without ``--resume`` an existing checkpoint is kept aside under a new
    name, never overwritten: a rerun that forgot the flag must not lose the earlier run."""
    ckpt = _out_path(run, name + ".npz")
    resume = ckpt if (run.resume and ckpt and os.path.exists(ckpt)) else None
    if run.resume and resume is None:
        print(f"--resume: no checkpoint {ckpt} yet, starting from scratch")
    if ckpt and not run.resume and os.path.exists(ckpt):
        aside = _free_name(ckpt)
        os.replace(ckpt, aside)
        print(f"{ckpt} exists and --resume was not given: starting from scratch; the old "
              f"checkpoint is kept as {aside} (rename it back and pass --resume to continue it)")
    return ckpt, resume


def _free_name(path):
    """``<stem>.previous[-N].npz``: the first such name not taken."""
    stem, ext = os.path.splitext(path)
    candidate, n = f"{stem}.previous{ext}", 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{stem}.previous-{n}{ext}"
    return candidate


def _can_plot(what):
    """True when matplotlib is there; else a note on stderr (the run's other results are
    still written)."""
    from .._optional import require
    try:
        require("matplotlib", "plot", what)
    except ImportError as exc:
        print(f"fastnn: skipped {what}: {exc}", file=sys.stderr)
        return False
    return True


def _export_onnx(path, net, sample):
    """``--export-onnx PATH``: the trained net as ONNX, traced on ``sample``'s shape
    (nothing when ``path`` is None)."""
    if not path:
        return
    from .. import onnx
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.export(net, path, sample)
    print(f"ONNX model: {path}")
