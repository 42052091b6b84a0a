"""gpu_check's correctness part: every CUDA kernel against its CPU twin at real sizes,
in float32 and float64, and the MLP trained 3 steps on both devices (see gpu_check.py).
Every check is wrapped: one that raises is a failed row and the rest still run."""
import copy
import math

import numpy as np

from gpu_check_timing import _cupy, _torch_cuda

# ---- correctness ------------------------------------------------------------------------
#: (rtol, atol) per dtype: float32 at k = 784 errs ~1e-6 of the largest entry.
TOLERANCES = {"float32": (2e-4, 2e-5), "float64": (1e-10, 1e-12)}


class Checks:
    """The checks' rows; every check is wrapped, so one that raises is a failed row and
    the rest still run."""

    def __init__(self, cuda, dtype=np.float32):
        self.cuda = cuda
        self.rows = []
        self.set_dtype(dtype)

    def set_dtype(self, dtype):
        self.dtype = np.dtype(dtype)
        self.rtol, self.atol = TOLERANCES[self.dtype.name]

    def record(self, name, shape, err, limit, note=""):
        name = f"{name} [{self.dtype.name}]"
        ok = bool(err <= limit)  # NaN fails
        self.rows.append((name, shape, err, limit, ok))
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<56} {shape:<26} max err {err:.2e} "
              f"(limit {limit:.1e}){note}", flush=True)
        return ok

    def failed(self, name, shape, exc):
        """A check that raised: a failed row naming the exception."""
        self.record(name, shape, math.inf, 0.0,
                    note=f"  raised {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                    if str(exc) else f"  raised {type(exc).__name__}")

    def guarded(self, name, shape, fn, *args, **kwargs):
        """fn(*args, **kwargs), or a failed row if it raises (None then)."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none hides the rest
            self.failed(name, shape, exc)
            return None

    def error(self, gpu, cpu):
        """(max abs difference, allowed difference); NaN in the same places is equal."""
        gpu = np.asarray(gpu, np.float64)
        cpu = np.asarray(cpu, np.float64)
        if gpu.shape != cpu.shape:
            return math.inf, 0.0
        diff = np.where(np.isnan(gpu) & np.isnan(cpu), 0.0, np.abs(gpu - cpu))
        finite = np.abs(cpu[np.isfinite(cpu)])
        scale = float(finite.max()) if finite.size else 0.0
        return (float(diff.max()) if diff.size else 0.0), self.atol + self.rtol * scale

    def compare(self, name, shape, gpu, cpu):
        return self.guarded(name, shape, lambda: self.record(name, shape,
                                                             *self.error(gpu(), cpu())))

    def twin(self, family, fn, *args, label=None, shape=""):
        """Run the CPU and CUDA kernels on copies of args and compare every array argument
        (outputs, in-place updates, untouched inputs); one row, for the worst argument.
        Returns the CPU's arguments after the call (None if it raised)."""
        return self.guarded(f"{family}.{label or fn}", shape, self._twin, family, fn, args,
                            label, shape)

    def _twin(self, family, fn, args, label, shape):
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
    """Every CUDA kernel against its CPU twin in ``chk.dtype`` (``f32`` below names it)."""
    cuda = chk.cuda
    f32 = chk.dtype.type

    def r(*shape, lo=-1.0, hi=1.0):
        return rng.uniform(lo, hi, shape).astype(f32)

    print(f"kernels vs CPU twins ({chk.dtype.name}):", flush=True)
    layers = sz["mlp"]
    B = sz["batch"]
    # elementwise
    from fastnn.kernels.cuda import elementwise
    a = cuda.device_array((B, layers[1]), f32)
    elementwise.fill(a, 0.25)
    chk.compare("elementwise.fill", str(a.shape), a.copy_to_host,
                lambda: np.full(a.shape, 0.25))
    other = np.float64 if f32 == np.float32 else np.float32
    src = r(B, layers[1]).astype(other)
    chk.compare(f"elementwise.copy ({np.dtype(other).name} -> {np.dtype(f32).name})",
                str(a.shape), lambda: (elementwise.copy(cuda.to_device(src), a),
                                       a.copy_to_host())[1], lambda: src.astype(f32))
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
    chk.compare("dropout.dropout_forward: out = x * mask", str(x.shape), d_out.copy_to_host,
                lambda: x * mask)
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
            chk.guarded(f"conv.{fn}", shape, _conv_twin, chk, fn, cpu_args, gpu_args, out_index,
                        shape)
    for (N, C, H, W, k, st) in sz["pool"]:
        Ho, Wo = (H - k) // st + 1, (W - k) // st + 1
        shape = f"{N}x{C}x{H}x{W}, k{k} s{st}"
        x = r(N, C, H, W)
        out = chk.twin("pool", "maxpool2d_forward", x, np.empty((N, C, Ho, Wo), f32),
                       np.zeros((N, C, Ho, Wo), np.int64), k, st, shape=shape)
        chk.twin("pool", "maxpool2d_backward", r(N, C, Ho, Wo), np.empty_like(x), out[2], k, st,
                 shape=shape)


def _conv_twin(chk, fn, cpu_args, gpu_args, out_index, shape):
    from fastnn.kernels.cpu import conv as cpu_conv
    from fastnn.kernels.cuda import conv as gpu_conv
    cpu_args = [a.copy() if isinstance(a, np.ndarray) else a for a in cpu_args]
    dev = [chk.cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in gpu_args]
    getattr(cpu_conv, fn)(*cpu_args)
    getattr(gpu_conv, fn)(*dev)
    errs = [chk.error(dev[i].copy_to_host(), cpu_args[i]) for i in out_index]
    chk.record(f"conv.{fn}", shape, *chk.worst(errs))


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
    print(f"modules ({chk.dtype.name}):", flush=True)
    layers, B = sz["mlp"], sz["batch"]
    cpu_net = build_mlp(layers).type(chk.dtype.type)
    gpu_net = copy.deepcopy(cpu_net).cuda()
    crit_c, crit_g = fastnn.ClassNLLCriterion(), fastnn.ClassNLLCriterion()
    cfg = {"learning_rate": 0.05, "momentum": 0.9}
    st_c, st_g = {}, {}
    for step in range(3):
        x = rng.standard_normal((B, layers[0])).astype(chk.dtype)
        y = rng.integers(0, layers[-1], B)
        for net, crit, st in ((cpu_net, crit_c, st_c), (gpu_net, crit_g, st_g)):
            net.zeroGradParameters()
            out = net.forward(x)
            loss = crit.forward(out, y)
            net.backward(x, crit.backward(out, y))
            fastnn.sgd_momentum(net.getParameters(), net.getGradParameters(), cfg, st)
        chk.compare(f"MLP step {step}: loss (read from the device)", "1", lambda: float(loss),
                    lambda: float(crit_c.output))
        chk.compare(f"MLP step {step}: output", f"{B}x{layers}",
                    lambda: fastnn.to_numpy(gpu_net.output), lambda: cpu_net.output)
    pc = np.concatenate([np.ravel(p) for ps in cpu_net.getParameters() for p in ps])
    pg = np.concatenate([np.ravel(fastnn.to_numpy(p)) for ps in gpu_net.getParameters()
                         for p in ps])
    chk.compare("MLP after 3 sgd_momentum steps: parameters", str(pc.size), lambda: pg,
                lambda: pc)
    # __cuda_array_interface__ inputs from other libraries
    x = rng.standard_normal((B, layers[0])).astype(chk.dtype)
    expected = cpu_net.evaluate().forward(x).copy()
    gpu_net.evaluate()
    torch = _torch_cuda()
    if torch is not None:
        chk.compare("GPU module on a torch CUDA tensor", str(x.shape),
                    lambda: fastnn.to_numpy(gpu_net.forward(torch.from_numpy(x).cuda())),
                    lambda: expected)
    cp = _cupy()
    if cp is not None:
        chk.compare("GPU module on a CuPy array", str(x.shape),
                    lambda: fastnn.to_numpy(gpu_net.forward(cp.asarray(x))), lambda: expected)


