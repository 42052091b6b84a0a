"""PyTorch both ways: ``from_torch`` and ``to_torch``.

torch is imported inside the two functions only: it is never a dependency of fastnn.

Layer map (torch <-> fastnn):

- ``nn.Sequential`` <-> ``Sequential`` (nested ones stay nested);
- ``Linear`` <-> ``Linear`` (``weight``/``bias`` <-> ``W``/``b``, same layout; a torch
  Linear without bias gets a zero ``b``);
- ``Conv2d`` <-> ``Conv2d`` (square kernel, stride and padding, ``padding='same'`` for an
  odd kernel, no dilation or groups, zero padding);
- ``MaxPool2d`` <-> ``MaxPool2d`` (square, no padding or dilation, floor mode);
- ``Flatten`` (dims 1..-1) <-> ``Flatten``;
- ``BatchNorm1d``/``BatchNorm2d`` <-> ``BatchNormalization`` followed by
  ``ChannelwiseScaling`` (the affine ``weight``/``bias``) when affine, alone when not.
  Momentum conventions differ: torch's ``running = (1 - momentum) * running + momentum *
  batch`` is fastnn's (Torch7's) ``moving = alpha * moving + (1 - alpha) * batch``, so
  ``alpha = 1 - momentum``; ``eps`` is carried over (torch's default 1e-5, fastnn's 1e-3).
  One difference stays: torch updates ``running_var`` with the unbiased batch variance
  (times n/(n-1)), fastnn with the biased one; outputs agree in both modes;
- ``ReLU``, ``LeakyReLU`` (``negative_slope`` <-> ``slope``), ``ELU`` (``alpha``),
  ``Softplus`` (``beta=1``) <-> ``SoftPlus``, ``Sigmoid``, ``Tanh``, ``Dropout`` (``p``),
  ``Softmax``/``LogSoftmax`` over dim 1 <-> ``SoftMax``/``LogSoftMax``.

Anything else raises ``UnsupportedLayerError`` naming the layer. Weights are copied
(neither side shares memory with the other); dtypes (float32/float64) and each layer's
train/eval mode carry over.
"""
from typing import TYPE_CHECKING

import numpy as np

from .activations import ELU, LeakyReLU, LogSoftMax, ReLU, Sigmoid, SoftMax, SoftPlus, Tanh
from .backend import to_numpy
from .conv import Conv2d, Flatten, MaxPool2d
from .layers import BatchNormalization, ChannelwiseScaling, Dropout, Linear
from .module import Container, Module, Sequential

if TYPE_CHECKING:  # annotations only: torch is never imported at module level
    import torch

__all__ = ["from_torch", "to_torch", "UnsupportedLayerError"]

# torch's Softplus switches to the identity above ``threshold``; fastnn's is exact, and the
# gap log1p(exp(-threshold)) stays under 1e-5 from here on
_SOFTPLUS_MIN_THRESHOLD = 12.0


class UnsupportedLayerError(TypeError):
    """A layer (or layer setting) that has no counterpart on the other side."""


def _array(t) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _square(layer, name, value):
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise UnsupportedLayerError(f"{layer!r}: fastnn supports square {name} only, "
                                        f"got {tuple(value)}")
        value = value[0]
    return int(value)


# ------------------------------------------------------------------------ torch -> fastnn

def from_torch(module: "torch.nn.Module") -> Module:
    """Build the fastnn equivalent of a torch module, with copied weights.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential`` of the layers in this file's map (or one such layer).

    Returns
    -------
    Module
        A ``Sequential`` for an ``nn.Sequential``; for a single layer, its fastnn module
        (a ``Sequential(BatchNormalization, ChannelwiseScaling)`` for an affine BatchNorm).
        float64 when torch's parameters are float64, else float32, in torch's train/eval
        mode.

    Raises
    ------
    UnsupportedLayerError
        Naming the first layer (or setting) fastnn has no counterpart for.

    Example
    -------
    >>> import torch, fastnn
    >>> tnet = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    >>> net = fastnn.from_torch(tnet)
    >>> net.modules[0].W.shape
    (3, 4)
    """
    import torch

    dtypes = {p.dtype for p in module.parameters()} | \
             {b.dtype for b in module.buffers() if b.is_floating_point()}
    dtype = np.float64 if torch.float64 in dtypes else np.float32
    mods = _from_torch(torch.nn, module, dtype)
    net = mods[0] if len(mods) == 1 else Sequential(*mods)
    return net.type(dtype)


