"""ONNX export: ``fastnn.onnx.export(net, path, sample_input)``.

The exported graph is the network in evaluate mode: Dropout is the identity and
BatchNormalization uses its moving statistics. The ``onnx`` package is imported inside
``export`` only (``pip install 'fastnn-torch7[onnx]'``); running the file needs an ONNX
runtime (``onnxruntime``), not fastnn.

Layer map: Linear -> Gemm (``transB=1``), Conv2d -> Conv, MaxPool2d -> MaxPool, Flatten ->
Flatten(axis=1), BatchNormalization (+ the ChannelwiseScaling after it as its scale and
bias) -> BatchNormalization, a lone ChannelwiseScaling -> Mul + Add, BatchMeanSubtraction
-> Sub, ReLU/LeakyReLU/ELU/SoftPlus/Sigmoid/Tanh -> Relu/LeakyRelu/Elu/Softplus/Sigmoid/
Tanh, SoftMax/LogSoftMax -> Softmax/LogSoftmax(axis=1), Dropout -> Identity. Weights are
stored under their ``state_dict`` names.
"""
import os

import numpy as np

from ._optional import require
from .activations import ELU, LeakyReLU, LogSoftMax, ReLU, Sigmoid, SoftMax, SoftPlus, Tanh
from .backend import to_numpy
from .conv import Conv2d, Flatten, MaxPool2d
from .layers import BatchMeanSubtraction, BatchNormalization, ChannelwiseScaling, Dropout, Linear
from .module import Module
from .torch_interop import UnsupportedLayerError

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET"]

#: Opset written when none is given: new enough for every op here, old enough for
#: runtimes of the last few years.
DEFAULT_OPSET = 17
#: Softmax/LogSoftmax take their axis as is from opset 13 (before, they flattened to 2-D).
MIN_OPSET = 13

_ACTIVATIONS = {ReLU: "Relu", SoftPlus: "Softplus", Sigmoid: "Sigmoid", Tanh: "Tanh"}


