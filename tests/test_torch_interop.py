"""fastnn.from_torch / fastnn.to_torch: round trips agree within 1e-5 (float32) in eval
mode and in train mode where it is deterministic (no dropout)."""
import subprocess
import sys
from functools import partial

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tnn = torch.nn

import fastnn as nn  # noqa: E402
from conftest import rand as _normal  # noqa: E402
from fastnn import UnsupportedLayerError, from_torch, to_torch  # noqa: E402

TOL = dict(rtol=1e-5, atol=1e-5)

rand = partial(_normal, dtype=np.float32)  # these tests run float32 nets


def torch_out(tnet, x):
    with torch.no_grad():
        return tnet(torch.from_numpy(x)).numpy()


def torch_mlp(dropout=0.0):
    torch.manual_seed(0)
    return tnn.Sequential(tnn.Linear(20, 32), tnn.ReLU(), tnn.Dropout(dropout),
                          tnn.Linear(32, 16), tnn.Tanh(), tnn.Linear(16, 5), tnn.LogSoftmax(dim=1))


def torch_cnn():
    torch.manual_seed(1)
    return tnn.Sequential(tnn.Conv2d(1, 4, 3, padding="same"), tnn.BatchNorm2d(4), tnn.ReLU(),
                          tnn.MaxPool2d(2), tnn.Conv2d(4, 6, 3, padding=1), tnn.ELU(0.7),
                          tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(6 * 3 * 3, 10),
                          tnn.Softmax(dim=1))


def torch_bn_all_activations():
    torch.manual_seed(2)
    return tnn.Sequential(tnn.Linear(8, 12), tnn.BatchNorm1d(12, momentum=0.2, eps=1e-4),
                          tnn.LeakyReLU(0.1), tnn.Linear(12, 12), tnn.BatchNorm1d(12, affine=False),
                          tnn.Softplus(), tnn.Linear(12, 12), tnn.Sigmoid(),
                          tnn.Sequential(tnn.Linear(12, 6), tnn.Tanh()), tnn.Linear(6, 4),
                          tnn.ReLU(), tnn.Dropout(0.3), tnn.Linear(4, 3), tnn.LogSoftmax(dim=1))


