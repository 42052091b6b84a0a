"""The ``fastnn`` command (also ``python -m fastnn``).

  fastnn train mnist --model {mlp,cnn,autoencoder} [--epochs N] [--batch-size B] [--lr LR]
                     [--seed S] [--out DIR] [--data DIR] [--no-progress] [--resume]
                     [--export-onnx PATH]
  fastnn train mnist --model autoencoder [--recipe {best,seed}] [--pretrain-classifier]
  fastnn demo
  fastnn compare-activations [--epochs N] [--out DIR]

``train`` prints one line per epoch and, last, ``test accuracy: 0.XXXX`` (the
autoencoder: ``test reconstruction: X.XX (PCA-30: Y.YY)``). With ``--out`` it writes
the history plot (PNG), the checkpoint (.npz, after every epoch; ``--resume`` continues
from it) and the results (JSON) there; ``--export-onnx PATH`` writes the trained net as
ONNX (evaluate mode; the ``[onnx]`` extra).
"""
import argparse
import sys
import time

import numpy as np

from .. import models
from .common import (EXIT_USAGE, CLIError, _augmenter, _can_plot, _checkpoint_args,
                     _count_params, _export_onnx, _out_path, _pick, _schedule, _split,
                     _write_json)
from .experiments import _run_autoencoder, _run_pretrain, compare_activations


#: Defaults of the classifier recipes (the CLI options override them).
CLASSIFIER_RECIPES = {
    "mlp": dict(build=models.mlp, flatten=True, epochs=12, batch_size=128, lr=0.05, momentum=0.9,
                schedule="cosine", augment=dict(max_shift=2, max_angle=10.0)),
    "cnn": dict(build=models.cnn, flatten=False, epochs=10, batch_size=128, lr=0.02, momentum=0.9,
                schedule="cosine", augment=dict(max_shift=2, max_angle=10.0)),
}


def _train_classifier(args):
    import fastnn as nn
    from ..train import evaluate, fit
    recipe = CLASSIFIER_RECIPES[args.model]
    X_tr, y_tr, X_val, y_val, Xt, yt = _split(args, flatten=recipe["flatten"])
    epochs = _pick(args.epochs, recipe["epochs"])
    batch_size = _pick(args.batch_size, recipe["batch_size"])
    lr = _pick(args.lr, recipe["lr"])
    nn.manual_seed(args.seed)
    net = recipe["build"]()
    crit = nn.ClassNLLCriterion()
    print(f"{args.model}: {_count_params(net):,} parameters; {len(X_tr)} train / "
          f"{len(X_val)} val / {len(Xt)} test; {epochs} epochs, batch {batch_size}, "
          f"SGD lr {lr:g} momentum {recipe['momentum']}, {recipe['schedule']} schedule")
    ckpt, resume = _checkpoint_args(args, args.model)
    t0 = time.perf_counter()
    history = fit(net, crit, X_tr, y_tr, optimizer="sgd",
                  config={"learning_rate": lr, "momentum": recipe["momentum"]},
                  epochs=epochs, batch_size=batch_size,
                  schedule=_schedule(recipe["schedule"], lr, epochs),
                  X_val=X_val, y_val=y_val, augment=_augmenter(recipe["augment"]),
                  seed=args.seed, progress=args.progress, log=print, checkpoint=ckpt,
                  resume=resume, max_steps=args.max_steps)
    train_time = time.perf_counter() - t0
    test_loss, test_acc = evaluate(net, crit, Xt, yt)
    plot = _out_path(args, f"{args.model}_history.png")
    if plot and _can_plot("the history plot"):
        history.plot(plot, title=f"{args.model}: test accuracy {test_acc:.4f}")
    _export_onnx(args, net, Xt[:1])
    _write_json(_out_path(args, f"{args.model}_results.json"), {
        "model": args.model, "test_accuracy": test_acc, "test_loss": test_loss,
        "train_seconds": train_time, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "seed": args.seed, "parameters": _count_params(net), "history": history.to_dict()})
    print(f"training time: {train_time:.1f}s")
    print(f"test accuracy: {test_acc:.4f}")
    return 0


def demo(args):
    """The seed's toy problem: two 2-D Gaussian blobs, Linear(2, 2) + LogSoftMax,
    ClassNLLCriterion, sgd_momentum, with the homework's training loop."""
    import fastnn as nn
    from ..data import iterate_minibatches
    rng = np.random.default_rng(args.seed)
    n = 500
    X = np.vstack([rng.normal(size=(n, 2)) + [2, 2],
                   rng.normal(size=(n, 2)) + [-2, -2]]).astype(np.float32)
    Y = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    nn.manual_seed(args.seed)
    net = nn.Sequential(nn.Linear(2, 2), nn.LogSoftMax())
    criterion = nn.ClassNLLCriterion()
    config = {"learning_rate": 1e-1, "momentum": 0.9}
    state = {}
    print(net)
    for epoch in range(args.epochs):
        losses = []
        for xb, yb in iterate_minibatches(X, Y, 128, shuffle=True, seed=rng):
            net.zeroGradParameters()
            predictions = net.forward(xb)
            loss = criterion.forward(predictions, yb)
            dp = criterion.backward(predictions, yb)
            net.backward(xb, dp)
            nn.sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
            losses.append(loss)
        net.evaluate()
        acc = float(np.mean(np.argmax(net.forward(X), axis=1) == Y))
        net.train()
        print(f"epoch {epoch + 1:2d}/{args.epochs}  loss {np.mean(losses):.4f}  "
              f"accuracy {acc:.4f}")
    print(f"accuracy: {acc:.4f}")
    return 0


