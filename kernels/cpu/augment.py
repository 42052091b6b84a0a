"""Data augmentation kernels: per-image affine warps with bilinear sampling.

``fastnn.datasets.augment_batch`` builds the per-image transforms; this file only
resamples. Pixels that map outside the source image read as 0 (MNIST's background).
"""
import math

from ._jit import njit


@njit(cache=True, nogil=True)
def affine_warp(images, output, params):
    """output[n, i, j] = bilinear sample of images[n] at (x, y), where
    x = p0 * j + p1 * i + p2 and y = p3 * j + p4 * i + p5, p = params[n].

    ``params`` (N, 6) holds the *inverse* transform (output pixel -> source point),
    so every output pixel is written exactly once. ``images`` (N, H, W) and
    ``output`` (N, Ho, Wo) must not overlap.
    """
    n_images = images.shape[0]
    height = images.shape[1]
    width = images.shape[2]
    out_h = output.shape[1]
    out_w = output.shape[2]
    # Numba does not bounds-check: a short params or output would be read or written
    # past its end.
    if params.shape[0] != n_images or params.shape[1] != 6 or output.shape[0] != n_images:
        raise ValueError("affine_warp: params must be (N, 6) and output (N, Ho, Wo) for "
                         "images (N, H, W)")
    for n in range(n_images):
        p0 = params[n, 0]
        p1 = params[n, 1]
        p2 = params[n, 2]
        p3 = params[n, 3]
        p4 = params[n, 4]
        p5 = params[n, 5]
        for i in range(out_h):
            for j in range(out_w):
                x = p0 * j + p1 * i + p2
                y = p3 * j + p4 * i + p5
                if x != x or y != y:
                    # NaN transform: propagate it rather than index with a garbage int.
                    output[n, i, j] = x + y
                    continue
                if x <= -1.0 or y <= -1.0 or x >= width or y >= height:
                    output[n, i, j] = 0.0
                    continue
                x0 = int(math.floor(x))
                y0 = int(math.floor(y))
                wx = x - x0
                wy = y - y0
                x1 = x0 + 1
                y1 = y0 + 1
                v00 = 0.0
                v01 = 0.0
                v10 = 0.0
                v11 = 0.0
                if y0 >= 0:
                    if x0 >= 0:
                        v00 = images[n, y0, x0]
                    if x1 < width:
                        v01 = images[n, y0, x1]
                if y1 < height:
                    if x0 >= 0:
                        v10 = images[n, y1, x0]
                    if x1 < width:
                        v11 = images[n, y1, x1]
                value = ((1.0 - wy) * ((1.0 - wx) * v00 + wx * v01)
                         + wy * ((1.0 - wx) * v10 + wx * v11))
                # Bilinear is a convex combination of the four taps; clamp to their
                # range so rounding can never push a [0, 1] image outside [0, 1].
                lo = min(min(v00, v01), min(v10, v11))
                hi = max(max(v00, v01), max(v10, v11))
                if value < lo:
                    value = lo
                elif value > hi:
                    value = hi
                output[n, i, j] = value
