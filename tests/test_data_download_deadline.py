"""fastnn.data.mnist downloads: one deadline for the whole session (a mirror trickling a
byte a second never times out by itself), a mirror that timed out once is not asked
again, and progress is shown. Local 127.0.0.1 servers only."""
import socket
import threading
import time

import pytest

from fastnn.data import mnist as datasets
from fastnn.data._download import DeadlineDownloader, DownloadTimeout
from test_data_mnist import isolated, server  # noqa: F401 - fixtures


@pytest.fixture
def trickling_mirror():
    """Answers every request with a valid header, then one byte a second."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()
    requests = []

    def serve(conn):
        with conn:
            conn.recv(4096)
            requests.append(time.monotonic())
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n"
                             b"Content-Type: application/octet-stream\r\n\r\n")
                while not stop.is_set():
                    conn.sendall(b"x")
                    stop.wait(0.2)
            except OSError:
                pass

    def accept():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/", requests
    stop.set()
    sock.close()


@pytest.fixture
def stalled_mirror():
    """Accepts connections and never answers; counts them."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    accepted = []

    def accept():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/", accepted
    sock.close()
    for conn in accepted:
        conn.close()


def test_a_trickling_mirror_ends_at_the_deadline(tmp_path, trickling_mirror):
    url, _ = trickling_mirror
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"deadline \(1\.5 s\) passed") as exc:
        datasets.download_mnist(tmp_path / "dl", mirrors=[url], progress=False, deadline=1.5)
    assert time.monotonic() - t0 < 10
    assert str(tmp_path / "dl") in str(exc.value)
    assert [p.name for p in (tmp_path / "dl").iterdir()] == []  # no partial file left


def test_a_trickling_mirror_is_left_for_the_next_one(tmp_path, trickling_mirror, server,
                                                    monkeypatch):
    """The deadline is the session's: a trickle that uses it up ends the session (the
    next mirror is not reached), and the trickling mirror is asked once."""
    url, requests = trickling_mirror
    base, _ = server
    with pytest.raises(RuntimeError, match="deadline"):
        datasets.download_mnist(tmp_path / "dl", mirrors=[url, base + "good/"], progress=False,
                                deadline=1.0)
    assert len(requests) == 1  # the trickle timed out once and was not asked again


def test_a_stalled_mirror_is_asked_once(tmp_path, stalled_mirror, server, monkeypatch):
    url, accepted = stalled_mirror
    base, requests = server
    monkeypatch.setattr(datasets, "DOWNLOAD_TIMEOUT", 0.5)
    t0 = time.monotonic()
    datasets.download_mnist(tmp_path / "dl", mirrors=[url, base + "good/"], progress=False)
    assert time.monotonic() - t0 < 10
    assert len(accepted) == 1  # four files, the stalled mirror's one read timeout
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == \
        sorted(n + ".gz" for n in datasets.FILES)


def test_progress_is_shown(tmp_path, server, capsys):
    base, _ = server
    datasets.download_mnist(tmp_path / "dl", mirrors=[base + "good/"], progress=True)
    err = capsys.readouterr().err
    assert datasets.TRAIN_IMAGES + ".gz" in err


def test_downloader_refuses_after_the_deadline(tmp_path):
    d = DeadlineDownloader(time.monotonic() - 1, 3, 1, 1, False)
    with pytest.raises(DownloadTimeout, match=r"deadline \(3 s\) passed"):
        d("http://127.0.0.1:9/x.gz", str(tmp_path / "x"))
