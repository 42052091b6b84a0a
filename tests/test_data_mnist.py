"""fastnn.data.mnist: IDX parsing, folder search, verification, download, lazy import.

Everything runs on a tiny fake MNIST written into tmp_path (with the MD5 table patched
to match it) and a local http.server; only ``test_real_mnist`` reads the real files,
from ``$FASTNN_DATA/mnist``.
"""
import functools
import gzip
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from fastnn.data import mnist as datasets
from fastnn.datasets import load_mnist, read_idx, search_dirs

# Read before the autouse fixture hides it from the other tests.
REAL_DATA = os.environ.get("FASTNN_DATA")
PUBLISHED_MD5 = dict(datasets.MD5)

N_TRAIN, N_TEST = 7, 4


def idx_bytes(array):
    """IDX encoding of a uint8 array of 1 (labels) or 3 (images) dims."""
    magic = {1: 2049, 3: 2051}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def fake_arrays(label_offset=0, seed=0):
    """The four fake arrays; ``label_offset`` tells datasets apart in search tests."""
    rng = np.random.default_rng(seed)
    return {
        datasets.TRAIN_IMAGES: rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        datasets.TRAIN_LABELS: ((np.arange(N_TRAIN) + label_offset) % 10).astype(np.uint8),
        datasets.TEST_IMAGES: rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        datasets.TEST_LABELS: ((np.arange(N_TEST) + label_offset) % 10).astype(np.uint8),
    }


def write_dataset(folder, gz=True, label_offset=0):
    os.makedirs(folder, exist_ok=True)
    arrays = fake_arrays(label_offset)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            with open(os.path.join(folder, name + ".gz"), "wb") as f:
                f.write(gzip.compress(data))
        else:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
    return arrays


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the real cache, FASTNN_DATA, or arrays parsed by another test;
    MD5s are those of the fake files."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(datasets, "GZ_HASHES", {})  # the server fixture sets its own
    monkeypatch.setattr(datasets, "_ARRAY_CACHE", {})
    monkeypatch.setattr(datasets, "MD5", {
        name: hashlib.md5(idx_bytes(a)).hexdigest() for name, a in fake_arrays().items()})
    monkeypatch.setattr(datasets, "MIRRORS", [])


# --------------------------------------------------------------------------- IDX parser

@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
    arrays = write_dataset(tmp_path, gz=gz)
    for name, expected in arrays.items():
        got = read_idx(tmp_path / (name + (".gz" if gz else "")))
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)


