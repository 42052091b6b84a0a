"""fastnn's user cache folder (``cache_dir``) and the record of verified MNIST files
kept in it (``cache_dir()/verified/``): a file that verified once is re-verified
cheaply by its size, mtime and first and last MiB (see ``fastnn.data.mnist``, which
re-exports ``cache_dir``)."""
import hashlib
import json
import os

from ..kernels._files import atomic_write


def cache_dir() -> str:
    """fastnn's cache folder, as ``pooch.os_cache("fastnn")`` names it (``XDG_CACHE_HOME``
    honoured): the parent of the default download folder and of the verification records.

    Returns
    -------
    str
        ``$XDG_CACHE_HOME/fastnn``, by default ``~/.cache/fastnn`` on Linux.
    """
    # pooch.os_cache is platformdirs.user_cache_dir; importing pooch would put it and tqdm
    # into every load (asv startup.Startup), so ask platformdirs (pooch's dependency)
    import platformdirs
    return platformdirs.user_cache_dir("fastnn")


def _record_path(folder):
    key = hashlib.sha1(os.path.abspath(folder).encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), "verified", key + ".json")


def _load_records(folder):
    try:
        with open(_record_path(folder)) as f:
            records = json.load(f)
        return records if isinstance(records, dict) else {}
    except (OSError, ValueError):
        return {}


def _stat_key(path):
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


#: Bytes hashed at each end of a file for the cheap re-verification.
SAMPLE_BYTES = 1 << 20


def _sample_digest(path):
    """MD5 of the file's first and last ``SAMPLE_BYTES`` as stored (compressed or not):
    an in-place edit that keeps size and mtime (a restored timestamp, a copy with
    ``cp -p``) is caught when it touches either end, which for a gzip file includes
    its CRC and length trailer, so any edit to a ``.gz`` counts."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        h.update(f.read(SAMPLE_BYTES))
        size = os.fstat(f.fileno()).st_size
        if size > SAMPLE_BYTES:
            f.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def _is_recorded(path, sample, md5):
    """True when ``path`` verified before, against ``md5`` (its published MD5), and has
    not changed since: the same size, mtime and first/last MiB (``sample``, from
    _sample_digest)."""
    record = _load_records(os.path.dirname(path)).get(os.path.basename(path))
    return (isinstance(record, dict) and record.get("stat") == _stat_key(path)
            and record.get("md5") == md5 and record.get("sample") == sample)


def _record_verified(path, md5, sample=None):
    """Remember that ``path`` matched ``md5``, with its sample digest. Kept in the user
    cache, not next to the data, since data folders are often shared or read-only.
    Best effort."""
    folder = os.path.dirname(path)
    records = _load_records(folder)
    records[os.path.basename(path)] = {"stat": _stat_key(path), "md5": md5,
                                       "sample": sample or _sample_digest(path)}
    target = _record_path(folder)
    try:
        with atomic_write(target, "w") as f:
            json.dump(records, f)
    except OSError:
        pass
