"""Batch normalization (no affine part: ChannelwiseScaling supplies that) and the
mean-only BatchMeanSubtraction. Inputs arrive as (N, C, S) views: S = 1 for 2-D
input (per feature), S = H*W for NCHW input (per channel)."""
import math

from ._jit import njit


@njit(cache=True, nogil=True)
def batchnorm_forward_train(input, output, mean, invstd, moving_mean, moving_variance,
                            alpha, eps, center_only):
    """Normalize with the batch statistics (biased variance), store them for
    backward, and update moving = alpha * moving + (1 - alpha) * batch."""
    n, c, s = input.shape
    count = n * s
    for ch in range(c):
        acc = 0.0
        for i in range(n):
            for k in range(s):
                acc += input[i, ch, k]
        mu = acc / count
        var = 0.0
        for i in range(n):
            for k in range(s):
                d = input[i, ch, k] - mu
                var += d * d
        var /= count
        inv = 1.0 if center_only else 1.0 / math.sqrt(var + eps)
        mean[ch] = mu
        invstd[ch] = inv
        moving_mean[ch] = alpha * moving_mean[ch] + (1.0 - alpha) * mu
        if not center_only:
            moving_variance[ch] = alpha * moving_variance[ch] + (1.0 - alpha) * var
        for i in range(n):
            for k in range(s):
                output[i, ch, k] = (input[i, ch, k] - mu) * inv


@njit(cache=True, nogil=True)
def batchnorm_forward_eval(input, output, moving_mean, moving_variance, eps, center_only):
    n, c, s = input.shape
    for ch in range(c):
        mu = moving_mean[ch]
        inv = 1.0 if center_only else 1.0 / math.sqrt(moving_variance[ch] + eps)
        for i in range(n):
            for k in range(s):
                output[i, ch, k] = (input[i, ch, k] - mu) * inv


@njit(cache=True, nogil=True)
def batchnorm_backward_train(gradOutput, gradInput, output, invstd, center_only):
    """gradInput = invstd * (g - mean(g) - xhat * mean(g * xhat)), xhat = output."""
    n, c, s = gradOutput.shape
    count = n * s
    for ch in range(c):
        gsum = 0.0
        gxsum = 0.0
        for i in range(n):
            for k in range(s):
                g = gradOutput[i, ch, k]
                gsum += g
                gxsum += g * output[i, ch, k]
        gmean = gsum / count
        gxmean = 0.0 if center_only else gxsum / count
        inv = invstd[ch]
        for i in range(n):
            for k in range(s):
                gradInput[i, ch, k] = inv * (gradOutput[i, ch, k] - gmean
                                             - output[i, ch, k] * gxmean)


@njit(cache=True, nogil=True)
def batchnorm_backward_eval(gradOutput, gradInput, moving_variance, eps, center_only):
    n, c, s = gradOutput.shape
    for ch in range(c):
        inv = 1.0 if center_only else 1.0 / math.sqrt(moving_variance[ch] + eps)
        for i in range(n):
            for k in range(s):
                gradInput[i, ch, k] = gradOutput[i, ch, k] * inv
