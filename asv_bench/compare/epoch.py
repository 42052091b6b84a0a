"""The whole-epoch race: one MNIST training epoch (60,000 images, shuffled) per run,
each run in its own process, the runs alternated.

Variants:

- ``fit``: ``fastnn.fit(..., epochs=1)`` (no progress bar, no log);
- ``loop``: the plain homework loop over ``fastnn.data.iterate_minibatches``;
- ``steps``: the same steps on batches gathered before the clock starts, i.e. the
  epoch's floor; ``fit`` or ``loop`` minus ``steps`` is what the epoch spends outside
  the step (shuffling, gathering, bookkeeping);
- ``torch``: the idiomatic PyTorch loop (``TensorDataset`` + ``DataLoader(shuffle=True)``;
  ``zero_grad``, forward, loss, ``backward``, ``step``) with ``torch.set_num_threads``.

Both libraries get the data already in memory as float32 in [0, 1] and warm up on a few
steps first (start-up is measured separately).
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

from . import nets
from .timing import load

VARIANTS = ("fit", "loop", "steps", "torch")
TARGETS = {("mlp", 32): 2.0, ("mlp", 128): 1.5, ("mlp", 512): 1.2, ("cnn", 128): 1.3}
WARMUP_STEPS = 5


def _mnist(kind, samples):
    from fastnn.data import load_mnist
    X, y, _, _ = load_mnist(download=False, progress=False)
    X, y = X[:samples], y[:samples].astype(np.int64)
    X = np.ascontiguousarray(X, np.float32)
    if kind == "cnn":
        X = X.reshape(-1, 1, 28, 28)
    return X, y


def _fastnn_epoch(kind, variant, X, y, batch):
    import fastnn
    net = nets.fastnn_mlp() if kind == "mlp" else nets.fastnn_cnn()
    crit = nets.fastnn_criterion(kind)
    config = {"learning_rate": nets.LR, "momentum": nets.MOMENTUM}
    if variant == "fit":
        fastnn.fit(net, crit, X, y, config=dict(config), epochs=1, batch_size=batch,
                   progress=False, log=None, seed=1, max_steps=WARMUP_STEPS)
        t0 = time.perf_counter()
        fastnn.fit(net, crit, X, y, config=dict(config), epochs=1, batch_size=batch,
                   progress=False, log=None, seed=0)
        return time.perf_counter() - t0
    state = {}

    def step(xb, yb):
        net.zeroGradParameters()
        out = net.forward(xb)
        crit.forward(out, yb)
        net.backward(xb, crit.backward(out, yb))
        fastnn.sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)

    for _ in range(WARMUP_STEPS):
        step(X[:batch], y[:batch])
    batches = fastnn.data.iterate_minibatches(X, y, batch, shuffle=True, seed=0)
    if variant == "steps":
        batches = list(batches)
    t0 = time.perf_counter()
    for xb, yb in batches:
        step(xb, yb)
    return time.perf_counter() - t0


def _torch_epoch(kind, X, y, batch, threads):
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    torch.set_num_threads(threads)
    model = nets.torch_mlp() if kind == "mlp" else nets.torch_cnn()
    loss_fn = nets.torch_criterion(kind)
    opt = torch.optim.SGD(model.parameters(), lr=nets.LR, momentum=nets.MOMENTUM)
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)),
                        batch_size=batch, shuffle=True)

    def step(xb, yb):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()

    for _ in range(WARMUP_STEPS):
        step(torch.from_numpy(X[:batch]), torch.from_numpy(y[:batch]))
    t0 = time.perf_counter()
    for xb, yb in loader:
        step(xb, yb)
    return time.perf_counter() - t0


def child(kind, variant, batch, samples, threads):
    """One epoch in this process; prints a JSON line with the seconds it took."""
    X, y = _mnist(kind, samples)
    if variant == "torch":
        seconds = _torch_epoch(kind, X, y, batch, threads)
    else:
        import fastnn
        fastnn.set_num_threads(threads)
        seconds = _fastnn_epoch(kind, variant, X, y, batch)
    print("EPOCH " + json.dumps({"seconds": seconds, "samples": len(X)}), flush=True)


def run_child(script, kind, variant, batch, samples, threads, env=None):
    out = subprocess.run([sys.executable, script, "--epoch-child", kind, variant, str(batch),
                          str(samples), str(threads)], capture_output=True, text=True,
                         env=dict(os.environ, **(env or {})), timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"epoch child {kind} {variant} {batch} failed:\n{out.stderr[-2000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("EPOCH ")][-1]
    return json.loads(line[len("EPOCH "):])["seconds"]


def race(script, configs, rounds, samples, threads, variants=VARIANTS, pause_s=1.0):
    """``configs``: [(kind, batch)]. Returns one row per config with every variant's
    seconds per round and the ratios torch / fit and torch / loop per round."""
    rows = []
    for kind, batch in configs:
        row = {"net": kind, "batch": batch, "target": TARGETS.get((kind, batch)),
               "seconds": {v: [] for v in variants}, "load": []}
        for r in range(rounds):
            for variant in (variants if r % 2 == 0 else variants[::-1]):
                time.sleep(pause_s)
                row["seconds"][variant].append(
                    run_child(script, kind, variant, batch, samples, threads))
            row["load"].append(load())
        for v in ("fit", "loop"):
            if v in variants and "torch" in variants:
                row[f"torch/{v}"] = [t / f for t, f in zip(row["seconds"]["torch"],
                                                           row["seconds"][v])]
        rows.append(row)
        print(line(row), flush=True)
    return rows


def line(row):
    med = {v: float(np.median(s)) for v, s in row["seconds"].items()}
    parts = [f"  {row['net']} batch {row['batch']:4d}:"]
    parts += [f"{v} {med[v]:6.2f} s" for v in med]
    for v in ("fit", "loop"):
        ratios = row.get(f"torch/{v}")
        if ratios:
            parts.append(f"torch/{v} {np.median(ratios):.2f} (min {min(ratios):.2f})")
    if row["target"] is not None and row.get("torch/fit"):
        parts.append(f"target >= {row['target']}: "
                     f"{'met' if min(row['torch/fit']) >= row['target'] else 'MISSED'}")
    return "  ".join(parts)


def markdown(rows, samples):
    out = ["| net | batch | fastnn.fit | homework loop | steps only | torch | torch / fit "
           "(min) | torch / loop (min) | target |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        med = {v: float(np.median(s)) for v, s in r["seconds"].items()}
        cell = {v: f"{med[v]:.2f} s" if v in med else "-" for v in VARIANTS}
        ratio = {v: (f"{np.median(r[f'torch/{v}']):.2f} ({min(r[f'torch/{v}']):.2f})"
                     if r.get(f"torch/{v}") else "-") for v in ("fit", "loop")}
        target = f"≥ {r['target']}" if r["target"] else "-"
        out.append(f"| {r['net'].upper()} | {r['batch']} | {cell['fit']} | {cell['loop']} | "
                   f"{cell['steps']} | {cell['torch']} | {ratio['fit']} | {ratio['loop']} | "
                   f"{target} |")
    out.append(f"\n{samples} images per epoch; seconds are medians over rounds, each run "
               f"in its own process.")
    return "\n".join(out)
