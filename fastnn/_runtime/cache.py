"""Where Numba keeps the compiled kernels.

Numba writes its cache next to the kernel sources (``kernels/cpu/__pycache__``) and,
when the install location is read-only, falls back to a user-wide folder
(``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``). When neither is writable (a
read-only install run by a user without a writable home, as in some containers),
``@njit(cache=True)`` raises at import. fastnn then points ``NUMBA_CACHE_DIR`` at a
per-user folder in the temporary directory before Numba is imported. An explicit
``NUMBA_CACHE_DIR`` always wins.
"""
import importlib.util
import os
import sys
import tempfile


def _creatable(path, access=os.access):
    """True if ``path`` exists and is writable, or its nearest existing ancestor is."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return access(path, os.W_OK)


def _user_cache_dir(environ):
    home = environ.get("HOME") or os.path.expanduser("~")
    base = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "numba")


def fallback_cache_dir(kernels_dir, environ=os.environ, access=os.access):
    """The folder to use as NUMBA_CACHE_DIR, or None when Numba's own choice works."""
    if environ.get("NUMBA_CACHE_DIR"):
        return None
    if _creatable(os.path.join(kernels_dir, "__pycache__"), access):
        return None
    if _creatable(_user_cache_dir(environ), access):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"fastnn-numba-cache-{uid}")


def configure():
    spec = importlib.util.find_spec("fastnn.kernels")
    if spec is None or not spec.submodule_search_locations:
        return
    kernels_cpu = os.path.join(list(spec.submodule_search_locations)[0], "cpu")
    folder = fallback_cache_dir(kernels_cpu)
    if folder is not None:
        os.environ["NUMBA_CACHE_DIR"] = folder
        numba = sys.modules.get("numba")
        if numba is not None:  # already imported: its config was read at import
            numba.config.CACHE_DIR = folder
