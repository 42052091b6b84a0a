#!/usr/bin/env python
"""fastnn vs PyTorch on the CPU: training-step medians and the ratio torch / fastnn
(> 1 means fastnn is faster), measured interleaved in one process.

  python asv_bench/compare_torch.py              # full run (several minutes)
  python asv_bench/compare_torch.py --quick      # CI smoke: fewer, shorter rounds
  python asv_bench/compare_torch.py --json out.json --markdown

What is measured
  (a) MLP 784-500-300-100-10, ReLU, LogSoftMax + ClassNLLCriterion, sgd_momentum
      (momentum 0.9), float32, the plain homework loop:
          net.zeroGradParameters()
          out = net.forward(x)
          criterion.forward(out, y)
          net.backward(x, criterion.backward(out, y))
          sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
      vs torch nn.Sequential + NLLLoss + optim.SGD(momentum=0.9)
      (zero_grad, forward, loss, backward, step), batches 1, 32, 128, 1024.
      Also fastnn's time over the GEMM floor: the flops of the forward GEMM and both
      backward GEMMs of every layer (6 * batch * weights) at the peak GFLOP/s of a
      2048^3 float32 matmul (NumPy, same BLAS threads) measured in the same run.
  (b) the small CNN (Conv 1->32 3x3, ReLU, MaxPool 2, Conv 32->64 3x3, ReLU, MaxPool 2,
      Flatten, Linear 3136->128, ReLU, Linear 128->10, CrossEntropyCriterion,
      sgd_momentum) at batches 32 and 128; skipped when fastnn.conv is not importable.
  (c) start-up, each in a fresh subprocess: import + build the MLP + first training step
      (batch 32): wall time seen by the parent, time inside the child, and the child's
      peak RSS (ru_maxrss from os.wait4, i.e. the children rusage of that one child);
      fastnn with a warm Numba cache, the same with FASTNN_NUMBA_REFRESH=1 (Numba's own
      loading, which refreshes its whole CPU context first; fastnn skips that), with an
      empty cache (NUMBA_CACHE_DIR = a fresh temporary folder), and torch (which has no
      compile cache in eager mode).

How
  Both libraries run in this process on the same data, with 2 threads
  (torch.set_num_threads, fastnn.set_num_threads for the BLAS pools). Each framework
  is warmed up first. Then rounds alternate a block of fastnn steps with a block of
  torch steps (the order flips every round). A block lasts at least --block-s seconds;
  its first quarter is dropped (the other library's idle thread pools are still
  spinning down then), and every remaining step is timed on its own. The reported
  value is the median over all kept steps of all rounds; p25/p75 go to the JSON.
  On a shared machine the absolute numbers move with the load (the load average is
  printed and recorded); the ratio is the robust number because both sides see the
  same load.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

MLP_SIZES = (784, 500, 300, 100, 10)
MLP_BATCHES = (1, 32, 128, 1024)
MLP_TARGETS = {1: 2.0, 32: 1.5, 128: 1.2, 1024: 0.95}
CNN_BATCHES = (32, 128)
CNN_TARGET = 1.0
LR, MOMENTUM = 0.01, 0.9
SEED = 0


# ----------------------------------------------------------------------------- builders

def fastnn_mlp():
    import fastnn
    from fastnn import Linear, LogSoftMax, ReLU, Sequential
    fastnn.manual_seed(SEED)
    s = MLP_SIZES
    layers = []
    for i in range(len(s) - 1):
        layers += [Linear(s[i], s[i + 1]), ReLU() if i < len(s) - 2 else LogSoftMax()]
    return Sequential(*layers)


def torch_mlp():
    import torch
    from torch import nn
    torch.manual_seed(SEED)
    s = MLP_SIZES
    layers = []
    for i in range(len(s) - 1):
        layers += [nn.Linear(s[i], s[i + 1]), nn.ReLU() if i < len(s) - 2 else nn.LogSoftmax(dim=1)]
    return nn.Sequential(*layers)


def fastnn_cnn():
    import fastnn
    from fastnn import Linear, ReLU, Sequential
    from fastnn.conv import Conv2d, Flatten, MaxPool2d
    fastnn.manual_seed(SEED)
    return Sequential(Conv2d(1, 32, 3, padding=1), ReLU(), MaxPool2d(2),
                      Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2),
                      Flatten(), Linear(64 * 7 * 7, 128), ReLU(), Linear(128, 10))


def torch_cnn():
    import torch
    from torch import nn
    torch.manual_seed(SEED)
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def fastnn_step_fn(net, criterion, x, y):
    """The plain homework loop, verbatim."""
    from fastnn import sgd_momentum
    config = {"learning_rate": LR, "momentum": MOMENTUM}
    state = {}

    def step():
        net.zeroGradParameters()
        out = net.forward(x)
        criterion.forward(out, y)
        net.backward(x, criterion.backward(out, y))
        sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
    return step


def torch_step_fn(model, loss_fn, x, y):
    import torch
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        out = model(xt)
        loss = loss_fn(out, yt)
        loss.backward()
        opt.step()
    return step


def data(batch, shape):
    r = np.random.default_rng(SEED + batch)
    x = r.random((batch,) + shape, dtype=np.float32)
    y = r.integers(0, 10, batch).astype(np.int64)
    return x, y


# ----------------------------------------------------------------------------- timing

def run_block(step, min_s, min_reps):
    """Time each step of one block on its own; drop the first quarter."""
    times = []
    clock = time.perf_counter
    start = clock()
    while len(times) < min_reps or clock() - start < min_s:
        t0 = clock()
        step()
        times.append(clock() - t0)
    drop = max(1, len(times) // 4)
    return times[drop:]


def warm_up(step, seconds, reps):
    start = time.perf_counter()
    n = 0
    while n < reps or time.perf_counter() - start < seconds:
        step()
        n += 1


def interleaved(steps, opts):
    """steps: {name: callable}. Returns {name: [kept step times]}."""
    for s in steps.values():
        warm_up(s, opts.warmup_s, 3)
    kept = {name: [] for name in steps}
    names = list(steps)
    for r in range(opts.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            kept[name] += run_block(steps[name], opts.block_s, opts.block_reps)
    return kept


def compared_row(batch, kept, target):
    """(result row, printed line) for one batch size from ``interleaved``'s step times."""
    row = {"batch": batch, "fastnn": summary(kept["fastnn"]), "target": target}
    line = f"  batch {batch:5d}: fastnn {fmt_time(row['fastnn']['median_s']):>10s}"
    if "torch" in kept:
        row["torch"] = summary(kept["torch"])
        row["ratio"] = row["torch"]["median_s"] / row["fastnn"]["median_s"]
        ok = target is None or row["ratio"] >= target
        line += (f"  torch {fmt_time(row['torch']['median_s']):>10s}  torch/fastnn "
                 f"{row['ratio']:5.2f} (target >= {target}, {'met' if ok else 'MISSED'})")
    return row, line


