"""state_dict / load_state_dict, to_torch and ONNX export of a net on the GPU (numba CUDA
simulator; see tests/cudasim.py for how this file runs)."""
import numpy as np
import pytest

from cudasim import IN_SIMULATOR, SKIP_REASON, small_launch_config

if not IN_SIMULATOR:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import fastnn as nn  # noqa: E402
from fastnn.backend import is_cuda_object  # noqa: E402

pytestmark = pytest.mark.cudasim


@pytest.fixture(autouse=True)
def _launch_config():
    with small_launch_config() as config:
        yield config


def bn_net(seed):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNormalization(0.5), nn.ChannelwiseScaling(4),
                         nn.Tanh(), nn.Linear(4, 3), nn.LogSoftMax())


def test_state_dict_round_trip_through_the_device():
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    cpu = bn_net(1)
    cpu.forward(x)
    gpu = bn_net(2).cuda()
    gpu.forward(x)
    flat = gpu.flatten_parameters().params
    gpu.load_state_dict(cpu.state_dict())
    assert is_cuda_object(gpu.modules[0].W)
    sd = gpu.state_dict()
    assert all(type(v) is np.ndarray for v in sd.values())
    for k, v in cpu.state_dict().items():
        np.testing.assert_array_equal(sd[k], v, err_msg=k)
    assert gpu.flatten_parameters().params is flat  # copied into the device buffer
    cpu.evaluate(), gpu.evaluate()
    np.testing.assert_allclose(nn.to_numpy(gpu.forward(x)), cpu.forward(x), rtol=1e-5,
                               atol=1e-6)


def test_lazy_moving_statistics_are_created_on_the_device():
    x = np.ones((4, 5), np.float32)
    cpu = bn_net(1)
    cpu.forward(x)
    gpu = bn_net(1).cuda()
    gpu.load_state_dict(cpu.state_dict())
    assert is_cuda_object(gpu.modules[1].moving_mean)
    np.testing.assert_array_equal(nn.to_numpy(gpu.modules[1].moving_variance),
                                  cpu.modules[1].moving_variance)


def test_to_torch_and_onnx_from_a_device_net(tmp_path):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    gpu = bn_net(3).cuda()
    gpu.forward(x)
    gpu.evaluate()
    expected = nn.to_numpy(gpu.forward(x))
    tnet = nn.to_torch(gpu)
    with torch.no_grad():
        np.testing.assert_allclose(tnet(torch.from_numpy(x)).numpy(), expected, rtol=1e-5,
                                   atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    path = nn.onnx.export(gpu, tmp_path / "gpu.onnx", x)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-5)
