"""Augmentation: random shifts and rotations of image batches (bilinear, zero fill)."""
import math

import numpy as np


def affine_params(shift_x: "float | np.ndarray", shift_y: "float | np.ndarray",
                  angle: "float | np.ndarray", height: int, width: int,
                  dtype: "np.dtype | type" = np.float64) -> np.ndarray:
    """The (N, 6) inverse transforms ``fastnn.kernels.cpu.augment.affine_warp`` takes.

    Each image is rotated by ``angle`` degrees (counter-clockwise as displayed, rows growing
    downward) about its centre, then moved by ``shift_x`` pixels right and ``shift_y``
    pixels down. The arguments broadcast to N.

    Parameters
    ----------
    shift_x, shift_y : float or array of N
        Shifts in pixels.
    angle : float or array of N
        Rotations in degrees.
    height, width : int
        The images' size.
    dtype : numpy dtype
        The result's dtype (the images').

    Returns
    -------
    ndarray of shape (N, 6)
        One inverse affine map per image.
    """
    shift_x, shift_y, angle = np.broadcast_arrays(
        np.asarray(shift_x, np.float64), np.asarray(shift_y, np.float64),
        np.asarray(angle, np.float64))
    theta = np.deg2rad(angle.ravel())
    c, s = np.cos(theta), np.sin(theta)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ox, oy = cx + shift_x.ravel(), cy + shift_y.ravel()
    # source = R^T (dest - centre - shift) + centre
    params = np.stack([c, -s, cx - c * ox + s * oy,
                       s, c, cy - s * ox - c * oy], axis=1)
    return np.ascontiguousarray(params, dtype=dtype)


def augment_batch(images: np.ndarray, out: "np.ndarray | None" = None,
                  max_shift: float = 2, max_angle: float = 10.0,
                  rng: "np.random.Generator | int | None" = None, seed: "int | None" = None,
                  subpixel: bool = True) -> np.ndarray:
    """Randomly shift (up to ``max_shift`` pixels each way) and rotate (up to ``max_angle``
    degrees) each image, with bilinear sampling and zero fill.

    Parameters
    ----------
    images : ndarray
        (N, H*W) with square images, (N, H, W) or (N, C, H, W) (all channels of an image
        move together); float32/float64 stay as they are, other dtypes become float32.
    out : ndarray, optional
        Written and returned: the same shape and dtype, C-contiguous; may be ``images``.
    max_shift : float
        The largest shift, in pixels, each way.
    max_angle : float
        The largest rotation, in degrees, each way.
    rng : numpy.random.Generator or int, optional
        Draws the shifts and angles.
    seed : int, optional
        Used when ``rng`` is None.
    subpixel : bool
        Draw fractional shifts (False: whole pixels).

    Returns
    -------
    ndarray
        The augmented images, of ``images``' shape.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.data import augment_batch
    >>> augment_batch(np.zeros((8, 784), np.float32), seed=0).shape
    (8, 784)
    """
    from ..backend import CPUBackend

    images = np.asarray(images)
    shape = images.shape
    if images.ndim == 2:
        side = math.isqrt(shape[1])
        if side * side != shape[1]:
            raise ValueError(f"augment_batch: flat images need a square size, got shape {shape}")
        n, channels, height, width = shape[0], 1, side, side
    elif images.ndim == 3:
        n, channels, (height, width) = shape[0], 1, shape[1:]
    elif images.ndim == 4:
        n, channels, height, width = shape
    else:
        raise ValueError(f"augment_batch: expected (N, H*W), (N, H, W) or (N, C, H, W), "
                         f"got shape {shape}")
    dtype = images.dtype if images.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    src = np.ascontiguousarray(images, dtype=dtype).reshape(n * channels, height, width)
    if out is None:
        out = np.empty(shape, dtype)
    elif (out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous):
        raise ValueError(f"augment_batch: out must be C-contiguous {dtype} of shape {shape}, "
                         f"got {out.dtype} {out.shape}")
    if np.shares_memory(src, out):
        src = src.copy()  # the kernel reads neighbours of pixels it already wrote

    if rng is None:
        rng = np.random.default_rng(seed)
    elif not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    angles = rng.uniform(-max_angle, max_angle, n) if max_angle else np.zeros(n)
    if not max_shift:
        shifts = np.zeros((n, 2))
    elif subpixel:
        shifts = rng.uniform(-max_shift, max_shift, (n, 2))
    else:
        shifts = rng.integers(-int(max_shift), int(max_shift) + 1, (n, 2)).astype(np.float64)
    params = affine_params(shifts[:, 0], shifts[:, 1], angles, height, width, dtype=dtype)
    if channels > 1:
        params = np.repeat(params, channels, axis=0)
    CPUBackend.kernels.augment.affine_warp(src, out.reshape(n * channels, height, width),
                                           params)
    return out
