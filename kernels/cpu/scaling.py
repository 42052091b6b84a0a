"""ChannelwiseScaling: y = x * gamma + beta per feature/channel, on (N, C, S) views."""
from ._jit import njit


@njit(cache=True, nogil=True)
def channelwise_scaling_forward(input, output, gamma, beta):
    n, c, s = input.shape
    for i in range(n):
        for ch in range(c):
            g = gamma[ch]
            b = beta[ch]
            for k in range(s):
                output[i, ch, k] = input[i, ch, k] * g + b


@njit(cache=True, nogil=True)
def channelwise_scaling_backward_input(gradOutput, gradInput, gamma):
    n, c, s = gradOutput.shape
    for i in range(n):
        for ch in range(c):
            g = gamma[ch]
            for k in range(s):
                gradInput[i, ch, k] = gradOutput[i, ch, k] * g


@njit(cache=True, nogil=True)
def channelwise_scaling_backward_params(input, gradOutput, gradGamma, gradBeta, accumulate):
    n, c, s = input.shape
    if not accumulate:
        gradGamma[:] = 0.0
        gradBeta[:] = 0.0
    for i in range(n):
        for ch in range(c):
            gg = 0.0
            gb = 0.0
            for k in range(s):
                g = gradOutput[i, ch, k]
                gg += g * input[i, ch, k]
                gb += g
            gradGamma[ch] += gg
            gradBeta[ch] += gb
