"""fastnn/conv.py: Conv2d, MaxPool2d, Flatten (gradcheck, PyTorch parity, errors,
input casting, buffer reuse, dtype conversion and copying)."""
import copy
import pickle

import numpy as np
import pytest

from conftest import rand
from fastnn.conv import AvgPool2d, Conv2d, Flatten, MaxPool2d
from fastnn.gradcheck import gradcheck
from fastnn.module import Sequential
from fastnn.nested import flatten as _leaves




# ---- gradcheck (float64) --------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("padding", [0, None])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv2d_gradcheck(k, stride, padding, batch):
    m = Conv2d(2, 3, k, stride=stride, padding=padding)
    assert gradcheck(m, rand(batch, 2, 7, 9, seed=k + stride))


@pytest.mark.parametrize("stride", [2, None])
@pytest.mark.parametrize("k", [2, 3])
def test_maxpool2d_gradcheck(k, stride):
    assert gradcheck(MaxPool2d(k, stride), rand(2, 3, 7, 9, seed=k))


@pytest.mark.parametrize("stride", [1, 2, None])
@pytest.mark.parametrize("k", [2, 3])
def test_avgpool2d_gradcheck(k, stride):
    assert gradcheck(AvgPool2d(k, stride), rand(2, 3, 7, 9, seed=k))


def test_flatten_gradcheck():
    assert gradcheck(Flatten(), rand(2, 3, 5, 4))


def test_small_cnn_gradcheck():
    net = Sequential(Conv2d(1, 2, 3), MaxPool2d(2), Conv2d(2, 3, 3, stride=2, padding=0),
                     Flatten())
    assert gradcheck(net, rand(2, 1, 9, 10))


# ---- PyTorch parity (float32) -----------------------------------------------------

CONV_CASES = [(1, 4, 3, 1), (3, 5, 3, 2), (2, 3, 5, 1), (4, 2, 1, 1), (2, 3, 4, 2)]


