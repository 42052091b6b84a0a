"""ChannelwiseScaling on the GPU: y = x * gamma + beta per channel, on (N, C, S) views.
Forward/backward-input are elementwise; the parameter gradients reduce per channel
(one block per channel, tree sums in the data's dtype; for (N, C, 1) data a block per
group of channels, so the reads are coalesced)."""
from numba import cuda

from . import config
from ._reduce import COLUMN_SHARED, SHARED, block_sum, column_block_sum, column_grid
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


@cuda.jit(cache=True)
def _backward_params_rows(x, g, grad_gamma, grad_beta, accumulate):
    """_backward_params for (N, C, 1) data: a block per group of channels, a warp
    reading one row's consecutive channels (coalesced; see batchnorm)."""
    sh = cuda.shared.array(COLUMN_SHARED, x.dtype)
    n, c = x.shape[0], x.shape[1]
    ty = cuda.threadIdx.y
    c0 = cuda.blockIdx.x * cuda.blockDim.x
    while c0 < c:  # block-uniform
        ch = c0 + cuda.threadIdx.x
        gg = like(x, 0.0)
        gb = like(x, 0.0)
        i = ty
        while ch < c and i < n:
            gv = g[i, ch, 0]
            gg += gv * x[i, ch, 0]
            gb += gv
            i += cuda.blockDim.y
        gg = column_block_sum(sh, gg)
        gb = column_block_sum(sh, gb)
        if ch < c and ty == 0:
            if accumulate:
                grad_gamma[ch] += gg
                grad_beta[ch] += gb
            else:
                grad_gamma[ch] = gg
                grad_beta[ch] = gb
        c0 += cuda.gridDim.x * cuda.blockDim.x


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
    if input.shape[2] == 1:
        blocks, block = column_grid(c)
        _backward_params_rows[blocks, block](input, gradOutput, gradGamma, gradBeta,
                                             bool(accumulate))
        return
    blocks, tpb = config.grid_rows(c)
    _backward_params[blocks, tpb](input, gradOutput, gradGamma, gradBeta, bool(accumulate))
