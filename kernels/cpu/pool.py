"""2-D max and average pooling (NCHW, square windows, no padding, floor output size).

``indices`` holds, for every output element, the flat index ih * W + iw of the
arg-max inside its (H, W) input plane (torch's convention). Ties go to the first
element in row-major window order; NaN counts as the maximum, so a NaN in a window
propagates (the last NaN wins, as in torch's CPU kernel).
"""
import numpy as np
from ._jit import njit


@njit(cache=True, nogil=True)
def maxpool2d_forward(input, output, indices, kernel_size, stride):
    """output[n, c, oh, ow] = max of input[n, c, oh*s : oh*s+k, ow*s : ow*s+k];
    indices (same shape as output, integer) = flat arg-max in the (H, W) plane."""
    N, C, H, W = input.shape
    Ho = output.shape[2]
    Wo = output.shape[3]
    k = kernel_size
    if k == 2 and stride == 2:
        _maxpool2x2_forward(input, output, indices)
        return
    for n in range(N):
        for c in range(C):
            plane = input[n, c]
            out = output[n, c]
            idx = indices[n, c]
            for oh in range(Ho):
                h0 = oh * stride
                for ow in range(Wo):
                    w0 = ow * stride
                    best = -np.inf
                    arg = h0 * W + w0
                    nan_arg = -1
                    for di in range(k):
                        row = plane[h0 + di]
                        for dj in range(k):
                            v = row[w0 + dj]
                            j = (h0 + di) * W + w0 + dj
                            # NaN is tracked apart from the max: one branch that tests
                            # `v > best or v != v` and moves two values does not
                            # vectorise (asv pool.MaxPool2dModule).
                            if v > best:
                                best = v
                                arg = j
                            nan_arg = j if v != v else nan_arg
                    if nan_arg >= 0:
                        out[oh, ow] = plane[nan_arg // W, nan_arg % W]
                        idx[oh, ow] = nan_arg
                    else:
                        out[oh, ow] = best
                        idx[oh, ow] = arg


@njit(cache=True, nogil=True)
def _maxpool2x2_forward(input, output, indices):
    """The common 2x2 / stride 2 case, unrolled: same ties and NaN rules as the
    general loop (first maximum in row-major order; the last NaN wins); asv
    ``pool.MaxPool2dModule`` times both."""
    N, C, H, W = input.shape
    Ho = output.shape[2]
    Wo = output.shape[3]
    for n in range(N):
        for c in range(C):
            plane = input[n, c]
            out = output[n, c]
            idx = indices[n, c]
            for oh in range(Ho):
                r0 = plane[2 * oh]
                r1 = plane[2 * oh + 1]
                o = out[oh]
                ix = idx[oh]
                base = 2 * oh * W
                for ow in range(Wo):
                    j = 2 * ow
                    a = r0[j]
                    b = r0[j + 1]
                    c2 = r1[j]
                    d = r1[j + 1]
                    best = a
                    arg = base + j
                    if b > best:
                        best = b
                        arg = base + j + 1
                    if c2 > best:
                        best = c2
                        arg = base + W + j
                    if d > best:
                        best = d
                        arg = base + W + j + 1
                    if a != a or b != b or c2 != c2 or d != d:  # rare: the last NaN wins
                        for q in range(4):
                            v = d if q == 0 else (c2 if q == 1 else (b if q == 2 else a))
                            if v != v:
                                best = v
                                arg = base + (W if q < 2 else 0) + j + (1 - q % 2)
                                break
                    o[ow] = best
                    ix[ow] = arg


@njit(cache=True, nogil=True)
def maxpool2d_backward(gradOutput, gradInput, indices, kernel_size, stride):
    """gradInput = 0, then gradInput[n, c].flat[indices[n, c, oh, ow]] += gradOutput[n, c, oh, ow]
    (overlapping windows accumulate). kernel_size/stride are unused: the indices
    already say where each gradient goes; they are kept for the CUDA twin's signature."""
    N, C, H, W = gradInput.shape
    Ho = gradOutput.shape[2]
    Wo = gradOutput.shape[3]
    gradInput[...] = 0.0
    for n in range(N):
        for c in range(C):
            gi = gradInput[n, c].reshape(H * W)
            g = gradOutput[n, c]
            idx = indices[n, c]
            for oh in range(Ho):
                for ow in range(Wo):
                    gi[idx[oh, ow]] += g[oh, ow]


@njit(cache=True, nogil=True)
def avgpool2d_forward(input, output, kernel_size, stride):
    """output[n, c, oh, ow] = mean of input[n, c, oh*s : oh*s+k, ow*s : ow*s+k]: the
    window summed in row-major order in the input's dtype, then divided by k * k."""
    N, C, H, W = input.shape
    Ho = output.shape[2]
    Wo = output.shape[3]
    k = kernel_size
    area = k * k
    for n in range(N):
        for c in range(C):
            plane = input[n, c]
            out = output[n, c]
            for oh in range(Ho):
                h0 = oh * stride
                for ow in range(Wo):
                    w0 = ow * stride
                    acc = plane[h0, w0]  # the first tap: the sum keeps the input's dtype
                    for dj in range(1, k):
                        acc += plane[h0, w0 + dj]
                    for di in range(1, k):
                        row = plane[h0 + di]
                        for dj in range(k):
                            acc += row[w0 + dj]
                    out[oh, ow] = acc / area


@njit(cache=True, nogil=True)
def avgpool2d_backward(gradOutput, gradInput, kernel_size, stride):
    """gradInput = 0, then each gradOutput[n, c, oh, ow] / (k * k) added to every
    element of its window (overlapping windows accumulate, in (oh, ow) order)."""
    N, C, H, W = gradInput.shape
    Ho = gradOutput.shape[2]
    Wo = gradOutput.shape[3]
    k = kernel_size
    area = k * k
    gradInput[...] = 0.0
    for n in range(N):
        for c in range(C):
            gi = gradInput[n, c]
            g = gradOutput[n, c]
            for oh in range(Ho):
                h0 = oh * stride
                for ow in range(Wo):
                    w0 = ow * stride
                    v = g[oh, ow] / area
                    for di in range(k):
                        row = gi[h0 + di]
                        for dj in range(k):
                            row[w0 + dj] += v
