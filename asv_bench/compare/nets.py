"""The nets, data and training steps both libraries run, and the NumPy GEMM floor."""
import numpy as np

MLP_SIZES = (784, 500, 300, 100, 10)
LR, MOMENTUM = 0.01, 0.9
SEED = 0


def fastnn_mlp():
    import fastnn
    from fastnn import Linear, LogSoftMax, ReLU, Sequential
    fastnn.manual_seed(SEED)
    s = MLP_SIZES
    layers = []
    for i in range(len(s) - 1):
        layers += [Linear(s[i], s[i + 1]), ReLU() if i < len(s) - 2 else LogSoftMax()]
    return Sequential(*layers)


def torch_mlp():
    import torch
    from torch import nn
    torch.manual_seed(SEED)
    s = MLP_SIZES
    layers = []
    for i in range(len(s) - 1):
        layers += [nn.Linear(s[i], s[i + 1]),
                   nn.ReLU() if i < len(s) - 2 else nn.LogSoftmax(dim=1)]
    return nn.Sequential(*layers)


def fastnn_cnn():
    import fastnn
    from fastnn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
    fastnn.manual_seed(SEED)
    return Sequential(Conv2d(1, 32, 3, padding=1), ReLU(), MaxPool2d(2),
                      Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2),
                      Flatten(), Linear(64 * 7 * 7, 128), ReLU(), Linear(128, 10))


def torch_cnn():
    import torch
    from torch import nn
    torch.manual_seed(SEED)
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def fastnn_criterion(kind):
    import fastnn
    return fastnn.ClassNLLCriterion() if kind == "mlp" else fastnn.CrossEntropyCriterion()


def torch_criterion(kind):
    from torch import nn
    return nn.NLLLoss() if kind == "mlp" else nn.CrossEntropyLoss()


def skip_first_grad_input(net, criterion, x, y):
    """Torch7's ``gradInput = nil`` idiom on the first layer: its input gradient is
    never needed, and PyTorch skips it too. Returns whether this fastnn honours it (the
    first layer's ``gradInput`` is still None after a backward)."""
    first = net.modules[0]
    first.gradInput = None
    out = net.forward(x)
    criterion.forward(out, y)
    net.backward(x, criterion.backward(out, y))
    return first.gradInput is None


def fastnn_step_fn(net, criterion, x, y):
    """The plain homework loop, verbatim."""
    from fastnn import sgd_momentum
    config = {"learning_rate": LR, "momentum": MOMENTUM}
    state = {}

    def step():
        net.zeroGradParameters()
        out = net.forward(x)
        criterion.forward(out, y)
        net.backward(x, criterion.backward(out, y))
        sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
    return step


def torch_step_fn(model, loss_fn, x, y):
    """The idiomatic PyTorch step: zero_grad, forward, loss, backward, step."""
    import torch
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
    return step


def gemm_floor_fn(batch, first_grad_input=True):
    """The MLP step's GEMMs alone, in NumPy into preallocated outputs: each layer's
    forward (x W^T), weight gradient (g^T x) and input gradient (g W; the first layer's
    only with ``first_grad_input``). What a step could cost with free elementwise work."""
    r = np.random.default_rng(SEED)
    s = MLP_SIZES
    layers = []
    for i in range(len(s) - 1):
        x = r.random((batch, s[i]), dtype=np.float32)
        w = r.random((s[i + 1], s[i]), dtype=np.float32)
        g = r.random((batch, s[i + 1]), dtype=np.float32)
        layers.append((x, w, g, np.empty((batch, s[i + 1]), np.float32),
                       np.empty_like(w), np.empty_like(x), i > 0 or first_grad_input))
    wt = [w.T for _, w, *_ in layers]
    gt = [g.T for _, _, g, *_ in layers]

    def step():
        for (x, w, g, y, gw, gx, grad_input), w_t, g_t in zip(layers, wt, gt):
            np.matmul(x, w_t, out=y)
            np.matmul(g_t, x, out=gw)
            if grad_input:
                np.matmul(g, w, out=gx)
    return step


def data(batch, shape):
    r = np.random.default_rng(SEED + batch)
    x = r.random((batch,) + shape, dtype=np.float32)
    y = r.integers(0, 10, batch).astype(np.int64)
    return x, y
