"""``fastnn compare WHAT``: the homework's comparisons, each the same MLP trained on the
55k/5k split over several seeds, reported as mean ± std.

  fastnn compare {activations,normalization,dropout,optimizers,pretraining}
                 [--epochs N] [--seeds N] [--seed S] [--lr LR] [--batch-size B] [--out DIR]

(``main.py`` parses the options; ``run`` takes plain values.)

- ``activations``: ReLU, ELU, LeakyReLU, SoftPlus.
- ``normalization``: none, BatchMeanSubtraction, BatchNormalization + ChannelwiseScaling
  after every hidden Linear.
- ``dropout``: Dropout(p) after every hidden activation, p = 0, 0.2, 0.5.
- ``optimizers``: ``sgd_momentum`` (momentum 0.9) and ``adam``, each at its best learning
  rate from ``LR_GRID``, chosen on the validation accuracy of the first seed.
- ``pretraining``: the seed-recipe autoencoder's encoder (784-512-256-128-30, BatchNorm
  + ReLU) under a Linear(30, 10) + LogSoftMax head, trained from scratch or after
  pre-training the autoencoder (the seed recipe, ``--pretrain-epochs``); the classifier's
  training (optimizer, learning rate, epochs, head initialisation) is the same for both.

Every variant but the optimizers' trains with SGD momentum 0.9, lr ``--lr`` (0.01),
batch 128, no schedule, no augmentation, for ``--epochs`` epochs (``DEFAULT_EPOCHS``).
The table gives the test accuracy (10k test images), the last epoch's mean training loss
(in training mode: with dropout active) and the seconds per epoch (validation pass
included). ``--out DIR`` gets ``compare_WHAT.png`` (training loss per variant, mean over
the seeds; test accuracy with error bars), ``compare_WHAT.md`` (the table) and
``compare_WHAT.json`` (every seed's figures).
"""
import textwrap
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import models
from ..kernels._files import atomic_write
from .common import RunOptions, _can_plot, _out_path, _schedule, _split, _write_json

WHATS = ("activations", "normalization", "dropout", "optimizers", "pretraining")
#: Epochs per run when ``--epochs`` is not given.
DEFAULT_EPOCHS = 5
#: Learning rates tried per optimizer (``compare optimizers``).
LR_GRID = {"sgd_momentum": (0.01, 0.03, 0.1, 0.3), "adam": (3e-4, 1e-3, 3e-3, 1e-2)}
#: The plot's line styles, one per variant (with distinct colours: no curve hides another).
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "D", "v", "P")


class Variant:
    """One row of a comparison: ``build(seed)`` returns (net, extra results) and the
    classifier trains with ``optimizer`` at ``lr``."""

    def __init__(self, name, build, optimizer="sgd", lr=0.01, warm_up=True):
        self.name, self.build, self.optimizer, self.lr = name, build, optimizer, lr
        self.warm_up = warm_up


@dataclass(frozen=True)
class Settings:
    """One comparison's training settings (``run``'s arguments) with the run's shared
    options."""
    epochs: int
    seeds: int
    batch_size: int
    lr: float
    pretrain_epochs: Optional[int]
    batchnorm: bool
    progress: bool
    max_steps: Optional[int]


def variants(what, args: Settings, data):
    """The variants of comparison ``what``."""
    lr = args.lr
    if what == "activations":
        out = [Variant(a, lambda s, a=a: (models.activation_mlp(a), {}), lr=lr)
               for a in ("ReLU", "ELU", "LeakyReLU", "SoftPlus")]
        if args.batchnorm:
            out += [Variant(a + " + BatchNorm",
                            lambda s, a=a: (models.activation_mlp(a, batchnorm=True), {}), lr=lr)
                    for a in ("ReLU", "ELU")]
        return out
    if what == "normalization":
        return [Variant(name, lambda s, n=n: (models.activation_mlp("ReLU", norm=n), {}), lr=lr)
                for name, n in (("none", None), ("BatchMeanSubtraction", "BatchMeanSubtraction"),
                                ("BatchNormalization + ChannelwiseScaling",
                                 "BatchNormalization"))]
    if what == "dropout":
        return [Variant(f"p = {p:g}", lambda s, p=p: (models.activation_mlp("ReLU", dropout=p), {}),
                        lr=lr) for p in (0.0, 0.2, 0.5)]
    if what == "pretraining":
        return [Variant("from scratch", lambda s: _encoder_classifier(s, args, data, False), lr=lr),
                Variant("autoencoder pre-training + fine-tuning",
                        lambda s: _encoder_classifier(s, args, data, True), lr=lr,
                        warm_up=False)]
    raise ValueError(f"compare: no fixed variants for {what!r}")