def perturb_bn_stats(tnet):
    """Non-trivial moving statistics and affine parameters."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in tnet.modules():
            if isinstance(m, (tnn.BatchNorm1d, tnn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return tnet


CASES = [("mlp", torch_mlp, (16, 20)), ("cnn", torch_cnn, (5, 1, 12, 12)),
         ("bn", torch_bn_all_activations, (16, 8))]


@pytest.mark.parametrize("name,build,shape", CASES, ids=[c[0] for c in CASES])
def test_eval_outputs_agree_both_ways(name, build, shape):
    tnet = perturb_bn_stats(build()).eval()
    x = rand(*shape)
    net = from_torch(tnet)
    assert not net.training and all(not m.training for m in net.modules)
    np.testing.assert_allclose(net.forward(x), torch_out(tnet, x), **TOL)
    back = to_torch(net)
    assert not back.training
    np.testing.assert_allclose(torch_out(back, x), torch_out(tnet, x), **TOL)
    # the torch net rebuilt from fastnn has torch's own keys and values
    ref = {k: v for k, v in tnet.state_dict().items() if "num_batches" not in k}
    got = {k: v for k, v in back.state_dict().items() if "num_batches" not in k}
    assert list(got) == list(ref)
    for k in ref:
        np.testing.assert_array_equal(got[k].numpy(), ref[k].numpy(), err_msg=k)


@pytest.mark.parametrize("name,build,shape", CASES, ids=[c[0] for c in CASES])
def test_train_mode_outputs_agree_without_dropout(name, build, shape):
    tnet = build()
    for m in tnet.modules():
        if isinstance(m, tnn.Dropout):
            m.p = 0.0
    tnet = perturb_bn_stats(tnet).train()
    net = from_torch(tnet)
    assert net.training
    tbn = [m for m in tnet.modules() if isinstance(m, (tnn.BatchNorm1d, tnn.BatchNorm2d))]
    initial = [t.running_var.clone().numpy() for t in tbn]
    seen = []
    hooks = [t.register_forward_pre_hook(lambda m, i: seen.append(i[0].detach().numpy().copy()))
             for t in tbn]
    x = rand(*shape, seed=3)
    expected = torch_out(tnet, x)
    for h in hooks:
        h.remove()
    np.testing.assert_allclose(net.forward(x), expected, **TOL)
    # one step of moving statistics: the means agree; torch's variances take the
    # unbiased batch variance (n/(n-1)), fastnn's (Torch7's) the biased one
    fbn = [m for m in net.leaves() if type(m) is nn.BatchNormalization]
    assert len(fbn) == len(tbn) == len(seen) > 0 or name == "mlp"
    for f, t, v0, inp in zip(fbn, tbn, initial, seen):
        axes = (0, 2, 3) if inp.ndim == 4 else (0,)
        mom = t.momentum
        np.testing.assert_allclose(f.moving_mean, t.running_mean.numpy(), **TOL)
        np.testing.assert_allclose(f.moving_variance,
                                   (1 - mom) * v0 + mom * inp.var(axis=axes), **TOL)
        np.testing.assert_allclose(t.running_var.numpy(),
                                   (1 - mom) * v0 + mom * inp.var(axis=axes, ddof=1), **TOL)
    # and back: torch built from fastnn gives the same train-mode output
    tback = to_torch(net)
    assert tback.training
    np.testing.assert_allclose(torch_out(tback, x), net.forward(x), **TOL)


def test_fastnn_first_round_trip_keeps_the_state_dict():
    nn.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNormalization(0.9), nn.ChannelwiseScaling(3),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 4 * 4, 4),
                        nn.BatchNormalization(0.8), nn.LogSoftMax())
    x = rand(6, 2, 8, 8)
    net.forward(x)  # moving statistics exist now
    net.evaluate()
    tnet = to_torch(net)
    assert isinstance(tnet[1], tnn.BatchNorm2d) and tnet[1].affine
    assert isinstance(tnet[6], tnn.BatchNorm1d) and not tnet[6].affine
    assert tnet[1].momentum == pytest.approx(0.1) and tnet[1].eps == nn.BatchNormalization.EPS
    again = from_torch(tnet)
    a, b = net.state_dict(), again.state_dict()
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert [m.alpha for m in again.modules if type(m) is nn.BatchNormalization] == [0.9, 0.8]
    np.testing.assert_allclose(again.forward(x), net.forward(x), **TOL)


def test_float64_is_kept_exactly():
    tnet = torch_mlp().double().eval()
    net = from_torch(tnet)
    assert net.modules[0].W.dtype == np.float64
    np.testing.assert_array_equal(net.modules[0].W, tnet[0].weight.detach().numpy())
    back = to_torch(net)
    assert back[0].weight.dtype == torch.float64
    np.testing.assert_array_equal(back[0].weight.detach().numpy(), net.modules[0].W)


def test_bias_free_layers_get_zero_bias():
    tnet = tnn.Sequential(tnn.Conv2d(1, 2, 3, padding=1, bias=False), tnn.Flatten(),
                          tnn.Linear(8, 2, bias=False)).eval()
    net = from_torch(tnet)
    np.testing.assert_array_equal(net.modules[0].b, 0)
    np.testing.assert_array_equal(net.modules[2].b, 0)
    x = rand(3, 1, 2, 2)
    np.testing.assert_allclose(net.forward(x), torch_out(tnet, x), **TOL)


@pytest.mark.parametrize("layer,needle", [
    (tnn.GRU(2, 3), "GRU"),
    (tnn.Conv2d(1, 2, 3, dilation=2), "dilation"),
    (tnn.MaxPool2d(2, ceil_mode=True), "ceil"),
    (tnn.BatchNorm1d(3, momentum=None), "momentum"),
    (tnn.Softplus(beta=2), "beta=1"),
    (tnn.Conv2d(1, 2, (3, 5)), "square kernel_size"),
])
def test_unsupported_torch_layers_are_named(layer, needle):
    with pytest.raises(UnsupportedLayerError, match=needle):
        from_torch(tnn.Sequential(tnn.Linear(2, 2), layer))


def test_unsupported_fastnn_layers_are_named():
    with pytest.raises(UnsupportedLayerError, match="BatchMeanSubtraction"):
        to_torch(nn.Sequential(nn.Linear(2, 2), nn.BatchMeanSubtraction()))
    with pytest.raises(UnsupportedLayerError, match="ChannelwiseScaling 2.*affine BatchNorm"):
        to_torch(nn.Sequential(nn.Linear(2, 2), nn.ChannelwiseScaling(2)))


def test_importing_fastnn_does_not_import_torch_or_onnx():
    code = ("import sys, fastnn; fastnn.Sequential(); "
            "assert 'torch' not in sys.modules and 'onnx' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