@pytest.mark.parametrize("n_in,n_out,k,stride", CONV_CASES)
def test_conv2d_matches_torch(n_in, n_out, k, stride):
    torch = pytest.importorskip("torch")
    m = Conv2d(n_in, n_out, k, stride=stride)
    ref = torch.nn.Conv2d(n_in, n_out, k, stride=stride, padding=k // 2)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(m.W))
        ref.bias.copy_(torch.from_numpy(m.b))
    x = rand(3, n_in, 11, 9).astype(np.float32)
    g = None
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    y = m.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = rand(*y.shape, seed=1).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    m.zeroGradParameters()
    gi = m.backward(x, g)
    np.testing.assert_allclose(gi, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.gradW, ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.gradb, ref.bias.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k,stride", [(2, None), (3, 2), (3, None), (2, 1)])
def test_maxpool2d_matches_torch(k, stride):
    torch = pytest.importorskip("torch")
    x = rand(2, 3, 9, 7).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    m = MaxPool2d(k, stride)
    ref = torch.nn.MaxPool2d(k, stride, return_indices=True)
    xt = torch.from_numpy(x).requires_grad_()
    yt, it = ref(xt)
    y = m.forward(x)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(m._buffers["indices"], it.numpy())
    g = rand(*y.shape, seed=2).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(m.backward(x, g), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k,stride", [(2, None), (3, 2), (3, None), (2, 1)])
def test_avgpool2d_matches_torch(k, stride):
    torch = pytest.importorskip("torch")
    x = rand(2, 3, 9, 7).astype(np.float32)
    m = AvgPool2d(k, stride)
    ref = torch.nn.AvgPool2d(k, stride)
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    y = m.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6, atol=1e-6)
    g = rand(*y.shape, seed=2).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(m.backward(x, g), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_flatten_matches_torch():
    torch = pytest.importorskip("torch")
    x = rand(2, 3, 4, 5).astype(np.float32)
    np.testing.assert_array_equal(Flatten().forward(x), torch.flatten(torch.from_numpy(x), 1).numpy())


# ---- module behaviour ---------------------------------------------------------------

def test_conv2d_parameters_and_repr():
    m = Conv2d(1, 32, 3)
    assert repr(m) == "Conv2d 1 -> 32, 3x3, stride 1, padding 1"
    assert repr(Conv2d(4, 8, 5, stride=2, padding=0)) == "Conv2d 4 -> 8, 5x5, stride 2, padding 0"
    assert m.W.shape == (32, 1, 3, 3) and m.b.shape == (32,)
    assert m.W.dtype == np.float32 and m.gradW.shape == m.W.shape and m.gradb.shape == (32,)
    bound = 1 / np.sqrt(9)
    assert np.abs(m.W).max() <= bound and np.abs(m.b).max() <= bound
    assert m.W.std() > 0.1 * bound
    assert repr(MaxPool2d(2)) == "MaxPool2d 2x2, stride 2"
    assert repr(MaxPool2d(3, 1)) == "MaxPool2d 3x3, stride 1"
    assert repr(AvgPool2d(3)) == "AvgPool2d 3x3, stride 3"


def test_output_shapes():
    x = rand(2, 3, 28, 28).astype(np.float32)
    assert Conv2d(3, 8, 3).forward(x).shape == (2, 8, 28, 28)
    assert Conv2d(3, 8, 3, padding=0).forward(x).shape == (2, 8, 26, 26)
    assert Conv2d(3, 8, 3, stride=2).forward(x).shape == (2, 8, 14, 14)
    assert MaxPool2d(2).forward(x).shape == (2, 3, 14, 14)
    assert MaxPool2d(3, 2).forward(rand(1, 1, 7, 9)).shape == (1, 1, 3, 4)
    assert MaxPool2d(2).forward(rand(1, 1, 7, 9)).shape == (1, 1, 3, 4)
    assert AvgPool2d(3, 2).forward(rand(1, 1, 7, 9)).shape == (1, 1, 3, 4)
    assert Flatten().forward(x).shape == (2, 3 * 28 * 28)


def test_gradients_accumulate_until_zeroed():
    m = Conv2d(2, 3, 3)
    x, g = rand(2, 2, 5, 6), rand(2, 3, 5, 6, seed=1)
    m.zeroGradParameters()
    m.forward(x)
    m.backward(x, g)
    gW, gb = m.gradW.copy(), m.gradb.copy()
    m.backward(x, g)
    np.testing.assert_allclose(m.gradW, 2 * gW, rtol=1e-5)
    np.testing.assert_allclose(m.gradb, 2 * gb, rtol=1e-5)
    m.zeroGradParameters()
    m.backward(x, g)
    np.testing.assert_allclose(m.gradW, gW, rtol=1e-6)


def test_buffers_are_reused():
    m, p = Conv2d(1, 4, 3), MaxPool2d(2)
    x = rand(2, 1, 8, 8).astype(np.float32)
    out1, pout1 = m.forward(x), p.forward(x)
    gi1 = m.backward(x, np.ones_like(out1))
    out2, pout2 = m.forward(x + 1), p.forward(x + 1)
    assert out2 is out1 and pout2 is pout1
    assert m.backward(x, np.ones_like(out1)) is gi1
    assert m.forward(rand(3, 1, 8, 8)).shape == (3, 4, 8, 8)  # new shape: new buffer
    cols = m._buffers["columns"]
    small = m.forward(rand(1, 1, 8, 8))                          # smaller batch: same scratch
    assert m._buffers["columns"] is cols
    np.testing.assert_allclose(small, Conv2d.forward(copy.deepcopy(m), rand(1, 1, 8, 8)), rtol=1e-6)


def test_flatten_is_a_view_and_backward_restores_shape():
    x = rand(2, 3, 4, 5).astype(np.float32)
    f = Flatten()
    y = f.forward(x)
    assert np.shares_memory(y, x)
    g = rand(2, 60, seed=3).astype(np.float32)
    gi = f.backward(x, g)
    assert gi.shape == x.shape
    np.testing.assert_array_equal(gi.reshape(2, -1), g)


@pytest.mark.parametrize("make", [lambda: Conv2d(3, 4, 3), lambda: Conv2d(3, 4, 3, stride=2),
                                  lambda: MaxPool2d(2), lambda: AvgPool2d(3, 2),
                                  lambda: Flatten()],
                         ids=["conv", "conv_s2", "pool", "avgpool", "flatten"])
def test_noncontiguous_and_non_float_input(make):
    m = make()
    base = np.random.default_rng(0).integers(0, 255, size=(2, 3, 14, 18)).astype(np.uint8)
    ref = m.forward(np.ascontiguousarray(base[:, :, ::2, ::2], dtype=np.float32)).copy()
    g = rand(*ref.shape, seed=4).astype(np.float32)
    ref_gi = m.backward(np.ascontiguousarray(base[:, :, ::2, ::2], dtype=np.float32), g).copy()
    for x in (base[:, :, ::2, ::2],                                # strided uint8
              base[:, :, ::2, ::2].astype(np.float64),             # float64
              np.asfortranarray(base[:, :, ::2, ::2], dtype=np.float32),
              base.astype(np.float32)[:, :, ::2, ::2]):            # strided float32
        np.testing.assert_array_equal(m.forward(x), ref)
        np.testing.assert_array_equal(m.backward(x, g), ref_gi)


def test_refilled_input_array_is_recast():
    # the same uint8 array refilled in place must not reuse the previous cast
    m = Conv2d(1, 2, 3)
    x = np.zeros((1, 1, 5, 5), np.uint8)
    m.forward(x)
    x[...] = 3
    np.testing.assert_allclose(m.forward(x), Conv2d.forward(copy.deepcopy(m), x.astype(np.float32)))


def test_double_deepcopy_and_pickle():
    m = Conv2d(2, 3, 3)
    x = rand(2, 2, 6, 5)
    y32 = m.forward(x).copy()
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        np.testing.assert_array_equal(clone.forward(x), y32)
        assert clone.W is not m.W
    m.double()
    assert m.W.dtype == np.float64 and m.gradW.dtype == np.float64
    y64 = m.forward(x)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, y32, rtol=1e-5, atol=1e-5)
    p = pickle.loads(pickle.dumps(MaxPool2d(3, 2).double()))
    assert p.forward(x).dtype == np.float64


# ---- errors ----------------------------------------------------------------------------

def test_errors_for_bad_input():
    conv, pool = Conv2d(3, 4, 3), MaxPool2d(2)
    with pytest.raises(ValueError, match=r"Conv2d 3 -> 4.*expected 4-D input \(N, C, H, W\).*\(5, 12\)"):
        conv.forward(np.zeros((5, 12)))
    with pytest.raises(ValueError, match=r"MaxPool2d 2x2.*expected 4-D input \(N, C, H, W\)"):
        pool.forward(np.zeros((5, 12)))
    with pytest.raises(ValueError, match=r"expected 3 input channels.*\(2, 1, 8, 8\)"):
        conv.forward(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"MaxPool2d.*\(1, 3, 1, 8\).*smaller than the 2x2 pooling window"):
        pool.forward(np.zeros((1, 3, 1, 8)))
    with pytest.raises(ValueError, match=r"Conv2d.*\(1, 3, 2, 8\).*smaller than the 5x5 kernel"):
        Conv2d(3, 4, 5, padding=0).forward(np.zeros((1, 3, 2, 8)))
    Conv2d(3, 4, 5).forward(np.zeros((1, 3, 1, 1)))   # padding 2 makes a 1x1 input big enough
    with pytest.raises(TypeError, match="real numbers"):
        conv.forward(np.zeros((1, 3, 4, 4), dtype=complex))
    with pytest.raises(ValueError, match="gradOutput has shape"):
        conv.forward(np.zeros((1, 3, 4, 4)))
        conv.backward(np.zeros((1, 3, 4, 4)), np.zeros((1, 4, 3, 3)))
    pool.forward(np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="does not match the last forward"):
        pool.backward(np.zeros((1, 3, 6, 6)), np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="Flatten.*batch dimension"):
        Flatten().forward(np.zeros(5))


@pytest.mark.parametrize("m", [Conv2d(1, 2, 3), MaxPool2d(2), AvgPool2d(2), Flatten()],
                         ids=repr)
def test_backward_before_forward(m):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        m.backward(np.zeros((1, 1, 4, 4)), np.zeros((1, 2, 4, 4)))


@pytest.mark.parametrize("args,kwargs,name", [
    ((0, 4, 3), {}, "n_in"), ((1, -1, 3), {}, "n_out"), ((1, 4, 0), {}, "kernel_size"),
    ((1, 4, 2.5), {}, "kernel_size"), ((1.0, 4, 3), {}, "n_in"), ((True, 4, 3), {}, "n_in"),
    ((1, 4, "3"), {}, "kernel_size"), ((1, 4, 3), {"stride": 0}, "stride"),
    ((1, 4, 3), {"stride": 1.5}, "stride"), ((1, 4, 3), {"padding": -1}, "padding"),
])
def test_conv2d_constructor_errors(args, kwargs, name):
    with pytest.raises(ValueError, match=rf"Conv2d\(.*{name} must be"):
        Conv2d(*args, **kwargs)


@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d])
@pytest.mark.parametrize("args", [(0,), (-2,), (2.0,), ("2",), (2, 0), (2, -1), (2, 1.5), (True,)])
def test_pool2d_constructor_errors(args, cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\(.*must be a positive integer"):
        cls(*args)


def test_numpy_integer_arguments_accepted():
    m = Conv2d(np.int64(2), np.int32(3), np.int64(3), stride=np.int64(1), padding=np.int64(0))
    assert repr(m) == "Conv2d 2 -> 3, 3x3, stride 1, padding 0"
    assert MaxPool2d(np.int64(2)).stride == 2
    assert AvgPool2d(np.int64(2)).stride == 2


def test_avgpool2d_errors_name_the_module():
    pool = AvgPool2d(2)
    with pytest.raises(ValueError, match=r"AvgPool2d 2x2.*expected 4-D input \(N, C, H, W\)"):
        pool.forward(np.zeros((5, 12)))
    with pytest.raises(ValueError, match=r"AvgPool2d.*\(1, 3, 1, 8\).*smaller than the 2x2"):
        pool.forward(np.zeros((1, 3, 1, 8)))
    pool.forward(np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="does not match the last forward"):
        pool.backward(np.zeros((1, 3, 6, 6)), np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="gradOutput has shape"):
        pool.backward(np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 3, 3)))