def _encoder_classifier(seed, args, data, pretrain):
    """The seed-recipe autoencoder's encoder + Linear(30, 10) + LogSoftMax. Both variants
    start from the same initial weights; ``pretrain`` first trains the whole autoencoder
    with the seed recipe."""
    import fastnn as nn
    from ..train import evaluate, fit
    from .experiments import AE_RECIPES
    X_tr, X_val, Xt = data["X_tr"], data["X_val"], data["Xt"]
    recipe = AE_RECIPES["seed"]
    nn.manual_seed(seed)
    ae = models.autoencoder("seed", X_tr.mean(axis=0), recipe["hidden_init_scale"])
    extra = {}
    if pretrain:
        epochs = args.pretrain_epochs or recipe["epochs"]
        t0 = time.perf_counter()
        fit(ae, nn.MSECriterion(), X_tr, None, optimizer="sgd",
            config={"learning_rate": recipe["lr"], "momentum": recipe["momentum"]},
            epochs=epochs, batch_size=recipe["batch_size"],
            schedule=_schedule(recipe["schedule"], recipe["lr"], epochs), X_val=X_val,
            metric=None, seed=seed, progress=args.progress, log=print,
            max_steps=args.max_steps)
        extra["pretrain_seconds"] = time.perf_counter() - t0
        extra["pretrain_epochs"] = epochs
        extra["test_reconstruction"] = evaluate(ae, nn.MSECriterion(), Xt, None, metric=None)[0]
    encoder, _ = models.split_autoencoder(ae)
    nn.manual_seed(seed + 10_000)  # the same head for both variants
    head = [nn.Linear(models.AE_SIZES[-1], 10), nn.LogSoftMax()]
    return nn.Sequential(*encoder.modules, *head), extra


def _train(variant, seed, args, data, log=print):
    """Train one variant with one seed: its figures and its loss curve."""
    import fastnn as nn
    from ..train import evaluate, fit
    nn.manual_seed(seed)
    net, extra = variant.build(seed)
    crit = nn.ClassNLLCriterion()
    config = {"learning_rate": variant.lr}
    if variant.optimizer == "sgd":
        config["momentum"] = 0.9
    nn.manual_seed(seed)
    h = fit(net, crit, data["X_tr"], data["y_tr"], optimizer=variant.optimizer, config=config,
            epochs=args.epochs, batch_size=args.batch_size, X_val=data["X_val"],
            y_val=data["y_val"], seed=seed, progress=args.progress, log=log,
            max_steps=args.max_steps)
    _, acc = evaluate(net, crit, data["Xt"], data["yt"])
    return dict(seed=seed, test_accuracy=float(acc), final_train_loss=float(h.train_loss[-1]),
                val_accuracy=float(h.val_accuracy[-1]),
                seconds_per_epoch=float(np.mean(h.epoch_time)),
                steps=h.step_positions(), step_loss=[float(v) for v in h.step_loss], **extra)


def _warm_up(variant, args, data):
    """Two steps on a throwaway net, so that compiling (or loading) the kernels does not
    count in the first seed's time per epoch."""
    import fastnn as nn
    from ..train import fit
    if not variant.warm_up:
        return
    net, _ = variant.build(0)
    fit(net, nn.ClassNLLCriterion(), data["X_tr"][:2 * args.batch_size],
        data["y_tr"][:2 * args.batch_size], optimizer=variant.optimizer,
        config={"learning_rate": variant.lr}, epochs=1, batch_size=args.batch_size,
        X_val=data["X_val"][:256], y_val=data["y_val"][:256], seed=0, progress=False,
        log=None)


def _run_variant(variant, seeds, args, data):
    _warm_up(variant, args, data)
    runs = []
    for s in seeds:
        print(f"--- {variant.name}, seed {s}", flush=True)
        runs.append(_train(variant, s, args, data))
    return runs


def _optimizer_rows(args, seeds, data):
    """Each optimizer at its best learning rate from ``LR_GRID`` (the first seed's
    validation accuracy after ``--epochs``), then over all the seeds."""
    rows, grid = [], []
    for opt, lrs in LR_GRID.items():
        name = "sgd" if opt == "sgd_momentum" else "adam"
        tried = []
        for lr in lrs:
            v = Variant(f"{opt} lr {lr:g}", lambda s: (models.activation_mlp("ReLU"), {}),
                        optimizer=name, lr=lr)
            print(f"--- grid: {v.name}, seed {seeds[0]}", flush=True)
            _warm_up(v, args, data)
            run = _train(v, seeds[0], args, data)
            tried.append((run["val_accuracy"], -lr, v, run))
            grid.append(dict(optimizer=opt, lr=lr, val_accuracy=run["val_accuracy"]))
        _, _, best, first = max(tried, key=lambda t: (t[0], t[1]))
        edge = " (at the grid's edge: a wider grid may do better)" if best.lr in (
            lrs[0], lrs[-1]) else ""
        print(f"{opt}: best learning rate {best.lr:g} (validation accuracy "
              f"{first['val_accuracy']:.4f}){edge}", flush=True)
        rows.append((best, [first] + _run_variant(best, seeds[1:], args, data)))
    return rows, grid


