"""The ``fastnn`` command (also ``python -m fastnn``).

  fastnn train mnist --model {mlp,cnn,autoencoder} [--epochs N] [--batch-size B] [--lr LR]
                     [--seed S] [--out DIR] [--data DIR] [--no-progress] [--resume]
  fastnn train mnist --model autoencoder [--recipe {best,seed}] [--pretrain-classifier]
  fastnn demo
  fastnn compare-activations [--epochs N] [--out DIR]

``train`` prints one line per epoch and, last, ``test accuracy: 0.XXXX`` (the
autoencoder: ``test reconstruction: X.XX (PCA-30: Y.YY)``). With ``--out`` it writes
the history plot (PNG), the checkpoint (.npz, after every epoch; ``--resume`` continues
from it) and the results (JSON) there.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

EXIT_USAGE = 2


class CLIError(Exception):
    """A one-line error for the user; ``main`` prints it and exits with ``code``."""

    def __init__(self, message, code=EXIT_USAGE):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- data

def _shorten(text, limit):
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[:limit - 1].rsplit(" ", 1)[0] + " …"


def _load_mnist(args, flatten=True):
    from .datasets import load_mnist, search_dirs
    try:
        return load_mnist(root=args.data, download=args.download, flatten=flatten,
                          progress=args.progress)
    except FileNotFoundError as exc:
        looked = ", ".join(search_dirs(args.data))
        failed = getattr(exc, "download_error", None)
        why = (f"; downloading failed ({_shorten(' '.join(str(failed).split()), 300)})" if failed
               else "; downloading is off (--no-download)" if not args.download else "")
        raise CLIError(f"MNIST not found (looked in {looked}){why}; set FASTNN_DATA to a "
                       f"folder that holds mnist/ with the four IDX files (e.g. "
                       f"FASTNN_DATA=../shared/data) or pass --data DIR")


def _split(args, flatten=True, val_size=5000):
    """Train/validation (55k/5k, seeded) and test arrays, cut by the hidden
    --limit-train/--limit-test options."""
    from .datasets import train_val_split
    X, y, Xt, yt = _load_mnist(args, flatten)
    X_tr, y_tr, X_val, y_val = train_val_split(X, y, val_size=val_size, seed=0)
    if args.limit_train:
        n = int(args.limit_train)
        X_tr, y_tr = X_tr[:n], y_tr[:n]
        m = min(len(X_val), max(n // 5, 200))
        X_val, y_val = X_val[:m], y_val[:m]
    if args.limit_test:
        Xt, yt = Xt[:int(args.limit_test)], yt[:int(args.limit_test)]
    return X_tr, y_tr, X_val, y_val, Xt, yt


def _out_path(args, name):
    if not args.out:
        return None
    os.makedirs(args.out, exist_ok=True)
    return os.path.join(args.out, name)


def _write_json(path, obj):
    if path is None:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _count_params(net):
    return int(sum(np.size(p) for p in _flat_list(net.getParameters())))


def _flat_list(nested):
    if isinstance(nested, (list, tuple)):
        return [a for item in nested for a in _flat_list(item)]
    return [nested]


# --------------------------------------------------------------------------- recipes

def _pick(value, default):
    return default if value is None else value


def mlp_net():
    """784-1024-1024-10, ReLU, dropout 0.2 on the hidden layers."""
    import fastnn as nn
    return nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(1024, 1024), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(1024, 10), nn.LogSoftMax())


def cnn_net(c1=24, c2=48, hidden=128):
    """Conv(1->c1, 3x3)-BN-ReLU-pool, Conv(c1->c2, 3x3)-BN-ReLU-pool,
    Linear(c2*7*7->hidden)-ReLU-Dropout(0.3)-Linear(hidden->10)."""
    import fastnn as nn
    return nn.Sequential(
        nn.Conv2d(1, c1, 3), nn.BatchNormalization(0.9), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3), nn.BatchNormalization(0.9), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(hidden, 10), nn.LogSoftMax())


#: Defaults of the classifier recipes (the CLI options override them).
CLASSIFIER_RECIPES = {
    "mlp": dict(build=mlp_net, flatten=True, epochs=12, batch_size=128, lr=0.05, momentum=0.9,
                schedule="cosine", augment=dict(max_shift=2, max_angle=10.0)),
    "cnn": dict(build=cnn_net, flatten=False, epochs=10, batch_size=128, lr=0.02, momentum=0.9,
                schedule="cosine", augment=dict(max_shift=2, max_angle=10.0)),
}


def _schedule(kind, lr, epochs):
    from .optim import CosineDecay, StepDecay
    if kind == "cosine":
        return CosineDecay(lr, total_epochs=epochs, min_lr=lr * 0.01)
    if kind == "step3":
        return StepDecay(lr, step_size=3, gamma=0.5)
    return None


def _augmenter(settings):
    if not settings:
        return None
    from .datasets import augment_batch

    def augment(xb, rng):
        return augment_batch(xb, rng=rng, **settings)
    return augment


def _checkpoint_args(args, name):
    ckpt = _out_path(args, name + ".npz")
    resume = ckpt if (args.resume and ckpt and os.path.exists(ckpt)) else None
    if args.resume and resume is None:
        print(f"--resume: no checkpoint {ckpt} yet, starting from scratch"
              if ckpt else "--resume needs --out DIR (where the checkpoint is)")
    return ckpt, resume


def _train_classifier(args):
    import fastnn as nn
    from .training import evaluate, fit
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
    if plot:
        history.plot(plot, title=f"{args.model}: test accuracy {test_acc:.4f}")
    _write_json(_out_path(args, f"{args.model}_results.json"), {
        "model": args.model, "test_accuracy": test_acc, "test_loss": test_loss,
        "train_seconds": train_time, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "seed": args.seed, "parameters": _count_params(net), "history": history.to_dict()})
    print(f"training time: {train_time:.1f}s")
    print(f"test accuracy: {test_acc:.4f}")
    return 0


# ---- autoencoder ------------------------------------------------------------------

AE_SIZES = (784, 512, 256, 128, 30)


def autoencoder_net(recipe="best", mean_image=None, hidden_scale=1.0, output_scale=0.1):
    """784-512-256-128-30-128-256-512-784: a linear 30-d code, every other Linear
    followed by BatchNormalization and an activation (``seed``: ReLU, ``best``: ELU),
    and a Sigmoid output (pixels lie in [0, 1]; a bounded output also keeps SGD at
    lr 0.1 stable on the summed squared error and fits the black background).
    ``seed`` also normalises the code (BatchNormalization after the 30-unit Linear):
    with SGD at lr 0.1 (momentum 0.6) that took the test reconstruction from 7.17
    (momentum 0.5, no code normalisation) to 6.84.

    With ``mean_image`` (the training set's mean, pixels in [0, 1]) the output Linear
    starts at bias logit(mean) and weights scaled by ``output_scale``, so the untrained net already
    outputs about the mean image instead of 0.5 everywhere (seed recipe: 6.84 -> 6.53).

    ``hidden_scale`` multiplies the initial weights of every Linear but the output one.
    Each of them feeds a BatchNormalization, which makes its output independent of the
    weights' scale, so the only effect is on the step: the effective learning rate of
    such a layer falls as the square of its weights' norm. The seed recipe's lr 0.1 on
    the summed error is too large a step for these layers; a scale of 2 divides it by 4
    for them, leaving the output layer's step as it is."""
    import fastnn as nn
    sizes = AE_SIZES + AE_SIZES[-2::-1]
    code = len(AE_SIZES) - 2  # index of the Linear whose output is the code
    last = len(sizes) - 2
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i == code:
            if recipe == "seed":
                layers.append(nn.BatchNormalization(0.9))
            continue  # linear code
        if i == last:
            layers.append(nn.Sigmoid())
            continue
        layers.append(nn.BatchNormalization(0.9))
        layers.append(nn.ELU() if recipe == "best" else nn.ReLU())
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    for m in linears[:-1]:
        m.W *= hidden_scale
    if mean_image is not None:
        out = linears[-1]
        mean = np.clip(np.asarray(mean_image, np.float64), 1e-3, 1 - 1e-3)
        out.b[:] = np.log(mean / (1 - mean))
        out.W *= output_scale
    return nn.Sequential(*layers)


def split_autoencoder(net):
    """(encoder, decoder) Sequentials sharing the modules of ``net`` (cut after the
    30-unit Linear)."""
    import fastnn as nn
    mods = list(net.modules)
    cut = next(i for i, m in enumerate(mods)
               if isinstance(m, nn.Linear) and m.n_out == AE_SIZES[-1]) + 1
    return nn.Sequential(*mods[:cut]), nn.Sequential(*mods[cut:])


AE_RECIPES = {
    # the seed notebook's schedule: SGD, lr 0.1 halved every 3 epochs, 9 epochs, batch 256.
    # lr 0.1 on the per-image summed error is too large a step for the BatchNormalized
    # layers: their initial weights are scaled by 2 (a quarter of the step, see
    # autoencoder_net), which also lets momentum go up to 0.8. Test SSE (CLI split, seed
    # 0): 6.84 plain, 6.52 with the mean-image start, 5.81 with the scale and momentum
    # 0.8 (seeds 1, 2: 5.77, 5.87). scripts/autoencoder_seed_variants.py has the others.
    "seed": dict(epochs=9, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.8,
                 schedule="step3", hidden_init_scale=2.0),
    "best": dict(epochs=30, batch_size=128, optimizer="adam", lr=2e-3, schedule="cosine"),
}


def pca_fit(X, k=30):
    """(mean, components (784, k)) from the top-k eigenvectors of the covariance."""
    X = np.asarray(X, np.float64)
    mean = X.mean(axis=0)
    Xc = X - mean
    cov = Xc.T @ Xc / len(X)
    w, v = np.linalg.eigh(cov)
    comps = v[:, np.argsort(w)[::-1][:k]]
    return mean, comps


def pca_reconstruct(X, mean, comps):
    Xc = np.asarray(X, np.float64) - mean
    return (Xc @ comps) @ comps.T + mean


def _sse_per_image(a, b):
    return float(np.mean(np.sum((np.asarray(a, np.float64) - b) ** 2, axis=1)))


def _plot_reconstructions(path, originals, ae, pca, title):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    n = len(originals)
    fig = Figure(figsize=(n * 1.0, 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, n)
    for row, (name, imgs) in enumerate((("original", originals), ("autoencoder", ae),
                                        ("PCA-30", pca))):
        for j in range(n):
            ax = axes[row, j]
            ax.imshow(np.clip(imgs[j].reshape(28, 28), 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _train_autoencoder(args, X_tr, X_val, recipe_name, epochs=None, log=print):
    import fastnn as nn
    from .training import fit
    recipe = dict(AE_RECIPES[recipe_name])
    if args.optimizer and args.optimizer != recipe["optimizer"]:
        recipe.update(optimizer=args.optimizer, momentum=0.9, lr=_pick(
            args.lr, 0.1 if args.optimizer == "sgd" else 2e-3))
    epochs = _pick(epochs, _pick(args.epochs, recipe["epochs"]))
    batch_size = _pick(args.batch_size, recipe["batch_size"])
    lr = _pick(args.lr, recipe["lr"])
    nn.manual_seed(args.seed)
    # the seed recipe's SGD gains from starting at the mean image; the best recipe
    # (Adam) was measured without it
    net = autoencoder_net(recipe_name, X_tr.mean(axis=0) if recipe_name == "seed" else None,
                          recipe.get("hidden_init_scale", 1.0))
    config = {"learning_rate": lr}
    opt_text = f"{recipe['optimizer']} lr {lr:g}"
    if recipe["optimizer"] == "sgd":
        config["momentum"] = recipe["momentum"]
        opt_text += f" momentum {recipe['momentum']:g}"
    print(f"autoencoder ({recipe_name} recipe): {_count_params(net):,} parameters; "
          f"{len(X_tr)} train / {len(X_val)} val; {epochs} epochs, batch {batch_size}, "
          f"{opt_text}, {recipe['schedule']} schedule")
    ckpt, resume = _checkpoint_args(args, f"autoencoder_{recipe_name}")
    history = fit(net, nn.MSECriterion(), X_tr, None, optimizer=recipe["optimizer"],
                  config=config, epochs=epochs, batch_size=batch_size,
                  schedule=_schedule(recipe["schedule"], lr, epochs), X_val=X_val,
                  metric=None, seed=args.seed, progress=args.progress, log=log,
                  checkpoint=ckpt, resume=resume, max_steps=args.max_steps)
    return net, history


def _run_autoencoder(args):
    import fastnn as nn
    from .training import evaluate, predict
    X_tr, y_tr, X_val, y_val, Xt, yt = _split(args)
    recipe = args.recipe
    t0 = time.perf_counter()
    net, history = _train_autoencoder(args, X_tr, X_val, recipe)
    train_time = time.perf_counter() - t0
    test_rec, _ = evaluate(net, nn.MSECriterion(), Xt, None, metric=None)
    mean, comps = pca_fit(X_tr, 30)
    pca_rec = _sse_per_image(pca_reconstruct(Xt, mean, comps), Xt)
    plot = _out_path(args, f"autoencoder_{recipe}_history.png")
    if plot:
        history.plot(plot, title=f"autoencoder ({recipe}): test reconstruction {test_rec:.2f}")
    grid = _out_path(args, f"autoencoder_{recipe}_reconstructions.png")
    if grid:
        sample = X_val[:10]
        _plot_reconstructions(grid, sample, predict(net, sample),
                              pca_reconstruct(sample, mean, comps),
                              f"validation digits: original / autoencoder ({test_rec:.2f}) / "
                              f"PCA-30 ({pca_rec:.2f}); squared error per image on the test set")
    _write_json(_out_path(args, f"autoencoder_{recipe}_results.json"), {
        "model": "autoencoder", "recipe": recipe, "test_reconstruction": test_rec,
        "pca30_test_reconstruction": pca_rec, "train_seconds": train_time, "seed": args.seed,
        "parameters": _count_params(net), "history": history.to_dict()})
    print(f"training time: {train_time:.1f}s")
    print(f"test reconstruction: {test_rec:.2f} (PCA-30: {pca_rec:.2f})")
    return 0


def _run_pretrain(args):
    """The seed's bonus: pre-train the autoencoder, train a classifier on the frozen
    30-d code, then fine-tune encoder + classifier together."""
    import fastnn as nn
    from .training import evaluate, fit, predict
    X_tr, y_tr, X_val, y_val, Xt, yt = _split(args)
    t0 = time.perf_counter()
    ae, _ = _train_autoencoder(args, X_tr, X_val, args.recipe)
    test_rec, _ = evaluate(ae, nn.MSECriterion(), Xt, None, metric=None)
    print(f"stage 1, autoencoder pre-training: test reconstruction {test_rec:.2f} "
          f"({time.perf_counter() - t0:.0f}s)")

    encoder, _ = split_autoencoder(ae)
    codes = {name: predict(encoder, X) for name, X in
             (("train", X_tr), ("val", X_val), ("test", Xt))}
    nn.manual_seed(args.seed + 1)
    head = nn.Sequential(nn.Linear(AE_SIZES[-1], 10), nn.LogSoftMax())
    crit = nn.ClassNLLCriterion()
    head_epochs = _pick(args.head_epochs, 10)
    t1 = time.perf_counter()
    print(f"stage 2: linear classifier on the frozen 30-d code, {head_epochs} epochs")
    fit(head, crit, codes["train"], y_tr, optimizer="adam", config={"learning_rate": 3e-3},
        epochs=head_epochs, batch_size=128, X_val=codes["val"], y_val=y_val, seed=args.seed,
        progress=args.progress, log=print, max_steps=args.max_steps)
    _, frozen_acc = evaluate(head, crit, codes["test"], yt)
    print(f"stage 2, frozen encoder + linear classifier: test accuracy {frozen_acc:.4f} "
          f"({time.perf_counter() - t1:.0f}s)")

    ft_epochs = _pick(args.finetune_epochs, 5)
    model = nn.Sequential(*encoder.modules, *head.modules)
    t2 = time.perf_counter()
    print(f"stage 3: fine-tuning encoder + classifier, {ft_epochs} epochs")
    fit(model, crit, X_tr, y_tr, optimizer="adam", config={"learning_rate": 3e-4},
        epochs=ft_epochs, batch_size=128,
        schedule=_schedule("cosine", 3e-4, ft_epochs), X_val=X_val, y_val=y_val,
        seed=args.seed, progress=args.progress, log=print, max_steps=args.max_steps)
    _, ft_acc = evaluate(model, crit, Xt, yt)
    print(f"stage 3, fine-tuned encoder + classifier: test accuracy {ft_acc:.4f} "
          f"({time.perf_counter() - t2:.0f}s)")
    _write_json(_out_path(args, "pretrain_results.json"), {
        "recipe": args.recipe, "test_reconstruction": test_rec,
        "frozen_encoder_test_accuracy": frozen_acc, "finetuned_test_accuracy": ft_acc,
        "seconds": time.perf_counter() - t0, "seed": args.seed})
    print(f"test accuracy: {ft_acc:.4f}")
    return 0


# --------------------------------------------------------------------------- demo

def demo(args):
    """The seed's toy problem: two 2-D Gaussian blobs, Linear(2, 2) + LogSoftMax,
    ClassNLLCriterion, sgd_momentum, with the homework's training loop."""
    import fastnn as nn
    from .datasets import iterate_minibatches
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


# --------------------------------------------------------------------------- activations

ACTIVATIONS = ("ReLU", "ELU", "LeakyReLU", "SoftPlus", "none")


def _activation_mlp(act, batchnorm=False, hidden=(256, 128)):
    import fastnn as nn
    layers = []
    sizes = (784,) + tuple(hidden)
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(a, b))
        if batchnorm:
            layers.append(nn.BatchNormalization(0.9))
        if act != "none":
            layers.append(getattr(nn, act)())
    layers += [nn.Linear(sizes[-1], 10), nn.LogSoftMax()]
    return nn.Sequential(*layers)


def compare_activations(args):
    import fastnn as nn
    from .training import evaluate, fit
    X_tr, y_tr, X_val, y_val, Xt, yt = _split(args)
    variants = [(a, False) for a in ACTIVATIONS]
    if args.batchnorm:
        variants += [(a, True) for a in ("ReLU", "ELU")]
    rows = []
    curves = {}
    for act, bn in variants:
        name = act + (" + BatchNorm" if bn else "")
        nn.manual_seed(args.seed)
        net = _activation_mlp(act, bn)
        crit = nn.ClassNLLCriterion()
        print(f"--- {name}")
        h = fit(net, crit, X_tr, y_tr, optimizer="sgd",
                config={"learning_rate": args.lr, "momentum": 0.9}, epochs=args.epochs,
                batch_size=args.batch_size, seed=args.seed, progress=args.progress,
                log=print, max_steps=args.max_steps)
        _, acc = evaluate(net, crit, Xt, yt)
        rows.append((name, h.train_loss[-1], acc, float(np.mean(h.epoch_time))))
        curves[name] = (h._step_positions(), h.step_loss)
    print()
    print(f"{'activation':<22}{'final train loss':>18}{'test accuracy':>15}{'s/epoch':>10}")
    for name, loss, acc, sec in rows:
        print(f"{name:<22}{loss:>18.4f}{acc:>15.4f}{sec:>10.1f}")
    path = _out_path(args, "compare_activations.png")
    if path:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=(8, 5))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for name, (xs, ys) in curves.items():
            ys = np.asarray(ys, np.float64)
            k = max(1, min(25, len(ys) // 20))
            smooth = np.convolve(ys, np.ones(k) / k, mode="valid")
            ax.plot(xs[k - 1:], smooth, label=name, lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"train loss (moving average of {k} steps)")
        ax.set_title(f"MLP 784-256-128-10 on MNIST, SGD momentum, lr {args.lr:g}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        print(f"loss plot: {path}")
    _write_json(_out_path(args, "compare_activations.json"),
                [dict(activation=r[0], final_train_loss=r[1], test_accuracy=r[2],
                      seconds_per_epoch=r[3]) for r in rows])
    return 0


# --------------------------------------------------------------------------- main

def _add_common(p, out_default=None):
    p.add_argument("--data", metavar="DIR", default=None,
                   help="folder holding the MNIST files (or mnist/); default: $FASTNN_DATA/mnist "
                        "then ~/.cache/fastnn/mnist")
    p.add_argument("--download", dest="download", action="store_true", default=True,
                   help="download MNIST into ~/.cache/fastnn/mnist (or --data) when it is "
                        "not found (the default)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="fail instead of downloading when MNIST is not found")
    p.add_argument("--out", metavar="DIR", default=out_default,
                   help="write plots (PNG), checkpoints (.npz) and results (JSON) here")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")
    p.add_argument("--threads", type=int, default=None,
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
    tr.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    tr.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    tr.add_argument("--lr", type=float, default=None,
                    help="initial learning rate (default: the recipe's)")
    tr.add_argument("--recipe", choices=["best", "seed"], default="best",
                    help="autoencoder recipe: 'seed' (the homework's) or 'best' (default)")
    tr.add_argument("--optimizer", choices=["sgd", "adam"], default=None,
                    help="autoencoder: override the recipe's optimizer (keeps its schedule)")
    tr.add_argument("--pretrain-classifier", action="store_true",
                    help="autoencoder: pre-train, classify the frozen code, then fine-tune")
    tr.add_argument("--head-epochs", type=int, default=None, help=argparse.SUPPRESS)
    tr.add_argument("--finetune-epochs", type=int, default=None, help=argparse.SUPPRESS)
    tr.add_argument("--resume", action="store_true",
                    help="continue from the checkpoint in --out")
    _add_common(tr)

    de = sub.add_parser("demo", help="the seed's two-blob toy problem (no data needed)")
    de.add_argument("--epochs", type=int, default=20)
    de.add_argument("--seed", type=int, default=0)

    ca = sub.add_parser("compare-activations",
                        help="same MLP with ReLU, ELU, LeakyReLU, SoftPlus, none")
    ca.add_argument("--epochs", type=int, default=3)
    ca.add_argument("--batch-size", type=int, default=128)
    ca.add_argument("--lr", type=float, default=0.01)
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
            from . import set_num_threads
            set_num_threads(args.threads)
        if args.command == "demo":
            return demo(args)
        if args.command == "compare-activations":
            return compare_activations(args)
        if args.command == "train":
            if args.pretrain_classifier and args.model != "autoencoder":
                raise CLIError("--pretrain-classifier goes with --model autoencoder")
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
        from .training import TrainingDiverged
        if isinstance(exc, TrainingDiverged):
            print(f"fastnn: error: {exc}", file=sys.stderr)
            return 1
        raise
    parser.error(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