def test_avgpool2d_split_batch_equals_one_call():
    # a batch big enough to split over fastnn's threads gives the one-call result
    x = rand(64, 4, 16, 16).astype(np.float32)
    g = rand(64, 4, 8, 8, seed=1).astype(np.float32)
    m = AvgPool2d(2)
    out, gi = m.forward(x).copy(), m.backward(x, g).copy()
    for i in range(0, 64, 16):
        part = AvgPool2d(2)
        np.testing.assert_array_equal(out[i:i + 16], part.forward(x[i:i + 16]))
        np.testing.assert_array_equal(gi[i:i + 16], part.backward(x[i:i + 16], g[i:i + 16]))


# ---- Conv2d + activation, fused in a Sequential -----------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["ReLU", "LeakyReLU", "ELU", "Sigmoid"])
def test_fused_conv_activation_matches_modules_called_one_by_one(act, dtype):
    """Conv2d + activation pairs (the direct 3x3 path, the GEMM path, stride 2) run as
    one fused kernel per phase in a Sequential; outputs, every child's output and
    gradInput and the gradients must equal the modules run one by one, bitwise."""
    import fastnn
    fastnn.manual_seed(5)
    make = getattr(fastnn, act)
    layers = [Conv2d(1, 4, 3), make(), Conv2d(4, 6, 3), make(), MaxPool2d(2),
              Conv2d(6, 3, 3, stride=2), make(), Flatten()]
    net = Sequential(*[copy.deepcopy(m) for m in layers]).type(dtype)
    assert [f for _, f in net._fusion_plan()] == [True, True, False, True, False]
    for m in layers:
        m.type(dtype)
    x = rand(3, 1, 10, 9).astype(dtype)
    out = net.forward(x)
    h = x
    for m in layers:
        h = m.forward(h)
    np.testing.assert_array_equal(out, h)
    g = rand(*out.shape, seed=1).astype(dtype)
    for _ in range(2):  # the second round accumulates
        gi = net.backward(x, g)
        gm = g
        for i in range(len(layers) - 1, -1, -1):
            gm = layers[i].backward(x if i == 0 else layers[i - 1].output, gm)
        np.testing.assert_array_equal(gi, gm)
        for a, b in zip(_leaves(net.getGradParameters()),
                        _leaves([m.getGradParameters() for m in layers])):
            np.testing.assert_array_equal(a, b)
    for mine, ref in zip(net.modules, layers):
        np.testing.assert_array_equal(mine.output, ref.output)
        np.testing.assert_array_equal(mine.gradInput, ref.gradInput)
