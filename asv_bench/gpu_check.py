#!/usr/bin/env python
"""One-shot check of fastnn's CUDA kernels on a real NVIDIA GPU (under 5 minutes).

  python asv_bench/gpu_check.py                 # real sizes, on the GPU
  NUMBA_ENABLE_CUDASIM=1 python asv_bench/gpu_check.py --tiny   # smoke run, simulator

1. Correctness: every CUDA kernel against its CPU twin (float32) at real sizes: the
   layers of the MLP 784-500-300-100-10 at batch 128 and the conv/pool layers of the
   small MNIST CNN (Conv 1->32 3x3, MaxPool 2, Conv 32->64 3x3, MaxPool 2) at batch 32,
   plus a strided conv; then the whole MLP trained 3 steps on both devices, and a GPU
   module fed a PyTorch CUDA tensor / CuPy array (``__cuda_array_interface__``) when
   those libraries are importable.
2. Timing (median of rounds; inputs come from the host every step, as in the
   homework loop): the MLP training step (zeroGradParameters, forward, criterion
   forward/backward, backward, sgd_momentum) at batch 128 and 1024, and the affine GEMM
   1024x784 @ 784x500, for fastnn CUDA, fastnn CPU, PyTorch CUDA and CuPy (columns
   of libraries that are not importable, or have no GPU, say "-").
3. A markdown report with the card name. Exit status 1 if any check fails.

``--tiny`` shrinks every size so that the script runs end to end in the CUDA
simulator (which runs one Python thread per GPU thread; its timings mean nothing).
"""
import argparse
import copy
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

FULL = {
    "mlp": [784, 500, 300, 100, 10], "batch": 128, "step_batches": [128, 1024],
    "cnn": [  # (N, C, H, W, F, k, stride, padding)
        (32, 1, 28, 28, 32, 3, 1, 1), (32, 32, 14, 14, 64, 3, 1, 1), (32, 64, 7, 7, 64, 3, 2, 1)],
    "pool": [(32, 32, 28, 28, 2, 2), (32, 64, 14, 14, 2, 2), (32, 64, 7, 7, 3, 2)],
    "gemm": (1024, 784, 500), "rounds": 5, "min_round_s": 0.2,
}
TINY = {
    "mlp": [12, 9, 7, 5, 3], "batch": 4, "step_batches": [4, 6],
    "cnn": [(2, 1, 6, 6, 2, 3, 1, 1), (2, 2, 3, 3, 3, 3, 2, 1)],
    "pool": [(2, 2, 6, 6, 2, 2), (1, 2, 5, 5, 3, 2)],
    "gemm": (8, 7, 5), "rounds": 1, "min_round_s": 0.0,
}
RTOL, ATOL = 2e-4, 2e-5  # float32 at k = 784: errors are ~1e-6 of the largest entry