def _from_torch(tnn, t, dtype) -> list:
    """The fastnn modules (one, or two for an affine BatchNorm) for torch module ``t``."""
    if type(t) is tnn.Sequential:
        net = Sequential(*[m for child in t for m in _from_torch(tnn, child, dtype)])
        net.training = t.training
        return [net]
    mods = _convert_layer(tnn, t, lambda m: m.type(dtype))
    for m in mods:
        m.train() if t.training else m.evaluate()
    return mods


def _convert_layer(tnn, t, typed) -> list:
    """``typed`` gives a new module the net's dtype before weights are copied in."""
    kind = type(t)
    if kind is tnn.Linear:
        m = typed(Linear(t.in_features, t.out_features))
        m.W = _array(t.weight)
        m.b = _array(t.bias) if t.bias is not None else np.zeros(t.out_features)
        return [m]
    if kind is tnn.Conv2d:
        k = _square(t, "kernel_size", t.kernel_size)
        if t.groups != 1 or _square(t, "dilation", t.dilation) != 1 \
                or t.padding_mode != "zeros":
            raise UnsupportedLayerError(f"{t!r}: fastnn's Conv2d has no groups, dilation or "
                                        f"non-zero padding mode")
        stride = _square(t, "stride", t.stride)
        if t.padding == "same":
            if k % 2 == 0:
                raise UnsupportedLayerError(f"{t!r}: padding='same' with an even kernel pads "
                                            f"unevenly; fastnn pads evenly")
            padding = k // 2
        else:
            padding = 0 if t.padding == "valid" else _square(t, "padding", t.padding)
        m = typed(Conv2d(t.in_channels, t.out_channels, k, stride=stride, padding=padding))
        m.W = _array(t.weight)
        m.b = _array(t.bias) if t.bias is not None else np.zeros(t.out_channels)
        return [m]
    if kind is tnn.MaxPool2d:
        k = _square(t, "kernel_size", t.kernel_size)
        stride = k if t.stride is None else _square(t, "stride", t.stride)
        if _square(t, "padding", t.padding) != 0 or _square(t, "dilation", t.dilation) != 1 \
                or t.ceil_mode or t.return_indices:
            raise UnsupportedLayerError(f"{t!r}: fastnn's MaxPool2d has no padding, dilation, "
                                        f"ceil mode or returned indices")
        return [MaxPool2d(k, stride=stride)]
    if kind is tnn.Flatten:
        if t.start_dim != 1 or t.end_dim != -1:
            raise UnsupportedLayerError(f"{t!r}: fastnn's Flatten keeps dim 0 and flattens "
                                        f"the rest (start_dim=1, end_dim=-1)")
        return [Flatten()]
    if kind in (tnn.BatchNorm1d, tnn.BatchNorm2d):
        return _batchnorm_from_torch(t, typed)
    if kind is tnn.Dropout:
        return [Dropout(t.p)]
    if kind in (tnn.Softmax, tnn.LogSoftmax):
        if t.dim not in (None, 1, -1):
            raise UnsupportedLayerError(f"{t!r}: fastnn's SoftMax/LogSoftMax work over dim 1 "
                                        f"of 2-D input")
        return [SoftMax() if kind is tnn.Softmax else LogSoftMax()]
    if kind is tnn.LeakyReLU:
        return [LeakyReLU(float(t.negative_slope))]
    if kind is tnn.ELU:
        return [ELU(float(t.alpha))]
    if kind is tnn.Softplus:
        if t.beta != 1 or t.threshold < _SOFTPLUS_MIN_THRESHOLD:
            raise UnsupportedLayerError(f"{t!r}: fastnn's SoftPlus is log(1 + e^x) (beta=1, "
                                        f"threshold >= {_SOFTPLUS_MIN_THRESHOLD:g})")
        return [SoftPlus()]
    simple = {tnn.ReLU: ReLU, tnn.Sigmoid: Sigmoid, tnn.Tanh: Tanh}
    if kind in simple:
        return [simple[kind]()]
    raise UnsupportedLayerError(
        f"fastnn.from_torch: unsupported layer {t!r} ({kind.__module__}.{kind.__name__}); "
        f"supported: Sequential, Linear, Conv2d, MaxPool2d, Flatten, BatchNorm1d/2d, ReLU, "
        f"LeakyReLU, ELU, Softplus, Sigmoid, Tanh, Dropout, Softmax, LogSoftmax")


