"""A pooch downloader with one deadline for a whole download session.

pooch's ``HTTPDownloader`` has a per-read timeout only: a mirror that trickles a byte a
second never times out. This one reads with ``read1`` (whatever has arrived, at most a
chunk), so it looks at the clock at least once per read timeout, and gives up when the
session's deadline has passed. requests, pooch and tqdm are imported only when used.
"""
import time


class DownloadTimeout(TimeoutError):
    """A mirror did not deliver in time (stalled, trickling, or the deadline passed)."""


def is_timeout(exc: BaseException) -> bool:
    """True for a timeout of any layer (ours, requests', the socket's): such a mirror is
    skipped for the rest of the session."""
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError too
        return True
    import sys
    requests, urllib3 = sys.modules.get("requests"), sys.modules.get("urllib3")
    return (requests is not None and isinstance(exc, requests.exceptions.Timeout)) or \
        (urllib3 is not None and isinstance(exc, urllib3.exceptions.TimeoutError))


class DeadlineDownloader:
    """``downloader`` for ``pooch.retrieve``: streams ``url`` into pooch's temporary file,
    raising DownloadTimeout once ``time.monotonic()`` passes ``end``.

    Parameters
    ----------
    end : float
        The session's deadline, on the ``time.monotonic()`` clock.
    total : float
        The session's length in seconds (for messages).
    connect_timeout, read_timeout : float
        Per-connection and per-read limits (capped by the time left).
    progress : bool
        Show a tqdm bar (bytes, with the file name).
    """

    def __init__(self, end, total, connect_timeout, read_timeout, progress):
        self.end, self.total = end, total
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.progress = progress

    def _left(self, url):
        left = self.end - time.monotonic()
        if left <= 0:
            raise DownloadTimeout(f"{url}: the download deadline ({self.total:g} s) passed")
        return left

    def __call__(self, url, output_file, pooch=None, check_only=False):
        import requests
        left = self._left(url)
        timeout = (min(self.connect_timeout, left), min(self.read_timeout, left))
        if check_only:
            return requests.head(url, timeout=timeout, allow_redirects=True).status_code == 200
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            size = int(response.headers.get("content-length") or 0) or None
            with open(output_file, "wb") as out, _bar(url, size, self.progress) as bar:
                while True:
                    self._left(url)
                    chunk = response.raw.read1(1 << 16, decode_content=True)
                    if not chunk:
                        break
                    out.write(chunk)
                    bar.update(len(chunk))


def _bar(url, size, progress):
    from tqdm.auto import tqdm
    return tqdm(total=size, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                disable=not progress, leave=False)
