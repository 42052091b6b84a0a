"""Hidden kernel contracts, family by family: every inconsistent state a user can reach
through public attributes (W, gradW, sizes, settings, moving statistics, saved outputs,
dtype) or a crafted checkpoint must raise an error naming the module, never reach an
unchecked Numba kernel.

The cases run in child processes (several per child, a fresh child after a crash): an
out-of-bounds write that kills the interpreter fails its case instead of pytest.
"""
import numpy as np
import pytest

from childrun import check_outcome, registry, run_cases

CASES, case = registry()


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- affine (Linear) ------------------------------------------------------------------------
@case("AttributeError", "Linear", "n_in", "W.shape[1]")
def linear_n_in_edited():
    import fastnn
    m = fastnn.Linear(64, 8)
    m.n_in = 3  # the GEMM would take 3 from the input and 64 from W
    m.forward(_x(2, 3))


@case("AttributeError", "Linear", "dtype", ".double()")
def linear_dtype_assigned():
    import fastnn
    m = fastnn.Linear(64, 8)
    m.dtype = np.float64  # dgemm over float32 weights reads twice their size
    m.forward(_x(2, 64))


@case("ValueError", "Linear", "W", "(8, 64)")
def linear_W_wrong_shape():
    import fastnn
    m = fastnn.Linear(64, 8)
    m.W = np.zeros((8, 65), np.float32)


@case("ValueError", "Linear", "gradW", "(8, 64)")
def linear_gradW_wrong_shape():
    import fastnn
    m = fastnn.Linear(64, 8)
    m.gradW = np.zeros((4, 64), np.float32)


@case("ValueError", "Linear", "output", "float32")
def linear_fused_saved_output_wrong_dtype():
    import fastnn
    net = fastnn.Sequential(fastnn.Linear(16, 8), fastnn.ReLU())
    x = _x(4, 16)
    net.forward(x)
    net[0].output = np.zeros((4, 8))  # float64: the fused backward reads it as float32
    net.backward(x, _x(4, 8))


@case("ValueError", "ReLU", "output", "C-contiguous")
def linear_fused_saved_output_not_contiguous():
    import fastnn
    net = fastnn.Sequential(fastnn.Linear(16, 8), fastnn.ReLU())
    x = _x(4, 16)
    net.forward(x)
    net[1].output = np.asfortranarray(_x(4, 8))
    net.backward(x, _x(4, 8))


# ---- conv -----------------------------------------------------------------------------------
@case("AttributeError", "Conv2d", "kernel_size", "W.shape[2]")
def conv_kernel_size_edited():
    import fastnn
    m = fastnn.Conv2d(2, 3, 5)
    m.kernel_size = 1  # a larger output than the 5x5 weight's kernel fills
    m.forward(_x(2, 2, 8, 8))


@case("AttributeError", "Conv2d", "n_in")
def conv_n_in_edited():
    import fastnn
    m = fastnn.Conv2d(8, 3, 3)
    m.n_in = 1
    m.forward(_x(2, 1, 8, 8))


@case("ValueError", "Conv2d", "stride", "positive")
def conv_stride_zero():
    import fastnn
    m = fastnn.Conv2d(2, 3, 3)
    m.stride = 0
    m.forward(_x(2, 2, 8, 8))


@case("ValueError", "Conv2d", "padding", ">= 0")
def conv_padding_negative():
    import fastnn
    m = fastnn.Conv2d(2, 3, 3)
    m.padding = -4
    m.forward(_x(2, 2, 16, 16))


@case("ValueError", "Conv2d", "W", "(3, 2, 3, 3)")
def conv_W_wrong_shape():
    import fastnn
    m = fastnn.Conv2d(2, 3, 3)
    m.W = np.zeros((3, 2, 5, 5), np.float32)


@case("ValueError", "ReLU", "output")
def conv_fused_saved_output_wrong_dtype():
    import fastnn
    net = fastnn.Sequential(fastnn.Conv2d(2, 3, 3), fastnn.ReLU())
    x = _x(2, 2, 6, 6)
    net.forward(x)
    net[1].output = np.zeros((2, 3, 6, 6))
    net.backward(x, _x(2, 3, 6, 6))


# ---- pool -----------------------------------------------------------------------------------
@case("ValueError", "MaxPool2d", "(1, 1, 4, 4)", "(1, 1, 5, 5)")
def pool_backward_on_another_input_size():
    import fastnn
    m = fastnn.MaxPool2d(2)
    m.forward(_x(1, 1, 5, 5))
    # both pool to 2x2: the saved arg-max indices address a 5x5 plane
    m.backward(_x(1, 1, 4, 4), _x(1, 1, 2, 2))


@case("ValueError", "MaxPool2d", "(64, 8, 32, 32)", "(64, 8, 33, 33)")
def pool_backward_on_another_input_size_large():
    import fastnn
    m = fastnn.MaxPool2d(2)
    m.forward(_x(64, 8, 33, 33))  # indices up to 31 * 33 + 31, past a 32x32 plane
    m.backward(_x(64, 8, 32, 32), _x(64, 8, 16, 16))


@case("ValueError", "MaxPool2d", "(2, 3, 4, 4)", "(2, 3, 5, 5)")
def pool_backward_through_sequential():
    import fastnn
    net = fastnn.Sequential(fastnn.MaxPool2d(2), fastnn.ReLU())
    net.forward(_x(2, 3, 5, 5))
    net.backward(_x(2, 3, 4, 4), _x(2, 3, 2, 2))


@case("ValueError", "MaxPool2d", "kernel_size", "positive")
def pool_kernel_size_zero():
    import fastnn
    m = fastnn.MaxPool2d(2, stride=1)
    m.kernel_size = 0  # windows past the plane's last row: backward writes past gradInput
    x = _x(2, 3, 6, 6)
    y = m.forward(x)
    m.backward(x, np.ones_like(y))


@case("ValueError", "MaxPool2d", "stride", "positive")
def pool_stride_zero():
    import fastnn
    m = fastnn.MaxPool2d(2)
    m.stride = 0
    m.forward(_x(2, 3, 6, 6))


@case("ValueError", "MaxPool2d", "indices")
def pool_saved_indices_wrong_dtype():
    import fastnn
    m = fastnn.MaxPool2d(2)
    x = _x(2, 3, 6, 6)
    m.forward(x)
    m._buffers["indices"] = m._buffers["indices"].astype(np.int32)
    m.backward(x, _x(2, 3, 3, 3))


@pytest.fixture(scope="module")
def outcomes():
    return run_cases("test_contracts", list(CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_contract(name, outcomes):
    check_outcome(name, outcomes[name], CASES)
