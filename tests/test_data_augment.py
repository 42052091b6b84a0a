"""fastnn.data.augment: the affine warp kernel against its NumPy reference, shifts and
rotations, ``augment_batch``'s shapes, range and errors."""
import numpy as np
import pytest

from fastnn.datasets import affine_params, augment_batch
from reference import affine_warp_reference


# --------------------------------------------------------------------------- augmentation

def _warp(images, params):
    from fastnn.kernels.cpu.augment import affine_warp
    out = np.full_like(images, np.nan)
    # One transform for all images when given one (the kernel wants one row per image).
    params = np.broadcast_to(params, (len(images), 6))
    affine_warp(images, out, np.ascontiguousarray(params, images.dtype))
    return out


@pytest.mark.parametrize("params_shape, out_n", [((4, 6), 5), ((6, 6), 5), ((5, 5), 5),
                                                   ((5, 6), 4)])
def test_affine_warp_rejects_mismatched_params_or_output(params_shape, out_n):
    from fastnn.kernels.cpu.augment import affine_warp
    images = _images(5)
    out = np.zeros((out_n, 28, 28), np.float32)
    with pytest.raises(ValueError, match=r"affine_warp: params must be \(N, 6\)"):
        affine_warp(images, out, np.zeros(params_shape, np.float32))


def _images(n=5, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28)).astype(dtype)


def test_zero_augmentation_is_identity():
    x = _images()
    np.testing.assert_array_equal(augment_batch(x, max_shift=0, max_angle=0.0, seed=0), x)
    np.testing.assert_array_equal(_warp(x, affine_params(0, 0, 0, 28, 28)), x)


def test_one_pixel_shift():
    x = _images(2, np.float64)
    right = _warp(x, affine_params([1, 1], 0, 0, 28, 28))
    np.testing.assert_array_equal(right[:, :, 1:], x[:, :, :-1])
    np.testing.assert_array_equal(right[:, :, 0], 0.0)
    down = _warp(x, affine_params(0, -1, 0, 28, 28))  # negative: up
    np.testing.assert_array_equal(down[:, :-1, :], x[:, 1:, :])
    np.testing.assert_array_equal(down[:, -1, :], 0.0)


def test_integer_shifts_move_whole_pixels():
    x = _images(20)
    out = augment_batch(x, max_shift=2, max_angle=0.0, subpixel=False, seed=4)
    for img, res in zip(x, out):
        padded = np.pad(img, 2)
        candidates = [padded[2 - dy:30 - dy, 2 - dx:30 - dx]
                      for dy in range(-2, 3) for dx in range(-2, 3)]
        assert any(np.array_equal(res, c) for c in candidates)
    assert not np.array_equal(out, x)


def test_rotation_direction():
    x = np.zeros((1, 28, 28))
    x[0, 13, 20] = 1.0  # right of the centre (13.5, 13.5)
    out = _warp(x, affine_params(0, 0, 90.0, 28, 28))
    assert out[0, 7, 13] == pytest.approx(1.0)  # counter-clockwise: now above it
    assert out.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("dtype,atol", [(np.float32, 2e-6), (np.float64, 1e-12)])
def test_warp_matches_reference(dtype, atol):
    x = _images(6, dtype, seed=2)
    rng = np.random.default_rng(5)
    params = affine_params(rng.uniform(-3, 3, 6), rng.uniform(-3, 3, 6),
                           rng.uniform(-30, 30, 6), 28, 28, dtype=dtype)
    out = _warp(x, params)
    np.testing.assert_allclose(out, affine_warp_reference(x, params), atol=atol)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_augment_batch_shapes_and_range():
    x = _images(8)
    flat = augment_batch(x.reshape(8, 784), seed=1)
    square = augment_batch(x, seed=1)
    nchw = augment_batch(x[:, None], seed=1)
    assert flat.shape == (8, 784) and nchw.shape == (8, 1, 28, 28)
    np.testing.assert_array_equal(flat.reshape(8, 28, 28), square)
    np.testing.assert_array_equal(nchw[:, 0], square)
    assert square.dtype == np.float32 and 0.0 <= square.min() and square.max() <= 1.0
    assert not np.array_equal(square, x)

    # Channels of one image move together.
    rgb = augment_batch(np.repeat(x[:, None], 3, axis=1), seed=1)
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, c], square)

    # Seeded, reusable output, in place, uint8 input.
    np.testing.assert_array_equal(augment_batch(x, rng=np.random.default_rng(1)), square)
    out = np.empty_like(x)
    assert augment_batch(x, out=out, seed=1) is out
    np.testing.assert_array_equal(out, square)
    y = x.copy()
    augment_batch(y, out=y, seed=1)
    np.testing.assert_array_equal(y, square)
    u8 = augment_batch((x * 255).astype(np.uint8), seed=1)
    assert u8.dtype == np.float32

    with pytest.raises(ValueError, match=r"square size, got shape \(8, 783\)"):
        augment_batch(np.zeros((8, 783)))
    with pytest.raises(ValueError, match="out must be"):
        augment_batch(x, out=np.empty((8, 28, 28), np.float64))
