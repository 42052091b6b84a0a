"""The ``fastnn`` command (also ``python -m fastnn``).

  fastnn train mnist --model {mlp,cnn,autoencoder} [--epochs N] [--batch-size B] [--lr LR]
                     [--seed S] [--out DIR] [--data DIR] [--no-progress] [--resume]
                     [--distributed]   (under mpiexec -n N)
                     [--export-onnx PATH]
  fastnn train mnist --model autoencoder [--recipe {best,seed}] [--pretrain-classifier]
  fastnn demo [--epochs N] [--seed S]
  fastnn compare {activations,normalization,dropout,optimizers,pretraining} [--epochs N]
                 [--seeds N] [--lr LR] [--out DIR]
  fastnn compare-activations [--epochs N] [--out DIR]   (compare activations, one seed)
  fastnn --version

This file is the only one that sees argparse: each command's ``_add_<command>`` declares
its options (every one checked by its ``type``, so a bad value is one ``fastnn: error:``
line and exit 2) and points ``run`` at a ``_run_<command>`` that turns the parsed options
into plain values and calls the runner with them. A new command is one ``_add_`` /
``_run_`` pair and one line in ``build_parser``.
"""
import argparse
import math
import os
import sys
import time
from typing import Optional, Sequence

from .. import models
from .common import (EXIT_USAGE, CLIError, RunOptions, _augmenter, _can_plot,
                     _checkpoint_args, _count_params, _export_onnx, _out_path, _pick, _schedule,
                     _split, _write_json)
from .experiments import compare_activations, run_autoencoder, run_pretrain

#: Commands that write files even without ``--out`` write under this folder, in a
#: subfolder named after the command.
DEFAULT_OUT_ROOT = "fastnn-runs"

#: Defaults of the classifier recipes (the CLI options override them).
CLASSIFIER_RECIPES = {
    "mlp": dict(build=models.mlp, flatten=True, epochs=12, batch_size=128, lr=0.05, momentum=0.9,
                schedule="cosine", augment=dict(max_shift=2, max_angle=10.0)),
    "cnn": dict(build=models.cnn, flatten=False, epochs=10, batch_size=128, lr=0.02, momentum=0.9,
                schedule="cosine", augment=dict(max_shift=2, max_angle=10.0)),
}


# --------------------------------------------------------------------------- runners

def train_classifier(model: str, run: RunOptions, epochs: Optional[int] = None,
                     batch_size: Optional[int] = None, lr: Optional[float] = None,
                     export_onnx: Optional[str] = None, distributed: bool = False) -> int:
    """``fastnn train mnist --model mlp|cnn``: train ``model`` with its recipe
    (``CLASSIFIER_RECIPES``; the arguments left None take the recipe's values), print one
    line per epoch and, last, ``test accuracy: 0.XXXX``; with ``export_onnx`` (a path)
    write the trained net as ONNX. ``distributed``: data-parallel over MPI (``fit``'s
    option; run under ``mpiexec``). Returns the exit status."""
    import fastnn as nn
    from ..train import evaluate, fit
    recipe = CLASSIFIER_RECIPES[model]
    X_tr, y_tr, X_val, y_val, Xt, yt = _split(run, flatten=recipe["flatten"])
    epochs = _pick(epochs, recipe["epochs"])
    batch_size = _pick(batch_size, recipe["batch_size"])
    lr = _pick(lr, recipe["lr"])
    nn.manual_seed(run.seed)
    net = recipe["build"]()
    crit = nn.ClassNLLCriterion()
    print(f"{model}: {_count_params(net):,} parameters; {len(X_tr)} train / "
          f"{len(X_val)} val / {len(Xt)} test; {epochs} epochs, batch {batch_size}, "
          f"SGD lr {lr:g} momentum {recipe['momentum']}, {recipe['schedule']} schedule")
    ckpt, resume = _checkpoint_args(run, model)
    t0 = time.perf_counter()
    history = fit(net, crit, X_tr, y_tr, optimizer="sgd",
                  config={"learning_rate": lr, "momentum": recipe["momentum"]},
                  epochs=epochs, batch_size=batch_size,
                  schedule=_schedule(recipe["schedule"], lr, epochs),
                  X_val=X_val, y_val=y_val, augment=_augmenter(recipe["augment"]),
                  seed=run.seed, progress=run.progress, log=print, checkpoint=ckpt,
                  resume=resume, max_steps=run.max_steps, distributed=distributed)
    train_time = time.perf_counter() - t0
    test_loss, test_acc = evaluate(net, crit, Xt, yt)
    plot = _out_path(run, f"{model}_history.png")
    if plot and _can_plot("the history plot"):
        history.plot(plot, title=f"{model}: test accuracy {test_acc:.4f}")
    _export_onnx(export_onnx, net, Xt[:1])
    _write_json(_out_path(run, f"{model}_results.json"), {
        "model": model, "test_accuracy": test_acc, "test_loss": test_loss,
        "train_seconds": train_time, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "seed": run.seed, "parameters": _count_params(net), "history": history.to_dict()})
    print(f"training time: {train_time:.1f}s")
    print(f"test accuracy: {test_acc:.4f}")
    return 0


