"""fastnn.data.mnist's verification record: a file changed in place after a verified
load, with its size and mtime put back, is caught (the record holds a digest of the
first and last MiB); ``verify="full"`` hashes everything again."""
import hashlib
import json
import os

import numpy as np
import pytest

from fastnn.data import mnist as datasets
from fastnn.datasets import load_mnist
from test_data_mnist import idx_bytes, isolated, write_dataset  # noqa: F401 - isolated: autouse


def _corrupt_in_place(path, offset):
    """Flip one byte at ``offset`` and put the size and mtime back as they were."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def _md5_calls(monkeypatch):
    calls = []
    check = datasets._check_md5
    monkeypatch.setattr(datasets, "_check_md5",
                        lambda *a, **k: calls.append(a[1]) or check(*a, **k))
    return calls


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("new_process", [True, False])
def test_file_changed_in_place_with_the_same_stat_is_caught(tmp_path, monkeypatch,
                                                           new_process, gz):
    write_dataset(tmp_path, gz=gz)
    load_mnist(root=tmp_path, download=False)  # verified and recorded
    path = tmp_path / (datasets.TRAIN_IMAGES + (".gz" if gz else ""))
    _corrupt_in_place(path, os.path.getsize(path) // 2)
    if new_process:
        monkeypatch.setattr(datasets, "_ARRAY_CACHE", {})
    # (a gzip file's own CRC also catches it once decompressed)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte(\.gz)?: (MD5 mismatch|corrupt)"):
        load_mnist(root=tmp_path, download=False)


def test_cheap_check_reads_the_ends_and_full_reads_everything(tmp_path, monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (6000, 28, 28), dtype=np.uint8)
    write_dataset(tmp_path, gz=False)
    data = idx_bytes(images)  # 4.7 MB, plain: its middle is outside the sampled ends
    (tmp_path / datasets.TRAIN_IMAGES).write_bytes(data)
    (tmp_path / datasets.TRAIN_LABELS).write_bytes(idx_bytes(np.zeros(6000, np.uint8)))
    for name in (datasets.TRAIN_IMAGES, datasets.TRAIN_LABELS):
        monkeypatch.setitem(datasets.MD5, name,
                            hashlib.md5((tmp_path / name).read_bytes()).hexdigest())
    calls = _md5_calls(monkeypatch)
    load_mnist(root=tmp_path, download=False)
    assert sorted(calls) == sorted(datasets.FILES)
    calls.clear()
    monkeypatch.setattr(datasets, "_ARRAY_CACHE", {})
    load_mnist(root=tmp_path, download=False)
    assert calls == []  # recorded: no hashing

    path = tmp_path / datasets.TRAIN_IMAGES
    _corrupt_in_place(path, 10)  # in the first MiB: the cheap check sees it
    with pytest.raises(ValueError, match="MD5 mismatch"):
        load_mnist(root=tmp_path, download=False)
    _corrupt_in_place(path, 10)  # back as verified
    _corrupt_in_place(path, len(data) // 2)  # the middle: only a full check sees it
    monkeypatch.setattr(datasets, "_ARRAY_CACHE", {})
    load_mnist(root=tmp_path, download=False)
    with pytest.raises(ValueError, match="MD5 mismatch"):
        load_mnist(root=tmp_path, download=False, verify="full")


def test_full_verification_hashes_every_time(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    calls = _md5_calls(monkeypatch)
    for _ in range(2):
        load_mnist(root=tmp_path, download=False, verify="full")
    assert sorted(calls) == sorted(datasets.FILES * 2)
    with pytest.raises(ValueError, match="verify must be True, False or 'full'"):
        load_mnist(root=tmp_path, download=False, verify="yes")


def test_records_without_a_sample_are_hashed_again(tmp_path, monkeypatch):
    """Records written before the sample digest existed do not count as verified."""
    write_dataset(tmp_path)
    load_mnist(root=tmp_path, download=False)
    record_file = datasets._record_path(str(tmp_path))
    with open(record_file) as f:
        records = json.load(f)
    for r in records.values():
        del r["sample"]
    with open(record_file, "w") as f:
        json.dump(records, f)
    monkeypatch.setattr(datasets, "_ARRAY_CACHE", {})
    calls = _md5_calls(monkeypatch)
    load_mnist(root=tmp_path, download=False)
    assert sorted(calls) == sorted(datasets.FILES)