# ---- correctness ------------------------------------------------------------------------
class Checks:
    def __init__(self, cuda):
        self.cuda = cuda
        self.rows = []

    def record(self, name, shape, err, limit):
        ok = bool(err <= limit)  # NaN fails
        self.rows.append((name, shape, err, limit, ok))
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<46} {shape:<26} max err {err:.2e} "
              f"(limit {limit:.1e})", flush=True)
        return ok

    @staticmethod
    def error(gpu, cpu):
        """(max abs difference, allowed difference); NaN in the same places is equal."""
        gpu = np.asarray(gpu, np.float64)
        cpu = np.asarray(cpu, np.float64)
        if gpu.shape != cpu.shape:
            return math.inf, 0.0
        diff = np.where(np.isnan(gpu) & np.isnan(cpu), 0.0, np.abs(gpu - cpu))
        finite = np.abs(cpu[np.isfinite(cpu)])
        scale = float(finite.max()) if finite.size else 0.0
        return (float(diff.max()) if diff.size else 0.0), ATOL + RTOL * scale

    def compare(self, name, shape, gpu, cpu):
        return self.record(name, shape, *self.error(gpu, cpu))

    def twin(self, family, fn, *args, label=None, shape=""):
        """Run the CPU and CUDA kernels on copies of args and compare every array argument
        (outputs, in-place updates, untouched inputs); one row, for the worst argument."""
        import importlib
        cpu_mod = importlib.import_module(f"fastnn.kernels.cpu.{family}")
        gpu_mod = importlib.import_module(f"fastnn.kernels.cuda.{family}")
        cpu_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        gpu_args = [self.cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
        getattr(cpu_mod, fn)(*cpu_args)
        getattr(gpu_mod, fn)(*gpu_args)
        errs = [self.error(g.copy_to_host(), c) for c, g in zip(cpu_args, gpu_args)
                if isinstance(c, np.ndarray)]
        self.record(f"{family}.{label or fn}", shape, *self.worst(errs))
        return cpu_args

    @staticmethod
    def worst(errs):
        return max(errs, key=lambda e: (not e[0] <= e[1], e[0] / e[1] if e[1] else math.inf))


def kernel_checks(chk, sz, rng):
    cuda = chk.cuda
    f32 = np.float32

    def r(*shape, lo=-1.0, hi=1.0):
        return rng.uniform(lo, hi, shape).astype(f32)

    print("kernels vs CPU twins (float32):", flush=True)
    layers = sz["mlp"]
    B = sz["batch"]
    # elementwise
    from fastnn.kernels.cuda import elementwise
    a = cuda.device_array((B, layers[1]), f32)
    elementwise.fill(a, 0.25)
    chk.compare("elementwise.fill", str(a.shape), a.copy_to_host(), np.full(a.shape, 0.25))
    src = r(B, layers[1]).astype(np.float64)
    elementwise.copy(cuda.to_device(src), a)
    chk.compare("elementwise.copy (f64 -> f32)", str(a.shape), a.copy_to_host(), src.astype(f32))
    # activations
    x = r(B, layers[1], lo=-3, hi=3)
    g = r(B, layers[1])
    for code in range(7):
        out = chk.twin("activation", "activation_forward", x, np.empty_like(x), code, 0.1,
                       label=f"activation_forward[{code}]", shape=str(x.shape))
        chk.twin("activation", "activation_backward", x, g, np.empty_like(x), out[1], code, 0.1,
                 label=f"activation_backward[{code}]", shape=str(x.shape))
    # GEMM, every transpose
    m, k, n = B, layers[0], layers[1]
    for ta in (False, True):
        for tb in (False, True):
            A = r(k, m) if ta else r(m, k)
            Bm = r(n, k) if tb else r(k, n)
            chk.twin("blas", "gemm", ta, tb, 0.5, A, Bm, 1.0, r(m, n),
                     label=f"gemm[{'T' if ta else 'N'}{'T' if tb else 'N'}]", shape=f"{m}x{k}x{n}")
    # affine: every MLP layer, fused ReLU except the last
    for i, (n_in, n_out) in enumerate(zip(layers[:-1], layers[1:])):
        act = 1 if i < len(layers) - 2 else 0
        shape = f"{B}x{n_in}->{n_out}"
        x, W, b = r(B, n_in), r(n_out, n_in, lo=-0.05, hi=0.05), r(n_out)
        go = r(B, n_out)
        res = chk.twin("affine", "affine_activation_forward", x, np.empty((B, n_out), f32),
                       np.empty((B, n_out), f32), W, b, act, 0.0, shape=shape)
        chk.twin("affine", "affine_forward", x, np.empty((B, n_out), f32), W, b, shape=shape)
        chk.twin("affine", "affine_activation_backward", x, go, np.empty((B, n_in), f32),
                 np.empty((B, n_out), f32), r(n_out, n_in), r(n_out), res[1], res[2], W, act,
                 0.0, True, True, shape=shape)
        chk.twin("affine", "affine_backward_input", go, np.empty((B, n_in), f32), W, shape=shape)
        chk.twin("affine", "affine_backward_params", x, go, r(n_out, n_in), r(n_out), False,
                 shape=shape)
    # softmax / losses on the MLP's output
    c = layers[-1]
    shape = f"{B}x{c}"
    s = r(B, c, lo=-4, hi=4)
    labels = rng.integers(0, c, B).astype(np.int64)
    onehot = np.eye(c, dtype=f32)[labels]
    scale = 1.0 / B
    for fwd, bwd in (("softmax_forward", "softmax_backward"),
                     ("log_softmax_forward", "log_softmax_backward")):
        out = chk.twin("softmax_nll", fwd, s, np.empty_like(s), shape=shape)
        chk.twin("softmax_nll", bwd, r(B, c), np.empty_like(s), out[1], shape=shape)
    probs = np.exp(s - s.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).astype(f32)
    logp = np.log(probs)
    out = chk.twin("softmax_nll", "cross_entropy_forward", s, labels, np.zeros(1, f32),
                   np.empty_like(s), scale, shape=shape)
    chk.twin("softmax_nll", "cross_entropy_backward", labels, np.empty_like(s), out[3], scale,
             shape=shape)
    out = chk.twin("softmax_nll", "cross_entropy_dense_forward", s, onehot, np.zeros(1, f32),
                   np.empty_like(s), scale, shape=shape)
    chk.twin("softmax_nll", "cross_entropy_dense_backward", onehot, np.empty_like(s), out[3],
             scale, shape=shape)
    tol = 64 * c * float(np.finfo(f32).eps)
    for inp, what in ((logp, "log-probabilities"), (probs, "probabilities"), (s, "raw")):
        chk.twin("softmax_nll", "classify_scores", inp, np.full(1, -1, np.int64), tol,
                 label=f"classify_scores[{what}]", shape=shape)
    for inp, is_prob in ((logp, 0), (probs, 1)):
        for fn in ("class_nll_forward", "class_nll_dense_forward"):
            t = labels if "dense" not in fn else onehot
            chk.twin("softmax_nll", fn, inp, t, np.zeros(1, f32), is_prob, scale,
                     label=f"{fn}[{is_prob}]", shape=shape)
        for fn in ("class_nll_backward", "class_nll_dense_backward"):
            t = labels if "dense" not in fn else onehot
            chk.twin("softmax_nll", fn, inp, t, np.empty_like(s), is_prob, scale,
                     label=f"{fn}[{is_prob}]", shape=shape)
    chk.twin("softmax_nll", "clipped_nll_forward", probs, onehot, np.zeros(1, f32), 1e-7, scale,
             shape=shape)
    chk.twin("softmax_nll", "clipped_nll_backward", probs, onehot, np.empty_like(s), 1e-7, scale,
             shape=shape)
    chk.twin("softmax_nll", "mse_forward", s, probs, np.zeros(1, f32), scale, shape=shape)
    chk.twin("softmax_nll", "mse_backward", s, probs, np.empty_like(s), scale, shape=shape)
    # dropout: statistics of the mask, output = input * mask, backward vs the CPU twin
    from fastnn.kernels.cuda import dropout
    x = r(B, layers[1], lo=1, hi=2)
    d_out, d_mask = cuda.device_array(x.shape, f32), cuda.device_array(x.shape, f32)
    dropout.seed(1234)
    dropout.dropout_forward(cuda.to_device(x), d_out, d_mask, 0.5)
    mask = d_mask.copy_to_host()
    dropped = float(np.mean(mask == 0))
    chk.record("dropout.dropout_forward: |dropped - p|", str(x.shape), abs(dropped - 0.5),
               max(0.02, 4 * math.sqrt(0.25 / x.size)))
    chk.record("dropout.dropout_forward: mask in {0, 2}", str(x.shape),
               float(np.sum((mask != 0) & (mask != 2))), 0)
    chk.compare("dropout.dropout_forward: out = x * mask", str(x.shape), d_out.copy_to_host(),
                x * mask)
    chk.twin("dropout", "dropout_backward", r(*x.shape), np.empty_like(x), mask,
             shape=str(x.shape))
    # batchnorm / scaling on the MLP's hidden layer and on a conv feature map
    N, C, H, W, F = sz["cnn"][0][:5]
    for shp in ((B, layers[1], 1), (N, F, H * W)):
        x, go = r(*shp, lo=-1, hi=3), r(*shp)
        ch = shp[1]
        for center in (False, True):
            out = chk.twin("batchnorm", "batchnorm_forward_train", x, np.empty_like(x),
                           np.empty(ch, f32), np.empty(ch, f32), r(ch), r(ch, lo=0.5, hi=2),
                           0.9, 1e-3, center, label=f"batchnorm_forward_train[{center}]",
                           shape=str(shp))
            chk.twin("batchnorm", "batchnorm_backward_train", go, np.empty_like(x), out[1], out[3],
                     center, label=f"batchnorm_backward_train[{center}]", shape=str(shp))
            chk.twin("batchnorm", "batchnorm_forward_eval", x, np.empty_like(x), r(ch),
                     r(ch, lo=0.5, hi=2), 1e-3, center, label=f"batchnorm_forward_eval[{center}]",
                     shape=str(shp))
            chk.twin("batchnorm", "batchnorm_backward_eval", go, np.empty_like(x),
                     r(ch, lo=0.5, hi=2), 1e-3, center,
                     label=f"batchnorm_backward_eval[{center}]", shape=str(shp))
        chk.twin("scaling", "channelwise_scaling_forward", x, np.empty_like(x), r(ch), r(ch),
                 shape=str(shp))
        chk.twin("scaling", "channelwise_scaling_backward_input", go, np.empty_like(x), r(ch),
                 shape=str(shp))
        chk.twin("scaling", "channelwise_scaling_backward_params", x, go, r(ch), r(ch), True,
                 shape=str(shp))
    # optimizers over the MLP's flat parameter buffer
    size = sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))
    gr, p = r(size), r(size)
    chk.twin("optim", "sgd_momentum_update", gr, p, r(size), f32(0.01), f32(0.9), shape=str(size))
    chk.twin("optim", "adam_update", gr, p, r(size), r(size, lo=0, hi=1), f32(1e-3), f32(0.9),
             f32(0.999), f32(1e-8), shape=str(size))
    # conv / pool layers of the CNN
    from fastnn.kernels.cpu import conv as cpu_conv
    from fastnn.kernels.cuda import conv as gpu_conv
    for (N, C, H, W, F, k, st, pad) in sz["cnn"]:
        Ho, Wo = (H + 2 * pad - k) // st + 1, (W + 2 * pad - k) // st + 1
        shape = f"{N}x{C}x{H}x{W} -> {F}, k{k} s{st}"
        x, w, b, go = r(N, C, H, W), r(F, C, k, k, lo=-0.3, hi=0.3), r(F), r(N, F, Ho, Wo)
        n_cpu = cpu_conv.columns_size(x.shape, F, k, st, pad)
        n_gpu = gpu_conv.columns_size(x.shape, F, k, st, pad)
        for fn, cpu_args, gpu_args, out_index in (
                ("conv2d_forward",
                 [x, np.empty((N, F, Ho, Wo), f32), np.empty(n_cpu, f32), w, b, st, pad],
                 [x, np.empty((N, F, Ho, Wo), f32), np.empty(n_gpu, f32), w, b, st, pad], [1]),
                ("conv2d_backward_input",
                 [go, np.empty_like(x), np.empty(n_cpu, f32), w, st, pad],
                 [go, np.empty_like(x), np.empty(n_gpu, f32), w, st, pad], [1]),
                ("conv2d_backward_params",
                 [x, go, r(*w.shape), r(F), np.empty(n_cpu, f32), st, pad, True],
                 [x, go, None, None, np.empty(n_gpu, f32), st, pad, True], [2, 3])):
            if fn == "conv2d_backward_params":
                gpu_args[2], gpu_args[3] = cpu_args[2].copy(), cpu_args[3].copy()
            cpu_args = [a.copy() if isinstance(a, np.ndarray) else a for a in cpu_args]
            dev = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in gpu_args]
            getattr(cpu_conv, fn)(*cpu_args)
            getattr(gpu_conv, fn)(*dev)
            errs = [chk.error(dev[i].copy_to_host(), cpu_args[i]) for i in out_index]
            chk.record(f"conv.{fn}", shape, *chk.worst(errs))
    for (N, C, H, W, k, st) in sz["pool"]:
        Ho, Wo = (H - k) // st + 1, (W - k) // st + 1
        shape = f"{N}x{C}x{H}x{W}, k{k} s{st}"
        x = r(N, C, H, W)
        out = chk.twin("pool", "maxpool2d_forward", x, np.empty((N, C, Ho, Wo), f32),
                       np.zeros((N, C, Ho, Wo), np.int64), k, st, shape=shape)
        chk.twin("pool", "maxpool2d_backward", r(N, C, Ho, Wo), np.empty_like(x), out[2], k, st,
                 shape=shape)


