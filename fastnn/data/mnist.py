"""MNIST: find, download, verify and load the four IDX files.

Where the files are looked for, in order (``root`` and ``$FASTNN_DATA`` alike may name
the folder holding the files or the folder holding ``mnist/``):
  1. ``root`` and ``root/mnist``, when given (the CLI's ``--data``);
  2. ``$FASTNN_DATA`` and ``$FASTNN_DATA/mnist``;
  3. ``cache_dir()/mnist``, where downloads go when no ``root`` is given: the folder
     ``pooch.os_cache("fastnn")`` names (``$XDG_CACHE_HOME/fastnn``, by default
     ``~/.cache/fastnn``, on Linux).

The ``FASTNN_DATA`` folder may be read-only: nothing is written there. Each file may be
gzip-compressed (``.gz``) or plain. Checksums are MD5s of the decompressed content (the
published ones), so recompressed archives still verify. A file that verified once is
recorded (size, mtime, its MD5, and an MD5 of its first and last MiB) in
``cache_dir()/verified/``, so later loads re-verify cheaply: the size, the mtime and
those 2 MiB must still match (``verify="full"`` hashes everything again). Parsed arrays
are also cached in memory for the life of the process, under the same sample.

Downloads go through pooch (``pooch.retrieve``): each mirror in turn, the ``.gz`` checked
against its published hash (``GZ_HASHES``) before it is moved into place, then its content
against ``MD5``. pooch (and tqdm, requests) are imported only when a download happens.

IDX parsing is in ``_idx.py``, ``cache_dir`` and the verification record in ``_cache.py``,
the deadline downloader in ``_download.py``; their public names are importable from here.
"""
import hashlib
import os

import numpy as np

from ._cache import (SAMPLE_BYTES, _is_recorded, _record_path, _record_verified,  # noqa: F401
                     _sample_digest, _stat_key, cache_dir)
from ._idx import _parse_idx, _read_bytes, read_idx  # noqa: F401 (read_idx: public here)

#: Mirrors tried in turn; each is a URL prefix to which ``<file>.gz`` is appended.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: Hashes of the published ``.gz`` files, as pooch's ``known_hash`` ("md5:..." or
#: "sha256:..."): a download must match before it is moved into place. None skips this
#: check (the content's MD5 below is still checked).
GZ_HASHES = {
    "train-images-idx3-ubyte": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "md5:ec29112dd5afa0611ce80d1b7f02629c",
}

#: Published MD5s of the decompressed IDX files.
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

#: Seconds a mirror may take to accept the connection: offline, every mirror fails within
#: this, so the error comes within len(MIRRORS) * CONNECT_TIMEOUT.
CONNECT_TIMEOUT = 5.0
#: Seconds a connected mirror may stay silent before we give up on it.
DOWNLOAD_TIMEOUT = 30.0
#: Seconds one ``download_mnist`` call may take in all (a trickling mirror never times
#: out by itself); ``download_mnist(deadline=...)`` overrides it.
DOWNLOAD_DEADLINE = 120.0


# (resolved path, size, mtime_ns) -> parsed uint8 array; files change rarely, parsing
# and hashing 47 MB does not need to happen twice per process.
_ARRAY_CACHE = {}


# --------------------------------------------------------------------------- paths

def search_dirs(root: "str | os.PathLike | None" = None) -> "list[str]":
    """Folders searched for the MNIST files, in order (existing or not).

    Parameters
    ----------
    root : str or path-like, optional
        A folder holding the four files, or holding ``mnist/`` with them; searched first.

    Returns
    -------
    list of str
        ``root``, ``root/mnist``, ``$FASTNN_DATA``, ``$FASTNN_DATA/mnist`` (each pair only
        when set) and ``cache_dir()/mnist``, each folder once.
    """
    dirs = []
    for base in (root, os.environ.get("FASTNN_DATA") or None):
        if base is not None:  # --data and FASTNN_DATA search the same two places
            base = os.fspath(base)
            dirs += [base, os.path.join(base, "mnist")]
    dirs.append(os.path.join(cache_dir(), "mnist"))
    # The same folder may be reached twice (e.g. FASTNN_DATA == root); look once.
    unique = []
    for d in dirs:
        if os.path.abspath(d) not in [os.path.abspath(u) for u in unique]:
            unique.append(d)
    return unique


