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