# --------------------------------------------------------------------------- option types

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:  # --epochs -1 used to train nothing and exit 0
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _folder(text: str) -> str:
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


class _UsageError(Exception):
    """A bad command line; ``main`` prints it as one ``fastnn: error:`` line."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that an error is one line and returns exit status 2 from
    ``main`` instead of printing the usage and leaving through ``sys.exit``."""

    def error(self, message):
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


# --------------------------------------------------------------------------- commands

def _add_run_options(p, out_help):
    """The options every MNIST command shares (they fill ``RunOptions``)."""
    p.add_argument("--data", metavar="DIR", type=_folder, default=None,
                   help="folder holding the four MNIST files, or mnist/ with them "
                        "(searched first; then $FASTNN_DATA and $FASTNN_DATA/mnist, "
                        "then the user cache's fastnn/mnist: $XDG_CACHE_HOME, default "
                        "~/.cache)")
    p.add_argument("--download", dest="download", action="store_true", default=True,
                   help="download MNIST into the user cache's fastnn/mnist (or --data) when "
                        "it is not found (the default)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="fail instead of downloading when MNIST is not found")
    p.add_argument("--out", metavar="DIR", type=_folder, default=None, help=out_help)
    p.add_argument("--seed", type=_seed, default=0,
                   help="seeds the weights, the validation split, the batch order and the "
                        "augmentation (default 0)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads for fastnn's batch split (Conv2d, MaxPool2d, and the Linear "
                        "layers of a net that has them) and for the BLAS the kernels call "
                        "(every other matrix product), fixed for the whole run; default: "
                        "$FASTNN_NUM_THREADS, else every usable core, with training switching "
                        "to one thread for an epoch when that is faster (a busy host)")
    # hidden: small runs for tests
    p.add_argument("--limit-train", type=_positive_int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit-test", type=_positive_int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--max-steps", type=_positive_int, default=None, help=argparse.SUPPRESS)


def _run_options(ns, out=None) -> RunOptions:
    return RunOptions(data=ns.data, download=ns.download, out=out, seed=ns.seed,
                      progress=ns.progress, resume=getattr(ns, "resume", False),
                      limit_train=ns.limit_train, limit_test=ns.limit_test,
                      max_steps=ns.max_steps)


def _add_train(sub):
    p = sub.add_parser("train", help="train a model on MNIST",
                       description="Train on MNIST (55k train / 5k validation, seeded; "
                                   "tested on the 10k test images). One line per epoch; "
                                   "the last line is `test accuracy: 0.XXXX` (autoencoder: "
                                   "`test reconstruction: X.XX (PCA-30: Y.YY)`).")
    p.add_argument("dataset", choices=["mnist"], help="the dataset (only mnist)")
    p.add_argument("--model", choices=["mlp", "cnn", "autoencoder"], default="mlp",
                   help="mlp: 784-1024-1024-10 (default); cnn: two 3x3 conv layers; "
                        "autoencoder: 784-...-30-...-784, compared with PCA-30")
    p.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                   help="passes over the training set (default: the recipe's)")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                   help="samples per step (default: the recipe's)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="initial learning rate (default: the recipe's)")
    p.add_argument("--recipe", choices=["best", "seed"], default=None,
                   help="autoencoder recipe: 'seed' (the homework's SGD schedule) or 'best' "
                        "(Adam, cosine; the default)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=None,
                   help="autoencoder: override the recipe's optimizer (keeps its schedule)")
    p.add_argument("--pretrain-classifier", action="store_true",
                   help="autoencoder: pre-train, classify the frozen code, then fine-tune")
    p.add_argument("--head-epochs", type=_positive_int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--finetune-epochs", type=_positive_int, default=5, help=argparse.SUPPRESS)
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out (which it needs)")
    p.add_argument("--export-onnx", metavar="PATH", default=None,
                   help="write the trained net as ONNX (evaluate mode; needs the onnx "
                        "package: the [onnx] extra)")
    p.add_argument("--distributed", action="store_true",
                   help="mlp/cnn: data-parallel over MPI, launched as 'mpiexec -n N fastnn "
                        "train mnist --distributed' (needs the [mpi] extra); --batch-size "
                        "is the global batch")
    _add_run_options(p, out_help="write the history plot (PNG), the checkpoint (.npz, after "
                                 "every epoch) and the results (JSON) here; without it "
                                 "nothing is written")
    p.set_defaults(run=_run_train)


def _run_train(ns) -> int:
    if ns.resume and not ns.out:
        raise _UsageError("--resume needs --out DIR, the folder that holds the checkpoint")
    autoencoder_only = [name for name, given in (
        ("--recipe", ns.recipe is not None), ("--optimizer", ns.optimizer is not None),
        ("--pretrain-classifier", ns.pretrain_classifier)) if given]
    if autoencoder_only and ns.model != "autoencoder":
        verb = "goes" if len(autoencoder_only) == 1 else "go"
        raise _UsageError(f"{' and '.join(autoencoder_only)} {verb} with --model autoencoder, "
                          f"not --model {ns.model}")
    if ns.export_onnx:
        if ns.pretrain_classifier:
            raise _UsageError("--export-onnx goes with one net: not with --pretrain-classifier")
        _require_onnx()  # before training, not after it
    if ns.distributed:
        if ns.model == "autoencoder":
            raise _UsageError("--distributed trains --model mlp or cnn")
        from .. import distributed
        distributed.init()
        distributed.silence_other_ranks()
    run = _run_options(ns, out=ns.out)
    if ns.model != "autoencoder":
        return train_classifier(ns.model, run, epochs=ns.epochs, batch_size=ns.batch_size,
                                lr=ns.lr, export_onnx=ns.export_onnx,
                                distributed=ns.distributed)
    ae = dict(recipe=ns.recipe or "best", epochs=ns.epochs, batch_size=ns.batch_size,
              lr=ns.lr, optimizer=ns.optimizer)
    if ns.pretrain_classifier:
        return run_pretrain(run, head_epochs=ns.head_epochs,
                            finetune_epochs=ns.finetune_epochs, **ae)
    return run_autoencoder(run, export_onnx=ns.export_onnx, **ae)


def _require_onnx():
    from .._optional import require
    try:
        require("onnx", "onnx", "--export-onnx")
    except ImportError as exc:
        raise CLIError(str(exc)) from None


def _add_demo(sub):
    p = sub.add_parser("demo", help="the README's quickstart: two blobs, no data needed",
                       description="Run the README's quickstart (fastnn/quickstart.py): a "
                                   "small MLP on two Gaussian blobs, trained with the Torch7 "
                                   "loop; prints the loss and accuracy over all the data "
                                   "after each epoch.")
    p.add_argument("--epochs", type=_positive_int, default=20, metavar="N",
                   help="passes over the 1,000 points (default 20)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="seeds the weights, the data and the batch order (default 0)")
    p.set_defaults(run=_run_demo)


def _run_demo(ns) -> int:
    from ..quickstart import quickstart
    quickstart(epochs=ns.epochs, seed=ns.seed)
    return 0


def _add_compare_activations(sub):
    out = os.path.join(DEFAULT_OUT_ROOT, "compare-activations")
    p = sub.add_parser("compare-activations",
                       help="same MLP with ReLU, ELU, LeakyReLU, SoftPlus, none",
                       description="Train the same MLP (784-256-128-10) with each activation; "
                                   "print a table of final train loss, test accuracy and "
                                   "seconds per epoch; write the loss plot and the table.")
    p.add_argument("--epochs", type=_positive_int, default=3, metavar="N",
                   help="passes over the training set per activation (default 3)")
    p.add_argument("--batch-size", type=_positive_int, default=128, metavar="B",
                   help="samples per step (default 128)")
    p.add_argument("--lr", type=_positive_float, default=0.01,
                   help="SGD learning rate, momentum 0.9 (default 0.01)")
    p.add_argument("--batchnorm", action="store_true",
                   help="also ReLU and ELU with BatchNormalization")
    _add_run_options(p, out_help=f"write the loss plot (PNG) and the table (JSON) here "
                                 f"(default: {out})")
    p.set_defaults(run=_run_compare_activations, out=out)


def _run_compare_activations(ns) -> int:
    return compare_activations(_run_options(ns, out=ns.out), epochs=ns.epochs,
                               batch_size=ns.batch_size, lr=ns.lr, batchnorm=ns.batchnorm)


def _add_compare(sub):
    from .compare import DEFAULT_EPOCHS, WHATS
    out = os.path.join(DEFAULT_OUT_ROOT, "compare")
    p = sub.add_parser("compare", help="the homework's comparisons, mean ± std over seeds",
                       description="Train the same MLP (784-256-128-10; pretraining: the "
                                   "autoencoder's encoder) once per variant and seed on the "
                                   "55k/5k split; print mean ± std of the test accuracy, the "
                                   "final training loss and the seconds per epoch; write the "
                                   "plot, the table and the JSON.")
    p.add_argument("what", choices=WHATS,
                   help="activations: ReLU, ELU, LeakyReLU, SoftPlus; normalization: none, "
                        "BatchMeanSubtraction, BatchNormalization + ChannelwiseScaling; "
                        "dropout: p = 0, 0.2, 0.5; optimizers: sgd_momentum and adam, each at "
                        "its best learning rate on the validation split; pretraining: from "
                        "scratch or after autoencoder pre-training")
    p.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS, metavar="N",
                   help=f"passes over the training set per run (default {DEFAULT_EPOCHS})")
    p.add_argument("--seeds", type=_positive_int, default=3, metavar="N",
                   help="runs per variant, seeds --seed, --seed+1, ... (default 3)")
    p.add_argument("--batch-size", type=_positive_int, default=128, metavar="B",
                   help="samples per step (default 128)")
    p.add_argument("--lr", type=_positive_float, default=0.01,
                   help="SGD learning rate, momentum 0.9 (default 0.01; optimizers: a grid)")
    p.add_argument("--pretrain-epochs", type=_positive_int, default=None, metavar="N",
                   help="pretraining: autoencoder epochs (default: the seed recipe's 9)")
    _add_run_options(p, out_help=f"write the plot (PNG), the table (markdown) and every "
                                 f"run's figures (JSON) here (default: {out})")
    p.set_defaults(run=_run_compare, out=out)


def _run_compare(ns) -> int:
    from .compare import run
    return run(_run_options(ns, out=ns.out), ns.what, epochs=ns.epochs, seeds=ns.seeds,
               batch_size=ns.batch_size, lr=ns.lr, pretrain_epochs=ns.pretrain_epochs)


def _version() -> str:
    from .. import __version__
    return f"fastnn {__version__}"


def build_parser() -> argparse.ArgumentParser:
    """The ``fastnn`` argument parser, with one subparser per command.

    Returns
    -------
    argparse.ArgumentParser
        Its errors raise (``main`` turns them into one line and exit status 2).
    """
    parser = _Parser(prog="fastnn", description="Torch7-style neural networks on Numba "
                                                "kernels: train on MNIST, or run the demo.")
    parser.add_argument("--version", action="version", version=_version(),
                        help="print fastnn's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_demo(sub)
    _add_compare_activations(sub)
    _add_compare(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``fastnn`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 done, 1 training diverged, 2 a usage or data error (printed as
        one ``fastnn: error:`` line), 130 interrupted.
    """
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
        if ns.command is None:
            parser.print_help()
            return EXIT_USAGE
        if getattr(ns, "threads", None):
            from .. import set_num_threads
            set_num_threads(ns.threads)
        return ns.run(ns)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except (_UsageError, CLIError) as exc:
        print(f"fastnn: error: {exc}", file=sys.stderr)
        return getattr(exc, "code", EXIT_USAGE)
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from ..train import TrainingDiverged
        if isinstance(exc, TrainingDiverged):
            print(f"fastnn: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