def _mean_std(values):
    a = np.asarray(values, np.float64)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else float("nan"))


def _pm(mean, std, digits):
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def summarize(rows):
    """(name, acc %, loss, s/epoch) strings per row, each 'mean ± std' over the seeds."""
    out = []
    for variant, runs in rows:
        acc = _mean_std([100 * r["test_accuracy"] for r in runs])
        loss = _mean_std([r["final_train_loss"] for r in runs])
        sec = _mean_std([r["seconds_per_epoch"] for r in runs])
        out.append((variant.name, _pm(*acc, 2), _pm(*loss, 4), _pm(*sec, 1)))
    return out


HEADER = ("variant", "test accuracy (%)", "final train loss", "s/epoch")


def table_text(rows):
    cells = summarize(rows)
    w = max(len(HEADER[0]), *(len(c[0]) for c in cells)) + 2
    lines = [f"{HEADER[0]:<{w}}{HEADER[1]:>20}{HEADER[2]:>20}{HEADER[3]:>14}"]
    lines += [f"{n:<{w}}{a:>20}{l:>20}{s:>14}" for n, a, l, s in cells]
    return "\n".join(lines)


def table_markdown(rows):
    lines = ["| " + " | ".join(HEADER) + " |", "| --- | ---: | ---: | ---: |"]
    lines += ["| " + " | ".join(c) + " |" for c in summarize(rows)]
    return "\n".join(lines) + "\n"


def plot(path, rows, title):
    """Training loss per variant (moving average, mean over the seeds; the band spans
    the seeds' lowest and highest) and test accuracy as mean ± std with every seed's
    point. Each variant has its own colour, line style and marker."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(12, 4.8))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    window, lows, highs = 1, [], []
    for i, (variant, runs) in enumerate(rows):
        color = f"C{i % 10}"
        n = min(len(r["step_loss"]) for r in runs)
        window = max(1, min(50, n // 20))
        curves = np.array([np.convolve(r["step_loss"][:n], np.ones(window) / window, "valid")
                           for r in runs])
        xs = np.asarray(runs[0]["steps"][:n])[window - 1:]
        lows.append(curves.min())
        highs.append(curves.max())
        ax_loss.plot(xs, curves.mean(axis=0), color=color, ls=LINESTYLES[i % len(LINESTYLES)],
                     marker=MARKERS[i % len(MARKERS)], markevery=(i * max(1, len(xs) // 60),
                                                                    max(1, len(xs) // 8)),
                     lw=1.6, ms=5, label=variant.name)
        if len(runs) > 1:
            ax_loss.fill_between(xs, curves.min(axis=0), curves.max(axis=0), color=color,
                                 alpha=0.12, lw=0)
        accs = [100 * r["test_accuracy"] for r in runs]
        mean, std = _mean_std(accs)
        ax_acc.errorbar([i], [mean], yerr=[0 if not np.isfinite(std) else std], color=color,
                        marker=MARKERS[i % len(MARKERS)], ms=8, capsize=6, lw=2)
        ax_acc.plot(np.full(len(accs), i + 0.15), accs, ".", color=color, alpha=0.6)
    if min(lows) > 0 and max(highs) / min(lows) > 10:
        from matplotlib.ticker import FuncFormatter
        ax_loss.set_yscale("log")
        ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_loss.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel(f"training loss (moving average of {window} steps)")
    ax_loss.grid(alpha=0.3, which="both")
    ax_loss.legend(fontsize=8)
    ax_acc.set_xticks(range(len(rows)))
    ax_acc.set_xticklabels([_wrap(v.name) for v, _ in rows], fontsize=8)
    ax_acc.set_xlim(-0.5, len(rows) - 0.5)
    ax_acc.set_ylabel("test accuracy (%): mean ± std, dots: seeds")
    ax_acc.grid(alpha=0.3, axis="y")
    fig.suptitle("\n".join(textwrap.wrap(title, 120)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def _minor_label(value, _):
    """Label the log axis' minor ticks at 2, 3 and 5 times a power of ten only."""
    if value <= 0:
        return ""
    lead = value / 10 ** np.floor(np.log10(value))
    return f"{value:g}" if round(lead) in (2, 3, 5) and abs(lead - round(lead)) < 1e-6 else ""


