"""kernels/cpu/optim.py: one update step against the homework formulas, several steps."""
import numpy as np
import pytest

from fastnn.kernels.cpu import optim as K
from reference import adam_ref, sgd_momentum_ref

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_momentum(dtype, shape, momentum):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(shape).astype(dtype)
    v = np.zeros(shape, dtype)
    p_ref, v_ref = p.astype(np.float64), v.astype(np.float64)
    for _ in range(3):
        g = rng.standard_normal(shape).astype(dtype)
        K.sgd_momentum_update(g, p, v, dtype(0.1), dtype(momentum))
        p_ref, v_ref = sgd_momentum_ref(p_ref, g, v_ref, 0.1, momentum)
        np.testing.assert_allclose(p, p_ref, **TOL[dtype])
        np.testing.assert_allclose(v, v_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4)])
def test_adam(dtype, shape):
    rng = np.random.default_rng(1)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p = rng.standard_normal(shape).astype(dtype)
    m = np.zeros(shape, dtype)
    v = np.zeros(shape, dtype)
    p_ref, m_ref, v_ref = p.astype(np.float64), m.astype(np.float64), v.astype(np.float64)
    for t in range(1, 5):
        g = rng.standard_normal(shape).astype(dtype)
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        K.adam_update(g, p, m, v, dtype(lr_t), dtype(b1), dtype(b2), dtype(eps))
        p_ref, m_ref, v_ref = adam_ref(p_ref, g, m_ref, v_ref, t, lr, b1, b2, eps)
        np.testing.assert_allclose(m, m_ref, **TOL[dtype])
        np.testing.assert_allclose(v, v_ref, **TOL[dtype])
        np.testing.assert_allclose(p, p_ref, **TOL[dtype])