def test_read_idx_truncated(tmp_path):
    data = idx_bytes(fake_arrays()[datasets.TRAIN_IMAGES])
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data[:1000])
    with pytest.raises(ValueError, match=rf"{path}.*expected {16 + N_TRAIN * 784} bytes, got 1000"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.arange(5, dtype=np.uint8)) + b"\0")
    with pytest.raises(ValueError, match="expected 13 bytes, got 14"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    compressed = gzip.compress(idx_bytes(fake_arrays()[datasets.TRAIN_IMAGES]))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(compressed[:len(compressed) // 2])
    with pytest.raises(ValueError, match=rf"{path}.*truncated"):
        read_idx(path)


def test_read_idx_wrong_magic(tmp_path):
    data = bytearray(idx_bytes(np.arange(5, dtype=np.uint8)))
    data[0:4] = (2050).to_bytes(4, "big")
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path}.*magic number 2050"):
        read_idx(path)
    path.write_bytes(b"\0\0")
    with pytest.raises(ValueError, match="8-byte header"):
        read_idx(path)


# --------------------------------------------------------------------------- loading

@pytest.mark.parametrize("gz", [True, False])
def test_load_from_root(tmp_path, gz):
    arrays = write_dataset(tmp_path / "data", gz=gz)
    X_tr, y_tr, X_te, y_te = load_mnist(root=tmp_path / "data", download=False)
    assert X_tr.shape == (N_TRAIN, 784) and X_te.shape == (N_TEST, 784)
    assert X_tr.dtype == np.float32 and y_tr.dtype == np.int64
    np.testing.assert_allclose(X_tr, arrays[datasets.TRAIN_IMAGES].reshape(N_TRAIN, 784) / 255.0,
                               rtol=1e-6)
    np.testing.assert_array_equal(y_te, arrays[datasets.TEST_LABELS])
    assert X_tr.min() >= 0.0 and X_tr.max() <= 1.0

    X_tr4, _, X_te4, _ = load_mnist(root=tmp_path / "data", download=False, flatten=False)
    assert X_tr4.shape == (N_TRAIN, 1, 28, 28) and X_te4.shape == (N_TEST, 1, 28, 28)
    np.testing.assert_array_equal(X_tr4.reshape(N_TRAIN, 784), X_tr)


def test_load_returns_fresh_arrays(tmp_path):
    write_dataset(tmp_path)
    X1 = load_mnist(root=tmp_path, download=False)[0]
    X1[:] = -1  # the caller owns its copy; the in-memory cache must not change
    X2 = load_mnist(root=tmp_path, download=False)[0]
    assert X2.min() >= 0.0


def test_root_mnist_subfolder(tmp_path):
    write_dataset(tmp_path / "mnist")
    assert load_mnist(root=tmp_path, download=False)[0].shape == (N_TRAIN, 784)


def test_search_order(tmp_path, monkeypatch):
    root, env, home = tmp_path / "root", tmp_path / "env", tmp_path / "home"
    monkeypatch.setenv("FASTNN_DATA", str(env))
    assert search_dirs(root) == [str(root), str(root / "mnist"), str(env), str(env / "mnist"),
                                 str(home / ".cache" / "fastnn" / "mnist")]
    write_dataset(home / ".cache" / "fastnn" / "mnist", label_offset=3)
    assert load_mnist(download=False, verify=False)[1][0] == 3
    write_dataset(env / "mnist", label_offset=2)
    assert load_mnist(download=False, verify=False)[1][0] == 2
    assert load_mnist(root=root, download=False, verify=False)[1][0] == 2  # root is empty
    write_dataset(root, label_offset=1)
    assert load_mnist(root=root, download=False, verify=False)[1][0] == 1


def test_fastnn_data_may_hold_the_files_themselves(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    write_dataset(tmp_path / "env", label_offset=4)  # no mnist/ subfolder, as --data allows
    assert load_mnist(download=False, verify=False)[1][0] == 4


def test_not_found_names_the_missing_files_of_a_partial_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    write_dataset(tmp_path / "env" / "mnist")
    os.remove(tmp_path / "env" / "mnist" / (datasets.TEST_LABELS + ".gz"))
    assert datasets.partial_folders() == {str(tmp_path / "env" / "mnist"): [datasets.TEST_LABELS]}
    with pytest.raises(FileNotFoundError, match=rf"mnist \(missing {datasets.TEST_LABELS}\)"):
        load_mnist(download=False)


def test_incomplete_folder_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    write_dataset(tmp_path / "env" / "mnist", label_offset=2)
    write_dataset(tmp_path / "root", label_offset=1)
    os.remove(tmp_path / "root" / (datasets.TEST_LABELS + ".gz"))
    assert load_mnist(root=tmp_path / "root", download=False, verify=False)[1][0] == 2


def test_checksum_mismatch(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    monkeypatch.setitem(datasets.MD5, datasets.TRAIN_LABELS, "0" * 32)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: MD5 mismatch.*expected 0{32}"):
        load_mnist(root=tmp_path, download=False)
    load_mnist(root=tmp_path, download=False, verify=False)  # the user can opt out


def test_verification_is_recorded(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    calls = []
    check = datasets._check_md5
    monkeypatch.setattr(datasets, "_check_md5", lambda *a, **k: calls.append(a[1]) or check(*a, **k))
    load_mnist(root=tmp_path, download=False)
    assert sorted(calls) == sorted(datasets.FILES)

    # A new process (empty array cache) trusts the record and skips hashing.
    calls.clear()
    monkeypatch.setattr(datasets, "_ARRAY_CACHE", {})
    load_mnist(root=tmp_path, download=False)
    assert calls == []

    # A changed file (new mtime) is hashed again, and a bad one is caught.
    path = tmp_path / (datasets.TEST_LABELS + ".gz")
    path.write_bytes(gzip.compress(idx_bytes(np.arange(N_TEST, dtype=np.uint8)[::-1].copy())))
    with pytest.raises(ValueError, match="MD5 mismatch"):
        load_mnist(root=tmp_path, download=False)
    assert calls == [datasets.TEST_LABELS]


def test_mismatched_counts(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    path = tmp_path / (datasets.TRAIN_LABELS + ".gz")
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(N_TRAIN + 1, np.uint8))))
    with pytest.raises(ValueError, match=f"has {N_TRAIN} images but .* has {N_TRAIN + 1} labels"):
        load_mnist(root=tmp_path, download=False, verify=False)


# --------------------------------------------------------------------------- download

class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def gz_hashes(folder, algorithm="md5"):
    return {name: f"{algorithm}:" + hashlib.new(algorithm, (folder / (name + ".gz"))
                                                .read_bytes()).hexdigest()
            for name in datasets.FILES}


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Local mirrors under http://127.0.0.1:PORT/: good/ (the fake dataset), bad/
    (valid gzip, wrong content), trunc/ (cut-off gzip), missing/ (404). The ``.gz``
    hashes pooch checks are those of good/, as the published ones are of the real files."""
    site = tmp_path / "site"
    write_dataset(site / "good")
    bad = write_dataset(site / "bad")
    for name, array in bad.items():
        corrupt = array.copy()
        corrupt.flat[0] ^= 1
        (site / "bad" / (name + ".gz")).write_bytes(gzip.compress(idx_bytes(corrupt)))
        good = (site / "good" / (name + ".gz")).read_bytes()
        (site / "trunc").mkdir(exist_ok=True)
        (site / "trunc" / (name + ".gz")).write_bytes(good[:len(good) // 2])
    monkeypatch.setattr(datasets, "GZ_HASHES", gz_hashes(site / "good"))
    requests = []

    class Handler(_Handler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield base, requests
    httpd.shutdown()
    httpd.server_close()


def test_download_skips_404_mirror(tmp_path, server):
    base, requests = server
    target = tmp_path / "dl"
    X_tr, y_tr, X_te, y_te = load_mnist(root=target, mirrors=[base + "missing", base + "good/"],
                                        progress=True)
    arrays = fake_arrays()
    np.testing.assert_array_equal(y_tr, arrays[datasets.TRAIN_LABELS])
    np.testing.assert_allclose(X_te * 255.0, arrays[datasets.TEST_IMAGES].reshape(N_TEST, 784),
                               atol=1e-4)
    assert sorted(os.listdir(target)) == sorted(n + ".gz" for n in datasets.FILES)
    name = datasets.TRAIN_IMAGES + ".gz"
    assert requests.index("/missing/" + name) < requests.index("/good/" + name)


def test_download_only_missing_files(tmp_path, server):
    base, requests = server
    write_dataset(tmp_path / "dl")
    os.remove(tmp_path / "dl" / (datasets.TEST_IMAGES + ".gz"))
    load_mnist(root=tmp_path / "dl", mirrors=[base + "good/"], progress=False)
    assert requests == ["/good/" + datasets.TEST_IMAGES + ".gz"]


def test_download_uses_module_mirrors_and_cache(tmp_path, server, monkeypatch):
    base, _ = server
    monkeypatch.setattr(datasets, "MIRRORS", [base + "good/"])
    load_mnist(progress=False)
    cache = tmp_path / "home" / ".cache" / "fastnn" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(n + ".gz" for n in datasets.FILES)


def test_download_honours_xdg_cache_home(tmp_path, server, monkeypatch):
    import pooch
    base, _ = server
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == str(pooch.os_cache("fastnn"))
    assert datasets.cache_dir() == str(tmp_path / "xdg" / "fastnn")
    load_mnist(mirrors=[base + "good/"], progress=False)
    cache = tmp_path / "xdg" / "fastnn" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(n + ".gz" for n in datasets.FILES)
    assert not (tmp_path / "home" / ".cache" / "fastnn" / "mnist").exists()


def test_sha256_hashes_are_checked_too(tmp_path, server, monkeypatch):
    base, _ = server
    site = tmp_path / "site"
    monkeypatch.setattr(datasets, "GZ_HASHES", gz_hashes(site / "good", "sha256"))
    load_mnist(root=tmp_path / "dl", mirrors=[base + "good/"], progress=False)
    monkeypatch.setitem(datasets.GZ_HASHES, datasets.TRAIN_IMAGES, "sha256:" + "0" * 64)
    with pytest.raises(FileNotFoundError, match="does not match the known hash"):
        load_mnist(root=tmp_path / "dl2", mirrors=[base + "good/"], progress=False)


@pytest.mark.parametrize("known_gz_hash", [True, False], ids=["gz-hash", "content-md5"])
@pytest.mark.parametrize("mirror", ["bad/", "trunc/"])
def test_corrupt_download_leaves_nothing(tmp_path, server, mirror, known_gz_hash, monkeypatch):
    base, _ = server
    target = tmp_path / "dl"
    if not known_gz_hash:  # a mirror of recompressed files: only the content can be checked
        monkeypatch.setattr(datasets, "GZ_HASHES", {})
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(root=target, mirrors=[base + mirror], progress=False)
    expected = ("does not match the known hash" if known_gz_hash else
                "MD5 mismatch" if mirror == "bad/" else "truncated")
    assert expected in str(info.value)
    assert os.listdir(target) == []

    # The next mirror in the list still gets its chance.
    load_mnist(root=target, mirrors=[base + mirror, base + "good/"], progress=False)
    assert sorted(os.listdir(target)) == sorted(n + ".gz" for n in datasets.FILES)


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stalled_mirror():
    """A mirror that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


def test_stalled_mirror_is_abandoned_for_the_next(tmp_path, server, stalled_mirror, monkeypatch):
    base, _ = server
    monkeypatch.setattr(datasets, "DOWNLOAD_TIMEOUT", 0.5)
    t0 = time.monotonic()
    load_mnist(root=tmp_path / "dl", mirrors=[stalled_mirror, base + "good/"], progress=False)
    assert time.monotonic() - t0 < 20  # four files, each waits 0.5 s on the stalled one


def test_no_data_no_network_message(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    dead = f"http://127.0.0.1:{_closed_port()}/"
    t0 = time.monotonic()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(root=tmp_path / "root", mirrors=[dead, dead + "other/"], progress=False)
    assert time.monotonic() - t0 < 30
    message = str(info.value)
    assert f"Put the four files in {tmp_path / 'root'}" in message
    assert message.count(dead) == 2  # the first file, both mirrors; no more files tried
    for folder in search_dirs(tmp_path / "root"):
        assert folder in message
    assert dead + datasets.TRAIN_IMAGES + ".gz" in message
    assert "FASTNN_DATA" in message and "export FASTNN_DATA=../shared/data" in message

    with pytest.raises(FileNotFoundError, match="download=False"):
        load_mnist(root=tmp_path / "root", download=False)


def test_import_is_lazy():
    code = ("import sys, fastnn.datasets; "
            "bad = [m for m in ('tqdm', 'urllib.request', 'pooch', 'requests') "
            "if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- real data

def _real_mnist_dir():
    if not REAL_DATA:
        return None
    folder = os.path.join(REAL_DATA, "mnist")
    ok = all(datasets._find_file(folder, name) for name in datasets.FILES)
    return folder if ok else None


@pytest.mark.skipif(_real_mnist_dir() is None,
                    reason="set FASTNN_DATA to a folder holding mnist/ (e.g. ../shared/data)")
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", REAL_DATA)
    monkeypatch.setattr(datasets, "MD5", PUBLISHED_MD5)
    X_tr, y_tr, X_te, y_te = load_mnist(download=False)
    assert X_tr.shape == (60000, 784) and X_te.shape == (10000, 784)
    assert X_tr.dtype == X_te.dtype == np.float32
    assert y_tr.dtype == y_te.dtype == np.int64
    assert X_tr.min() == 0.0 and X_tr.max() == 1.0
    assert X_te.min() == 0.0 and X_te.max() == 1.0
    np.testing.assert_array_equal(
        np.bincount(y_tr), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    np.testing.assert_array_equal(
        np.bincount(y_te), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
