"""Compile every CUDA kernel to PTX with the real numba.cuda compiler (typing + NVVM)
without a GPU: the host launchers run on NumPy arrays, and each launch
``kernel[grid, block](*args)`` is replaced by ``cuda.compile_ptx`` for the argument
types it would have had. This catches what the simulator cannot: the simulator runs
kernels as Python, so code that numba cannot type or lower for CUDA passes there (for
example the builtin ``min``/``max``, whose vararg overloads numba 0.68's built-in CUDA
target cannot compile).

Used by tests/test_cuda_ptx.py in a child process: it patches numba internals, and it
needs numba.cuda to be the real target (no NUMBA_ENABLE_CUDASIM).
"""
import numpy as np

CC = (8, 0)


def nvvm_available():
    try:
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
        return True
    except Exception:
        return False


#: PTX opcodes that move data without computing: an f64 load, store or move is not
#: float64 arithmetic (a float32 kernel may still load an f64 kernel parameter; the
#: conversion that follows is what counts).
_MOVES = {"ld", "st", "mov", "cvta", "prmt"}


def f64_ops(ptx):
    """{opcode: count} of the float64 instructions in ``ptx``: every instruction with an
    ``f64`` type in its opcode (``add.f64``, ``fma.rn.f64``, ``div.rn.f64``,
    ``sqrt.rn.f64``, ``setp.lt.f64``, ``selp.f64``, conversions to or from f64 such as
    ``cvt.f64.f32`` / ``cvt.rn.f32.f64`` ...) except loads, stores and moves."""
    ops = {}
    for line in ptx.splitlines():
        line = line.strip()
        if not line or line[0] in ".@/{}$" and not line.startswith("@"):
            continue
        if line.startswith("@"):  # predicated: "@%p1 bra ..."
            parts = line.split(None, 2)
            if len(parts) < 2:
                continue
            line = parts[1] if len(parts) == 2 else parts[1] + " " + parts[2]
        opcode = line.split(None, 1)[0].rstrip(";")
        fields = opcode.split(".")
        if "f64" in fields and fields[0] not in _MOVES:
            ops[opcode] = ops.get(opcode, 0) + 1
    return ops


def is_float32_signature(sig):
    """True for a launch whose float arrays are all float32 (scalars may be anything:
    a float64 scalar shows up as a conversion in the PTX)."""
    import numba
    arrays = [t for t in sig if isinstance(t, numba.types.Array)]
    floats = [t.dtype for t in arrays if isinstance(t.dtype, numba.types.Float)]
    return bool(floats) and all(d == numba.float32 for d in floats)


