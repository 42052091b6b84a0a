"""Atomic file writes, shared by the package (checkpoints, downloads, the CLI's outputs)
and the kernels' cache guard. It lives under ``kernels/`` because kernels never import
``fastnn``; the package imports it from here (the package calls down, never up)."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it over
    ``path``, so readers see the old file or the new one, never a partial one. On an
    error the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its folder is created if missing.
    mode : str
        ``"wb"`` or ``"w"``.

    Yields
    ------
    file
        The open temporary file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    # make the rename itself durable (best effort; not possible on every file system)
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
