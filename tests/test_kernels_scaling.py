"""kernels/cpu/scaling.py (ChannelwiseScaling) on (N, C, S) views."""
import numpy as np
import pytest

from fastnn.kernels.cpu import scaling as K
from reference import scaling_backward_input_ref, scaling_backward_params_ref, scaling_forward_ref

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


def as3(x):
    return x.reshape(x.shape[0], x.shape[1], -1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (7, 3), (1, 2, 3, 3), (3, 4, 5, 2)])
def test_forward_backward(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    gamma = rng.standard_normal(shape[1]).astype(dtype)
    beta = rng.standard_normal(shape[1]).astype(dtype)
    out = np.full(shape, np.nan, dtype)
    K.channelwise_scaling_forward(as3(x), as3(out), gamma, beta)
    np.testing.assert_allclose(out, scaling_forward_ref(x, gamma, beta), **TOL[dtype])
    gi = np.full(shape, np.nan, dtype)
    K.channelwise_scaling_backward_input(as3(g), as3(gi), gamma)
    np.testing.assert_allclose(gi, scaling_backward_input_ref(g, gamma), **TOL[dtype])
    gg = np.full(shape[1], np.nan, dtype)
    gb = np.full(shape[1], np.nan, dtype)
    K.channelwise_scaling_backward_params(as3(x), as3(g), gg, gb, False)
    ref_gg, ref_gb = scaling_backward_params_ref(x, g)
    np.testing.assert_allclose(gg, ref_gg, **TOL[dtype])
    np.testing.assert_allclose(gb, ref_gb, **TOL[dtype])
    K.channelwise_scaling_backward_params(as3(x), as3(g), gg, gb, True)
    np.testing.assert_allclose(gg, 2 * ref_gg, **TOL[dtype])
    np.testing.assert_allclose(gb, 2 * ref_gb, **TOL[dtype])
