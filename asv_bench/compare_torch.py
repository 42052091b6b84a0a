#!/usr/bin/env python
"""fastnn against PyTorch on the CPU; every figure is a ratio torch / fastnn (> 1: fastnn
is faster) measured side by side in one run.

  python asv_bench/compare_torch.py                 # steps (MLP, CNN) and start-up
  python asv_bench/compare_torch.py --epoch         # one whole MNIST epoch, each run its own process
  python asv_bench/compare_torch.py --contended     # next to a competing busy process
  python asv_bench/compare_torch.py --quick         # CI smoke: fewer, shorter rounds

Steps (``--only mlp,cnn``): the MLP 784-500-300-100-10 (ReLU, LogSoftMax +
ClassNLLCriterion) at batches 1, 32, 128, 1024 and the small CNN (Conv 1->32, pool,
Conv 32->64, pool, Linear 3136->128->10; CrossEntropyCriterion) at 32 and 128, the plain
homework loop with ``sgd_momentum`` against ``nn.Sequential`` + ``optim.SGD``. fastnn runs
twice: as written, and with Torch7's ``gradInput = None`` idiom on the first layer (its
input gradient is never needed; PyTorch skips it too). The MLP also runs its GEMMs alone
in NumPy (the floor). How the steps are timed: ``compare/timing.py`` (alternating blocks
with pauses; the spread is over rounds). Targets are met only when they hold in every round.

Start-up (``--only startup``): ``compare/startup.py``. The epoch race: ``compare/epoch.py``.
The load average is recorded, with a warning when it exceeds the core count.
"""
import argparse
import json
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import epoch, nets, report  # noqa: E402
from compare.contended import WithThreads, busy_process  # noqa: E402
from compare.timing import alternate, load, warn_if_loaded  # noqa: E402

MLP_BATCHES = (1, 32, 128, 1024)
CNN_BATCHES = (32, 128)
MLP_TARGETS = {1: 4.0, 32: 2.2, 128: 1.6, 1024: 1.05}
CNN_TARGET = 1.5
EPOCH_CONFIGS = (("mlp", 32), ("mlp", 128), ("mlp", 512), ("cnn", 128))


def _meta(opts):
    import fastnn
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "threads": opts.threads, "numpy": np.__version__,
            "fastnn": fastnn.__version__, "load_before": load(), "rounds": opts.rounds,
            "block_steps": opts.block_steps, "pause_s": opts.pause}
    try:
        import numba
        meta["numba"] = numba.__version__
    except ImportError:
        pass
    if not opts.no_torch:
        import torch
        meta["torch"] = torch.__version__
    return meta


def steps(opts, kind, batches, targets):
    """Alternating blocks of fastnn (as written and with ``gradInput = None``), torch and
    (MLP) the GEMM floor, per batch size."""
    rows = []
    for batch in batches:
        x, y = nets.data(batch, (784,) if kind == "mlp" else (1, 28, 28))
        build = nets.fastnn_mlp if kind == "mlp" else nets.fastnn_cnn
        candidates = {"fastnn": nets.fastnn_step_fn(build(), nets.fastnn_criterion(kind), x, y)}
        skip_net = build()
        if nets.skip_first_grad_input(skip_net, nets.fastnn_criterion(kind), x, y):
            candidates["fastnn_skip"] = nets.fastnn_step_fn(
                skip_net, nets.fastnn_criterion(kind), x, y)
        if not opts.no_torch:
            model = nets.torch_mlp() if kind == "mlp" else nets.torch_cnn()
            candidates["torch"] = nets.torch_step_fn(model, nets.torch_criterion(kind), x, y)
        if kind == "mlp":
            candidates["floor"] = nets.gemm_floor_fn(batch, "fastnn_skip" not in candidates)
        result = alternate(candidates, opts.rounds, opts.block_steps, opts.pause)
        warn_if_loaded(f"the {kind} batch-{batch} step")
        row = report.step_row(kind, batch, result, targets(batch))
        print(report.line(row), flush=True)
        rows.append(row)
    return rows


