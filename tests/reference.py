"""Plain-NumPy references for the kernels (slow, obviously correct)."""


def affine_warp_reference(images, params):
    """Plain-NumPy twin of ``affine_warp``: bilinear sampling of each (H, W) image at
    (x, y) = (p0 j + p1 i + p2, p3 j + p4 i + p5), reading 0 outside the image."""
    import numpy as np

    images = np.asarray(images, dtype=np.float64)
    n, height, width = images.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    out = np.zeros((n, height, width))
    for k in range(n):
        p = np.asarray(params[k], dtype=np.float64)
        x = p[0] * cols + p[1] * rows + p[2]
        y = p[3] * cols + p[4] * rows + p[5]
        x0 = np.floor(x).astype(np.int64)
        y0 = np.floor(y).astype(np.int64)
        wx = x - x0
        wy = y - y0
        padded = np.pad(images[k], 1)  # zero border: taps outside read 0
        total = np.zeros((height, width))
        for dy, weight_y in ((0, 1.0 - wy), (1, wy)):
            for dx, weight_x in ((0, 1.0 - wx), (1, wx)):
                yy = np.clip(y0 + dy + 1, 0, height + 1)
                xx = np.clip(x0 + dx + 1, 0, width + 1)
                total += weight_y * weight_x * padded[yy, xx]
        out[k] = total
    return out


# ---- convolution and pooling (NCHW, square kernels) -------------------------------

def conv2d_output_size(size, kernel_size, stride, padding):
    return (size + 2 * padding - kernel_size) // stride + 1