def build_mlp(sizes, seed=0):
    import fastnn
    fastnn.manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(fastnn.Linear(a, b))
        mods.append(fastnn.ReLU() if i < len(sizes) - 2 else fastnn.LogSoftMax())
    return fastnn.Sequential(*mods)


def module_checks(chk, sz, rng):
    import fastnn
    print("modules:", flush=True)
    layers, B = sz["mlp"], sz["batch"]
    cpu_net = build_mlp(layers)
    gpu_net = copy.deepcopy(cpu_net).cuda()
    crit_c, crit_g = fastnn.ClassNLLCriterion(), fastnn.ClassNLLCriterion()
    cfg = {"learning_rate": 0.05, "momentum": 0.9}
    st_c, st_g = {}, {}
    for step in range(3):
        x = rng.standard_normal((B, layers[0])).astype(np.float32)
        y = rng.integers(0, layers[-1], B)
        for net, crit, st in ((cpu_net, crit_c, st_c), (gpu_net, crit_g, st_g)):
            net.zeroGradParameters()
            out = net.forward(x)
            crit.forward(out, y)
            net.backward(x, crit.backward(out, y))
            fastnn.sgd_momentum(net.getParameters(), net.getGradParameters(), cfg, st)
        chk.compare(f"MLP step {step}: output", f"{B}x{layers}", fastnn.to_numpy(gpu_net.output),
                    cpu_net.output)
    pc = np.concatenate([np.ravel(p) for ps in cpu_net.getParameters() for p in ps])
    pg = np.concatenate([np.ravel(fastnn.to_numpy(p)) for ps in gpu_net.getParameters()
                         for p in ps])
    chk.compare("MLP after 3 sgd_momentum steps: parameters", str(pc.size), pg, pc)
    # __cuda_array_interface__ inputs from other libraries
    x = rng.standard_normal((B, layers[0])).astype(np.float32)
    expected = cpu_net.evaluate().forward(x).copy()
    gpu_net.evaluate()
    torch = _torch_cuda()
    if torch is not None:
        out = gpu_net.forward(torch.from_numpy(x).cuda())
        chk.compare("GPU module on a torch CUDA tensor", str(x.shape), fastnn.to_numpy(out),
                    expected)
    cp = _cupy()
    if cp is not None:
        out = gpu_net.forward(cp.asarray(x))
        chk.compare("GPU module on a CuPy array", str(x.shape), fastnn.to_numpy(out), expected)


