"""Atomic file writes, shared by the package (checkpoints, downloads, the CLI's outputs)
and the kernels' cache guard. It lives under ``kernels/`` because kernels never import
``fastnn``; the package imports it from here (the package calls down, never up)."""
import contextlib
import os
import secrets
import time

#: A temporary file older than this is stale even when its writer's PID is alive (a PID
#: reused by another process, or a writer on another host of a shared file system).
STALE_SECONDS = 3600

_WRITING = set()  # this process's temporaries still being written (paths, not objects)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it over
    ``path``, so readers see the old file or the new one, never a partial one. On an
    error the temporary file is removed and ``path`` is untouched.

    The file gets the permissions of any file the process creates (0666 less the
    umask), not ``tempfile.mkstemp``'s 0600. Temporary files that earlier writers of
    ``path`` left behind (a ``kill -9`` mid-write) are removed first: see
    :func:`remove_stale_temporaries`.

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
    remove_stale_temporaries(path)
    tmp = os.path.join(folder, f"{_temp_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never another writer's file; mode 0o666: the kernel applies the umask
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    _WRITING.add(tmp)
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
    finally:
        _WRITING.discard(tmp)
    # make the rename itself durable (best effort; not possible on every file system)
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _temp_prefix(path):
    return "." + os.path.basename(path) + "."


def remove_stale_temporaries(path, now=None):
    """Delete the temporary files of ``path`` (``.<name>.<pid>.<token>.tmp``) whose
    writer is gone: its PID no longer runs on this host, or the file is older than
    ``STALE_SECONDS`` (the only test for names without a PID, as ``tempfile.mkstemp``
    made them). A live writer's file is left alone. Returns the removed paths.

    Parameters
    ----------
    path : str or os.PathLike
        The file whose temporaries to look for, in its folder.
    now : float, optional
        The current time (``time.time()``), for tests.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        full = os.path.join(folder, name)
        pid = name[len(prefix):-len(".tmp")].split(".")[0]
        try:
            old = now - os.stat(full).st_mtime > STALE_SECONDS
            if old or (pid.isdigit() and not _running(int(pid), full)):
                os.remove(full)
                removed.append(full)
        except OSError:  # removed meanwhile by its writer or another cleaner
            continue
    return removed


def _running(pid, tmp):
    if pid == os.getpid():
        return tmp in _WRITING
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True
