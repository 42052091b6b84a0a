"""One digest of a kernel folder's sources guards its whole Numba cache.

Numba checks each cached kernel against its own source file only (mtime and size),
but a kernel compiles in the helpers it calls from the folder's other files:
``blas.gemm`` into every affine and conv kernel, ``activation_value`` into the conv
stores. After an edit or an upgrade that touches only ``blas.py``, the cached affine
kernels would still run the old gemm (it happened: an int32 -> int64 change of gemm's
arguments left stale callers passing garbage to BLAS). So when the folder's digest
changes, its cached files are dropped before any kernel loads them.
"""
import glob
import hashlib
import os

from ._files import atomic_write

STAMP = "fastnn-sources.sha256"


def sources_digest(folder):
    """Digest of the folder's sources and of ``kernels/codes.py``, whose constants Numba
    compiles into the kernels as literals."""
    h = hashlib.sha256()
    shared = os.path.join(os.path.dirname(os.path.abspath(folder)), "codes.py")
    paths = sorted(glob.glob(os.path.join(folder, "*.py")))
    for path in paths + ([shared] if os.path.exists(shared) else []):
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def cache_folder(source_file):
    """Where Numba caches the kernels of ``source_file``: its own locator logic, asked
    with a stand-in function from that file (None if it finds no usable folder)."""
    from numba.core.caching import CompileResultCacheImpl
    namespace = {}
    exec(compile("def probe():\n    pass\n", source_file, "exec"), namespace)
    try:
        return CompileResultCacheImpl(namespace["probe"])._locator.get_cache_path()
    except RuntimeError:  # no locator: Numba will refuse to cache anyway
        return None


def drop_stale_cache(folder):
    """Delete the cached kernels of ``folder``'s modules if its sources changed since
    they were cached. Never raises: a guard that fails leaves Numba's own checks
    (CacheImpl's locator is Numba-internal API)."""
    try:
        digest = sources_digest(folder)
        cache = cache_folder(os.path.join(folder, "__init__.py"))
        if cache is None or not os.path.isdir(cache):
            return
        stamp = os.path.join(cache, STAMP)
        try:
            with open(stamp) as f:
                if f.read().strip() == digest:
                    return
        except OSError:
            pass
        modules = {os.path.splitext(os.path.basename(p))[0]
                   for p in glob.glob(os.path.join(folder, "*.py"))}
        for path in glob.glob(os.path.join(cache, "*.nb[ic]")):
            if os.path.basename(path).split(".", 1)[0] in modules:
                try:
                    os.remove(path)
                except OSError:
                    pass
        with atomic_write(stamp, "w") as f:  # a concurrent reader sees old or new digest
            f.write(digest + "\n")
    except Exception:  # noqa: BLE001  (Numba internals moved, a read-only folder, ...)
        pass