# ---- timing --------------------------------------------------------------------------------
def _torch_cuda():
    try:
        import torch
    except Exception:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:
        return None


def _cupy():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:
        return None


def median_time(fn, sync, rounds, min_round_s, warmup=2):
    """Median seconds per call over ``rounds`` rounds of at least ``min_round_s`` each."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(rounds):
        n = 0
        t0 = time.perf_counter()
        while True:
            fn()
            n += 1
            if time.perf_counter() - t0 >= min_round_s:
                break
        sync()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def fastnn_step(net, x, y, crit, state, cfg):
    import fastnn

    def step():
        net.zeroGradParameters()
        out = net.forward(x)
        crit.forward(out, y)
        net.backward(x, crit.backward(out, y))
        fastnn.sgd_momentum(net.getParameters(), net.getGradParameters(), cfg, state)
    return step


def torch_step(torch, sizes, x, y):
    nn = torch.nn
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b))
        mods.append(nn.ReLU() if i < len(sizes) - 2 else nn.LogSoftmax(dim=1))
    net = nn.Sequential(*mods).cuda()
    crit = nn.NLLLoss()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    yt = torch.from_numpy(y)

    def step():
        opt.zero_grad()
        out = net(torch.from_numpy(x).cuda())
        loss = crit(out, yt.cuda())
        loss.backward()
        opt.step()
        loss.item()
    return step


def cupy_step(cp, sizes, x, y, lr=0.01, momentum=0.9):
    rng = np.random.default_rng(0)
    params = [(cp.asarray(rng.uniform(-1, 1, (b, a)).astype(np.float32) / np.sqrt(a)),
               cp.zeros(b, np.float32)) for a, b in zip(sizes[:-1], sizes[1:])]
    vel = [(cp.zeros_like(W), cp.zeros_like(b)) for W, b in params]
    L = len(params)

    def step():
        xd, yd = cp.asarray(x), cp.asarray(y)
        n = xd.shape[0]
        acts = [xd]
        h = xd
        for i, (W, b) in enumerate(params):
            h = h @ W.T + b
            if i < L - 1:
                h = cp.maximum(h, 0)
            acts.append(h)
        m = h.max(1, keepdims=True)
        logp = h - (m + cp.log(cp.exp(h - m).sum(1, keepdims=True)))
        rows = cp.arange(n)
        loss = -logp[rows, yd].mean()
        g = cp.exp(logp)
        g[rows, yd] -= 1
        g /= n
        for i in range(L - 1, -1, -1):
            W, b = params[i]
            if i < L - 1:
                g = g * (acts[i + 1] > 0)
            gW, gb = g.T @ acts[i], g.sum(0)
            if i:
                g = g @ W
            vW, vb = vel[i]
            vW *= momentum
            vW += lr * gW
            vb *= momentum
            vb += lr * gb
            W -= vW
            b -= vb
        float(loss)
    return step


def timings(sz, rng, cuda):
    import fastnn
    from fastnn.kernels.cuda import blas as gpu_blas
    torch, cp = _torch_cuda(), _cupy()
    rounds, min_s = sz["rounds"], sz["min_round_s"]
    rows = []
    layers = sz["mlp"]
    cfg = {"learning_rate": 0.01, "momentum": 0.9}
    for B in sz["step_batches"]:
        print(f"timing the MLP step at batch {B} ...", flush=True)
        x = rng.standard_normal((B, layers[0])).astype(np.float32)
        y = rng.integers(0, layers[-1], B)
        row = {"what": f"MLP {'-'.join(map(str, layers))} training step, batch {B}"}
        net = build_mlp(layers).cuda()
        row["fastnn CUDA"] = median_time(
            fastnn_step(net, x, y, fastnn.ClassNLLCriterion(), {}, cfg), cuda.synchronize,
            rounds, min_s)
        row["fastnn CPU"] = median_time(
            fastnn_step(build_mlp(layers), x, y, fastnn.ClassNLLCriterion(), {}, cfg),
            lambda: None, rounds, min_s)
        if torch is not None:
            row["PyTorch CUDA"] = median_time(torch_step(torch, layers, x, y),
                                              torch.cuda.synchronize, rounds, min_s)
        if cp is not None:
            row["CuPy"] = median_time(cupy_step(cp, layers, x, y),
                                      cp.cuda.Device().synchronize, rounds, min_s)
        rows.append(row)
    m, k, n = sz["gemm"]
    print(f"timing the GEMM {m}x{k} @ {k}x{n} ...", flush=True)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    row = {"what": f"affine GEMM {m}x{k} @ {k}x{n} (x @ W.T)", "flops": 2.0 * m * n * k}
    dx, dw, dc = cuda.to_device(x), cuda.to_device(w), cuda.device_array((m, n), np.float32)
    row["fastnn CUDA"] = median_time(lambda: gpu_blas.gemm(False, True, 1.0, dx, dw, 0.0, dc),
                                     cuda.synchronize, rounds, min_s)
    from fastnn.kernels.cpu import blas as cpu_blas
    hc = np.empty((m, n), np.float32)
    row["fastnn CPU"] = median_time(lambda: cpu_blas.gemm(False, True, 1.0, x, w, 0.0, hc),
                                    lambda: None, rounds, min_s)
    if torch is not None:
        tx, tw = torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda()
        tc = torch.empty((m, n), device="cuda")
        row["PyTorch CUDA"] = median_time(lambda: torch.mm(tx, tw.t(), out=tc),
                                          torch.cuda.synchronize, rounds, min_s)
    if cp is not None:
        cx, cw = cp.asarray(x), cp.asarray(w)
        cc = cp.empty((m, n), np.float32)
        row["CuPy"] = median_time(lambda: cp.matmul(cx, cw.T, out=cc),
                                  cp.cuda.Device().synchronize, rounds, min_s)
    rows.append(row)
    return rows


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
            elif "flops" in row:
                cells.append(f"{t * 1e3:.3f} ms ({row['flops'] / t / 1e9:.3g} GFLOP/s)")
            else:
                cells.append(f"{t * 1e3:.3f} ms")
        print(f"| {row['what']} | " + " | ".join(cells) + " |")
    print()
    print("Median time per call; MLP steps take their batch from the host every step "
          "(the homework loop) and end with the loss on the host. '-': library not "
          "importable or without a GPU.")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true",
                    help="tiny sizes (for a smoke run in the CUDA simulator)")
    ap.add_argument("--no-timing", action="store_true", help="checks only")
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
    sz = TINY if args.tiny else FULL
    card = device_name(cuda)
    print(f"gpu_check on {card}", flush=True)
    rng = np.random.default_rng(0)
    chk = Checks(cuda)
    kernel_checks(chk, sz, rng)
    module_checks(chk, sz, rng)
    rows = [] if args.no_timing else timings(sz, rng, cuda)
    report(card, chk, rows, time.perf_counter() - t0, args.tiny)
    return 0 if all(ok for *_, ok in chk.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