def compile_every_kernel(dtypes=(np.float32, np.float64), cc=CC, ptx_out=None):
    """Returns (number of kernel signatures compiled, [(kernel, signature, error)]).
    ``ptx_out``: a dict that receives ``{(kernel name, signature): ptx}``."""
    import numba
    from numba import cuda
    from numba.cuda import dispatcher as cuda_dispatcher

    compiled, failures = set(), []

    class Launch:
        def __init__(self, disp):
            self.disp = disp

        def __call__(self, *args):
            sig = tuple(numba.typeof(a) for a in args)
            key = (self.disp.py_func, sig)
            if key in compiled:
                return
            compiled.add(key)
            try:
                ptx, _ = cuda.compile_ptx(self.disp.py_func, sig, cc=cc)
                if ptx_out is not None:
                    ptx_out[(kernel_name(self.disp.py_func), sig)] = ptx
            except Exception as e:  # noqa: BLE001 - reported with the kernel's name
                failures.append((self.disp.py_func.__qualname__, sig, e))

    def kernel_name(fn):
        return f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__qualname__.replace('.<locals>', '')}"

    class Device:  # device functions ask the current device for its compute capability
        compute_capability = cc

    cuda_dispatcher.CUDADispatcher.__getitem__ = lambda self, config: Launch(self)
    cuda_dispatcher.get_current_device = lambda: Device()
    cuda.device_array = lambda shape, dtype=np.float64, **kw: np.empty(shape, dtype)
    cuda.to_device = lambda a, **kw: np.ascontiguousarray(a)

    from fastnn.kernels.cuda import (activation, affine, batchnorm, blas, conv, dropout,
                                     elementwise, optim, pool, scaling, softmax_nll,
                                     targets)

    for dt in dtypes:
        def r(*shape):
            return np.ones(shape, dt)
        t = np.dtype(dt).type
        elementwise.fill(r(3, 4), 1.0)
        elementwise.fill(np.zeros(3, np.int64), 0)
        elementwise.copy(np.ones((3, 4), np.float32 if dt == np.float64 else np.float64),
                         r(3, 4))
        activation.activation_forward(r(3, 4), r(3, 4), 1, 0.1)
        activation.activation_backward(r(3, 4), r(3, 4), r(3, 4), r(3, 4), 1, 0.1)
        for ta in (False, True):
            blas.gemm(ta, not ta, 1.0, r(4, 4), r(4, 4), 0.0, r(4, 4))
        affine.affine_forward(r(3, 5), r(3, 4), r(4, 5), r(4))
        affine.affine_activation_forward(r(3, 5), r(3, 4), r(3, 4), r(4, 5), r(4), 1, 0.0)
        affine.affine_backward_input(r(3, 4), r(3, 5), r(4, 5))
        affine.affine_backward_params(r(3, 5), r(3, 4), r(4, 5), r(4), True)
        affine.affine_activation_backward(r(3, 5), r(3, 4), r(3, 5), r(3, 4), r(4, 5), r(4),
                                          r(3, 4), r(3, 4), r(4, 5), 1, 0.0, False, True)
        x, labels, loss, s = r(5, 4), np.zeros(5, np.int64), r(1), 0.2
        k = softmax_nll
        k.softmax_forward(x, r(5, 4))
        k.softmax_backward(x, r(5, 4), x)
        k.log_softmax_forward(x, r(5, 4))
        k.log_softmax_backward(x, r(5, 4), x)
        k.cross_entropy_forward(x, labels, loss, r(5, 4), s)
        k.cross_entropy_backward(labels, r(5, 4), x, s)
        k.cross_entropy_dense_forward(x, x, loss, r(5, 4), s)
        k.cross_entropy_dense_backward(x, r(5, 4), x, s)
        k.classify_scores(x, np.zeros(1, np.int64), 1e-5)
        k.class_nll_forward(x, labels, loss, 1, s)
        k.class_nll_forward(x, labels, loss, np.zeros(1, np.int64), s)  # device-side kind
        targets.check_targets(labels, 4, np.zeros(1, np.int64),
                              np.zeros(targets.STATUS_SIZE, np.int64))
        targets.one_hot(labels, r(5, 4))
        k.class_nll_backward(x, labels, r(5, 4), 1, s)
        k.class_nll_dense_forward(x, x, loss, 1, s)
        k.class_nll_dense_backward(x, x, r(5, 4), 1, s)
        k.clipped_nll_forward(x, x, loss, 1e-7, s)
        k.clipped_nll_backward(x, x, r(5, 4), 1e-7, s)
        k.mse_forward(x, x, loss, s)
        k.mse_backward(x, x, r(5, 4), s)
        dropout.seed(1)
        dropout.dropout_forward(r(3, 4), r(3, 4), r(3, 4), 0.5)
        dropout.dropout_backward(r(3, 4), r(3, 4), r(3, 4))
        x3 = r(4, 3, 5)
        batchnorm.batchnorm_forward_train(x3, r(4, 3, 5), r(3), r(3), r(3), r(3), 0.9, 1e-3,
                                          False)
        batchnorm.batchnorm_forward_eval(x3, r(4, 3, 5), r(3), r(3), 1e-3, False)
        batchnorm.batchnorm_backward_train(x3, r(4, 3, 5), x3, r(3), False)
        batchnorm.batchnorm_backward_eval(x3, r(4, 3, 5), r(3), 1e-3, False)
        x1 = r(4, 3, 1)  # features after a Linear: the coalesced per-row-group kernels
        batchnorm.batchnorm_forward_train(x1, r(4, 3, 1), r(3), r(3), r(3), r(3), 0.9, 1e-3,
                                          False)
        batchnorm.batchnorm_backward_train(x1, r(4, 3, 1), x1, r(3), False)
        scaling.channelwise_scaling_backward_params(x1, x1, r(3), r(3), True)
        scaling.channelwise_scaling_forward(x3, r(4, 3, 5), r(3), r(3))
        scaling.channelwise_scaling_backward_input(x3, r(4, 3, 5), r(3))
        scaling.channelwise_scaling_backward_params(x3, x3, r(3), r(3), True)
        optim.sgd_momentum_update(r(3, 4), r(3, 4), r(3, 4), t(0.1), t(0.9))
        optim.adam_update(r(3, 4), r(3, 4), r(3, 4), r(3, 4), t(0.1), t(0.9), t(0.999), t(1e-8))
        xc, w = r(2, 2, 6, 5), r(3, 2, 3, 3)
        n = conv.columns_size(xc.shape, 3, 3, 1, 1)
        conv.conv2d_forward(xc, r(2, 3, 6, 5), r(n), w, r(3), 1, 1)
        conv.conv2d_backward_input(r(2, 3, 6, 5), r(2, 2, 6, 5), r(n), w, 1, 1)
        conv.conv2d_backward_params(xc, r(2, 3, 6, 5), r(3, 2, 3, 3), r(3), r(n), 1, 1, True)
        idx = np.zeros((2, 2, 3, 2), np.int64)
        pool.maxpool2d_forward(xc, r(2, 2, 3, 2), idx, 2, 2)
        pool.maxpool2d_backward(r(2, 2, 3, 2), r(2, 2, 6, 5), idx, 2, 2)
        pool.avgpool2d_forward(xc, r(2, 2, 3, 2), 2, 2)
        pool.avgpool2d_backward(r(2, 2, 3, 2), r(2, 2, 6, 5), 2, 2)
    return len(compiled), failures


def f64_table(dtypes=(np.float32,), cc=CC):
    """[(kernel, signature, {opcode: count})] for every float32 kernel launch (see
    ``is_float32_signature``), sorted by kernel name."""
    ptx = {}
    _, failures = compile_every_kernel(dtypes=dtypes, cc=cc, ptx_out=ptx)
    if failures:
        raise RuntimeError("\n".join(f"{n}{s}: {e}" for n, s, e in failures))
    return f64_rows(ptx)


def f64_rows(ptx):
    """``f64_table``'s rows from ``{(kernel, signature): ptx}``."""
    return sorted(((name, sig, f64_ops(text)) for (name, sig), text in ptx.items()
                   if is_float32_signature(sig)), key=lambda r: (r[0], str(r[1])))


def main():
    """``python tests/cuda_ptx.py``: the f64 instruction count of every float32 kernel
    as a markdown table (no GPU needed, NVVM needed)."""
    rows = f64_table()
    total = 0
    print("| kernel | f64 ops | opcodes |")
    print("|---|---:|---|")
    for name, sig, ops in rows:
        n = sum(ops.values())
        total += n
        detail = ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1]))
        print(f"| {name} | {n} | {detail} |")
    print(f"| **{len(rows)} float32 launches** | **{total}** | |")


if __name__ == "__main__":
    import os
    import sys
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.exit("tests/cuda_ptx.py compiles with the real numba.cuda: unset NUMBA_ENABLE_CUDASIM")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