def export(net: Module, path, sample_input, opset: int | None = None) -> str:
    """Write ``net`` in evaluate mode as an ONNX model.

    Parameters
    ----------
    net : Module
        A layer or a ``Sequential`` (nested ones allowed) of the layers in this file's
        map. Its train/eval modes are restored afterwards.
    path : str or os.PathLike
        The ``.onnx`` file to write.
    sample_input : array_like
        One batch of input: fixes every dimension but the batch one (named ``N``).
    opset : int, optional
        ONNX opset (``MIN_OPSET`` to what the installed ``onnx`` knows); default
        ``DEFAULT_OPSET``.

    Returns
    -------
    str
        ``path``. The graph has one input ``input`` and one output ``output`` of the
        network's dtype.

    Raises
    ------
    ImportError
        When the ``onnx`` package is missing (the ``[onnx]`` extra).
    UnsupportedLayerError
        Naming a layer that has no ONNX translation here.

    Example
    -------
    >>> import numpy as np, fastnn, fastnn.onnx
    >>> net = fastnn.Sequential(fastnn.Linear(4, 3), fastnn.ReLU())
    >>> fastnn.onnx.export(net, "net.onnx", np.zeros((1, 4), np.float32))  # doctest: +SKIP
    'net.onnx'
    """
    onnx = require("onnx", "onnx", "fastnn.onnx.export")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"fastnn.onnx.export: opset must lie in [{MIN_OPSET}, "
                         f"{onnx.defs.onnx_opset_version()}], got {opset}")
    leaves = net.leaves()
    keys = _state_keys(net)
    modes = [(m, m.training) for m in net.listModules()]
    net.evaluate()
    try:
        graph = _Graph(helper, numpy_helper, net.dtype)
        x = np.ascontiguousarray(to_numpy(sample_input), dtype=net.dtype)
        name, shape = "input", x.shape
        i = 0
        while i < len(leaves):
            m = leaves[i]
            nxt = leaves[i + 1] if i + 1 < len(leaves) else None
            fuse = type(m) is BatchNormalization and type(nxt) is ChannelwiseScaling
            y = to_numpy(m.forward(x))
            if fuse:
                y = to_numpy(nxt.forward(y))
            name = _emit(graph, m, nxt if fuse else None, name, x.ndim, keys)
            x, i = y, i + (2 if fuse else 1)
        out_shape = x.shape
    finally:
        for m, training in modes:
            m.train() if training else m.evaluate()
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(net.dtype))
    inp = helper.make_tensor_value_info("input", elem, ["N", *shape[1:]])
    if name == "input":  # an empty net: ONNX wants an output distinct from the input
        graph.node("Identity", [name])
        name = graph.nodes[-1].output[0]
    graph.nodes[-1].output[0] = "output"
    out = helper.make_tensor_value_info("output", elem, ["N", *out_shape[1:]])
    g = helper.make_graph(graph.nodes, "fastnn", [inp], [out], graph.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(g, opset_imports=opsets, producer_name="fastnn",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    path = os.fspath(path)
    onnx.save(model, path)
    return path


class _Graph:
    """Nodes and initializers, with fresh value names."""

    def __init__(self, helper, numpy_helper, dtype):
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, np.dtype(dtype)
        self.nodes, self.initializers, self._count = [], [], 0

    def const(self, name, array):
        a = np.ascontiguousarray(to_numpy(array), dtype=self.dtype)
        self.initializers.append(self.numpy_helper.from_array(a, name))
        return name

    def node(self, op, inputs, **attrs):
        self._count += 1
        out = f"{op.lower()}_{self._count}"
        self.nodes.append(self.helper.make_node(op, inputs, [out], **attrs))
        return out


def _emit(graph, m, scale, x, ndim, keys) -> str:
    """Nodes for leaf ``m`` (and the ChannelwiseScaling ``scale`` fused into it) on value
    ``x`` of rank ``ndim``; returns the output's name."""
    kind, key = type(m), keys[id(m)]
    if kind is Linear:
        return graph.node("Gemm", [x, graph.const(key + "weight", m.W),
                                   graph.const(key + "bias", m.b)], transB=1)
    if kind is Conv2d:
        k, s, p = m.kernel_size, m.stride, m.padding
        return graph.node("Conv", [x, graph.const(key + "weight", m.W),
                                   graph.const(key + "bias", m.b)],
                          kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
    if kind is MaxPool2d:
        k, s = m.kernel_size, m.stride
        return graph.node("MaxPool", [x], kernel_shape=[k, k], strides=[s, s])
    if kind is Flatten:
        return graph.node("Flatten", [x], axis=1)
    if kind is BatchNormalization:
        state = dict(m.local_state())
        c = state["running_mean"].shape[0]
        gamma = scale.gamma if scale is not None else np.ones(c)
        beta = scale.beta if scale is not None else np.zeros(c)
        skey = keys[id(scale)] if scale is not None else key + "scale_"
        return graph.node("BatchNormalization", [
            x, graph.const(skey + "weight", gamma), graph.const(skey + "bias", beta),
            graph.const(key + "running_mean", state["running_mean"]),
            graph.const(key + "running_var", state["running_var"])], epsilon=m.EPS)
    if kind is BatchMeanSubtraction:
        mean = dict(m.local_state())["running_mean"]
        return graph.node("Sub", [x, graph.const(key + "running_mean", _per_channel(mean, ndim))])
    if kind is ChannelwiseScaling:
        y = graph.node("Mul", [x, graph.const(key + "weight", _per_channel(m.gamma, ndim))])
        return graph.node("Add", [y, graph.const(key + "bias", _per_channel(m.beta, ndim))])
    if kind in _ACTIVATIONS:
        return graph.node(_ACTIVATIONS[kind], [x])
    if kind is LeakyReLU:
        return graph.node("LeakyRelu", [x], alpha=m.slope)
    if kind is ELU:
        return graph.node("Elu", [x], alpha=m.alpha)
    if kind in (SoftMax, LogSoftMax):
        return graph.node("Softmax" if kind is SoftMax else "LogSoftmax", [x], axis=1)
    if kind is Dropout:
        return graph.node("Identity", [x])
    raise UnsupportedLayerError(f"fastnn.onnx.export: unsupported layer {m!r} "
                                f"({kind.__module__}.{kind.__name__})")


def _per_channel(v, ndim):
    """A per-channel vector shaped to broadcast over (N, C) or (N, C, H, W)."""
    v = to_numpy(v)
    return v.reshape(-1, 1, 1) if ndim == 4 else v


def _state_keys(net) -> dict:
    """id(leaf) -> its state_dict prefix ("3.", "4.0.", "" for a lone layer)."""
    return {id(m): prefix for prefix, m in net.named_leaves()}
