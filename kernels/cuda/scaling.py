"""ChannelwiseScaling on the GPU: y = x * gamma + beta per channel, on (N, C, S) views.
Forward/backward-input are elementwise; the parameter gradients reduce per channel
(one block per channel, tree sums in the data's dtype)."""
from numba import cuda

from . import config
from ._reduce import SHARED, block_sum
from ._typed import like


@cuda.jit(cache=True)
def _forward(x, y, gamma, beta):
    n, c, s = x.shape
    e = cuda.grid(1)
    while e < n * c * s:
        i = e // (c * s)
        r = e - i * (c * s)
        ch = r // s
        k = r - ch * s
        y[i, ch, k] = x[i, ch, k] * gamma[ch] + beta[ch]
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _backward_input(g, gi, gamma):
    n, c, s = g.shape
    e = cuda.grid(1)
    while e < n * c * s:
        i = e // (c * s)
        r = e - i * (c * s)
        ch = r // s
        k = r - ch * s
        gi[i, ch, k] = g[i, ch, k] * gamma[ch]
        e += cuda.gridsize(1)


@cuda.jit(cache=True)
def _backward_params(x, g, grad_gamma, grad_beta, accumulate):
    sh = cuda.shared.array(SHARED, x.dtype)
    n, c, s = x.shape
    count = n * s
    tid = cuda.threadIdx.x
    ch = cuda.blockIdx.x
    while ch < c:
        gg = like(x, 0.0)
        gb = like(x, 0.0)
        e = tid
        while e < count:
            i = e // s
            k = e - i * s
            gv = g[i, ch, k]
            gg += gv * x[i, ch, k]
            gb += gv
            e += cuda.blockDim.x
        gg = block_sum(sh, gg)
        gb = block_sum(sh, gb)
        if tid == 0:
            if accumulate:
                grad_gamma[ch] += gg
                grad_beta[ch] += gb
            else:
                grad_gamma[ch] = gg
                grad_beta[ch] = gb
        ch += cuda.gridDim.x


def channelwise_scaling_forward(input, output, gamma, beta):
    if input.size == 0:
        return
    blocks, tpb = config.grid_1d(input.size)
    _forward[blocks, tpb](input, output, gamma, beta)


def channelwise_scaling_backward_input(gradOutput, gradInput, gamma):
    if gradOutput.size == 0:
        return
    blocks, tpb = config.grid_1d(gradOutput.size)
    _backward_input[blocks, tpb](gradOutput, gradInput, gamma)


def channelwise_scaling_backward_params(input, gradOutput, gradGamma, gradBeta, accumulate):
    c = input.shape[1]
    if c == 0:
        return
    blocks, tpb = config.grid_rows(c)
    _backward_params[blocks, tpb](input, gradOutput, gradGamma, gradBeta, bool(accumulate))
