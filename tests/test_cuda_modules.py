"""Modules, criterions and optimizers on the GPU (numba CUDA simulator): ``.cuda()`` /
``.cpu()``, device inputs and outputs, the flat parameter buffer on the device, and
small nets trained for 3 steps on both devices, compared step by step (outputs,
losses, gradients, parameters). See tests/cudasim.py for how this file runs.
"""
import copy
import subprocess
import sys

import numpy as np
import pytest

from cudasim import IN_SIMULATOR, SKIP_REASON, small_launch_config, without_simulator_env

if not IN_SIMULATOR:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from numba import cuda  # noqa: E402  (the simulator, since NUMBA_ENABLE_CUDASIM=1)

import fastnn  # noqa: E402
from fastnn import (BatchNormalization, ChannelwiseScaling, ClassNLLCriterion,  # noqa: E402
                    ClassNLLCriterionUnstable, CrossEntropyCriterion, Dropout, Linear,
                    LogSoftMax, MSECriterion, ReLU, Sequential, SoftMax, adam_optimizer,
                    sgd_momentum, to_numpy)
from fastnn.backend import is_cuda_object  # noqa: E402
from fastnn.device_loss import DeviceLoss  # noqa: E402
from fastnn.nested import flatten as flat_list  # noqa: E402

pytestmark = pytest.mark.cudasim

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}


@pytest.fixture(autouse=True)
def _launch_config():
    with small_launch_config() as config:
        yield config


def assert_close(gpu, cpu, dtype, what):
    np.testing.assert_allclose(to_numpy(gpu), cpu, err_msg=what, **TOL[dtype])


# ---- moving modules -----------------------------------------------------------------
def test_cuda_and_cpu_move_parameters_and_return_self():
    fastnn.manual_seed(0)
    m = Linear(5, 4)
    W, b = m.W.copy(), m.b.copy()
    assert fastnn.cuda_available()  # the simulator counts as a device
    assert m.cuda() is m
    assert is_cuda_object(m.W) and is_cuda_object(m.gradW)
    np.testing.assert_array_equal(to_numpy(m.W), W)
    assert m.cpu() is m
    assert isinstance(m.W, np.ndarray) and isinstance(m.gradb, np.ndarray)
    np.testing.assert_array_equal(m.W, W)
    np.testing.assert_array_equal(m.b, b)


def test_gpu_module_takes_numpy_or_device_input_and_returns_device_arrays():
    fastnn.manual_seed(1)
    cpu_net = Sequential(Linear(5, 4), ReLU())
    gpu_net = copy.deepcopy(cpu_net).cuda()
    x = np.random.default_rng(0).standard_normal((3, 5))
    expected = cpu_net.forward(x).copy()
    out = gpu_net.forward(x)  # NumPy float64 input, copied over and cast to float32
    assert is_cuda_object(out) and out.dtype == np.float32
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-6)
    for dev in (cuda.to_device(x), cuda.to_device(x.astype(np.float32))):  # cast on device
        np.testing.assert_allclose(to_numpy(gpu_net.forward(dev)), expected, rtol=1e-6)
    gi = gpu_net.backward(x, cuda.to_device(np.ones((3, 4), np.float32)))
    assert is_cuda_object(gi) and tuple(gi.shape) == (3, 5)
    assert to_numpy(expected) is expected  # NumPy passes through
    with pytest.raises(TypeError, match="GPU array but the module is on the CPU"):
        cpu_net.forward(cuda.to_device(x))


def test_flat_parameter_buffer_lives_on_the_gpu():
    fastnn.manual_seed(2)
    net = Sequential(Linear(5, 4), ReLU(), Linear(4, 3)).cuda()
    params = flat_list(net.getParameters())
    flat = net.flatten_parameters()
    total = sum(int(np.prod(p.shape)) for p in params)
    assert is_cuda_object(flat.params) and flat.params.shape == (total,)
    values = np.arange(total, dtype=np.float32)
    flat.params.copy_to_device(values)  # the leaves' arrays are views of the flat buffer
    off = 0
    for p in flat_list(net.getParameters()):
        n = int(np.prod(p.shape))
        np.testing.assert_array_equal(to_numpy(p), values[off:off + n].reshape(p.shape))
        off += n
    np.testing.assert_array_equal(to_numpy(net.modules[2].b), values[-3:])


# ---- training on both devices --------------------------------------------------------
def mlp():
    return Sequential(Linear(5, 6), ReLU(), Linear(6, 4), LogSoftMax()), ClassNLLCriterion()


