#!/usr/bin/env python
"""Variants of the seed-recipe autoencoder (SGD, lr 0.1 halved every 3 epochs, 9 epochs,
batch 256, MSECriterion), trained on the CLI's train/validation split; prints the test
reconstruction (squared error summed per image, averaged over the test set).

  FASTNN_DATA=../shared/data python scripts/autoencoder_seed_variants.py [--out DIR] VARIANT ...

With ``--out DIR`` each variant also writes ``autoencoder_variant_<VARIANT>.png`` (ten
validation digits: original / this variant / PCA-30 clipped to [0, 1]) and
``autoencoder_variant_<VARIANT>.json`` (its test reconstruction) there.

A VARIANT joins tokens with "+"; they apply to the seed net built *without* the CLI's
mean-image start (``autoencoder_net("seed")``):
  plain        nothing added (what the CLI did before the mean-image start)
  biasinit     the output Linear's bias = logit(mean training image)
  small        with biasinit: the output Linear's weights scaled by 0.1 (biasinit+small
               is what ``fastnn train mnist --model autoencoder --recipe seed`` does)
  inbn         BatchNormalization on the 784 inputs, in front of the net
  nocodebn     no BatchNormalization after the 30-unit code Linear
  nobn         no BatchNormalization anywhere
  m05, m07     SGD momentum 0.5 / 0.7 (default 0.6); momM sets any momentum M (mom0.8)
  hidS         the initial weights of every Linear but the output one scaled by S (hid2,
               hid1.5, ...; each is followed by BatchNormalization, so this only changes
               its effective learning rate, which falls as the square of the weights' scale)
  seedS        initialise and shuffle with seed S (default 0; the split stays the CLI's)
  recalibrate  after training, replace the BatchNormalization moving statistics by
               their average over one pass of the training set; both results printed
"""
import sys

import numpy as np

import fastnn as nn
from fastnn import models
from fastnn.cli import common
from fastnn.train import evaluate, fit


def seed_of(tokens):
    return next((int(t[4:]) for t in tokens if t.startswith("seed")), 0)


def build(tokens, X_tr):
    """The seed net with each token's change, through ``fastnn.models.autoencoder``."""
    nn.manual_seed(seed_of(tokens))
    hidden = next((float(t[3:]) for t in tokens if t.startswith("hid")), 1.0)
    net = models.autoencoder("seed", X_tr.mean(axis=0) if "biasinit" in tokens else None,
                              hidden_scale=hidden,
                              output_scale=0.1 if "small" in tokens else 1.0)
    if "nobn" in tokens or "nocodebn" in tokens:
        mods = list(net.modules)
        code = next(i for i, m in enumerate(mods)
                    if isinstance(m, nn.Linear) and m.n_out == models.AE_SIZES[-1])
        net = nn.Sequential(*[m for i, m in enumerate(mods)
                              if not isinstance(m, nn.BatchNormalization)
                              or ("nocodebn" in tokens and i != code + 1)])
    if "inbn" in tokens:
        net = nn.Sequential(nn.BatchNormalization(0.9), *net.modules)
    return net


def recalibrate(net, X, batch_size=256, seed=0):
    """Moving statistics := the mean of the batch statistics over one training pass."""
    bns = [m for m in net.modules if isinstance(m, nn.BatchNormalization)]
    alphas = [b.alpha for b in bns]
    net.train()
    order = np.random.default_rng(seed).permutation(len(X))
    for k, s in enumerate(range(0, len(X) - batch_size + 1, batch_size), start=1):
        for b in bns:
            b.alpha = 1.0 - 1.0 / k   # running mean of the k batches so far
        net.forward(X[order[s:s + batch_size]])
    for b, a in zip(bns, alphas):
        b.alpha = a
    net.evaluate()


def write_figures(out, variant, net, X_tr, X_val, Xt, test_rec):
    """The variant's reconstructions of ten validation digits beside PCA-30's, and its
    figure as JSON."""
    import json
    import os
    from fastnn.cli.experiments import _plot_reconstructions, pca_fit, pca_reconstruct
    from fastnn.train import predict
    os.makedirs(out, exist_ok=True)
    mean, comps = pca_fit(X_tr, 30)
    sample = X_val[:10]
    name = variant.replace("+", "_")
    _plot_reconstructions(os.path.join(out, f"autoencoder_variant_{name}.png"), sample,
                          predict(net, sample), np.clip(pca_reconstruct(sample, mean, comps), 0, 1),
                          f"seed recipe, variant {variant}: test reconstruction {test_rec:.2f}")
    with open(os.path.join(out, f"autoencoder_variant_{name}.json"), "w") as f:
        json.dump({"variant": variant, "test_reconstruction": test_rec}, f)


def main(variants, out=None):
    X_tr, _, X_val, _, Xt, _ = common._split(common.RunOptions(progress=False))
    crit = nn.MSECriterion()
    for variant in variants:
        tokens = set(variant.split("+"))
        momentum = 0.5 if "m05" in tokens else 0.7 if "m07" in tokens else 0.6
        for token in tokens:
            if token.startswith("mom"):
                momentum = float(token[3:])
        net = build(tokens, X_tr)
        fit(net, crit, X_tr, None, optimizer="sgd",
            config={"learning_rate": 0.1, "momentum": momentum}, epochs=9, batch_size=256,
            schedule=common._schedule("step3", 0.1, 9), X_val=X_val, metric=None,
            seed=seed_of(tokens),
            progress=False, log=lambda *a: None)
        test_rec = evaluate(net, crit, Xt, None, metric=None)[0]
        print(f"{variant}: test reconstruction {test_rec:.2f}", flush=True)
        if out:
            write_figures(out, variant, net, X_tr, X_val, Xt, test_rec)
        if "recalibrate" in tokens:
            recalibrate(net, X_tr)
            print(f"{variant}: after recalibration "
                  f"{evaluate(net, crit, Xt, None, metric=None)[0]:.2f}", flush=True)


if __name__ == "__main__":
    argv = sys.argv[1:]
    out_dir = None
    if argv[:1] == ["--out"]:
        out_dir, argv = argv[1], argv[2:]
    main(argv or ["plain", "biasinit+small"], out_dir)
