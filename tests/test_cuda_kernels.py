"""Every CUDA kernel against its CPU twin (float32 and float64), in the numba CUDA
simulator with 32 threads per block, 4x4 GEMM tiles and at most 2 blocks per grid
dimension, so the shapes below span several blocks and every grid-stride loop turns.

Each check runs the CPU kernel on NumPy copies and the CUDA kernel on device copies
of the same arguments, then compares EVERY array argument afterwards (outputs,
in-place updates, and inputs that must stay untouched). See tests/cudasim.py for how
this file runs in a child process.
"""
import importlib

import numpy as np
import pytest

from conftest import uniform
from cudasim import IN_SIMULATOR, SKIP_REASON, small_launch_config

if not IN_SIMULATOR:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from numba import cuda  # noqa: E402  (the simulator, since NUMBA_ENABLE_CUDASIM=1)

pytestmark = pytest.mark.cudasim

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=3e-5, atol=3e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture(autouse=True)
def _launch_config():
    with small_launch_config() as config:
        yield config


def kernels(family):
    return (importlib.import_module(f"fastnn.kernels.cpu.{family}"),
            importlib.import_module(f"fastnn.kernels.cuda.{family}"))


def check(family, name, *args, dtype=np.float64, tol=None):
    """Run ``name`` from both twins on copies of ``args``; compare every array."""
    cpu_mod, gpu_mod = kernels(family)
    cpu_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    gpu_args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    getattr(cpu_mod, name)(*cpu_args)
    getattr(gpu_mod, name)(*gpu_args)
    tol = tol or TOL[dtype]
    for i, (c, g) in enumerate(zip(cpu_args, gpu_args)):
        if isinstance(c, np.ndarray):
            np.testing.assert_allclose(g.copy_to_host(), c, err_msg=f"{name}: argument #{i}",
                                       **tol)
    return cpu_args, [g.copy_to_host() if isinstance(c, np.ndarray) else g
                      for c, g in zip(cpu_args, gpu_args)]


# ---- elementwise ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_fill_and_copy(dtype):
    rng = np.random.default_rng(0)
    check("elementwise", "fill", uniform(rng, (9, 11), dtype), -1.5, dtype=dtype)
    # copy converts float32 -> dtype
    check("elementwise", "copy", uniform(rng, (9, 11), np.float32), uniform(rng, (9, 11), dtype),
          dtype=dtype)


# ---- activation -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation(dtype):
    rng = np.random.default_rng(1)
    x = uniform(rng, (7, 11), dtype, -3, 3)
    x[0, 0] = np.nan
    x[0, 1] = 0.0
    g = uniform(rng, x.shape, dtype)
    for code in range(7):
        alpha = 0.3
        y = np.empty_like(x)
        cpu, _ = check("activation", "activation_forward", x, y, code, alpha, dtype=dtype)
        y = cpu[1]
        check("activation", "activation_backward", x, g, np.empty_like(x), y, code, alpha,
              dtype=dtype)


