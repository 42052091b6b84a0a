"""gpu_check's timing part: the MLP and CNN training steps, one ``fit`` epoch and the
GEMMs against PyTorch CUDA and CuPy, and device memory over many steps (see
gpu_check.py). Timings in the CUDA simulator mean nothing; --tiny only runs the code."""
import math
import os
import statistics
import time

import numpy as np


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
    """The homework step; the loss stays on the device (read by fit every sync_every)."""
    import fastnn

    def step():
        net.zeroGradParameters()
        out = net.forward(x)
        crit.forward(out, y)
        net.backward(x, crit.backward(out, y))
        fastnn.sgd_momentum(net.getParameters(), net.getGradParameters(), cfg, state)
    return step


def torch_mlp(torch, sizes):
    nn = torch.nn
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b))
        mods.append(nn.ReLU() if i < len(sizes) - 2 else nn.LogSoftmax(dim=1))
    return nn.Sequential(*mods)


def torch_cnn(torch, spec):
    """PyTorch twin of ``build_cnn``."""
    nn = torch.nn
    (c_in, side), convs, n_classes = spec
    mods, c, s = [], c_in, side
    for f in convs:
        mods += [nn.Conv2d(c, f, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c, s = f, s // 2
    mods += [nn.Flatten(), nn.Linear(c * s * s, n_classes), nn.LogSoftmax(dim=1)]
    return nn.Sequential(*mods)


def torch_step(torch, net, x, y, read_loss=True):
    """The same step in PyTorch, the batch from the host; ``read_loss``: ``loss.item()``
    every step (fastnn's step keeps the loss on the device, so the table's step rows
    pass False)."""
    net = net.cuda()
    crit = torch.nn.NLLLoss()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step(xb=x, yb=y):
        opt.zero_grad()
        out = net(torch.from_numpy(xb).cuda())
        loss = crit(out, torch.from_numpy(yb).cuda())
        loss.backward()
        opt.step()
        if read_loss:
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




def build_cnn(spec, seed=0):
    """The MNIST CNN: (Conv 3x3 pad 1, ReLU, MaxPool 2) per entry of ``convs``, then a
    Linear to the classes and LogSoftMax."""
    import fastnn
    fastnn.manual_seed(seed)
    (c_in, side), convs, n_classes = spec
    mods, c, s = [], c_in, side
    for f in convs:
        mods += [fastnn.Conv2d(c, f, 3, padding=1), fastnn.ReLU(), fastnn.MaxPool2d(2)]
        c, s = f, s // 2
    mods += [fastnn.Flatten(), fastnn.Linear(c * s * s, n_classes), fastnn.LogSoftMax()]
    return fastnn.Sequential(*mods)


def _step_row(what, make_net, make_torch, x, y, sync, rounds, min_s):
    import fastnn
    torch = _torch_cuda()
    cfg = {"learning_rate": 0.01, "momentum": 0.9}
    row = {"what": what}
    row["fastnn CUDA"] = median_time(fastnn_step(make_net().cuda(), x, y,
                                                 fastnn.ClassNLLCriterion(), {}, cfg),
                                     sync, rounds, min_s)
    row["fastnn CPU"] = median_time(fastnn_step(make_net(), x, y, fastnn.ClassNLLCriterion(),
                                                {}, cfg), lambda: None, rounds, min_s)
    if torch is not None:
        row["PyTorch CUDA"] = median_time(torch_step(torch, make_torch(torch), x, y,
                                                     read_loss=False),
                                          torch.cuda.synchronize, rounds, min_s)
    return row


def timings(sz, rng, cuda):
    """The table's rows: MLP and CNN training steps, one fit epoch, two GEMMs."""
    from gpu_check_kernels import build_mlp
    rounds, min_s = sz["rounds"], sz["min_round_s"]
    layers = sz["mlp"]
    rows = []
    for B in sz["step_batches"]:
        print(f"timing the MLP step at batch {B} ...", flush=True)
        x = rng.standard_normal((B, layers[0])).astype(np.float32)
        y = rng.integers(0, layers[-1], B)
        rows.append(_step_row(f"MLP {'-'.join(map(str, layers))} training step, batch {B}",
                              lambda: build_mlp(layers), lambda t: torch_mlp(t, layers),
                              x, y, cuda.synchronize, rounds, min_s))
    spec = sz["cnn_net"]
    (c_in, side), _, n_classes = spec
    for B in sz["cnn_batches"]:
        print(f"timing the CNN step at batch {B} ...", flush=True)
        x = rng.standard_normal((B, c_in, side, side)).astype(np.float32)
        y = rng.integers(0, n_classes, B)
        rows.append(_step_row(f"CNN {spec[1]} training step, batch {B}",
                              lambda: build_cnn(spec), lambda t: torch_cnn(t, spec),
                              x, y, cuda.synchronize, rounds, min_s))
    rows.append(fit_epoch_row(sz, rng, cuda))
    for m, k, n, what in sz["gemms"]:
        rows.append(gemm_row(m, k, n, what, rng, cuda, rounds, min_s))
    return rows


def fit_epoch_row(sz, rng, cuda):
    """One ``fit`` epoch of the MLP on synthetic MNIST-sized data against the same loop
    in PyTorch (batch from the host, loss read every step as ``fit``'s history does)."""
    import fastnn
    from gpu_check_kernels import build_mlp
    layers, n, B = sz["mlp"], sz["fit_samples"], sz["batch"]
    print(f"timing one fit epoch ({n} samples, batch {B}) ...", flush=True)
    X = rng.standard_normal((n, layers[0])).astype(np.float32)
    y = rng.integers(0, layers[-1], n)
    row = {"what": f"fit: one epoch of the MLP, {n} samples, batch {B}"}

    def run_fastnn(net):
        t0 = time.perf_counter()
        fastnn.fit(net, fastnn.ClassNLLCriterion(), X, y, epochs=1, batch_size=B, seed=0,
                   progress=False, log=None, config={"learning_rate": 0.01})
        return time.perf_counter() - t0
    run_fastnn(build_mlp(layers).cuda())  # compiles (or loads) every kernel first
    row["fastnn CUDA"] = run_fastnn(build_mlp(layers).cuda())
    row["fastnn CPU"] = run_fastnn(build_mlp(layers))
    torch = _torch_cuda()
    if torch is not None:
        step = torch_step(torch, torch_mlp(torch, layers), X[:B], y[:B])
        times = []
        for _ in range(2):  # the first epoch warms cuBLAS up
            order = np.random.default_rng(0).permutation(n)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for b in range(0, n, B):
                idx = order[b:b + B]
                step(X[idx], y[idx])
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        row["PyTorch CUDA"] = times[-1]
    return row


def gemm_row(m, k, n, what, rng, cuda, rounds, min_s):
    from fastnn.kernels.cpu import blas as cpu_blas
    from fastnn.kernels.cuda import blas as gpu_blas
    torch, cp = _torch_cuda(), _cupy()
    print(f"timing the GEMM {m}x{k} @ {k}x{n} ({what}) ...", flush=True)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    row = {"what": f"GEMM {m}x{k} @ {k}x{n} ({what}; {gpu_blas.split_k(m, n, k)} k slices)",
           "flops": 2.0 * m * n * k}
    dx, dw, dc = cuda.to_device(x), cuda.to_device(w), cuda.device_array((m, n), np.float32)
    row["fastnn CUDA"] = median_time(lambda: gpu_blas.gemm(False, True, 1.0, dx, dw, 0.0, dc),
                                     cuda.synchronize, rounds, min_s)
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
    return row


def memory_growth(sz, rng, cuda):
    """(bytes of device memory lost between step 10 and the last of ``sz['memory_steps']``
    CNN training steps, steps); None where the device reports no figures (simulator)."""
    import fastnn
    spec = sz["cnn_net"]
    (c_in, side), _, n_classes = spec
    B = sz["cnn_batches"][-1]
    net, crit, state = build_cnn(spec).cuda(), fastnn.ClassNLLCriterion(), {}
    free_at = {}
    steps = sz["memory_steps"]
    for s in range(steps):
        x = rng.standard_normal((B, c_in, side, side)).astype(np.float32)
        y = rng.integers(0, n_classes, B)
        step_fn = fastnn_step(net, x, y, crit, state, {"learning_rate": 0.01, "momentum": 0.9})
        step_fn()
        if s in (min(10, steps - 1), steps - 1):
            cuda.synchronize()
            free_at[s] = cuda.current_context().get_memory_info()[0]
    if not all(math.isfinite(v) for v in free_at.values()):
        return None, steps
    return float(free_at[min(10, steps - 1)] - free_at[steps - 1]), steps
