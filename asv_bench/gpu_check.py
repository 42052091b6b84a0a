#!/usr/bin/env python
"""One-shot check of fastnn's CUDA path on a real NVIDIA GPU (about 5 minutes).

  python asv_bench/gpu_check.py                 # real sizes, on the GPU
  NUMBA_ENABLE_CUDASIM=1 python asv_bench/gpu_check.py --tiny   # smoke run, simulator

1. Correctness, float32 and float64 (``gpu_check_kernels.py``): every CUDA kernel
   against its CPU twin at real sizes (the MLP 784-500-300-100-10 at batch 128, the
   MNIST CNN's conv/pool layers at batch 32, a strided conv), the MLP trained 3 steps
   on both devices (loss read from the device), and a GPU module fed a PyTorch CUDA
   tensor / CuPy array when those are importable.
2. The float32 checks again in a child process with ``FASTNN_CUDA_MAX_BLOCKS=2``, so
   every grid-stride loop turns.
3. Device memory over ``memory_steps`` CNN training steps (a step allocates nothing).
4. A second process loads every kernel it runs from Numba's cache (no compile).
5. Timing (``gpu_check_timing.py``, median of rounds, batches from the host): the MLP
   step at batch 128 and 1024, the CNN step at batch 1 and 32, one ``fit`` epoch, the
   affine GEMM and the first conv's weight-gradient GEMM (k = 25,088: split-K), for
   fastnn CUDA, fastnn CPU, PyTorch CUDA and CuPy.
6. A markdown report with the card name.

Every check is wrapped, so one failure does not hide the rest; the exit status is 1 if
any check failed. ``--tiny`` shrinks every size so the script runs end to end in the
CUDA simulator (tests/test_gpu_check.py runs it there); its timings mean nothing.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gpu_check_kernels import Checks, kernel_checks, module_checks  # noqa: E402
from gpu_check_timing import memory_growth, timings  # noqa: E402

FULL = {
    "mlp": [784, 500, 300, 100, 10], "batch": 128, "step_batches": [128, 1024],
    "cnn": [  # (N, C, H, W, F, k, stride, padding)
        (32, 1, 28, 28, 32, 3, 1, 1), (32, 32, 14, 14, 64, 3, 1, 1), (32, 64, 7, 7, 64, 3, 2, 1)],
    "pool": [(32, 32, 28, 28, 2, 2), (32, 64, 14, 14, 2, 2), (32, 64, 7, 7, 3, 2)],
    "cnn_net": ((1, 28), [32, 64], 10), "cnn_batches": [1, 32], "fit_samples": 60000,
    "gemms": [(1024, 784, 500, "affine x @ W.T"),
              (32, 25088, 9, "conv1 weight gradient, batch 32")],
    "memory_steps": 500, "rounds": 5, "min_round_s": 0.2,
}
TINY = {
    "mlp": [12, 9, 7, 5, 3], "batch": 4, "step_batches": [4],
    "cnn": [(2, 1, 6, 6, 2, 3, 1, 1), (2, 2, 3, 3, 3, 3, 2, 1)],
    "pool": [(2, 2, 6, 6, 2, 2), (1, 2, 5, 5, 3, 2)],
    "cnn_net": ((1, 4), [2], 3), "cnn_batches": [1, 2], "fit_samples": 8,
    "gemms": [(8, 7, 5, "affine"), (3, 70, 5, "split-K")],
    "memory_steps": 12, "rounds": 1, "min_round_s": 0.0,
}
#: Device memory a run of steps may lose (allocator rounding; a leak grows per step).
MEMORY_SLACK = 4 << 20


# ---- report ---------------------------------------------------------------------------------
def device_name(cuda):
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "numba CUDA simulator"
    dev = cuda.current_context().device
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    cc = getattr(dev, "compute_capability", None)
    return f"{name} (compute capability {cc[0]}.{cc[1]})" if cc else name


def report(card, chk, rows, elapsed, tiny):
    import numba
    cols = ["fastnn CUDA", "fastnn CPU", "PyTorch CUDA", "CuPy"]
    print()
    print(f"## fastnn GPU check: {card}")
    print()
    print(f"numba {numba.__version__}, NumPy {np.__version__}, Python "
          f"{platform.python_version()}{', --tiny sizes' if tiny else ''}; "
          f"{sum(ok for *_, ok in chk.rows)}/{len(chk.rows)} checks passed; "
          f"{elapsed:.0f} s in all")
    failed = [row for row in chk.rows if not row[-1]]
    if failed:
        print()
        print("| failed check | shape | max abs error | limit |")
        print("|---|---|---|---|")
        for name, shape, err, limit, _ in failed:
            print(f"| {name} | {shape} | {err:.3e} | {limit:.3e} |")
    print()
    print(f"| {card} | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for row in rows:
        cells = []
        for c in cols:
            t = row.get(c)
            if t is None:
                cells.append("-")
            elif c == "fastnn CUDA" and row.get("note"):
                cells.append(f"{t * 1e3:.3f} ms {row['note']}")
            elif "flops" in row:
                cells.append(f"{t * 1e3:.3f} ms ({row['flops'] / t / 1e9:.3g} GFLOP/s)")
            else:
                cells.append(f"{t * 1e3:.3f} ms")
        print(f"| {row['what']} | " + " | ".join(cells) + " |")
    print()
    print("Median time per call (fit: one epoch). Steps take their batch from the host "
          "every step (the homework loop) and leave the loss on the device (PyTorch: no "
          "loss.item()); fit reads it every sync_every steps (PyTorch's loop: every step). "
          "'-': library not importable or without a GPU.")


def rerun_with_two_blocks(chk, args):
    """The float32 kernel checks in a child with FASTNN_CUDA_MAX_BLOCKS=2: one row."""
    cmd = [sys.executable, os.path.abspath(__file__), "--checks-only", "--dtypes", "float32"]
    cmd += ["--tiny"] if args.tiny else []
    env = dict(os.environ, FASTNN_CUDA_MAX_BLOCKS="2")
    print("float32 checks again with FASTNN_CUDA_MAX_BLOCKS=2 (child process) ...", flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    failed = [line for line in proc.stdout.splitlines() if line.lstrip().startswith("FAIL")]
    for line in failed:
        print("   child:", line.strip())
    chk.record("all float32 checks with FASTNN_CUDA_MAX_BLOCKS=2", "child process",
               float(len(failed) + (proc.returncode not in (0, 1))), 0.0,
               note="" if proc.returncode in (0, 1) else f"  exit {proc.returncode}: "
               f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")


def cache_probe():
    """Child side of the cache check: one MLP and one CNN step on the GPU, then the
    cache hits and misses of every fastnn CUDA kernel, as JSON."""
    import fastnn
    from gpu_check_kernels import build_mlp
    from gpu_check_timing import build_cnn, fastnn_step
    rng = np.random.default_rng(0)
    sz = TINY
    layers = sz["mlp"]
    fastnn_step(build_mlp(layers).cuda(), rng.standard_normal((4, layers[0])),
                rng.integers(0, layers[-1], 4), fastnn.ClassNLLCriterion(), {},
                {"learning_rate": 0.01})()
    (c_in, side), _, n_classes = sz["cnn_net"]
    fastnn_step(build_cnn(sz["cnn_net"]).cuda(), rng.standard_normal((2, c_in, side, side)),
                rng.integers(0, n_classes, 2), fastnn.ClassNLLCriterion(), {},
                {"learning_rate": 0.01})()
    hits = misses = 0
    for name, mod in list(sys.modules.items()):
        if not name.startswith("fastnn.kernels.cuda."):
            continue
        for obj in vars(mod).values():
            stats = getattr(obj, "stats", None) if type(obj).__name__ == "CUDADispatcher" \
                else None
            if stats is not None:
                hits += sum(stats.cache_hits.values())
                misses += sum(stats.cache_misses.values())
    print(json.dumps({"hits": hits, "misses": misses}))


def cache_check(chk):
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        print("  -    kernel cache: the simulator compiles nothing (skipped)")
        return
    print("kernel cache: a second process ...", flush=True)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--cache-probe"],
                          capture_output=True, text=True, timeout=600)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    chk.record("second process: kernels compiled (cache misses)", f"{res['hits']} loaded",
               float(res["misses"] + (res["hits"] == 0)), 0.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true",
                    help="tiny sizes (for a smoke run in the CUDA simulator)")
    ap.add_argument("--no-timing", action="store_true", help="checks only")
    ap.add_argument("--checks-only", action="store_true",
                    help="kernel and module checks only (the MAX_BLOCKS=2 child)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--cache-probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    import fastnn
    if not fastnn.cuda_available():
        print("gpu_check: numba.cuda sees no GPU (set NUMBA_ENABLE_CUDASIM=1 for a "
              "simulator run with --tiny)", file=sys.stderr)
        return 2
    from numba import cuda
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        # one Python thread per simulated GPU thread: keep the blocks small
        from fastnn.kernels.cuda import config
        config.set_launch_config(threads_per_block=32, gemm_tile=4)
        sys.setswitchinterval(1e-4)
        if not args.tiny:
            print("gpu_check: the simulator needs --tiny", file=sys.stderr)
            return 2
    if args.cache_probe:
        cache_probe()
        return 0
    sz = TINY if args.tiny else FULL
    card = device_name(cuda)
    print(f"gpu_check on {card}", flush=True)
    rng = np.random.default_rng(0)
    chk = Checks(cuda)
    for dtype in args.dtypes.split(","):
        chk.set_dtype(dtype)
        chk.guarded("kernel checks", dtype, kernel_checks, chk, sz, rng)
        chk.guarded("module checks", dtype, module_checks, chk, sz, rng)
    rows = []
    if not args.checks_only:
        chk.set_dtype("float32")
        chk.guarded("MAX_BLOCKS=2 rerun", "", rerun_with_two_blocks, chk, args)
        grown = chk.guarded("device memory", "", memory_growth, sz, rng, cuda)
        if grown is not None and grown[0] is not None:
            chk.record(f"device memory lost over {grown[1]} CNN steps (bytes)", "",
                       grown[0], float(MEMORY_SLACK))
        elif grown is not None:
            print("  -    device memory: no figures on this device (skipped)")
        chk.guarded("kernel cache", "", cache_check, chk)
        if not args.no_timing:
            rows = chk.guarded("timings", "", timings, sz, rng, cuda) or []
    report(card, chk, rows, time.perf_counter() - t0, args.tiny)
    return 0 if all(ok for *_, ok in chk.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
