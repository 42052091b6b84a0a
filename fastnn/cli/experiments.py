"""The CLI's experiments: the autoencoder against PCA-30, pre-training a classifier on the
autoencoder's code, and ``compare-activations`` (an alias of ``compare.py``)."""
import time

import numpy as np

from .. import models
from .common import (_can_plot, _checkpoint_args, _count_params, _export_onnx, _out_path,
                     _pick, _schedule, _split, _write_json)


AE_RECIPES = {
    # the seed notebook's schedule: SGD, lr 0.1 halved every 3 epochs, 9 epochs, batch 256.
    # lr 0.1 on the per-image summed error is too large a step for the BatchNormalized
    # layers: their initial weights are scaled by 2 (a quarter of the step, see
    # fastnn.models.autoencoder), which also lets momentum go up to 0.8. The variants
    # behind these choices: scripts/autoencoder_seed_variants.py (results in
    # docs/performance.md).
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


def _train_autoencoder(run, X_tr, X_val, recipe_name, epochs=None, batch_size=None, lr=None,
                       optimizer=None, log=print):
    import fastnn as nn
    from ..train import fit
    recipe = dict(AE_RECIPES[recipe_name])
    if optimizer and optimizer != recipe["optimizer"]:
        recipe.update(optimizer=optimizer, momentum=0.9,
                      lr=_pick(lr, 0.1 if optimizer == "sgd" else 2e-3))
    epochs = _pick(epochs, recipe["epochs"])
    batch_size = _pick(batch_size, recipe["batch_size"])
    lr = _pick(lr, recipe["lr"])
    nn.manual_seed(run.seed)
    # the seed recipe's SGD gains from starting at the mean image; the best recipe
    # (Adam) was measured without it
    net = models.autoencoder(recipe_name, X_tr.mean(axis=0) if recipe_name == "seed" else None,
                          recipe.get("hidden_init_scale", 1.0))
    config = {"learning_rate": lr}
    opt_text = f"{recipe['optimizer']} lr {lr:g}"
    if recipe["optimizer"] == "sgd":
        config["momentum"] = recipe["momentum"]
        opt_text += f" momentum {recipe['momentum']:g}"
    print(f"autoencoder ({recipe_name} recipe): {_count_params(net):,} parameters; "
          f"{len(X_tr)} train / {len(X_val)} val; {epochs} epochs, batch {batch_size}, "
          f"{opt_text}, {recipe['schedule']} schedule")
    ckpt, resume = _checkpoint_args(run, f"autoencoder_{recipe_name}")
    history = fit(net, nn.MSECriterion(), X_tr, None, optimizer=recipe["optimizer"],
                  config=config, epochs=epochs, batch_size=batch_size,
                  schedule=_schedule(recipe["schedule"], lr, epochs), X_val=X_val,
                  metric=None, seed=run.seed, progress=run.progress, log=log,
                  checkpoint=ckpt, resume=resume, max_steps=run.max_steps)
    return net, history


def run_autoencoder(run, recipe="best", epochs=None, batch_size=None, lr=None,
                    optimizer=None, export_onnx=None):
    """``fastnn train mnist --model autoencoder``: train with ``recipe`` (the options left
    None take the recipe's values), compare with PCA-30 on the test set; with
    ``export_onnx`` (a path) write the trained net as ONNX."""
    import fastnn as nn
    from ..train import evaluate, predict
    X_tr, y_tr, X_val, y_val, Xt, yt = _split(run)
    t0 = time.perf_counter()
    net, history = _train_autoencoder(run, X_tr, X_val, recipe, epochs, batch_size, lr,
                                      optimizer)
    train_time = time.perf_counter() - t0
    test_rec, _ = evaluate(net, nn.MSECriterion(), Xt, None, metric=None)
    mean, comps = pca_fit(X_tr, 30)
    pca_rec = _sse_per_image(pca_reconstruct(Xt, mean, comps), Xt)
    # the homework suggests clipping PCA's reconstruction to the pixels' range [0, 1]
    pca_clipped = _sse_per_image(np.clip(pca_reconstruct(Xt, mean, comps), 0, 1), Xt)
    plot = _out_path(run, f"autoencoder_{recipe}_history.png")
    if plot and _can_plot("the history plot"):
        history.plot(plot, title=f"autoencoder ({recipe}): test reconstruction {test_rec:.2f}")
    grid = _out_path(run, f"autoencoder_{recipe}_reconstructions.png")
    if grid and _can_plot("the reconstructions plot"):
        sample = X_val[:10]
        _plot_reconstructions(grid, sample, predict(net, sample),
                              pca_reconstruct(sample, mean, comps),
                              f"validation digits: original / autoencoder ({test_rec:.2f}) / "
                              f"PCA-30 clipped to [0, 1] ({pca_clipped:.2f}; unclipped "
                              f"{pca_rec:.2f}); squared error per image on the test set")
    _write_json(_out_path(run, f"autoencoder_{recipe}_results.json"), {
        "model": "autoencoder", "recipe": recipe, "test_reconstruction": test_rec,
        "pca30_test_reconstruction": pca_rec, "pca30_clipped_test_reconstruction": pca_clipped,
        "train_seconds": train_time, "seed": run.seed,
        "parameters": _count_params(net), "history": history.to_dict()})
    print(f"training time: {train_time:.1f}s")
    _export_onnx(export_onnx, net, Xt[:1])
    print(f"PCA-30 clipped to [0, 1]: {pca_clipped:.2f}")
    print(f"test reconstruction: {test_rec:.2f} (PCA-30: {pca_rec:.2f})")
    return 0


def run_pretrain(run, recipe="best", epochs=None, batch_size=None, lr=None, optimizer=None,
                 head_epochs=10, finetune_epochs=5):
    """The seed's bonus: pre-train the autoencoder (``recipe`` and the options after it, as
    in ``run_autoencoder``), train a classifier on the frozen 30-d code for
    ``head_epochs``, then fine-tune encoder + classifier together for ``finetune_epochs``."""
    import fastnn as nn
    from ..train import evaluate, fit, predict
    X_tr, y_tr, X_val, y_val, Xt, yt = _split(run)
    t0 = time.perf_counter()
    ae, _ = _train_autoencoder(run, X_tr, X_val, recipe, epochs, batch_size, lr, optimizer)
    test_rec, _ = evaluate(ae, nn.MSECriterion(), Xt, None, metric=None)
    print(f"stage 1, autoencoder pre-training: test reconstruction {test_rec:.2f} "
          f"({time.perf_counter() - t0:.0f}s)")

    encoder, _ = models.split_autoencoder(ae)
    codes = {name: predict(encoder, X) for name, X in
             (("train", X_tr), ("val", X_val), ("test", Xt))}
    nn.manual_seed(run.seed + 1)
    head = nn.Sequential(nn.Linear(models.AE_SIZES[-1], 10), nn.LogSoftMax())
    crit = nn.ClassNLLCriterion()
    t1 = time.perf_counter()
    print(f"stage 2: linear classifier on the frozen 30-d code, {head_epochs} epochs")
    fit(head, crit, codes["train"], y_tr, optimizer="adam", config={"learning_rate": 3e-3},
        epochs=head_epochs, batch_size=128, X_val=codes["val"], y_val=y_val, seed=run.seed,
        progress=run.progress, log=print, max_steps=run.max_steps)
    _, frozen_acc = evaluate(head, crit, codes["test"], yt)
    print(f"stage 2, frozen encoder + linear classifier: test accuracy {frozen_acc:.4f} "
          f"({time.perf_counter() - t1:.0f}s)")

    ft_epochs = finetune_epochs
    model = nn.Sequential(*encoder.modules, *head.modules)
    t2 = time.perf_counter()
    print(f"stage 3: fine-tuning encoder + classifier, {ft_epochs} epochs")
    fit(model, crit, X_tr, y_tr, optimizer="adam", config={"learning_rate": 3e-4},
        epochs=ft_epochs, batch_size=128,
        schedule=_schedule("cosine", 3e-4, ft_epochs), X_val=X_val, y_val=y_val,
        seed=run.seed, progress=run.progress, log=print, max_steps=run.max_steps)
    _, ft_acc = evaluate(model, crit, Xt, yt)
    print(f"stage 3, fine-tuned encoder + classifier: test accuracy {ft_acc:.4f} "
          f"({time.perf_counter() - t2:.0f}s)")
    _write_json(_out_path(run, "pretrain_results.json"), {
        "recipe": recipe, "test_reconstruction": test_rec,
        "frozen_encoder_test_accuracy": frozen_acc, "finetuned_test_accuracy": ft_acc,
        "seconds": time.perf_counter() - t0, "seed": run.seed})
    print(f"test accuracy: {ft_acc:.4f}")
    return 0


def compare_activations(run, epochs=3, batch_size=128, lr=0.01, batchnorm=False):
    """``fastnn compare-activations``, the older spelling of ``fastnn compare activations``
    (``compare.py``) with its own defaults: 3 epochs, one seed; ``batchnorm`` adds ReLU
    and ELU with BatchNormalization."""
    from . import compare
    return compare.run(run, "activations", epochs=epochs, seeds=1, batch_size=batch_size,
                       lr=lr, batchnorm=batchnorm)