def _batchnorm_from_torch(t, typed) -> list:
    if not t.track_running_stats or t.momentum is None:
        raise UnsupportedLayerError(f"{t!r}: fastnn's BatchNormalization keeps an "
                                    f"exponential moving average (track_running_stats=True "
                                    f"and a momentum, not None)")
    bn = typed(BatchNormalization(alpha=_flip(t.momentum), eps=float(t.eps)))
    bn.set_local_state("running_mean", _array(t.running_mean))
    bn.set_local_state("running_var", _array(t.running_var))
    if not t.affine:
        return [bn]
    scale = typed(ChannelwiseScaling(t.num_features))
    scale.gamma = _array(t.weight)
    scale.beta = _array(t.bias)
    return [bn, scale]


# ------------------------------------------------------------------------ fastnn -> torch

def to_torch(net: Module) -> "torch.nn.Module":
    """Build the torch equivalent of a fastnn network, with copied weights.

    Parameters
    ----------
    net : Module
        A ``Sequential`` (nested ones allowed) of the layers in this file's map, or one
        such layer. A BatchNormalization followed by a ChannelwiseScaling becomes one
        affine BatchNorm; BatchNorm2d when convolutions or pooling come before it (or,
        when nothing decides that before it, after it), else BatchNorm1d.

    Returns
    -------
    torch.nn.Module
        An ``nn.Sequential`` for a container, else the single torch layer; float64 when
        ``net`` is, in each layer's train/eval mode.

    Raises
    ------
    UnsupportedLayerError
        Naming the first layer fastnn cannot express in torch (BatchMeanSubtraction, a
        ChannelwiseScaling not after a BatchNormalization, any other module class).

    Example
    -------
    >>> import fastnn
    >>> tnet = fastnn.to_torch(fastnn.Sequential(fastnn.Linear(4, 3), fastnn.ReLU()))
    >>> tuple(tnet[0].weight.shape)
    (3, 4)
    """
    import torch

    spatial = _spatial_hints(net.leaves())
    return _to_torch(torch, net, spatial)


def _factory(torch, m) -> dict:
    """torch's dtype for the layer built from fastnn module ``m``."""
    return {"dtype": torch.float64 if m.dtype == np.float64 else torch.float32}


def _spatial_hints(leaves) -> dict:
    """id(BatchNormalization) -> True when it sees 4-D input (BatchNorm2d)."""
    hints = {}
    for i, m in enumerate(leaves):
        if type(m) is BatchNormalization:
            before = [_rank_of(x) for x in reversed(leaves[:i]) if _rank_of(x) is not None]
            after = [_rank_of(x) for x in leaves[i + 1:] if _rank_of(x) is not None]
            hints[id(m)] = (before or after or [2])[0] == 4
    return hints


def _rank_of(m):
    if isinstance(m, (Conv2d, MaxPool2d)):
        return 4
    if isinstance(m, (Linear, Flatten)):
        return 2
    return None


def _to_torch(torch, m, spatial):
    tnn = torch.nn
    if isinstance(m, Container):
        if type(m) is not Sequential:
            raise UnsupportedLayerError(f"fastnn.to_torch: unsupported container {m!r}")
        children, i = [], 0
        while i < len(m.modules):
            child = m.modules[i]
            nxt = m.modules[i + 1] if i + 1 < len(m.modules) else None
            if type(child) is BatchNormalization:
                scale = nxt if type(nxt) is ChannelwiseScaling else None
                children.append(_batchnorm_to_torch(torch, child, scale, spatial[id(child)],
                                                    m, i))
                i += 2 if scale is not None else 1
            else:
                children.append(_to_torch(torch, child, spatial))
                i += 1
        out = tnn.Sequential(*children)
        out.training = m.training
        return out
    t = _layer_to_torch(torch, m)
    t.train(m.training)
    return t


