"""Parity with PyTorch (CPU, float64): forward, gradInput and parameter gradients of the
modules and criterions, and optimizer trajectories."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastnn  # noqa: E402
from conftest import rand  # noqa: E402
from fastnn import (ELU, BatchNormalization, ClassNLLCriterion, CrossEntropyCriterion,  # noqa: E402
                    Dropout, LeakyReLU, Linear, LogSoftMax, MSECriterion, ReLU, Sequential,
                    Sigmoid, SoftMax, SoftPlus, Tanh, adam_optimizer, sgd_momentum)

TOL = dict(rtol=1e-10, atol=1e-12)


def torch_grad(fn, x, g):
    """(output, gradInput) of a torch function at x, backpropagating g."""
    xt = torch.tensor(x, requires_grad=True)
    out = fn(xt)
    out.backward(torch.tensor(g))
    return out.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("n", [1, 7])
def test_linear(n):
    fastnn.manual_seed(0)
    m = Linear(5, 3).double()
    tm = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(m.W))
        tm.bias.copy_(torch.tensor(m.b))
    x, g = rand(n, 5), rand(n, 3, seed=1)
    out_t, gi_t = torch_grad(tm, x, g)
    np.testing.assert_allclose(m.forward(x), out_t, **TOL)
    m.zeroGradParameters()
    np.testing.assert_allclose(m.backward(x, g), gi_t, **TOL)
    np.testing.assert_allclose(m.gradW, tm.weight.grad.numpy(), **TOL)
    np.testing.assert_allclose(m.gradb, tm.bias.grad.numpy(), **TOL)


ACTIVATIONS = [(ReLU, torch.nn.ReLU), (lambda: LeakyReLU(0.1), lambda: torch.nn.LeakyReLU(0.1)),
               (lambda: ELU(0.7), lambda: torch.nn.ELU(0.7)), (SoftPlus, torch.nn.Softplus),
               (Sigmoid, torch.nn.Sigmoid), (Tanh, torch.nn.Tanh),
               (SoftMax, lambda: torch.nn.Softmax(dim=1)),
               (LogSoftMax, lambda: torch.nn.LogSoftmax(dim=1))]


@pytest.mark.parametrize("ours,theirs", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1, 4), (6, 5)])
def test_activations(ours, theirs, shape):
    x, g = rand(*shape, scale=3), rand(*shape, seed=1)
    x[np.abs(x) < 1e-3] = 0.5  # torch and we agree on kinks, but keep it unambiguous
    m = ours().double()
    out_t, gi_t = torch_grad(theirs(), x, g)
    np.testing.assert_allclose(m.forward(x), out_t, **TOL)
    np.testing.assert_allclose(m.backward(x, g), gi_t, **TOL)


@pytest.mark.parametrize("shape", [(8, 3), (2, 4), (5, 3, 2, 2)])
def test_batchnorm_train_and_eval(shape):
    alpha = 0.9
    m = BatchNormalization(alpha).double()
    c = shape[1]
    cls = torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d
    tm = cls(c, affine=False, eps=1e-3, momentum=1 - alpha).double()
    count = shape[0] * (shape[2] * shape[3] if len(shape) == 4 else 1)
    mv_ref, tv_ref = np.ones(c), np.ones(c)
    for step in range(3):
        x, g = rand(*shape, seed=step, scale=2) + step, rand(*shape, seed=10 + step)
        tm.train()
        out_t, gi_t = torch_grad(tm, x, g)
        np.testing.assert_allclose(m.forward(x), out_t, **TOL)
        np.testing.assert_allclose(m.backward(x, g), gi_t, **TOL)
        np.testing.assert_allclose(m.moving_mean, tm.running_mean.numpy(), **TOL)
        # torch's running_var uses the unbiased batch variance; the homework's moving
        # variance uses the biased one (np.var): same rule otherwise.
        var_biased = x.var(axis=(0,) if len(shape) == 2 else (0, 2, 3))
        tv_ref = alpha * tv_ref + (1 - alpha) * var_biased * count / (count - 1)
        np.testing.assert_allclose(tm.running_var.numpy(), tv_ref, **TOL)
        mv_ref = alpha * mv_ref + (1 - alpha) * var_biased
        np.testing.assert_allclose(m.moving_variance, mv_ref, **TOL)
    # evaluate mode: same moving statistics -> same output and gradient
    with torch.no_grad():
        tm.running_var.copy_(torch.tensor(np.array(m.moving_variance)))
    m.evaluate()
    tm.eval()
    x, g = rand(*shape, seed=50), rand(*shape, seed=51)
    out_t, gi_t = torch_grad(tm, x, g)
    np.testing.assert_allclose(m.forward(x), out_t, **TOL)
    np.testing.assert_allclose(m.backward(x, g), gi_t, **TOL)


def test_dropout_p0_is_identity_like_torch():
    x, g = rand(4, 5), rand(4, 5, seed=1)
    m = Dropout(0.0).double()
    out_t, gi_t = torch_grad(torch.nn.Dropout(0.0), x, g)
    np.testing.assert_array_equal(m.forward(x), out_t)
    np.testing.assert_array_equal(m.backward(x, g), gi_t)


def crit_parity(ours, theirs, x, target_ours, target_torch):
    xt = torch.tensor(x, requires_grad=True)
    loss_t = theirs(xt, target_torch)
    loss_t.backward()
    c = ours()
    np.testing.assert_allclose(c.forward(x, target_ours), loss_t.item(), **TOL)
    np.testing.assert_allclose(c.backward(x, target_ours), xt.grad.numpy(), **TOL)


@pytest.mark.parametrize("n,k", [(1, 3), (9, 5)])
def test_cross_entropy(n, k):
    x = rand(n, k, scale=3)
    y = np.random.default_rng(1).integers(0, k, n)
    crit_parity(CrossEntropyCriterion, torch.nn.CrossEntropyLoss(), x, y, torch.tensor(y))
    soft = np.random.default_rng(2).dirichlet(np.ones(k), n)
    crit_parity(CrossEntropyCriterion, torch.nn.CrossEntropyLoss(), x, soft, torch.tensor(soft))


@pytest.mark.parametrize("n,k", [(1, 3), (9, 5)])
def test_class_nll(n, k):
    x = torch.log_softmax(torch.tensor(rand(n, k, scale=3)), 1).numpy()
    y = np.random.default_rng(1).integers(0, k, n)
    crit_parity(ClassNLLCriterion, torch.nn.NLLLoss(), x, y, torch.tensor(y))


@pytest.mark.parametrize("shape", [(1, 3), (6, 4)])
def test_mse(shape):
    x, t = rand(*shape), rand(*shape, seed=1)
    n = shape[0]
    crit_parity(MSECriterion, lambda a, b: torch.nn.MSELoss(reduction="sum")(a, b) / n, x, t,
                torch.tensor(t))


def test_small_network_end_to_end():
    fastnn.manual_seed(1)
    net = Sequential(Linear(6, 8), ReLU(), Linear(8, 8), Tanh(), Linear(8, 4), LogSoftMax())
    net.double()
    layers = [net[0], net[2], net[4]]
    tnet = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
                               torch.nn.Tanh(), torch.nn.Linear(8, 4),
                               torch.nn.LogSoftmax(dim=1)).double()
    tl = [tnet[0], tnet[2], tnet[4]]
    with torch.no_grad():
        for a, b in zip(layers, tl):
            b.weight.copy_(torch.tensor(a.W))
            b.bias.copy_(torch.tensor(a.b))
    x, y = rand(10, 6), np.random.default_rng(3).integers(0, 4, 10)
    crit = ClassNLLCriterion()
    out = net.forward(x)
    loss = crit.forward(out, y)
    net.zeroGradParameters()
    net.backward(x, crit.backward(out, y))
    xt = torch.tensor(x, requires_grad=True)
    loss_t = torch.nn.NLLLoss()(tnet(xt), torch.tensor(y))
    loss_t.backward()
    np.testing.assert_allclose(loss, loss_t.item(), **TOL)
    np.testing.assert_allclose(net.gradInput, xt.grad.numpy(), **TOL)
    for a, b in zip(layers, tl):
        np.testing.assert_allclose(a.gradW, b.weight.grad.numpy(), **TOL)
        np.testing.assert_allclose(a.gradb, b.bias.grad.numpy(), **TOL)


# ---- optimizers: 5 steps on a quadratic, gradients at the current parameters -----------------
A = np.random.default_rng(7).standard_normal((6, 4))
B = np.random.default_rng(8).standard_normal(6)


def quad_grad(p):
    return A.T @ (A @ p - B)


def torch_trajectory(opt_cls, steps, **kw):
    p = torch.tensor(np.linspace(-1, 1, 4), requires_grad=True)
    opt = opt_cls([p], **kw)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * ((torch.tensor(A) @ p - torch.tensor(B)) ** 2).sum()
        loss.backward()
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def test_sgd_momentum_matches_torch():
    """Homework v accumulates lr * g; with a constant lr the trajectory equals torch's."""
    ref = torch_trajectory(torch.optim.SGD, 5, lr=0.05, momentum=0.9)
    p = np.linspace(-1, 1, 4)
    state = {}
    for k in range(5):
        sgd_momentum([p], [quad_grad(p)], {"learning_rate": 0.05, "momentum": 0.9}, state)
        np.testing.assert_allclose(p, ref[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("eps,atol", [(1e-8, 1e-7), (1e-14, 1e-12)])
def test_adam_matches_torch(eps, atol):
    """The homework folds the bias correction into lr_t, which moves epsilon by a factor
    1/sqrt(1 - beta2^t) relative to torch: differences scale with eps (tiny eps: exact)."""
    ref = torch_trajectory(torch.optim.Adam, 5, lr=0.01, betas=(0.9, 0.999), eps=eps)
    p = np.linspace(-1, 1, 4)
    state = {}
    cfg = {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": eps}
    for k in range(5):
        adam_optimizer([p], [quad_grad(p)], cfg, state)
        np.testing.assert_allclose(p, ref[k], rtol=0, atol=atol)