# ---- blas / affine ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm(dtype, ta, tb):
    rng = np.random.default_rng(2)
    m, n, k = 7, 13, 6  # 2 x 4 tiles of 4x4 on a grid capped at 2 x 2 blocks
    a = uniform(rng, (k, m) if ta else (m, k), dtype)
    b = uniform(rng, (n, k) if tb else (k, n), dtype)
    c = uniform(rng, (m, n), dtype)
    check("blas", "gemm", ta, tb, 0.5, a, b, -1.0, c, dtype=dtype)
    c[:] = np.nan  # beta == 0 overwrites garbage
    check("blas", "gemm", ta, tb, 2.0, a, b, 0.0, c, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("m,n,k", [
    (40, 37, 6),   # 3 x 3 output tiles of 16 (4 x 4 threads x 4 x 4 registers) on a 2 x 2 grid
    (5, 3, 70),    # one tile, long k: split-K into 2 slices of 36
    (3, 6, 200),   # split-K into 6 slices on a grid capped at 2 in z: the z loop turns
])
def test_gemm_tiles_and_split_k_against_reference(dtype, ta, tb, m, n, k):
    from fastnn.kernels.cuda import blas
    from reference import gemm_ref
    rng = np.random.default_rng(12)
    a = uniform(rng, (k, m) if ta else (m, k), dtype)
    b = uniform(rng, (n, k) if tb else (k, n), dtype)
    c = uniform(rng, (m, n), dtype)
    assert (blas.split_k(m, n, k) > 1) == (k >= 70)
    for alpha, beta in ((0.5, -1.0), (2.0, 0.0)):
        d_c = cuda.to_device(np.full_like(c, np.nan) if beta == 0 else c)
        blas.gemm(ta, tb, alpha, cuda.to_device(a), cuda.to_device(b), beta, d_c)
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else TOL[dtype]
        np.testing.assert_allclose(d_c.copy_to_host(), gemm_ref(ta, tb, alpha, a, b, beta, c),
                                   **tol)


def test_gemm_split_k_epilogue_matches_unsplit():
    """The fused bias + activation epilogue runs after the slices are summed."""
    from fastnn.kernels.cuda import blas
    from reference import activation_ref
    rng = np.random.default_rng(13)
    x, w, bias = uniform(rng, (3, 80), np.float64), uniform(rng, (5, 80), np.float64), \
        uniform(rng, (5,), np.float64)
    assert blas.split_k(3, 5, 80) > 1
    pre, out = cuda.device_array((3, 5)), cuda.device_array((3, 5))
    blas.gemm_bias_activation(cuda.to_device(x), cuda.to_device(w), cuda.to_device(bias), pre,
                              out, 3, 0.7)  # ELU
    z = x @ w.T + bias
    np.testing.assert_allclose(pre.copy_to_host(), z, rtol=1e-12)
    np.testing.assert_allclose(out.copy_to_host(), activation_ref("elu", z, 0.7), rtol=1e-12)


def test_gemm_propagates_nan_and_handles_empty_k():
    rng = np.random.default_rng(3)
    a = uniform(rng, (5, 6), np.float64)
    a[1, 2] = np.nan
    check("blas", "gemm", False, False, 1.0, a, uniform(rng, (6, 5), np.float64), 0.0,
          np.zeros((5, 5)))
    check("blas", "gemm", False, False, 1.0, np.zeros((5, 0)), np.zeros((0, 3)), 0.5,
          np.ones((5, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine(dtype):
    rng = np.random.default_rng(4)
    n, n_in, n_out = 5, 7, 36  # bias sums: 5 blocks of 8 columns on 2, 5 rows over 4 groups
    x = uniform(rng, (n, n_in), dtype)
    W = uniform(rng, (n_out, n_in), dtype, -0.5, 0.5)
    b = uniform(rng, (n_out,), dtype)
    g = uniform(rng, (n, n_out), dtype)
    out = np.empty((n, n_out), dtype)
    check("affine", "affine_forward", x, out, W, b, dtype=dtype)
    cpu, _ = check("affine", "affine_activation_forward", x, out.copy(), out.copy(), W, b,
                   3, 0.7, dtype=dtype)  # ELU
    pre, y = cpu[1], cpu[2]
    check("affine", "affine_backward_input", g, np.empty((n, n_in), dtype), W, dtype=dtype)
    for accumulate in (False, True):
        gW = uniform(rng, W.shape, dtype)
        gb = uniform(rng, b.shape, dtype)
        check("affine", "affine_backward_params", x, g, gW, gb, accumulate, dtype=dtype)
        for need_gi in (True, False):
            check("affine", "affine_activation_backward", x, g, np.zeros((n, n_in), dtype),
                  np.empty((n, n_out), dtype), gW, gb, pre, y, W, 3, 0.7, accumulate, need_gi,
                  dtype=dtype)


# ---- softmax / losses ------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_log_softmax(dtype):
    rng = np.random.default_rng(5)
    x = uniform(rng, (40, 4), dtype, -5, 5)  # 40 rows: two blocks of 32
    x[3, 2] = np.nan
    g = uniform(rng, x.shape, dtype)
    for fwd, bwd in (("softmax_forward", "softmax_backward"),
                     ("log_softmax_forward", "log_softmax_backward")):
        cpu, _ = check("softmax_nll", fwd, x, np.empty_like(x), dtype=dtype)
        check("softmax_nll", bwd, g, np.empty_like(x), cpu[1], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy(dtype):
    rng = np.random.default_rng(6)
    n, c = 40, 4  # rows > threads per block: the one-block loss loop strides
    x = uniform(rng, (n, c), dtype, -5, 5)
    t = rng.integers(0, c, n).astype(np.int64)
    soft = rng.dirichlet(np.ones(c), n).astype(dtype)
    loss = np.zeros(1, dtype)
    scale = 1.0 / n
    cpu, _ = check("softmax_nll", "cross_entropy_forward", x, t, loss, np.empty_like(x), scale,
                   dtype=dtype)
    check("softmax_nll", "cross_entropy_backward", t, np.empty_like(x), cpu[3], scale,
          dtype=dtype)
    cpu, _ = check("softmax_nll", "cross_entropy_dense_forward", x, soft, loss,
                   np.empty_like(x), scale, dtype=dtype)
    check("softmax_nll", "cross_entropy_dense_backward", soft, np.empty_like(x), cpu[3], scale,
          dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_classify_and_nll(dtype):
    rng = np.random.default_rng(7)
    n, c = 40, 4
    probs = rng.dirichlet(np.ones(c), n).astype(dtype)
    logp = np.log(probs)
    raw = uniform(rng, (n, c), dtype)
    tol = 64 * c * float(np.finfo(dtype).eps)
    for x, expected in ((logp, 0), (probs, 1), (raw, 2)):
        _, gpu = check("softmax_nll", "classify_scores", x, np.full(1, -1, np.int64), tol,
                       dtype=dtype)
        assert gpu[1][0] == expected
    t = rng.integers(0, c, n).astype(np.int64)
    onehot = np.eye(c, dtype=dtype)[t]
    scale = 1.0 / n
    for x, is_prob in ((logp, 0), (probs, 1)):
        check("softmax_nll", "class_nll_forward", x, t, np.zeros(1, dtype), is_prob, scale,
              dtype=dtype)
        check("softmax_nll", "class_nll_backward", x, t, np.ones_like(x), is_prob, scale,
              dtype=dtype)
        check("softmax_nll", "class_nll_dense_forward", x, onehot, np.zeros(1, dtype), is_prob,
              scale, dtype=dtype)
        check("softmax_nll", "class_nll_dense_backward", x, onehot, np.ones_like(x), is_prob,
              scale, dtype=dtype)
    probs[0, 0] = 0.0  # clipped to eps
    check("softmax_nll", "clipped_nll_forward", probs, onehot, np.zeros(1, dtype), 1e-15, scale,
          dtype=dtype)
    check("softmax_nll", "clipped_nll_backward", probs, onehot, np.empty_like(probs), 1e-15,
          scale, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse(dtype):
    rng = np.random.default_rng(8)
    x = uniform(rng, (9, 5), dtype)
    t = uniform(rng, (9, 5), dtype)
    check("softmax_nll", "mse_forward", x, t, np.zeros(1, dtype), 1 / 9, dtype=dtype)
    check("softmax_nll", "mse_backward", x, t, np.empty_like(x), 1 / 9, dtype=dtype)


# ---- dropout ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout(dtype):
    from fastnn.kernels.cuda import dropout
    rng = np.random.default_rng(9)
    x = uniform(rng, (6, 11), dtype) + dtype(3)  # nonzero, so output == 0 <=> dropped
    p = 0.3
    d_x, d_y, d_m = cuda.to_device(x), cuda.device_array(x.shape, dtype), \
        cuda.device_array(x.shape, dtype)
    dropout.seed(11)
    dropout.dropout_forward(d_x, d_y, d_m, p)
    y, m = d_y.copy_to_host(), d_m.copy_to_host()
    scale = dtype(1 / (1 - p))
    assert set(np.unique(m)) <= {dtype(0), scale}
    np.testing.assert_allclose(y, x * m, **TOL[dtype])
    assert 0.1 < np.mean(m == 0) < 0.5  # 66 draws around p = 0.3 (sd 0.06)
    # the states advance: a second call draws a new mask; reseeding replays the first
    dropout.dropout_forward(d_x, d_y, d_m, p)
    assert not np.array_equal(d_m.copy_to_host(), m)
    dropout.seed(11)
    dropout.dropout_forward(d_x, d_y, d_m, p)
    np.testing.assert_array_equal(d_m.copy_to_host(), m)
    # backward against the CPU twin with the same mask
    g = uniform(rng, x.shape, dtype)
    check("dropout", "dropout_backward", g, np.empty_like(g), m, dtype=dtype)


# ---- batchnorm / scaling ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [
    (6, 3, 7),   # 42 values per channel, 3 channels > 2 blocks: a block per channel
    (7, 20, 1),  # after a Linear: blocks of 8 channels x 4 row groups, 3 groups > 2 blocks
], ids=["spatial", "features"])
def test_batchnorm(dtype, shape):
    rng = np.random.default_rng(10)
    x = uniform(rng, shape, dtype, -1, 3)
    g = uniform(rng, x.shape, dtype)
    c = shape[1]
    for center_only in (False, True):
        mm = uniform(rng, (c,), dtype)
        mv = uniform(rng, (c,), dtype, 0.5, 2)
        cpu, _ = check("batchnorm", "batchnorm_forward_train", x, np.empty_like(x),
                       np.empty(c, dtype), np.empty(c, dtype), mm, mv, 0.9, 1e-3, center_only,
                       dtype=dtype)
        y, invstd = cpu[1], cpu[3]
        check("batchnorm", "batchnorm_backward_train", g, np.empty_like(g), y, invstd,
              center_only, dtype=dtype)
        check("batchnorm", "batchnorm_forward_eval", x, np.empty_like(x), mm, mv, 1e-3,
              center_only, dtype=dtype)
        check("batchnorm", "batchnorm_backward_eval", g, np.empty_like(g), mv, 1e-3,
              center_only, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 3, 7), (7, 20, 1)], ids=["spatial", "features"])
def test_scaling(dtype, shape):
    rng = np.random.default_rng(11)
    x = uniform(rng, shape, dtype)
    g = uniform(rng, x.shape, dtype)
    c = shape[1]
    gamma, beta = uniform(rng, (c,), dtype), uniform(rng, (c,), dtype)
    check("scaling", "channelwise_scaling_forward", x, np.empty_like(x), gamma, beta,
          dtype=dtype)
    check("scaling", "channelwise_scaling_backward_input", g, np.empty_like(g), gamma,
          dtype=dtype)
    for accumulate in (False, True):
        check("scaling", "channelwise_scaling_backward_params", x, g, uniform(rng, (c,), dtype),
              uniform(rng, (c,), dtype), accumulate, dtype=dtype)


# ---- optim ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_optim(dtype):
    rng = np.random.default_rng(12)
    shape = (7, 11)
    t = np.dtype(dtype).type
    g, p = uniform(rng, shape, dtype), uniform(rng, shape, dtype)
    check("optim", "sgd_momentum_update", g, p, uniform(rng, shape, dtype), t(0.1), t(0.9),
          dtype=dtype)
    check("optim", "adam_update", g, p, uniform(rng, shape, dtype), uniform(rng, shape, dtype, 0, 1),
          t(0.01), t(0.9), t(0.999), t(1e-8), dtype=dtype)


# ---- conv / pool --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0)])
def test_conv2d(dtype, stride, padding):
    cpu_conv, gpu_conv = kernels("conv")
    rng = np.random.default_rng(13)
    N, C, H, W, F, k = 2, 2, 6, 5, 3, 3
    x = uniform(rng, (N, C, H, W), dtype)
    w = uniform(rng, (F, C, k, k), dtype, -0.5, 0.5)
    b = uniform(rng, (F,), dtype)
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    go = uniform(rng, (N, F, Ho, Wo), dtype)
    n_cpu = cpu_conv.columns_size(x.shape, F, k, stride, padding)
    # one image per GEMM: the GPU path loops over chunks
    n_gpu = gpu_conv.columns_size(x.shape, F, k, stride, padding, images=1)
    assert n_gpu < gpu_conv.columns_size(x.shape, F, k, stride, padding)

    def run(name, cpu_args, gpu_args):
        getattr(cpu_conv, name)(*cpu_args)
        getattr(gpu_conv, name)(*gpu_args)

    out_c, out_g = np.empty((N, F, Ho, Wo), dtype), cuda.device_array((N, F, Ho, Wo), dtype)
    run("conv2d_forward", (x, out_c, np.empty(n_cpu, dtype), w, b, stride, padding),
        (cuda.to_device(x), out_g, cuda.device_array(n_gpu, dtype), cuda.to_device(w),
         cuda.to_device(b), stride, padding))
    np.testing.assert_allclose(out_g.copy_to_host(), out_c, **TOL[dtype])

    gi_c, gi_g = np.empty_like(x), cuda.to_device(np.full_like(x, np.nan))
    run("conv2d_backward_input", (go, gi_c, np.empty(n_cpu, dtype), w, stride, padding),
        (cuda.to_device(go), gi_g, cuda.device_array(n_gpu, dtype), cuda.to_device(w), stride,
         padding))
    np.testing.assert_allclose(gi_g.copy_to_host(), gi_c, **TOL[dtype])

    for accumulate in (False, True):
        gw0, gb0 = uniform(rng, w.shape, dtype), uniform(rng, b.shape, dtype)
        gw_c, gb_c = gw0.copy(), gb0.copy()
        gw_g, gb_g = cuda.to_device(gw0), cuda.to_device(gb0)
        run("conv2d_backward_params",
            (x, go, gw_c, gb_c, np.empty(n_cpu, dtype), stride, padding, accumulate),
            (cuda.to_device(x), cuda.to_device(go), gw_g, gb_g,
             cuda.device_array(n_gpu, dtype), stride, padding, accumulate))
        np.testing.assert_allclose(gw_g.copy_to_host(), gw_c, **TOL[dtype])
        np.testing.assert_allclose(gb_g.copy_to_host(), gb_c, **TOL[dtype])

    # Conv2d + LeakyReLU fused (what a Sequential runs for the pair)
    from fastnn.kernels.cpu.activation import LEAKY_RELU
    shape = (N, F, Ho, Wo)
    pre_c, act_c = np.empty(shape, dtype), np.empty(shape, dtype)
    pre_g, act_g = cuda.device_array(shape, dtype), cuda.device_array(shape, dtype)
    run("conv2d_activation_forward",
        (x, pre_c, act_c, np.empty(n_cpu, dtype), w, b, stride, padding, LEAKY_RELU, 0.1),
        (cuda.to_device(x), pre_g, act_g, cuda.device_array(n_gpu, dtype), cuda.to_device(w),
         cuda.to_device(b), stride, padding, LEAKY_RELU, 0.1))
    np.testing.assert_allclose(pre_g.copy_to_host(), pre_c, **TOL[dtype])
    np.testing.assert_allclose(act_g.copy_to_host(), act_c, **TOL[dtype])
    outs_c = [np.empty_like(x), np.empty(shape, dtype), np.empty_like(w), np.empty_like(b)]
    outs_g = [cuda.device_array(a.shape, dtype) for a in outs_c]
    run("conv2d_activation_backward",
        (x, go, *outs_c, np.empty(n_cpu, dtype), pre_c, act_c, w, stride, padding, LEAKY_RELU,
         0.1, False, True),
        (cuda.to_device(x), cuda.to_device(go), *outs_g, cuda.device_array(n_gpu, dtype),
         pre_g, act_g, cuda.to_device(w), stride, padding, LEAKY_RELU, 0.1, False, True))
    for got, want in zip(outs_g, outs_c):  # gradInput, delta, gradWeight, gradBias
        np.testing.assert_allclose(got.copy_to_host(), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,stride", [(3, 2), (2, 2)])
def test_maxpool2d(dtype, k, stride):
    rng = np.random.default_rng(14)
    x = uniform(rng, (2, 2, 7, 6), dtype)
    x[0, 0, 0, :2] = 5.0   # a tie: the first element in window order wins
    x[1, 1, 3, 3] = np.nan  # NaN propagates
    Ho, Wo = (7 - k) // stride + 1, (6 - k) // stride + 1
    cpu, _ = check("pool", "maxpool2d_forward", x, np.empty((2, 2, Ho, Wo), dtype),
                   np.zeros((2, 2, Ho, Wo), np.int64), k, stride, dtype=dtype)
    g = uniform(rng, (2, 2, Ho, Wo), dtype)
    check("pool", "maxpool2d_backward", g, np.full_like(x, np.nan), cpu[2], k, stride,
          dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,stride", [(3, 2), (2, 2), (2, 1)])
def test_avgpool2d(dtype, k, stride):
    rng = np.random.default_rng(15)
    x = uniform(rng, (2, 2, 7, 6), dtype)
    Ho, Wo = (7 - k) // stride + 1, (6 - k) // stride + 1
    check("pool", "avgpool2d_forward", x, np.full((2, 2, Ho, Wo), np.nan, dtype), k, stride,
          dtype=dtype)
    g = uniform(rng, (2, 2, Ho, Wo), dtype)
    check("pool", "avgpool2d_backward", g, np.full_like(x, np.nan), k, stride, dtype=dtype)
