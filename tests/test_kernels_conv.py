"""kernels/cpu/conv.py against the direct-loop NumPy references (tests/reference.py)."""
import numpy as np
import pytest

from fastnn.kernels.cpu import activation as A
from fastnn.kernels.cpu import conv as K
from reference import conv2d_backward_reference, conv2d_forward_reference, conv2d_output_size

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}
# (N, C, F, H, W, k, stride, padding)
GEOMETRIES = [
    (2, 3, 4, 7, 9, 3, 1, 1),   # "same" 3x3 on an odd, non-square image
    (3, 2, 5, 7, 9, 5, 1, 2),   # "same" 5x5
    (2, 2, 3, 6, 7, 5, 1, 0),   # valid 5x5
    (2, 1, 1, 5, 5, 1, 1, 0),   # 1x1, one channel in and out (gemv / rank-1 paths)
    (3, 2, 5, 8, 6, 3, 2, 1),   # stride 2 (plain im2col path)
    (3, 2, 3, 9, 7, 3, 2, 0),
    (2, 3, 2, 5, 5, 2, 3, 1),   # even kernel, stride 3: windows skip pixels
    (1, 4, 3, 3, 3, 3, 1, 0),   # output 1x1
    (2, 1, 2, 2, 3, 5, 1, 2),   # kernel larger than the unpadded input
]
# images per GEMM: one, two (with a short last chunk for odd N), the whole batch, default
IMAGES = [1, 2, 1000, None]