def _find_file(folder, name):
    """Path of ``name`` in ``folder`` (plain preferred: no decompression), or None."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def find_mnist(root: "str | os.PathLike | None" = None) -> "str | None":
    """The first folder in ``search_dirs(root)`` holding all four files.

    Parameters
    ----------
    root : str or path-like, optional
        Searched first, as in ``search_dirs``.

    Returns
    -------
    str or None
        The folder, or None when no folder holds all four.
    """
    for folder in search_dirs(root):
        if all(_find_file(folder, name) for name in FILES):
            return folder
    return None


def partial_folders(root: "str | os.PathLike | None" = None) -> "dict[str, list[str]]":
    """The searched folders that hold some of the four files but not all.

    Parameters
    ----------
    root : str or path-like, optional
        Searched first, as in ``search_dirs``.

    Returns
    -------
    dict
        ``{folder: [names of the missing files]}``, in search order; empty when every
        folder holds all four files or none.
    """
    partial = {}
    for folder in search_dirs(root):
        missing = [name for name in FILES if not _find_file(folder, name)]
        if 0 < len(missing) < len(FILES):
            partial[folder] = missing
    return partial


# --------------------------------------------------------------------------- checksums

def _base_name(path):
    name = os.path.basename(path)
    return name[:-3] if name.endswith(".gz") else name


def _check_md5(data, name, where, hint=" (delete the file to download it again)"):
    """MD5 of ``data`` after checking it against ``MD5[name]`` (None for unknown names)."""
    expected = MD5.get(name)
    if expected is None:
        return None
    got = hashlib.md5(data).hexdigest()
    if got != expected:
        raise ValueError(f"{where}: MD5 mismatch for {name}: expected {expected}, "
                         f"got {got}{hint}")
    return got


def _load_array(path, verify):
    """Parsed (and, with ``verify``, MD5-checked) uint8 array, cached per process.
    ``verify="full"`` hashes the whole file even when a record says it verified."""
    if verify not in (True, False, "full"):
        raise ValueError(f"load_mnist: verify must be True, False or 'full', got {verify!r}")
    path = os.path.abspath(path)
    sample = _sample_digest(path) if verify else None
    key = (path, *_stat_key(path), sample)
    cached = _ARRAY_CACHE.get(key)
    if cached is not None and (not verify or cached[1]) and verify != "full":
        return cached[0]
    data = _read_bytes(path)
    name = _base_name(path)
    verified = False
    if verify and name in MD5:
        if verify == "full" or not _is_recorded(path, sample, MD5.get(name)):
            _record_verified(path, _check_md5(data, name, path), sample)
        verified = True
    array = _parse_idx(data, path)
    _ARRAY_CACHE[key] = (array, verified)
    return array


# --------------------------------------------------------------------------- download

def _fetch(url, dest_folder, name, progress, end=None, deadline=None):
    """Download ``url`` (a gzip of ``name``) into ``dest_folder/name.gz`` with pooch.

    pooch writes to a temp file in the folder and moves it into place only when it matches
    ``GZ_HASHES[name]`` (MD5 or SHA-256 of the published ``.gz``), so a failed, corrupt or
    truncated download never leaves a file that looks valid; the decompressed content is
    then checked against ``MD5[name]`` as for any local file. ``end`` (``time.monotonic()``)
    is the session's deadline (see ``_download.DeadlineDownloader``).
    """
    import logging
    import time

    import pooch

    from ._download import DeadlineDownloader
    deadline = DOWNLOAD_DEADLINE if deadline is None else deadline
    if end is None:
        end = time.monotonic() + deadline
    downloader = DeadlineDownloader(end, deadline, CONNECT_TIMEOUT, DOWNLOAD_TIMEOUT, progress)
    logger = pooch.get_logger()
    level = logger.level
    if not progress:
        logger.setLevel(logging.WARNING)  # pooch announces each download at INFO
    try:
        path = pooch.retrieve(url, known_hash=GZ_HASHES.get(name), fname=name + ".gz",
                              path=dest_folder, downloader=downloader)
    finally:
        logger.setLevel(level)
    os.chmod(path, 0o644)  # pooch's temp file was owner-only; caches may be shared
    try:
        data = _read_bytes(path, gz=True)
        _check_md5(data, name, url, hint="")
        _parse_idx(data, url)
    except ValueError:
        os.remove(path)
        raise
    _record_verified(path, MD5.get(name))
    return path


def download_mnist(folder: "str | os.PathLike | None" = None,
                   mirrors: "list[str] | None" = None, progress: bool = True,
                   files: "tuple[str, ...]" = FILES, deadline: "float | None" = None) -> str:
    """Download the missing ``files`` into ``folder`` with pooch, trying ``mirrors`` in turn,
    all within ``deadline`` seconds; each file is checked (``GZ_HASHES``, then ``MD5``)
    before it lands. A mirror that times out once (stalled, trickling) is not asked for the
    remaining files.

    Parameters
    ----------
    folder : str or path-like, optional
        Where the files go (default ``cache_dir()/mnist``).
    mirrors : list of str, optional
        URL prefixes to which ``<file>.gz`` is appended (default: the module's ``MIRRORS``).
    progress : bool
        Show a progress bar per file.
    files : tuple of str
        The file names (without ``.gz``).
    deadline : float, optional
        Seconds the whole call may take (default ``DOWNLOAD_DEADLINE``): a mirror that
        trickles never times out by itself.

    Returns
    -------
    str
        The folder.

    Raises
    ------
    RuntimeError
        Listing every URL tried and why it failed, when a file could not be fetched from
        any mirror; the files after it are not tried then (offline, each would wait out
        the same timeouts).
    """
    import time

    from ._download import is_timeout
    folder = os.fspath(folder) if folder is not None else os.path.join(cache_dir(), "mnist")
    mirrors = MIRRORS if mirrors is None else mirrors
    deadline = DOWNLOAD_DEADLINE if deadline is None else float(deadline)
    end = time.monotonic() + deadline
    timed_out = set()
    os.makedirs(folder, exist_ok=True)
    for name in files:
        if _find_file(folder, name):
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name + ".gz"
            if mirror in timed_out:
                errors.append(f"{url}: skipped (this mirror timed out before)")
                continue
            try:
                _fetch(url, folder, name, progress, end, deadline)
                break
            except Exception as exc:  # try the next mirror, report all at the end
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
                if is_timeout(exc):
                    timed_out.add(mirror)
        else:
            lines = "\n".join(f"    {e}" for e in errors or ["no mirrors configured"])
            raise RuntimeError(f"could not download MNIST into {folder}:\n  {name}:\n{lines}")
    return folder


# --------------------------------------------------------------------------- load

def _not_found_message(root, download, download_error):
    partial = partial_folders(root)
    looked = "\n".join(f"  {d}" + (f" (missing {', '.join(partial[d])})" if d in partial else "")
                       for d in search_dirs(root))
    names = ", ".join(f"{n}[.gz]" for n in FILES)
    if download_error is not None:
        why = f"Downloading failed:\n{download_error}"
    elif not download:
        why = "Downloading is off (download=False)."
    else:
        why = ""
    target = os.fspath(root) if root is not None else os.path.join(cache_dir(), "mnist")
    return (f"MNIST not found: no folder holds all of {names}. Looked in:\n{looked}\n"
            f"{why}\nPut the four files in {target}, or set FASTNN_DATA to a folder "
            "holding them or mnist/ with them (e.g. `export FASTNN_DATA=../shared/data`), or "
            "pass root=.")


def load_mnist(root: "str | os.PathLike | None" = None, download: bool = True,
               flatten: bool = True, progress: bool = True, verify: "bool | str" = True,
               mirrors: "list[str] | None" = None) -> "tuple[np.ndarray, ...]":
    """Load MNIST: 60,000 training and 10,000 test images with their labels.

    The folder is found as the module docstring says (``root``, then ``$FASTNN_DATA``,
    then ``cache_dir()/mnist``). When none holds all four files and ``download`` is true,
    the missing ones are fetched into ``root`` (or ``cache_dir()/mnist``).

    Parameters
    ----------
    root : str or path-like, optional
        A folder holding the four files, or ``mnist/`` with them; searched first.
    download : bool
        Fetch the files when no folder holds them.
    flatten : bool
        Images as rows of 784 (True) or as (N, 1, 28, 28).
    progress : bool
        Show download progress.
    verify : bool or "full"
        Check each file's MD5 once and remember it with the file's size, mtime and a
        digest of its first and last MiB, which later loads compare (cheap); ``"full"``
        hashes every file again. Downloads are always checked.
    mirrors : list of str, optional
        Download URL prefixes (default: the module's ``MIRRORS``).

    Returns
    -------
    (X_train, y_train, X_test, y_test)
        Images float32 in [0, 1], (N, 784) or (N, 1, 28, 28); labels int64.

    Raises
    ------
    FileNotFoundError
        Listing every folder looked in (and the files a partial folder lacks).
    ValueError
        A corrupt, truncated or mismatched file, named.

    Examples
    --------
    >>> from fastnn.data import load_mnist
    >>> X, y, X_test, y_test = load_mnist(download=False)  # doctest: +SKIP
    >>> X.shape, y[:5]  # doctest: +SKIP
    ((60000, 784), array([5, 0, 4, 1, 9]))
    """
    folder = find_mnist(root)
    if folder is None:
        download_error = None
        if download:
            target = os.fspath(root) if root is not None else os.path.join(cache_dir(), "mnist")
            try:
                folder = download_mnist(target, mirrors=mirrors, progress=progress)
            except (RuntimeError, OSError) as exc:
                download_error = exc
        if folder is None:
            error = FileNotFoundError(_not_found_message(root, download, download_error))
            error.download_error = download_error  # the CLI prints a one-line version
            raise error

    arrays = {name: _load_array(_find_file(folder, name), verify) for name in FILES}
    result = []
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images, labels = arrays[images_name], arrays[labels_name]
        images_path = _find_file(folder, images_name)
        labels_path = _find_file(folder, labels_name)
        # The magic number says which kind a file holds; a swapped file is a clear error.
        if images.ndim != 3:
            raise ValueError(f"{images_path}: expected an IDX image file (3 dims), "
                             f"got shape {images.shape}")
        if labels.ndim != 1:
            raise ValueError(f"{labels_path}: expected an IDX label file (1 dim), "
                             f"got shape {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{images_path} has {len(images)} images but {labels_path} "
                             f"has {len(labels)} labels")
        n, height, width = images.shape
        shape = (n, height * width) if flatten else (n, 1, height, width)
        x = images.reshape(shape).astype(np.float32)
        x *= np.float32(1.0 / 255.0)
        result += [x, labels.astype(np.int64)]
    return tuple(result)