def _layer_to_torch(torch, m):
    tnn = torch.nn
    kind = type(m)
    if kind is Linear:
        t = tnn.Linear(m.n_in, m.n_out, **_factory(torch, m))
        _copy_into(torch, t.weight, m.W)
        _copy_into(torch, t.bias, m.b)
        return t
    if kind is Conv2d:
        t = tnn.Conv2d(m.n_in, m.n_out, m.kernel_size, stride=m.stride, padding=m.padding,
                       **_factory(torch, m))
        _copy_into(torch, t.weight, m.W)
        _copy_into(torch, t.bias, m.b)
        return t
    if kind is MaxPool2d:
        return tnn.MaxPool2d(m.kernel_size, stride=m.stride)
    if kind is Flatten:
        return tnn.Flatten()
    if kind is Dropout:
        return tnn.Dropout(m.p)
    if kind is LeakyReLU:
        return tnn.LeakyReLU(m.slope)
    if kind is ELU:
        return tnn.ELU(m.alpha)
    if kind in (SoftMax, LogSoftMax):
        return (tnn.Softmax if kind is SoftMax else tnn.LogSoftmax)(dim=1)
    simple = {ReLU: tnn.ReLU, SoftPlus: tnn.Softplus, Sigmoid: tnn.Sigmoid, Tanh: tnn.Tanh}
    if kind in simple:
        return simple[kind]()
    if kind is BatchNormalization:
        return _batchnorm_to_torch(torch, m, None, _spatial_hints([m])[id(m)], None, 0)
    hint = (" (torch's affine BatchNorm is a BatchNormalization followed by a "
            "ChannelwiseScaling)" if kind is ChannelwiseScaling else "")
    raise UnsupportedLayerError(f"fastnn.to_torch: unsupported layer {m!r} "
                                f"({kind.__module__}.{kind.__name__}){hint}; supported: "
                                f"Sequential, Linear, Conv2d, MaxPool2d, Flatten, "
                                f"BatchNormalization (+ ChannelwiseScaling), ReLU, LeakyReLU, "
                                f"ELU, SoftPlus, Sigmoid, Tanh, Dropout, SoftMax, LogSoftMax")


def _batchnorm_to_torch(torch, bn, scale, spatial, parent, index):
    state = dict(bn.local_state())
    mean, var = state["running_mean"], state["running_var"]
    if mean is not None:
        channels = mean.shape[0]
    elif scale is not None:
        channels = scale.n_out
    else:
        channels = _channels_before(parent, index)
    if channels is None:
        raise UnsupportedLayerError(f"fastnn.to_torch: {bn!r} has not seen input yet and "
                                    f"nothing before it gives its channel count; run one "
                                    f"forward first")
    if scale is not None and scale.n_out != channels:
        raise ValueError(f"fastnn.to_torch: {bn!r} has {channels} channels but the "
                         f"{scale!r} after it has {scale.n_out}")
    cls = torch.nn.BatchNorm2d if spatial else torch.nn.BatchNorm1d
    t = cls(channels, eps=bn.EPS, momentum=_flip(bn.alpha), affine=scale is not None,
            **_factory(torch, bn))
    if mean is not None:  # else torch's zeros and ones, which fastnn starts from too
        _copy_into(torch, t.running_mean, mean)
        _copy_into(torch, t.running_var, var)
    if scale is not None:
        _copy_into(torch, t.weight, scale.gamma)
        _copy_into(torch, t.bias, scale.beta)
    t.train(bn.training)
    return t


def _channels_before(parent, index):
    for m in reversed(parent.modules[:index] if parent is not None else []):
        if isinstance(m, (Linear, Conv2d)):
            return m.n_out
        if isinstance(m, (Flatten, Container)):
            return None
    return None


def _copy_into(torch, tensor, array):
    with torch.no_grad():
        tensor.copy_(torch.from_numpy(np.array(to_numpy(array), dtype=np.float64)))


def _flip(rate) -> float:
    """torch's momentum <-> fastnn's alpha (1 - the other), without 1 - 0.9 = 0.0999...98."""
    return round(1.0 - float(rate), 12)
