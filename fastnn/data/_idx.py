"""IDX files (the MNIST format): read (plain or gzip) and parse, strictly.
``fastnn.data.mnist`` re-exports ``read_idx``."""
import math
import os

import numpy as np

_IDX_LABELS = 2049  # 0x00000801: unsigned bytes, 1 dimension
_IDX_IMAGES = 2051  # 0x00000803: unsigned bytes, 3 dimensions


def _read_bytes(path, gz=None):
    """Decompressed content of ``path`` (gzip when ``gz``, default: name ends in .gz)."""
    path = os.fspath(path)
    if gz is None:
        gz = path.endswith(".gz")
    if gz:
        import gzip
        import zlib
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip file ({exc})") from exc
    with open(path, "rb") as f:
        return f.read()


def _parse_idx(data, path):
    """uint8 array from IDX bytes; strict about magic, dims and length."""
    if len(data) < 8:
        raise ValueError(f"{path}: not an IDX file: only {len(data)} bytes, "
                         "shorter than the 8-byte header")
    magic = int.from_bytes(data[0:4], "big")
    if magic == _IDX_LABELS:
        ndim = 1
    elif magic == _IDX_IMAGES:
        ndim = 3
    else:
        raise ValueError(f"{path}: bad IDX magic number {magic} (0x{magic:08x}); expected "
                         f"{_IDX_LABELS} (labels) or {_IDX_IMAGES} (images)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header: expected {header} bytes, "
                         f"got {len(data)}")
    dims = tuple(int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    if ndim == 3 and (dims[1] == 0 or dims[2] == 0):
        raise ValueError(f"{path}: bad IDX image size {dims[1]}x{dims[2]}")
    expected = header + math.prod(dims)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "trailing bytes"
        raise ValueError(f"{path}: {what}: dims {dims} need expected {expected} bytes, "
                         f"got {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: "str | os.PathLike") -> np.ndarray:
    """Parse one IDX file (``.gz`` or plain) into a read-only uint8 array.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    ndarray of uint8
        (N,) for a label file, (N, rows, columns) for an image file.

    Raises
    ------
    ValueError
        Naming the file, when it is a corrupt gzip, its magic number is not 2049/2051, or
        its length does not match the dimensions in its header.
    """
    return _parse_idx(_read_bytes(path), os.fspath(path))