def bn_net():
    return (Sequential(Linear(5, 6), ReLU(), BatchNormalization(0.9), ChannelwiseScaling(6),
                       Dropout(0.0), Linear(6, 4)), CrossEntropyCriterion())


OPTIMIZERS = {
    "sgd": (sgd_momentum, {"learning_rate": 0.1, "momentum": 0.9}),
    "adam": (adam_optimizer, {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999,
                              "epsilon": 1e-8}),
}


# (Adam on the BatchNormalization net only in float64: Adam divides by sqrt(v), which
# turns float32 rounding noise in near-zero gradients into visible steps.)
@pytest.mark.parametrize("make,opt,dtype", [
    (mlp, "sgd", np.float32), (mlp, "sgd", np.float64), (mlp, "adam", np.float32),
    (mlp, "adam", np.float64), (bn_net, "sgd", np.float32), (bn_net, "sgd", np.float64),
    (bn_net, "adam", np.float64),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_training_matches_cpu(make, opt, dtype):
    fastnn.manual_seed(3)
    cpu_net, cpu_crit = make()
    cpu_net.type(dtype)
    gpu_net = copy.deepcopy(cpu_net).cuda()
    gpu_crit = copy.deepcopy(cpu_crit)
    rule, config = OPTIMIZERS[opt]
    cpu_state, gpu_state = {}, {}
    rng = np.random.default_rng(4)
    gpu_params = flat_list(gpu_net.getParameters())
    for step in range(3):
        x = rng.standard_normal((3, 5))
        y = rng.integers(0, 4, 3)
        results = []
        for net, crit, state in ((cpu_net, cpu_crit, cpu_state), (gpu_net, gpu_crit, gpu_state)):
            net.zeroGradParameters()
            out = net.forward(x)
            loss = crit.forward(out, y)
            gi = net.backward(x, crit.backward(out, y))
            grads = [to_numpy(g).copy() for g in flat_list(net.getGradParameters())]
            rule(net.getParameters(), net.getGradParameters(), config, state)
            params = [to_numpy(p).copy() for p in flat_list(net.getParameters())]
            results.append((to_numpy(out).copy(), loss, to_numpy(gi).copy(), grads, params))
        (oc, lc, gic, gc, pc), (og, lg, gig, gg, pg) = results
        where = f"step {step}"
        assert is_cuda_object(gpu_net.output)
        assert_close(og, oc, dtype, f"{where}: output")
        np.testing.assert_allclose(lg, lc, err_msg=f"{where}: loss", **TOL[dtype])
        assert_close(gig, gic, dtype, f"{where}: gradInput")
        for i, (a, b) in enumerate(zip(gg, gc)):
            assert_close(a, b, dtype, f"{where}: gradient #{i}")
        for i, (a, b) in enumerate(zip(pg, pc)):
            assert_close(a, b, dtype, f"{where}: parameter #{i}")
    # both took the fused flat-buffer path: one kernel over the whole net per step
    assert "_fused" in cpu_state and "_fused" in gpu_state
    # the optimizer updated the device arrays in place, with its state on the device
    assert all(a is b for a, b in zip(flat_list(gpu_net.getParameters()), gpu_params))
    assert all(is_cuda_object(v) for key in ("accumulated_grads", "m", "v")
               for v in gpu_state.get(key, {}).values())
    for cm, gm in zip(cpu_net.modules, gpu_net.modules):
        for name in cm.state_names:  # BatchNormalization's moving statistics
            assert_close(getattr(gm, name), getattr(cm, name), dtype, name)
    gpu_net.cpu()
    for a, b in zip(flat_list(gpu_net.getParameters()), flat_list(cpu_net.getParameters())):
        assert_close(a, b, dtype, "after .cpu()")


@pytest.mark.parametrize("pool", ["MaxPool2d", "AvgPool2d"])
def test_small_cnn_matches_cpu(pool):
    from fastnn import Conv2d, Flatten
    fastnn.manual_seed(7)
    cpu_net = Sequential(Conv2d(1, 2, 3), ReLU(), getattr(fastnn, pool)(2), Flatten(),
                         Linear(18, 3)).double()
    gpu_net = copy.deepcopy(cpu_net).cuda()
    x = np.random.default_rng(8).standard_normal((2, 1, 6, 6))
    y = np.array([0, 2])
    config = {"learning_rate": 0.1, "momentum": 0.9}
    states = {}, {}
    for step in range(2):
        for net, state in zip((cpu_net, gpu_net), states):
            crit = CrossEntropyCriterion()
            net.zeroGradParameters()
            out = net.forward(x)
            crit.forward(out, y)
            net.backward(x, crit.backward(out, y))
            sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
        assert_close(gpu_net.output, cpu_net.output, np.float64, f"step {step}: output")
        assert_close(gpu_net.gradInput, cpu_net.gradInput, np.float64, f"step {step}: gradInput")
        for i, (a, b) in enumerate(zip(flat_list(gpu_net.getParameters()),
                                       flat_list(cpu_net.getParameters()))):
            assert_close(a, b, np.float64, f"step {step}: parameter #{i}")


# ---- criterions on device arrays ----------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_criterions_on_device_arrays(dtype):
    rng = np.random.default_rng(5)
    n, c = 6, 4
    scores = rng.standard_normal((n, c)).astype(dtype)
    probs = SoftMax().type(dtype).forward(scores).copy()
    logp = np.log(probs)
    labels = rng.integers(0, c, n)
    onehot = np.eye(c, dtype=dtype)[labels]
    cases = [
        (MSECriterion, scores, rng.standard_normal((n, c)).astype(dtype)),
        (ClassNLLCriterion, logp, labels),
        (ClassNLLCriterion, probs, labels),
        (ClassNLLCriterion, logp, onehot),
        (ClassNLLCriterionUnstable, probs, labels),
        (CrossEntropyCriterion, scores, labels),
        (CrossEntropyCriterion, scores, onehot),
    ]
    for make, x, t in cases:
        what = f"{make.__name__} on {x is scores and 'scores' or 'probabilities'}, " \
               f"target {t.shape}"
        cpu, gpu = make(), make()
        loss_c = cpu.forward(x, t)
        gi_c = cpu.backward(x, t).copy()
        x_dev = cuda.to_device(x)
        for target in (t, cuda.to_device(t)):  # host or device targets
            loss_g = gpu.forward(x_dev, target)
            gi_g = gpu.backward(x_dev, target)
            # the loss stays on the device until read (tests/test_cuda_steps.py)
            assert isinstance(loss_g, DeviceLoss) and is_cuda_object(gi_g), what
            np.testing.assert_allclose(float(loss_g), loss_c, err_msg=what, **TOL[dtype])
            assert_close(gi_g, gi_c, dtype, what)
    with pytest.raises(ValueError, match="raw scores"):  # checked on the device, raised at read
        float(ClassNLLCriterion().forward(cuda.to_device(scores), labels))


def test_optimizer_state_dict_comes_back_to_the_host():
    fastnn.manual_seed(6)
    net = Sequential(Linear(3, 2)).cuda()
    opt = fastnn.optim.SGD(net, learning_rate=0.1, momentum=0.9)
    x = np.ones((2, 3))
    net.forward(x)
    net.backward(x, np.ones((2, 2)))
    opt.step()
    sd = opt.state_dict()
    assert all(isinstance(a, np.ndarray) for a in sd["accumulated_grads"].values())
    opt2 = fastnn.optim.SGD(net, learning_rate=0.1, momentum=0.9)
    opt2.load_state_dict(sd)
    opt2.step()  # host state from a checkpoint moves to the device
    assert all(is_cuda_object(a) for a in opt2.state["accumulated_grads"].values())


# ---- without a GPU ----------------------------------------------------------------------
NO_GPU_SCRIPT = r"""
import sys
import fastnn
import fastnn.kernels.cuda
assert "numba.cuda" not in sys.modules, "import fastnn must not import numba.cuda"
if fastnn.cuda_available():
    print("HAS_GPU")
    sys.exit(0)
for family in ("activation", "affine", "batchnorm", "blas", "conv", "dropout", "elementwise",
               "optim", "pool", "scaling", "softmax_nll"):
    __import__("fastnn.kernels.cuda." + family)  # importable without a GPU
try:
    fastnn.Linear(2, 2).cuda()
except RuntimeError as e:
    print("ERROR:", e)
"""


def test_cuda_without_gpu_or_simulator_raises_a_clear_error():
    proc = subprocess.run([sys.executable, "-c", NO_GPU_SCRIPT], env=without_simulator_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if "HAS_GPU" in proc.stdout:
        pytest.skip("this machine has a GPU")
    assert "ERROR:" in proc.stdout, proc.stdout
    assert "NUMBA_ENABLE_CUDASIM" in proc.stdout and "GPU" in proc.stdout
