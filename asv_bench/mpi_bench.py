#!/usr/bin/env python
"""Data-parallel training over MPI on this machine (docs/performance.md, "Distributed
training"): the allreduce's cost per step, one MNIST epoch on 2 ranks x 1 thread
against 1 rank x 2 threads, and the ring-allreduce projection to 8 and 64 nodes.

  python asv_bench/mpi_bench.py                        # everything (5-10 minutes)
  python asv_bench/mpi_bench.py steps                  # per-step figures only
  python asv_bench/mpi_bench.py epoch --epoch-reps 2   # the MNIST epochs only

It launches ``mpiexec -n 2`` itself. Every comparison is interleaved (A, B, A, B, ...)
and repeated; the figures are medians over the repeats. ``uptime``'s load is printed
before and after: the machine is shared.

Per step (the compare_torch MLP 784-500-300-100-10, float32, SGD with momentum, one
thread per rank), three variants take turns, ``--steps`` steps each per turn:
``local`` (no communication: each rank's compute while the other rank computes too),
``blocking`` (``allreduce_gradients`` after backward) and ``overlap``
(``OverlappedAllreduce``: a non-blocking allreduce per bucket during backward).
``allreduce alone`` is the blocking Allreduce of the flat gradient buffer by itself,
after a barrier; ``latency`` the same for 8 bytes.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
BATCHES = (32, 128, 1024)


def _mpiexec():
    for folder in (os.path.dirname(sys.executable),
                   os.path.dirname(os.path.realpath(sys.executable))):
        path = os.path.join(folder, "mpiexec")
        if os.access(path, os.X_OK):
            return path
    return "mpiexec"


def _uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# ----------------------------------------------------------------------------- per step

def _steps_worker(opts):
    from compare import nets as ct
    from mpi4py import MPI
    import fastnn as nn
    from fastnn import distributed as dist
    from fastnn.distributed.overlap import OverlappedAllreduce
    dist.init()
    comm = dist.comm()
    results = {}
    for batch in BATCHES:
        net, crit = ct.fastnn_mlp(), nn.ClassNLLCriterion()
        x, y = ct.data(batch, (ct.MLP_SIZES[0],))
        x = x + dist.rank()  # each rank its own rows
        dist.broadcast_parameters(net)
        overlap = OverlappedAllreduce(net, opts.bucket_kib << 10)
        config, state = {"learning_rate": ct.LR, "momentum": ct.MOMENTUM}, {}
        grads = dist.flat_base([g for gs in net.getGradParameters() for g in gs])

        def step(mode):
            net.zeroGradParameters()
            out = net.forward(x)
            crit.forward(out, y)
            g = crit.backward(out, y)
            if mode == "overlap":
                overlap.begin()
                net.backward(x, g)
                overlap.end()
            else:
                net.backward(x, g)
                if mode == "blocking":
                    dist.allreduce_gradients(net)
            nn.sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)

        def alone():
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
            return time.perf_counter() - t0

        def timed_allreduce(buf):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            return time.perf_counter() - t0

        tiny, quarter = np.zeros(1), grads[:grads.size // 4]

        def latency():
            return timed_allreduce(tiny)

        steps = max(3, opts.steps * 128 // batch)
        for _ in range(5):
            step("blocking")
            step("overlap")
        times = {m: [] for m in ("local", "blocking", "overlap", "alone", "quarter",
                                 "latency")}
        for rep in range(opts.reps):
            for mode in ("local", "blocking", "overlap"):
                comm.Barrier()
                t0 = time.perf_counter()
                for _ in range(steps):
                    step(mode)
                elapsed = np.array([(time.perf_counter() - t0) / steps])
                comm.Allreduce(MPI.IN_PLACE, elapsed, op=MPI.MAX)  # the slower rank's
                times[mode].append(float(elapsed[0]))
            times["alone"].append(float(np.median([alone() for _ in range(steps)])))
            times["latency"].append(float(np.median([latency() for _ in range(50)])))
            times["quarter"].append(float(np.median([timed_allreduce(quarter)
                                                     for _ in range(steps)])))
        results[batch] = {m: float(np.median(v)) * 1e6 for m, v in times.items()}
        results[batch]["bytes"] = int(grads.nbytes)
    if dist.rank() == 0:
        with open(opts.json, "w") as f:
            json.dump(results, f)


def steps(opts):
    out = os.path.join(opts.tmp, "mpi_steps.json")
    cmd = [_mpiexec(), "-n", "2", sys.executable, os.path.abspath(__file__), "_steps",
           "--json", out, "--steps", str(opts.steps), "--reps", str(opts.reps),
           "--bucket-kib", str(opts.bucket_kib)]
    subprocess.run(cmd, check=True, env=dict(os.environ, FASTNN_NUM_THREADS="1"))
    with open(out) as f:
        res = {int(k): v for k, v in json.load(f).items()}
    print(f"\nper step, 2 ranks x 1 thread, MLP {'-'.join(map(str, _sizes()))} float32 "
          f"({res[BATCHES[0]]['bytes'] / 2**20:.2f} MiB of gradients); medians of "
          f"{opts.reps} interleaved repeats, microseconds")
    print(f"{'batch/rank':>10} {'local step':>10} {'blocking':>9} {'overlap':>8} "
          f"{'allreduce in step':>17} {'allreduce alone':>15} {'share':>6} {'latency':>8}")
    for b in BATCHES:
        r = res[b]
        extra = r["blocking"] - r["local"]
        print(f"{b:>10} {r['local']:>10.0f} {r['blocking']:>9.0f} {r['overlap']:>8.0f} "
              f"{extra:>17.0f} {r['alone']:>15.0f} {extra / r['blocking']:>6.0%} "
              f"{r['latency']:>8.1f}")
    return res


def _sizes():
    from compare import nets as ct
    return ct.MLP_SIZES


# ----------------------------------------------------------------------------- MNIST epoch

def _epoch_worker(opts):
    """One epoch of the CLI's MLP recipe through fit; prints a JSON line of where the
    time went (rank 0)."""
    import fastnn as nn
    from fastnn import distributed as dist, models
    from fastnn.cli.common import RunOptions, _augmenter, _split
    from fastnn.cli.main import CLASSIFIER_RECIPES
    from fastnn.distributed import collectives
    from fastnn.train import loop
    spent = {"gradient allreduce": 0.0, "loss allreduce": 0.0, "validation": 0.0}

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t0
        return wrapper

    from fastnn.distributed.overlap import OverlappedAllreduce
    collectives.allreduce_gradients = timed("gradient allreduce", collectives.allreduce_gradients)
    # overlapped: what is left of the allreduce after backward (the wait for the buckets)
    OverlappedAllreduce.end = timed("gradient allreduce", OverlappedAllreduce.end)
    collectives.allreduce = timed("loss allreduce", collectives.allreduce)
    loop.evaluate = timed("validation", loop.evaluate)
    args = RunOptions(download=False, progress=False, limit_train=opts.limit)
    X_tr, y_tr, X_val, y_val, _, _ = _split(args, flatten=True)
    recipe = CLASSIFIER_RECIPES["mlp"]
    nn.manual_seed(0)
    net = models.mlp()
    h = nn.fit(net, nn.ClassNLLCriterion(), X_tr, y_tr,
               config={"learning_rate": recipe["lr"], "momentum": recipe["momentum"]},
               epochs=1, batch_size=recipe["batch_size"], X_val=X_val, y_val=y_val,
               augment=_augmenter(recipe["augment"]), seed=0, progress=False, log=None,
               distributed=opts.distributed and dist.Distributed(overlap=not opts.no_overlap))
    if dist.rank() == 0:
        spent.update(total=h.total_time, val_accuracy=h.val_accuracy[-1],
                     threads=int(os.environ.get("FASTNN_NUM_THREADS", "0")),
                     ranks=dist.size())
        print("RESULT " + json.dumps(spent), flush=True)


def epoch(opts):
    me = [sys.executable, os.path.abspath(__file__), "_epoch"]
    if opts.limit:
        me += ["--limit", str(opts.limit)]
    mpi = [_mpiexec(), "-n", "2"] + me + ["--distributed"]
    variants = {
        "2 ranks x 1, overlap": (mpi, "1"),
        "2 ranks x 1, blocking": (mpi + ["--no-overlap"], "1"),
        "1 rank x 2 threads": (me, "2"),
    }
    runs = {k: [] for k in variants}
    for rep in range(opts.epoch_reps):
        for name, (cmd, threads) in variants.items():
            r = subprocess.run(cmd, capture_output=True, text=True, check=True,
                               env=dict(os.environ, FASTNN_NUM_THREADS=threads))
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][0]
            runs[name].append(json.loads(line[len("RESULT "):]))
            print(f"  {name}: {runs[name][-1]['total']:.1f} s", flush=True)
    print(f"\none MNIST epoch of the CLI's MLP recipe (55k rows, batch 128 global, augmentation,"
          f" validation on 5k); medians of {opts.epoch_reps} interleaved runs, seconds")
    keys = ("total", "gradient allreduce", "loss allreduce", "validation")
    print(f"{'':>22} " + " ".join(f"{k:>18}" for k in keys) + f" {'rest (compute)':>15}")
    med = {}
    for name, rs in runs.items():
        med[name] = {k: float(np.median([r[k] for r in rs])) for k in keys}
        m = med[name]
        rest = m["total"] - m["gradient allreduce"] - m["loss allreduce"] - m["validation"]
        print(f"{name:>22} " + " ".join(f"{m[k]:>18.2f}" for k in keys) + f" {rest:>15.2f}")
    one = med["1 rank x 2 threads"]["total"]
    for name in ("2 ranks x 1, overlap", "2 ranks x 1, blocking"):
        print(f"speed-up of {name} over 1 rank x 2 threads: {one / med[name]['total']:.2f}x")
    return med


# ----------------------------------------------------------------------------- projection

def _crossover(res, t_comm):
    """The batch per rank at which the compute of a step equals ``t_comm``: compute is
    fitted as a + c x batch (least squares over the measured local steps)."""
    b = np.array(BATCHES, float)
    t = np.array([res[k]["local"] for k in BATCHES])
    c, a = np.polyfit(b, t, 1)
    return max(0.0, (t_comm - a) / c)


def project(res, gbits=(10, 100), nodes=(8, 64), latency_us=10.0):
    """Ring allreduce: 2(N-1)/N x bytes / bandwidth + 2(N-1) x latency, against the
    measured local step (one rank's compute at that batch), and the 2-rank check."""
    nbytes = res[BATCHES[0]]["bytes"]
    print(f"\nring-allreduce model: t = 2(N-1)/N x bytes / bandwidth + 2(N-1) x latency, "
          f"{nbytes / 2**20:.2f} MiB, latency {latency_us:g} us per message; "
          f"compute = the measured local step")
    print(f"{'':>21}" + "".join(f"{f'N={n} {g} Gbit/s':>16}" for n in nodes for g in gbits))
    comm = {(n, g): 2 * (n - 1) / n * nbytes * 8 / (g * 1e9) * 1e6 + 2 * (n - 1) * latency_us
            for n in nodes for g in gbits}
    print(f"{'allreduce us':>21}" + "".join(f"{comm[k]:>16.0f}" for k in comm))
    for b in BATCHES:
        local = res[b]["local"]
        cells = [f"{local:.0f} ({comm[k] / local:.2f}x)" for k in comm]
        print(f"{f'batch {b}: compute us':>21}" + "".join(f"{c:>16}" for c in cells))
    cross = [_crossover(res, comm[k]) for k in comm]
    print(f"{'crossover batch/rank':>21}" + "".join(
        f"{(f'{c:.0f}' if c >= 1 else '<1'):>16}" for c in cross))
    # the model at N=2 on this machine: latency from 8 bytes, bandwidth from a quarter of
    # the buffer, then the prediction for the whole buffer against its measurement
    for b in BATCHES:
        r = res[b]
        bw = (nbytes / 4) / max(r["quarter"] - 2 * r["latency"], 1e-3)  # bytes per us
        pred = nbytes / bw + 2 * r["latency"]
        print(f"2-rank check, batch {b}: latency {r['latency']:.1f} us, bandwidth "
              f"{bw / 1e3:.2f} GB/s (from a quarter buffer, {r['quarter']:.0f} us); the "
              f"model predicts {pred:.0f} us for the whole buffer, measured alone "
              f"{r['alone']:.0f} us, in the step {r['blocking'] - r['local']:.0f} us")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="?", default="all",
                   choices=["all", "steps", "epoch", "_steps", "_epoch"])
    p.add_argument("--steps", type=int, default=100, help="steps per turn at batch 128")
    p.add_argument("--reps", type=int, default=5, help="repeats of the per-step figures")
    p.add_argument("--epoch-reps", type=int, default=3, help="repeats of the MNIST epochs")
    p.add_argument("--bucket-kib", type=int, default=256)
    p.add_argument("--json", default=None)
    p.add_argument("--distributed", action="store_true")
    p.add_argument("--no-overlap", action="store_true")
    p.add_argument("--limit", type=int, default=None, help="train rows (quick trials)")
    p.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"))
    opts = p.parse_args(argv)
    if opts.what == "_steps":
        return _steps_worker(opts)
    if opts.what == "_epoch":
        return _epoch_worker(opts)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  uptime before: {_uptime()}", flush=True)
    if opts.what in ("all", "steps"):
        res = steps(opts)
        project(res)
    if opts.what in ("all", "epoch"):
        epoch(opts)
    print(f"uptime after: {_uptime()}")


if __name__ == "__main__":
    main()