def _wrap(name, width=14):
    words, lines = name.split(" "), [""]
    for w in words:
        if lines[-1] and len(lines[-1]) + 1 + len(w) > width:
            lines.append(w)
        else:
            lines[-1] = (lines[-1] + " " + w).strip()
    return "\n".join(lines)


def describe(what, args, data):
    if what == "optimizers":
        train = "each optimizer at its best lr from " + ", ".join(
            f"{k} {{{', '.join(f'{v:g}' for v in lrs)}}}" for k, lrs in LR_GRID.items())
    else:
        train = f"SGD momentum 0.9, lr {args.lr:g}"
    net = ("encoder 784-512-256-128-30 + Linear(30, 10)" if what == "pretraining"
           else "MLP 784-256-128-10")
    n_tr, n_val = len(data["X_tr"]) / 1000, len(data["X_val"]) / 1000
    return (f"compare {what}: {net}, {train}, batch {args.batch_size}, {args.epochs} "
            f"epoch(s), {n_tr:g}k train / {n_val:g}k val, mean ± std over {args.seeds} seed(s)")


def run(run: RunOptions, what: str, epochs: int = DEFAULT_EPOCHS, seeds: int = 3,
        batch_size: int = 128, lr: float = 0.01, pretrain_epochs: Optional[int] = None,
        batchnorm: bool = False) -> int:
    """Run comparison ``what`` (one of ``WHATS``) and print its table.

    Parameters
    ----------
    run : RunOptions
        Data, output folder (the plot, table and JSON go there), base seed, progress bars
        and the tests' limits.
    what : str
        ``"activations"``, ``"normalization"``, ``"dropout"``, ``"optimizers"`` or
        ``"pretraining"``.
    epochs, seeds, batch_size, lr : int, int, int, float
        Epochs per run, runs per variant (seeds ``run.seed``, ``run.seed + 1``, ...),
        samples per step, SGD learning rate (the optimizers use ``LR_GRID``).
    pretrain_epochs : int, optional
        ``pretraining``: the autoencoder's epochs (default: the seed recipe's).
    batchnorm : bool
        ``activations``: also ReLU and ELU after BatchNormalization.

    Returns
    -------
    int
        The exit status (0).
    """
    if what not in WHATS:
        raise ValueError(f"compare: what must be one of {', '.join(WHATS)}, got {what!r}")
    args = Settings(epochs=epochs, seeds=max(1, seeds), batch_size=batch_size, lr=lr,
                    pretrain_epochs=pretrain_epochs, batchnorm=batchnorm,
                    progress=run.progress, max_steps=run.max_steps)
    seed_list = [run.seed + k for k in range(args.seeds)]
    X_tr, y_tr, X_val, y_val, Xt, yt = _split(run)
    data = dict(X_tr=X_tr, y_tr=y_tr, X_val=X_val, y_val=y_val, Xt=Xt, yt=yt)
    title = describe(what, args, data)
    print(title, flush=True)
    t0 = time.perf_counter()
    grid = None
    if what == "optimizers":
        rows, grid = _optimizer_rows(args, seed_list, data)
    else:
        rows = [(v, _run_variant(v, seed_list, args, data)) for v in variants(what, args, data)]
    print()
    print(title)
    if grid:
        print("learning-rate grid (validation accuracy, seed %d): " % seed_list[0] + ", ".join(
            f"{g['optimizer']} {g['lr']:g}: {g['val_accuracy']:.4f}" for g in grid))
    for variant, runs in rows:
        if "pretrain_seconds" in runs[0]:
            rec = _mean_std([r["test_reconstruction"] for r in runs])
            sec = _mean_std([r["pretrain_seconds"] for r in runs])
            print(f"pre-training ({runs[0]['pretrain_epochs']} epochs, seed recipe): test "
                  f"reconstruction {_pm(*rec, 2)}, {_pm(*sec, 0)} s per run")
    print(table_text(rows))
    print(f"total time: {time.perf_counter() - t0:.0f}s")
    path = _out_path(run, f"compare_{what}.png")
    if path and _can_plot("the comparison plot"):
        plot(path, rows, title)
        print(f"plot: {path}")
    if path:
        with atomic_write(_out_path(run, f"compare_{what}.md"), "w") as f:
            f.write(table_markdown(rows))
        _write_json(_out_path(run, f"compare_{what}.json"), dict(
            what=what, description=title, epochs=args.epochs, seeds=seed_list,
            batch_size=args.batch_size, lr_grid=grid,
            variants=[dict(name=v.name, optimizer=v.optimizer, lr=v.lr, runs=runs)
                      for v, runs in rows]))
    return 0