def summary(times):
    q = np.percentile(times, [25, 50, 75])
    return {"median_s": float(q[1]), "p25_s": float(q[0]), "p75_s": float(q[2]),
            "n": len(times)}


def peak_gflops(reps):
    """Best-of-reps GFLOP/s of a 2048^3 float32 matmul (NumPy's BLAS)."""
    n = 2048
    r = np.random.default_rng(SEED)
    a = r.random((n, n), dtype=np.float32)
    b = r.random((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    np.matmul(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def mlp_gemm_flops(batch):
    weights = sum(MLP_SIZES[i] * MLP_SIZES[i + 1] for i in range(len(MLP_SIZES) - 1))
    return 6.0 * batch * weights  # forward, backward-input and backward-weight GEMMs


# ----------------------------------------------------------------------------- start-up

# The same first step the asv start-up benchmark times (benchmarks/startup.py imports
# only the standard library, so this keeps the parent process small).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.startup import FIRST_STEP as FASTNN_FIRST_STEP  # noqa: E402

TORCH_FIRST_STEP = """
import numpy as np
import torch
from torch import nn
torch.set_num_threads(2)
model = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 300), nn.ReLU(),
                      nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10), nn.LogSoftmax(dim=1))
loss_fn = nn.NLLLoss()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.from_numpy(np.random.default_rng(0).random((32, 784), dtype=np.float32))
y = torch.arange(32) % 10
opt.zero_grad()
loss = loss_fn(model(x), y)
loss.backward()
opt.step()
"""

CHILD = """
import time
_t0 = time.perf_counter()
{body}
print('INPROC', time.perf_counter() - _t0)
try:
    with open('/proc/self/status') as _f:
        print('VMHWM', [int(l.split()[1]) * 1024 for l in _f if l.startswith('VmHWM:')][0])
except OSError:
    pass
"""


def run_child_rusage(body, env_extra=None):
    """(wall seconds seen by the parent, seconds inside the child, the child's peak RSS
    in bytes, the child's ru_maxrss in bytes from os.wait4).

    The peak RSS is the child's VmHWM (/proc/self/status, read at its end). The rusage
    number (what getrusage(RUSAGE_CHILDREN) reports) is kept for reference only: Linux
    carries the parent's RSS high-water mark across fork+exec into the child's
    ru_maxrss, so it is never below this process's own RSS; ``startup`` therefore runs
    before this process imports torch or fastnn, which keeps that floor low."""
    env = dict(os.environ)
    env.update(env_extra or {})
    code = CHILD.format(body=textwrap.dedent(body))
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out,
                                stderr=subprocess.STDOUT, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"start-up child failed:\n{text}")
    inproc = float(text.split("INPROC")[-1].split()[0])
    ru_maxrss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    hwm = int(text.split("VMHWM")[-1].split()[0]) if "VMHWM" in text else ru_maxrss
    return wall, inproc, hwm, ru_maxrss


def startup(opts):
    cases = []
    run_child_rusage(FASTNN_FIRST_STEP)  # make sure the default cache is warm
    cases.append(("fastnn, warm Numba cache", FASTNN_FIRST_STEP, None, opts.startup_reps))
    cases.append(("fastnn, warm, Numba's refresh", FASTNN_FIRST_STEP, "refresh",
                  opts.startup_reps))
    cases.append(("fastnn, empty Numba cache", FASTNN_FIRST_STEP, "cold",
                  max(1, opts.startup_reps // 2)))
    if not opts.no_torch:
        run_child_rusage(TORCH_FIRST_STEP)
        cases.append(("torch", TORCH_FIRST_STEP, None, opts.startup_reps))
    results = []
    for label, body, cache, reps in cases:
        walls, inprocs, rsss, rus = [], [], [], []
        for _ in range(reps):
            env = None
            tmp = None
            if cache == "cold":
                tmp = tempfile.mkdtemp(prefix="fastnn-numba-cold-")
                env = {"NUMBA_CACHE_DIR": tmp}
            elif cache == "refresh":  # the ablation of kernels/cpu/_jit.py
                env = {"FASTNN_NUMBA_REFRESH": "1"}
            try:
                w, i, m, ru = run_child_rusage(body, env)
            finally:
                if tmp:
                    import shutil
                    shutil.rmtree(tmp, ignore_errors=True)
            walls.append(w)
            inprocs.append(i)
            rsss.append(m)
            rus.append(ru)
        res = {"case": label, "wall_s": statistics.median(walls),
               "in_process_s": statistics.median(inprocs),
               "peak_rss_bytes": int(statistics.median(rsss)),
               "ru_maxrss_bytes": int(statistics.median(rus)), "reps": reps}
        results.append(res)
        print(f"  {label:30s} wall {res['wall_s']:7.3f} s   import->first step done "
              f"{res['in_process_s']:7.3f} s   peak RSS {res['peak_rss_bytes'] / 2**20:7.1f} MiB",
              flush=True)
    return results


# ----------------------------------------------------------------------------- main

def fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds (CI smoke)")
    p.add_argument("--json", metavar="PATH", help="write all results to PATH")
    p.add_argument("--markdown", action="store_true", help="print the README table")
    p.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    p.add_argument("--only", default="mlp,cnn,startup",
                   help="comma-separated subset of mlp,cnn,startup")
    p.add_argument("--batches", default=None, help="MLP batches, e.g. 1,32")
    p.add_argument("--no-torch", action="store_true", help="time fastnn only")
    p.add_argument("--lazy-zero-grad", action="store_true",
                   help="fastnn.lazy_zero_grad(True) (default: fastnn's default, eager)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run the MLP/CNN comparison N times back to back and report the "
                        "median of each figure with the range of the ratio (this machine's "
                        "noise); start-up is measured once, first")
    opts = p.parse_args(argv)
    return repeated(opts) if opts.repeat > 1 else run(opts)


def run(opts):
    """One comparison with the parsed options; returns (and reports) the results."""
    opts.rounds = 4 if opts.quick else 12
    opts.block_s = 0.05 if opts.quick else 0.25
    opts.block_reps = 4 if opts.quick else 8
    opts.warmup_s = 0.2 if opts.quick else 1.0
    opts.startup_reps = 2 if opts.quick else 5
    only = set(opts.only.split(","))
    batches = tuple(int(b) for b in opts.batches.split(",")) if opts.batches else MLP_BATCHES

    load_start = load()
    startup_results = []
    if "startup" in only:
        # First, while this process is small (see run_child_rusage).
        print("(c) start-up: import + build the MLP + first training step (batch 32), "
              "fresh subprocesses", flush=True)
        startup_results = startup(opts)
        print(flush=True)

    import fastnn
    from fastnn import ClassNLLCriterion, CrossEntropyCriterion
    # threadpoolctl only limits BLAS libraries already loaded: load scipy's OpenBLAS (the
    # one fastnn's GEMMs call) first, or the limit misses it and it keeps all cores.
    import fastnn.kernels.cpu.blas  # noqa: F401
    limiter = fastnn.set_num_threads(opts.threads)  # noqa: F841 (kept alive on purpose)
    if opts.lazy_zero_grad:
        fastnn.lazy_zero_grad(True)
    if not opts.no_torch:
        import torch
        torch.set_num_threads(opts.threads)
        from torch import nn

    ncpu = os.cpu_count()
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor(), "cpu_count": ncpu, "threads": opts.threads,
            "numpy": np.__version__, "fastnn": fastnn.__version__,
            "torch": None if opts.no_torch else torch.__version__,
            "quick": opts.quick, "lazy_zero_grad": opts.lazy_zero_grad,
            "load_before": load()}
    try:
        import numba
        meta["numba"] = numba.__version__
    except ImportError:
        pass
    from threadpoolctl import threadpool_info
    meta["threadpools"] = [{k: i.get(k) for k in ("internal_api", "num_threads", "filepath",
                                                  "version", "architecture")}
                           for i in threadpool_info()]
    print(f"fastnn {fastnn.__version__} vs torch {meta['torch']}; threads {opts.threads}; "
          f"{ncpu} CPUs; load average {meta['load_before']:.2f}", flush=True)
    if meta["load_before"] > 0.8 * ncpu:
        print(f"WARNING: load average {meta['load_before']:.2f} on {ncpu} CPUs: other processes "
              f"compete for the cores; absolute times are inflated and noisy, ratios less so.",
              flush=True)

    meta["load_at_start"] = load_start
    results = {"meta": meta, "mlp": [], "cnn": [], "startup": startup_results}
    gflops = None
    if "mlp" in only:
        gflops = peak_gflops(3 if opts.quick else 5)
        print(f"peak sgemm (2048^3, NumPy BLAS, {opts.threads} threads): {gflops:.1f} GFLOP/s",
              flush=True)
    meta["peak_sgemm_gflops"] = gflops

    if "mlp" in only:
        print("\n(a) MLP 784-500-300-100-10 training step (homework loop), float32", flush=True)
        for batch in batches:
            x, y = data(batch, (MLP_SIZES[0],))
            steps = {"fastnn": fastnn_step_fn(fastnn_mlp(), ClassNLLCriterion(), x, y)}
            if not opts.no_torch:
                steps["torch"] = torch_step_fn(torch_mlp(), nn.NLLLoss(), x, y)
            kept = interleaved(steps, opts)
            row, line = compared_row(batch, kept, MLP_TARGETS.get(batch))
            floor = mlp_gemm_flops(batch) / (gflops * 1e9)
            row["gemm_floor_s"] = floor
            row["fastnn_over_floor"] = row["fastnn"]["median_s"] / floor
            line += f"  fastnn/GEMM floor {row['fastnn_over_floor']:6.1f}x"
            print(line, flush=True)
            results["mlp"].append(row)

    if "cnn" in only:
        print("\n(b) small CNN training step, float32", flush=True)
        try:
            import fastnn.conv  # noqa: F401
        except ImportError as exc:
            print(f"  skipped: fastnn.conv is not importable ({exc})")
            results["cnn_skipped"] = str(exc)
        else:
            for batch in CNN_BATCHES:
                x, y = data(batch, (1, 28, 28))
                steps = {"fastnn": fastnn_step_fn(fastnn_cnn(), CrossEntropyCriterion(), x, y)}
                if not opts.no_torch:
                    steps["torch"] = torch_step_fn(torch_cnn(), nn.CrossEntropyLoss(), x, y)
                kept = interleaved(steps, opts)
                row, line = compared_row(batch, kept, CNN_TARGET)
                print(line, flush=True)
                results["cnn"].append(row)

    meta["load_after"] = load()
    print(f"\nload average after: {meta['load_after']:.2f}", flush=True)
    return report(results, opts)


def report(results, opts):
    """Write ``--json`` and print ``--markdown`` for ``results``; returns them."""
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {opts.json}")
    if opts.markdown:
        print()
        print(markdown(results))
    return results


def repeated(opts):
    """``--repeat N``: N full MLP/CNN comparisons, then the median and ratio range per row."""
    def once(only):
        return run(argparse.Namespace(**dict(vars(opts), only=only, json=None,
                                             markdown=False, repeat=1)))

    parts = opts.only.split(",")
    # start-up first, while this process is small (as in run)
    startup_results = once("startup")["startup"] if "startup" in parts else []
    runs = []
    for i in range(opts.repeat):
        print(f"\n=== run {i + 1} of {opts.repeat}", flush=True)
        runs.append(once(",".join(k for k in parts if k in ("mlp", "cnn"))))
    merged = {"meta": dict(runs[-1]["meta"], repeat=opts.repeat,
                           load_before=runs[0]["meta"]["load_before"]),
              "mlp": _merge_rows([r["mlp"] for r in runs]),
              "cnn": _merge_rows([r["cnn"] for r in runs]),
              "startup": startup_results, "runs": runs}
    return report(merged, opts)


def _merge_rows(per_run):
    """Rows of several runs -> one row per batch: medians of the medians, ratio range."""
    merged = []
    for rows in zip(*per_run):
        row = dict(rows[0])
        for side in ("fastnn", "torch"):
            if side in row:
                row[side] = dict(row[side], median_s=statistics.median(
                    r[side]["median_s"] for r in rows))
        if "ratio" in row:
            ratios = [r["ratio"] for r in rows]
            row["ratio"] = statistics.median(ratios)
            row["ratio_range"] = (min(ratios), max(ratios))
        if "fastnn_over_floor" in row:
            row["fastnn_over_floor"] = statistics.median(r["fastnn_over_floor"] for r in rows)
        merged.append(row)
    return merged


def markdown(results):
    lines = []
    if results["mlp"] or results["cnn"]:
        lines += ["| model | batch | fastnn | torch | torch / fastnn | target | "
                  "fastnn / GEMM floor |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, rows in (("MLP", results["mlp"]), ("CNN", results["cnn"])):
        for r in rows:
            torch_t = fmt_time(r["torch"]["median_s"]) if "torch" in r else "-"
            ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
            if "ratio_range" in r:
                ratio += f" ({r['ratio_range'][0]:.2f}–{r['ratio_range'][1]:.2f})"
            target = f"≥ {r['target']}" if r.get("target") is not None else "-"
            floor = f"{r['fastnn_over_floor']:.1f}x" if "fastnn_over_floor" in r else "-"
            lines.append(f"| {kind} | {r['batch']} | {fmt_time(r['fastnn']['median_s'])} | "
                         f"{torch_t} | {ratio} | {target} | {floor} |")
    if results["startup"]:
        lines += ["" if lines else None, "| start-up (import + build MLP + first step) | wall | in process | "
                      "peak RSS |", "| --- | ---: | ---: | ---: |"]
        for r in results["startup"]:
            lines.append(f"| {r['case']} | {r['wall_s']:.2f} s | {r['in_process_s']:.2f} s | "
                         f"{r['peak_rss_bytes'] / 2**20:.0f} MiB |")
        lines = [line for line in lines if line is not None]
    m = results["meta"]
    runs = f"the median of {m['repeat']} runs, the ratio's range in brackets; " if m.get(
        "repeat") else ""
    lines += ["", f"Measured ({runs}{m['threads']} threads on {m['cpu_count']} CPUs, "
                  f"load average {m['load_before']:.2f} before / {m.get('load_after', 0):.2f} "
                  f"after; peak sgemm {m['peak_sgemm_gflops'] or float('nan'):.1f} GFLOP/s; "
                  f"torch {m['torch']}, numpy {m['numpy']}, numba {m.get('numba')})."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