def conv2d_forward_reference(input, weight, bias, stride, padding):
    """output[n, f, oh, ow] = bias[f] + sum(window(n, oh, ow) * weight[f]), one
    window at a time over the zero-padded input, in float64."""
    import numpy as np

    x = np.pad(np.asarray(input, np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    w = np.asarray(weight, np.float64)
    n, _, h, wd = input.shape
    f, _, k, _ = w.shape
    ho = conv2d_output_size(h, k, stride, padding)
    wo = conv2d_output_size(wd, k, stride, padding)
    out = np.zeros((n, f, ho, wo))
    for b in range(n):
        for o in range(f):
            for i in range(ho):
                for j in range(wo):
                    window = x[b, :, i * stride:i * stride + k, j * stride:j * stride + k]
                    out[b, o, i, j] = np.sum(window * w[o]) + bias[o]
    return out


def conv2d_backward_reference(input, weight, gradOutput, stride, padding):
    """(gradInput, gradWeight, gradBias) of conv2d_forward_reference for the loss
    sum(output * gradOutput): each output pixel sends gradOutput * weight back into
    its window and gradOutput * window into the weight gradient."""
    import numpy as np

    x = np.pad(np.asarray(input, np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    w = np.asarray(weight, np.float64)
    g = np.asarray(gradOutput, np.float64)
    n, _, h, wd = input.shape
    f, _, k, _ = w.shape
    gx = np.zeros_like(x)
    gw = np.zeros_like(w)
    for b in range(n):
        for o in range(f):
            for i in range(g.shape[2]):
                for j in range(g.shape[3]):
                    rows = slice(i * stride, i * stride + k)
                    cols = slice(j * stride, j * stride + k)
                    gx[b, :, rows, cols] += g[b, o, i, j] * w[o]
                    gw[o] += g[b, o, i, j] * x[b, :, rows, cols]
    gi = gx[:, :, padding:padding + h, padding:padding + wd]
    return gi, gw, g.sum(axis=(0, 2, 3))


def maxpool2d_forward_reference(input, kernel_size, stride):
    """(output, indices): max over each window (floor output size, no padding) and
    the flat index i * W + j of the arg-max in the (H, W) plane. Ties go to the
    first element in row-major window order; NaN counts as the maximum (the last
    NaN in the window wins, as in torch's CPU kernel)."""
    import math

    import numpy as np

    x = np.asarray(input, np.float64)
    n, c, h, w = x.shape
    ho = (h - kernel_size) // stride + 1
    wo = (w - kernel_size) // stride + 1
    out = np.zeros((n, c, ho, wo))
    idx = np.zeros((n, c, ho, wo), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, arg = -math.inf, i * stride * w + j * stride
                    for di in range(kernel_size):
                        for dj in range(kernel_size):
                            r, s = i * stride + di, j * stride + dj
                            v = x[b, ch, r, s]
                            if v > best or math.isnan(v):
                                best, arg = v, r * w + s
                    out[b, ch, i, j] = best
                    idx[b, ch, i, j] = arg
    return out, idx


def maxpool2d_backward_reference(gradOutput, indices, input_shape):
    """gradInput: each gradOutput value added to its window's arg-max element."""
    import numpy as np

    n, c, h, w = input_shape
    gi = np.zeros((n, c, h * w))
    g = np.asarray(gradOutput, np.float64)
    for b in range(n):
        for ch in range(c):
            for i in range(g.shape[2]):
                for j in range(g.shape[3]):
                    gi[b, ch, indices[b, ch, i, j]] += g[b, ch, i, j]
    return gi.reshape(input_shape)


def avgpool2d_forward_reference(input, kernel_size, stride):
    """Mean over each k x k window (floor output size, no padding), in float64."""
    import numpy as np

    x = np.asarray(input, np.float64)
    n, c, h, w = x.shape
    k = kernel_size
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, i * stride:i * stride + k, j * stride:j * stride + k] \
                .mean(axis=(2, 3))
    return out


def avgpool2d_backward_reference(gradOutput, input_shape, kernel_size, stride):
    """gradInput: each gradOutput value spread evenly over its window."""
    import numpy as np

    g = np.asarray(gradOutput, np.float64)
    k = kernel_size
    gi = np.zeros(input_shape)
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            gi[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += \
                g[:, :, i, j][:, :, None, None] / (k * k)
    return gi


# ---------------------------------------------------------------------------
# Core library references (float64, plain NumPy, written from the formulas).
# ---------------------------------------------------------------------------
import numpy as _np


def _f64(a):
    return _np.asarray(a, dtype=_np.float64)


# ---- GEMM: alpha * op(a) @ op(b) + beta * c (beta == 0 ignores c, NaN included) ----
def gemm_ref(trans_a, trans_b, alpha, a, b, beta, c):
    a = _f64(a).T if trans_a else _f64(a)
    b = _f64(b).T if trans_b else _f64(b)
    out = alpha * (a @ b)
    return out if beta == 0 else out + beta * _f64(c)


# ---- affine: y = x @ W.T + b, W of shape (n_out, n_in) ----
def affine_forward_ref(x, W, b):
    return _f64(x) @ _f64(W).T + _f64(b)


def affine_grad_input_ref(g, W):
    return _f64(g) @ _f64(W)


def affine_grad_weight_ref(x, g):
    return _f64(g).T @ _f64(x)


def affine_grad_bias_ref(g):
    return _f64(g).sum(axis=0)


# ---- elementwise activations ----
ACTIVATION_NAMES = ("relu", "leaky_relu", "elu", "softplus", "sigmoid", "tanh")


def _sigmoid_ref(z):
    e = _np.exp(-_np.abs(z))  # never overflows
    return _np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def activation_ref(name, z, alpha=0.0):
    z = _f64(z)
    if name == "relu":
        return _np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return _np.where(z > 0, z, alpha * z)
    if name == "elu":
        return _np.where(z > 0, z, alpha * (_np.exp(_np.minimum(z, 0)) - 1))
    if name == "softplus":
        return _np.log1p(_np.exp(-_np.abs(z))) + _np.maximum(z, 0)
    if name == "sigmoid":
        return _sigmoid_ref(z)
    if name == "tanh":
        return _np.tanh(z)
    if name == "none":
        return z.copy()
    raise ValueError(name)


def activation_derivative_ref(name, z, alpha=0.0):
    """d act(z) / dz, written from the definition (not from the output)."""
    z = _f64(z)
    if name == "relu":
        return (z > 0).astype(_np.float64)
    if name == "leaky_relu":
        return _np.where(z > 0, 1.0, alpha)
    if name == "elu":
        return _np.where(z > 0, 1.0, alpha * _np.exp(_np.minimum(z, 0)))
    if name == "softplus":
        return _sigmoid_ref(z)
    if name == "sigmoid":
        s = _sigmoid_ref(z)
        return s * (1 - s)
    if name == "tanh":
        return 1 - _np.tanh(z) ** 2
    if name == "none":
        return _np.ones_like(z)
    raise ValueError(name)


def activation_backward_ref(name, z, g, alpha=0.0):
    return _f64(g) * activation_derivative_ref(name, z, alpha)


# ---- softmax family (rows are samples) ----
def softmax_ref(x):
    x = _f64(x)
    e = _np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax_ref(x):
    x = _f64(x)
    s = x - x.max(axis=1, keepdims=True)
    return s - _np.log(_np.exp(s).sum(axis=1, keepdims=True))


def softmax_backward_ref(x, g):
    """Jacobian-vector product written out as the full per-row Jacobian."""
    y = softmax_ref(x)
    g = _f64(g)
    out = _np.empty_like(y)
    for i in range(y.shape[0]):
        J = _np.diag(y[i]) - _np.outer(y[i], y[i])
        out[i] = J.T @ g[i]
    return out


def log_softmax_backward_ref(x, g):
    y = softmax_ref(x)
    g = _f64(g)
    out = _np.empty_like(y)
    for i in range(y.shape[0]):
        J = _np.eye(y.shape[1]) - _np.tile(y[i], (y.shape[1], 1))  # d logy_a / d x_b
        out[i] = J.T @ g[i]
    return out


def one_hot_ref(labels, c):
    labels = _np.asarray(labels).astype(_np.int64).reshape(-1)
    out = _np.zeros((labels.size, c))
    out[_np.arange(labels.size), labels] = 1.0
    return out


def _dense_target(target, shape):
    t = _np.asarray(target)
    if t.ndim == 1:
        return one_hot_ref(t, shape[1])
    return _f64(t)


def cross_entropy_ref(x, target):
    """(loss, gradInput) of mean cross-entropy on raw scores; index or dense targets."""
    x = _f64(x)
    t = _dense_target(target, x.shape)
    n = x.shape[0]
    loss = -(t * log_softmax_ref(x)).sum() / n
    grad = (softmax_ref(x) * t.sum(axis=1, keepdims=True) - t) / n
    return loss, grad


def class_nll_logprob_ref(logp, target):
    logp = _f64(logp)
    t = _dense_target(target, logp.shape)
    n = logp.shape[0]
    return -(t * logp).sum() / n, -t / n


def class_nll_prob_ref(p, target):
    p = _f64(p)
    t = _dense_target(target, p.shape)
    n = p.shape[0]
    with _np.errstate(divide="ignore"):
        loss = -(t * _np.where(t != 0, _np.log(p), 0.0)).sum() / n
        grad = _np.where(t != 0, -t / p, 0.0) / n
    return loss, grad


def clipped_nll_ref(p, target, eps=1e-15):
    """The homework's ClassNLLCriterionUnstable: clip to [eps, 1-eps], then NLL."""
    p = _np.clip(_f64(p), eps, 1 - eps)
    t = _dense_target(target, p.shape)
    n = p.shape[0]
    return -(t * _np.log(p)).sum() / n, -t / p / n


def mse_ref(x, target):
    x, t = _f64(x), _f64(target)
    n = x.shape[0]
    return ((x - t) ** 2).sum() / n, 2 * (x - t) / n


# ---- dropout ----
def dropout_forward_ref(x, mask):
    return _f64(x) * _f64(mask)


def dropout_backward_ref(g, mask):
    return _f64(g) * _f64(mask)


# ---- batch normalization (no affine part) ----
def _bn_axes(x):
    """Reduction axes: per feature for (N, C), per channel for (N, C, H, W)."""
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _bn_bcast(v, x):
    v = _f64(v)
    return v.reshape(1, -1) if x.ndim == 2 else v.reshape(1, -1, 1, 1)


def batchnorm_train_forward_ref(x, moving_mean, moving_variance, alpha, eps=1e-3,
                                center_only=False):
    """(output, batch_mean, batch_var (biased), new_moving_mean, new_moving_variance)."""
    x = _f64(x)
    ax = _bn_axes(x)
    mu = x.mean(axis=ax)
    var = x.var(axis=ax)
    if center_only:
        out = x - _bn_bcast(mu, x)
        new_var = _f64(moving_variance).copy()
    else:
        out = (x - _bn_bcast(mu, x)) / _np.sqrt(_bn_bcast(var, x) + eps)
        new_var = alpha * _f64(moving_variance) + (1 - alpha) * var
    new_mean = alpha * _f64(moving_mean) + (1 - alpha) * mu
    return out, mu, var, new_mean, new_var


def batchnorm_eval_forward_ref(x, moving_mean, moving_variance, eps=1e-3, center_only=False):
    x = _f64(x)
    out = x - _bn_bcast(moving_mean, x)
    if not center_only:
        out = out / _np.sqrt(_bn_bcast(moving_variance, x) + eps)
    return out


def batchnorm_train_backward_ref(x, g, eps=1e-3, center_only=False):
    """Backward through the batch statistics, derived step by step (not the closed form)."""
    x, g = _f64(x), _f64(g)
    ax = _bn_axes(x)
    m = _np.prod([x.shape[a] for a in ax])
    mu = x.mean(axis=ax, keepdims=True)
    xc = x - mu
    if center_only:
        return g - g.mean(axis=ax, keepdims=True)
    var = (xc ** 2).mean(axis=ax, keepdims=True)
    inv = 1 / _np.sqrt(var + eps)
    # y = xc * inv; dy/dx through xc and through var
    d_xc = g * inv
    d_var = (g * xc).sum(axis=ax, keepdims=True) * (-0.5) * inv ** 3
    d_xc = d_xc + d_var * 2 * xc / m
    return d_xc - d_xc.sum(axis=ax, keepdims=True) / m


def batchnorm_eval_backward_ref(g, moving_variance, eps=1e-3, center_only=False):
    g = _f64(g)
    if center_only:
        return g.copy()
    return g / _np.sqrt(_bn_bcast(moving_variance, g) + eps)


# ---- channelwise scaling: y = x * gamma + beta per feature/channel ----
def scaling_forward_ref(x, gamma, beta):
    x = _f64(x)
    return x * _bn_bcast(gamma, x) + _bn_bcast(beta, x)


def scaling_backward_input_ref(g, gamma):
    g = _f64(g)
    return g * _bn_bcast(gamma, g)


def scaling_backward_params_ref(x, g):
    """(gradGamma, gradBeta)."""
    x, g = _f64(x), _f64(g)
    ax = _bn_axes(x)
    return (g * x).sum(axis=ax), g.sum(axis=ax)


# ---- optimizers (homework formulas) ----
def sgd_momentum_ref(p, g, v, lr, momentum):
    """Returns new (p, v): v = momentum * v + lr * g; p -= v."""
    v = momentum * _f64(v) + lr * _f64(g)
    return _f64(p) - v, v


def adam_ref(p, g, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Returns new (p, m, v) for step t (1-based)."""
    g = _f64(g)
    m = beta1 * _f64(m) + (1 - beta1) * g
    v = beta2 * _f64(v) + (1 - beta2) * g * g
    lr_t = lr * _np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return _f64(p) - lr_t * m / (_np.sqrt(v) + eps), m, v