def data(geom, dtype, seed=0):
    n, c, f, h, w, k, s, p = geom
    rng = np.random.default_rng(seed + 7919 * sum(geom))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    W = rng.standard_normal((f, c, k, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    ho, wo = conv2d_output_size(h, k, s, p), conv2d_output_size(w, k, s, p)
    g = rng.standard_normal((n, f, ho, wo)).astype(dtype)
    return x, W, b, g


def columns(geom, dtype, images=None):
    n, c, f, h, w, k, s, p = geom
    # NaN garbage: every kernel must write before it reads its scratch
    return np.full(K.columns_size((n, c, h, w), f, k, s, p, images), np.nan, dtype)


@pytest.mark.parametrize("images", IMAGES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_conv2d_kernels_match_reference(geom, dtype, images):
    n, c, f, h, w, k, s, p = geom
    x, W, b, g = data(geom, dtype)
    cols = columns(geom, dtype, images)

    out = np.full(g.shape, np.nan, dtype)
    K.conv2d_forward(x, out, cols, W, b, s, p)
    np.testing.assert_allclose(out, conv2d_forward_reference(x, W, b, s, p), **TOL[dtype])

    ref_gi, ref_gW, ref_gb = conv2d_backward_reference(x, W, g, s, p)
    gi = np.full(x.shape, np.nan, dtype)
    K.conv2d_backward_input(g, gi, cols, W, s, p)
    np.testing.assert_allclose(gi, ref_gi, **TOL[dtype])

    gW = np.full(W.shape, np.nan, dtype)
    gb = np.full(b.shape, np.nan, dtype)
    K.conv2d_backward_params(x, g, gW, gb, cols, s, p, False)  # overwrite: NaN must vanish
    np.testing.assert_allclose(gW, ref_gW, **TOL[dtype])
    np.testing.assert_allclose(gb, ref_gb, **TOL[dtype])

    K.conv2d_backward_params(x, g, gW, gb, cols, s, p, True)  # accumulate
    np.testing.assert_allclose(gW, 2 * ref_gW, **TOL[dtype])
    np.testing.assert_allclose(gb, 2 * ref_gb, **TOL[dtype])


def test_geometries_cover_the_direct_and_the_gemm_paths():
    direct = [g for g in GEOMETRIES if g[6] == 1 and g[1] * g[5] ** 2 <= K.DIRECT_MAX_CKK]
    assert len(direct) >= 2 and len(direct) <= len(GEOMETRIES) - 3


def test_columns_size():
    # images clamped to [1, N]; the padded plane on top for stride 1
    per_image = (3 * 9 + 8) * 10 * 12
    plane = 3 * 12 * 12 + 2
    assert K.columns_size((64, 3, 10, 10), 8, 3, 1, 1, images=1) == plane + per_image
    assert K.columns_size((64, 3, 10, 10), 8, 3, 1, 1, images=0) == plane + per_image
    assert K.columns_size((64, 3, 10, 10), 8, 3, 1, 1, images=10 ** 6) == plane + 64 * per_image
    assert K.columns_size((4, 3, 10, 10), 8, 3, 2, 1, images=1) == (3 * 9 + 8) * 5 * 5
    # default: the whole batch when it fits the budget, else equal chunks
    assert K.columns_size((64, 3, 10, 10), 8, 3, 1, 1) == plane + 64 * per_image
    big = (3, 16, 30, 30)
    one = K.columns_size(big, 32, 3, 1, 1, images=1) - (16 * 32 * 32 + 2)
    fit = K.COLUMNS_BUDGET // one
    assert fit >= 1
    n = 2 * fit + 1                                   # needs 3 chunks of ceil(n / 3)
    got = K.columns_size((n,) + big[1:], 32, 3, 1, 1) - (16 * 32 * 32 + 2)
    assert got == -(-n // 3) * one <= K.COLUMNS_BUDGET


def test_columns_too_small_raises():
    geom = (2, 3, 4, 7, 9, 3, 1, 1)
    x, W, b, g = data(geom, np.float64)
    cols = np.empty(K.columns_size(x.shape, 4, 3, 1, 1, images=1) - 1)
    with pytest.raises(ValueError, match="columns"):
        K.conv2d_forward(x, np.empty(g.shape), cols, W, b, 1, 1)


def test_empty_batch_overwrites_gradients():
    x = np.zeros((0, 2, 5, 5))
    W = np.ones((3, 2, 3, 3))
    gW, gb = np.full(W.shape, np.nan), np.full(3, np.nan)
    cols = np.empty(K.columns_size(x.shape, 3, 3, 1, 1))
    K.conv2d_backward_params(x, np.zeros((0, 3, 5, 5)), gW, gb, cols, 1, 1, False)
    assert not gW.any() and not gb.any()


def test_nan_input_propagates_to_output():
    geom = (1, 1, 2, 5, 5, 3, 1, 1)
    x, W, b, g = data(geom, np.float64)
    x[0, 0, 2, 2] = np.nan
    out = np.empty(g.shape)
    K.conv2d_forward(x, out, columns(geom, np.float64), W, b, 1, 1)
    ref = conv2d_forward_reference(x, W, b, 1, 1)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out[~np.isnan(out)], ref[~np.isnan(ref)], rtol=1e-12)


@pytest.mark.parametrize("geom", [GEOMETRIES[0], GEOMETRIES[4]])
def test_non_contiguous_arguments_give_the_contiguous_answer(geom):
    n, c, f, h, w, k, s, p = geom
    x, W, b, g = data(geom, np.float64)

    def strided(a):  # same values, (1, 0, 2, 3)-transposed memory
        return np.swapaxes(np.swapaxes(a, 0, 1).copy(), 0, 1)

    xs, gs = strided(x), strided(g)
    assert not xs.flags.c_contiguous and not gs.flags.c_contiguous
    cols = columns(geom, np.float64)
    out, out_s = np.empty(g.shape), np.empty(g.shape)
    K.conv2d_forward(x, out, cols, W, b, s, p)
    K.conv2d_forward(xs, out_s, cols, W, b, s, p)
    np.testing.assert_allclose(out_s, out, rtol=1e-12, atol=1e-12)
    gi, gi_s = np.empty(x.shape), np.empty(x.shape)
    K.conv2d_backward_input(g, gi, cols, W, s, p)
    K.conv2d_backward_input(gs, gi_s, cols, W, s, p)
    np.testing.assert_allclose(gi_s, gi, rtol=1e-12, atol=1e-12)
    gW, gb, gW_s, gb_s = np.empty(W.shape), np.empty(f), np.empty(W.shape), np.empty(f)
    K.conv2d_backward_params(x, g, gW, gb, cols, s, p, False)
    K.conv2d_backward_params(xs, gs, gW_s, gb_s, cols, s, p, False)
    np.testing.assert_allclose(gW_s, gW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb_s, gb, rtol=1e-12, atol=1e-12)


ACTIVATIONS = {"relu": (A.RELU, 0.0), "leaky_relu": (A.LEAKY_RELU, 0.1), "elu": (A.ELU, 1.0),
               "sigmoid": (A.SIGMOID, 0.0)}


@pytest.mark.parametrize("images", [1, None])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_fused_activation_kernels_match_the_separate_kernels(geom, act, images):
    """conv2d_activation_forward/backward against conv2d_* followed by activation_*."""
    n, c, f, h, w, k, s, p = geom
    code, alpha = ACTIVATIONS[act]
    x, W, b, g = data(geom, np.float64)
    x[0, 0, 0, 0] = 0.0  # a zero pre-activation somewhere is likely with the bias at 0
    cols = columns(geom, np.float64, images)

    pre_ref, out_ref = np.empty(g.shape), np.empty(g.shape)
    K.conv2d_forward(x, pre_ref, cols, W, b, s, p)
    A.activation_forward(pre_ref, out_ref, code, alpha)
    delta_ref = np.empty(g.shape)
    A.activation_backward(pre_ref, g, delta_ref, out_ref, code, alpha)
    gi_ref = np.empty(x.shape)
    K.conv2d_backward_input(delta_ref, gi_ref, cols, W, s, p)
    gW_ref, gb_ref = np.empty(W.shape), np.empty(f)
    K.conv2d_backward_params(x, delta_ref, gW_ref, gb_ref, cols, s, p, False)

    pre, out = np.full(g.shape, np.nan), np.full(g.shape, np.nan)
    K.conv2d_activation_forward(x, pre, out, cols, W, b, s, p, code, alpha)
    np.testing.assert_array_equal(pre, pre_ref)
    np.testing.assert_array_equal(out, out_ref)
    delta, gi = np.full(g.shape, np.nan), np.full(x.shape, np.nan)
    gW, gb = np.full(W.shape, np.nan), np.full(f, np.nan)
    K.conv2d_activation_backward(x, g, gi, delta, gW, gb, cols, pre, out, W, s, p, code, alpha,
                                 False, True)
    np.testing.assert_array_equal(delta, delta_ref)
    np.testing.assert_allclose(gi, gi_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gW, gW_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, gb_ref, rtol=1e-12, atol=1e-12)
    # accumulate, and no input gradient
    gi_kept = gi.copy()
    K.conv2d_activation_backward(x, g, gi, delta, gW, gb, cols, pre, out, W, s, p, code, alpha,
                                 True, False)
    np.testing.assert_array_equal(gi, gi_kept)
    np.testing.assert_allclose(gW, 2 * gW_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, 2 * gb_ref, rtol=1e-12, atol=1e-12)