def contended(opts):
    """fastnn and torch, default threads against one thread, next to a busy process."""
    import fastnn
    import torch
    rows = []
    with busy_process():
        for kind, batch in (("mlp", 32), ("mlp", 128), ("cnn", 128)):
            x, y = nets.data(batch, (784,) if kind == "mlp" else (1, 28, 28))
            build = nets.fastnn_mlp if kind == "mlp" else nets.fastnn_cnn
            tbuild = nets.torch_mlp if kind == "mlp" else nets.torch_cnn
            candidates = {}
            for threads in (opts.threads, 1):
                candidates[f"fastnn@{threads}"] = WithThreads(nets.fastnn_step_fn(
                    build(), nets.fastnn_criterion(kind), x, y), fastnn.set_num_threads, threads)
                candidates[f"torch@{threads}"] = WithThreads(nets.torch_step_fn(
                    tbuild(), nets.torch_criterion(kind), x, y), torch.set_num_threads, threads)
            result = alternate(candidates, opts.rounds, opts.block_steps, opts.pause)
            med = {k: float(np.median(v["times"])) for k, v in result.items()}
            row = {"net": kind, "batch": batch, "median_s": med}
            for lib in ("fastnn", "torch"):
                row[f"{lib}_default_over_1"] = med[f"{lib}@{opts.threads}"] / med[f"{lib}@1"]
            print(f"  {kind} batch {batch}: " + "  ".join(f"{k} {v * 1e3:.2f} ms"
                                                         for k, v in med.items()) +
                  f"  fastnn default/1 thread {row['fastnn_default_over_1']:.2f}"
                  f"  torch default/1 thread {row['torch_default_over_1']:.2f}", flush=True)
            rows.append(row)
    fastnn.set_num_threads(opts.threads)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds (CI smoke)")
    p.add_argument("--json", metavar="PATH", help="write all results to PATH")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    p.add_argument("--only", default="mlp,cnn,startup",
                   help="comma-separated subset of mlp,cnn,startup (step mode)")
    p.add_argument("--batches", default=None, help="MLP batches, e.g. 1,32")
    p.add_argument("--rounds", type=int, default=5, help="rounds of blocks (default 5)")
    p.add_argument("--block-steps", type=int, default=50, help="steps per block (default 50)")
    p.add_argument("--pause", type=float, default=0.3, help="seconds before each block")
    p.add_argument("--no-torch", action="store_true", help="time fastnn only")
    p.add_argument("--epoch", action="store_true", help="the whole-epoch race")
    p.add_argument("--epoch-samples", type=int, default=60000,
                   help="images per epoch in --epoch (default 60000)")
    p.add_argument("--epoch-configs", default=None,
                   help="e.g. mlp:32,cnn:128 (default: MLP 32, 128, 512 and CNN 128)")
    p.add_argument("--contended", action="store_true",
                   help="steps next to a competing busy process, default vs one thread")
    p.add_argument("--epoch-child", nargs=5, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.epoch_child:
        kind, variant, batch, samples, threads = opts.epoch_child
        return epoch.child(kind, variant, int(batch), int(samples), int(threads))
    if opts.quick:
        opts.rounds, opts.block_steps, opts.pause = 2, 6, 0.05
    return run(opts)


def run(opts):
    results = {}
    if opts.epoch:
        configs = EPOCH_CONFIGS if not opts.epoch_configs else tuple(
            (c.split(":")[0], int(c.split(":")[1])) for c in opts.epoch_configs.split(","))
        variants = epoch.VARIANTS if not opts.no_torch else epoch.VARIANTS[:-1]
        print(f"one MNIST epoch ({opts.epoch_samples} images), {opts.rounds} rounds, load "
              f"average {load():.2f}", flush=True)
        rows = epoch.race(os.path.abspath(__file__), configs, opts.rounds, opts.epoch_samples,
                          opts.threads, variants)
        results["epoch"] = rows
        if opts.markdown:
            print("\n" + epoch.markdown(rows, opts.epoch_samples))
        return _write(results, opts)
    only = set(opts.only.split(","))
    if "startup" in only and not opts.contended:
        from compare import startup  # before this process imports torch or fastnn
        print("start-up: import + build the MLP + first training step (batch 32)", flush=True)
        opts.startup_reps = 2 if opts.quick else 5
        results["startup"] = startup.startup(opts)
        if opts.markdown:
            print("\n" + startup.markdown(results["startup"]) + "\n")
    import fastnn
    import fastnn.kernels.cpu.blas  # noqa: F401  (threadpoolctl limits loaded libraries only)
    results["limiter"] = fastnn.set_num_threads(opts.threads)  # kept alive on purpose
    if not opts.no_torch:
        import torch
        torch.set_num_threads(opts.threads)
    meta = results["meta"] = _meta(opts)
    print(f"fastnn {meta['fastnn']} vs torch {meta.get('torch')}; {opts.threads} threads; "
          f"{meta['cpu_count']} CPUs; load average {meta['load_before']:.2f}", flush=True)
    warn_if_loaded("the start")
    if opts.contended:
        print("\nnext to one busy process (default threads against one thread)", flush=True)
        results["contended"] = contended(opts)
        return _write(results, opts)
    rows = []
    if "mlp" in only:
        print("\nMLP 784-500-300-100-10 training step (homework loop), float32", flush=True)
        batches = tuple(int(b) for b in opts.batches.split(",")) if opts.batches else MLP_BATCHES
        rows += steps(opts, "mlp", batches, MLP_TARGETS.get)
    if "cnn" in only:
        print("\nsmall CNN training step, float32", flush=True)
        rows += steps(opts, "cnn", CNN_BATCHES, lambda b: CNN_TARGET)
    results["steps"] = rows
    meta["load_after"] = load()
    if opts.markdown and rows:
        print("\n" + report.markdown(rows, meta))
    return _write(results, opts)


def _write(results, opts):
    results.pop("limiter", None)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {opts.json}")
    return results


if __name__ == "__main__":
    main()
