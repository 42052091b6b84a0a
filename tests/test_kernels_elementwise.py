"""kernels/cpu/elementwise.py: fill and the dtype-converting copy (the CPU twins of the
CUDA helpers; fill zeroes the flat gradient buffer in ``zeroGradParameters``)."""
import numpy as np
import pytest

from fastnn.kernels.cpu import elementwise as K


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 5), (2, 3, 4)])
def test_fill(dtype, shape):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    K.fill(a, 0.0)
    np.testing.assert_array_equal(a, np.zeros(shape, dtype))
    K.fill(a, -3.0)
    np.testing.assert_array_equal(a, np.full(shape, -3, dtype))


def test_fill_writes_only_its_view():
    flat = np.ones(10, np.float32)
    K.fill(flat[2:6].reshape(2, 2), 0.0)
    np.testing.assert_array_equal(flat, [1, 1, 0, 0, 0, 0, 1, 1, 1, 1])


@pytest.mark.parametrize("src_dtype,dst_dtype", [(np.float32, np.float64),
                                                 (np.float64, np.float32),
                                                 (np.float32, np.float32)])
def test_copy_converts_the_dtype(src_dtype, dst_dtype):
    src = np.random.default_rng(1).standard_normal((4, 6)).astype(src_dtype)
    dst = np.empty((4, 6), dst_dtype)
    K.copy(src, dst)
    np.testing.assert_array_equal(dst, src.astype(dst_dtype))


def test_copy_of_another_size_raises():
    with pytest.raises(ValueError, match="differ in size"):
        K.copy(np.zeros(3), np.zeros(4))