def _require_onnx():
    from .._optional import require
    try:
        require("onnx", "onnx", "--export-onnx")
    except ImportError as exc:
        raise CLIError(str(exc)) from None


def positive_int(text):
    """argparse type: an integer >= 1 (``--epochs -1`` used to train nothing and exit 0)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _add_common(p, out_default=None):
    p.add_argument("--data", metavar="DIR", default=None,
                   help="folder holding the MNIST files (or mnist/); default: $FASTNN_DATA/mnist "
                        "then the user cache's fastnn/mnist ($XDG_CACHE_HOME, default ~/.cache)")
    p.add_argument("--download", dest="download", action="store_true", default=True,
                   help="download MNIST into the user cache's fastnn/mnist (or --data) when "
                        "it is not found (the default)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="fail instead of downloading when MNIST is not found")
    p.add_argument("--out", metavar="DIR", default=out_default,
                   help="write plots (PNG), checkpoints (.npz) and results (JSON) here")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="BLAS threads (default: all cores, or $FASTNN_NUM_THREADS)")
    # hidden: small runs for tests
    p.add_argument("--limit-train", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit-test", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnn", description="Torch7-style neural networks on Numba kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    tr = sub.add_parser("train", help="train a model on a dataset",
                        description="Train on MNIST (55k train / 5k validation; test on 10k).")
    tr.add_argument("dataset", choices=["mnist"])
    tr.add_argument("--model", choices=["mlp", "cnn", "autoencoder"], default="mlp")
    tr.add_argument("--epochs", type=positive_int, default=None, help="default: the recipe's")
    tr.add_argument("--batch-size", type=positive_int, default=None,
                    help="default: the recipe's")
    tr.add_argument("--lr", type=positive_float, default=None,
                    help="initial learning rate (default: the recipe's)")
    tr.add_argument("--recipe", choices=["best", "seed"], default="best",
                    help="autoencoder recipe: 'seed' (the homework's) or 'best' (default)")
    tr.add_argument("--optimizer", choices=["sgd", "adam"], default=None,
                    help="autoencoder: override the recipe's optimizer (keeps its schedule)")
    tr.add_argument("--pretrain-classifier", action="store_true",
                    help="autoencoder: pre-train, classify the frozen code, then fine-tune")
    tr.add_argument("--head-epochs", type=positive_int, default=None, help=argparse.SUPPRESS)
    tr.add_argument("--finetune-epochs", type=positive_int, default=None,
                    help=argparse.SUPPRESS)
    tr.add_argument("--resume", action="store_true",
                    help="continue from the checkpoint in --out")
    tr.add_argument("--export-onnx", metavar="PATH", default=None,
                    help="write the trained net as ONNX (evaluate mode; needs the onnx "
                         "package: the [onnx] extra)")
    _add_common(tr)

    de = sub.add_parser("demo", help="the seed's two-blob toy problem (no data needed)")
    de.add_argument("--epochs", type=positive_int, default=20)
    de.add_argument("--seed", type=int, default=0)

    ca = sub.add_parser("compare-activations",
                        help="same MLP with ReLU, ELU, LeakyReLU, SoftPlus, none")
    ca.add_argument("--epochs", type=positive_int, default=3)
    ca.add_argument("--batch-size", type=positive_int, default=128)
    ca.add_argument("--lr", type=positive_float, default=0.01)
    ca.add_argument("--batchnorm", action="store_true",
                    help="also ReLU and ELU with BatchNormalization")
    _add_common(ca, out_default=".")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if getattr(args, "threads", None):
            from .. import set_num_threads
            set_num_threads(args.threads)
        if args.command == "demo":
            return demo(args)
        if args.command == "compare-activations":
            return compare_activations(args)
        if args.command == "train":
            if args.pretrain_classifier and args.model != "autoencoder":
                raise CLIError("--pretrain-classifier goes with --model autoencoder")
            if args.export_onnx:
                if args.pretrain_classifier:
                    raise CLIError("--export-onnx goes with one net: not with "
                                   "--pretrain-classifier")
                _require_onnx()  # before training, not after it
            if args.model == "autoencoder":
                return _run_pretrain(args) if args.pretrain_classifier else _run_autoencoder(args)
            return _train_classifier(args)
    except CLIError as exc:
        print(f"fastnn: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from ..train import TrainingDiverged
        if isinstance(exc, TrainingDiverged):
            print(f"fastnn: error: {exc}", file=sys.stderr)
            return 1
        raise
    parser.error(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
