"""Moving bytes over HTTP into the cache: resume after a cut, verify, and fail clearly.

Downloads stream into the target's `.part` file, resume with an HTTP Range request after a
cut, are checked against the expected size and SHA-256, and only then renamed to their final
name, so a file under its final name is always complete. A lock file next to it keeps two
processes from downloading the same file at once. Neither side file outlives a failed
download, except a non-empty `.part` after a network cut, which the next call resumes.
No network (the host name cannot be resolved, the network is unreachable) is reported at once
as "no network connection" instead of being retried.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from ..errors import DownloadError
from .cache import cache_io, check_free_space, is_complete, locked, side_file, unlink

log = logging.getLogger("qvac_nb.download")

ProgressCallback = Callable[[dict[str, Any]], None]

_USER_AGENT = "qvac_nb (+https://github.com/tetherto/qvac)"
_CHUNK = 1 << 20
_TIMEOUT = 60.0  # seconds without data before a connection counts as cut
_MAX_FAILURES = 5  # consecutive attempts without any new byte before giving up
_RETRY_DELAY = 1.0  # seconds before the first retry; doubles after each failed attempt
_PROGRESS_INTERVAL = 0.1  # at most ~10 progress callbacks a second
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}
_OFFLINE_ERRNOS = {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH}
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")


class _Cut(Exception):
    """The connection ended before the whole file arrived; resume."""


class _Mismatch(Exception):
    def __init__(self, what: str, expected: object, got: object) -> None:
        super().__init__(what, expected, got)
        self.what, self.expected, self.got = what, expected, got


_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, _Cut)


def download(
    url: str,
    target: Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    on_progress: ProgressCallback | None = None,
    headers: dict[str, str] | None = None,
) -> Path:
    """Download `url` to `target` (resuming a `.part` left by an earlier try), verify it, return `target`.

    `headers` go with every request; an Authorization header only to `url`'s own host, not to
    the hosts it redirects to (Hugging Face sends downloads on to a CDN).
    """
    target = Path(target)
    with cache_io(target.parent):
        target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target):
        # Another process may have finished the file while this one waited for the lock.
        if is_complete(target, expected_size):
            return target
        unlink(target)
        part = _PartFile(side_file(target, ".part"), target.name)
        check_free_space(target, expected_size, part.size)
        progress = _Progress(on_progress, target.name)
        try:
            _fetch(url, part, expected_size, progress, headers or {})
            _verify(part, expected_size, sha256)
            with cache_io(target.parent):
                os.replace(part.path, target)
            progress.finish(part.size)
        except _Mismatch as exc:
            part.remove()
            unlink(target)
            raise DownloadError(
                f"{exc.what} mismatch for {target.name} downloaded from {url}: expected {exc.expected}, got "
                f"{exc.got}; the download was deleted"
            ) from None
        except BaseException:
            # Any other failure (HTTP error, no network, full disk, an exception from on_progress):
            # bytes that arrived intact stay for the next call to resume; an empty part goes.
            if not part.size:
                with contextlib.suppress(OSError, DownloadError):
                    part.remove()
            raise
        finally:
            progress.close()
    return target


def _fetch(url: str, part: _PartFile, expected_size: int | None, progress: _Progress, headers: dict[str, str]) -> None:
    """Fill `part` from `url`, resuming after cuts until the file is complete or retries run out."""
    failures = 0
    while True:
        if expected_size is not None and part.size >= expected_size:
            if part.size == expected_size:
                return
            part.reset()  # longer than the file can be: stale
        before = part.size
        try:
            _attempt(url, part, expected_size, progress, headers)
            return
        except urllib.error.HTTPError as exc:
            if exc.code not in _RETRY_HTTP:
                reason = f"HTTP {exc.code} {exc.reason}{_http_hint(exc.code)}"
                raise DownloadError(f"could not download {part.target_name} from {url}: {reason}") from None
            error: Exception = exc
        except _TRANSIENT as exc:
            if _is_offline(exc):
                host = urlparse(url).hostname or url
                raise DownloadError(
                    f"no network connection: could not reach {host} to download {part.target_name} "
                    f"({_reason(exc)}); check the network connection and the address, or pass a local file"
                ) from None
            error = exc
        failures = 0 if part.size > before else failures + 1
        reason = _reason(error)
        if failures >= _MAX_FAILURES:
            kept = f"; the partial file {part.path} is kept and the next call resumes it" if part.size else ""
            raise DownloadError(
                f"could not download {part.target_name} from {url} after {failures} attempts: {reason}{kept}"
            ) from error
        log.warning("download of %s interrupted (%s); retrying from byte %d", part.target_name, reason, part.size)
        time.sleep(min(_RETRY_DELAY * 2 ** max(failures - 1, 0), 30.0) if failures else 0.0)


def _attempt(
    url: str, part: _PartFile, expected_size: int | None, progress: _Progress, headers: dict[str, str]
) -> None:
    """One HTTP request, appending what arrives to `part`; raises _Cut when the body ends early."""
    try:
        response = _open(url, part.size, headers)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not part.size:
            raise
        # Range not satisfiable: the part is already whole, or longer than the file.
        total = _parse_content_range(exc.headers.get("Content-Range", ""))[1]
        exc.close()
        if total == part.size:
            return
        part.reset()
        raise _Cut("the server refused to resume; restarting") from None
    with response:
        total = _start_body(response, part)
        if total is not None and expected_size is not None and total != expected_size:
            raise _Mismatch("size", expected_size, total)
        _stream(response, part, expected_size, total or expected_size, progress)
    if total is not None and part.size < total:
        raise _Cut(f"connection closed after {part.size} of {total} bytes")


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but keep credentials from leaving the host they were meant for (e.g. to a CDN)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlparse(newurl).netloc != urlparse(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


def _open(url: str, offset: int, headers: dict[str, str]) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity", **headers})
    if offset:
        request.add_header("Range", f"bytes={offset}-")  # kept on redirects, so resuming works through a CDN
    # A fresh opener each time so proxy settings are read from the environment as it is now.
    return urllib.request.build_opener(_SameHostRedirects).open(request, timeout=_TIMEOUT)


def _start_body(response: http.client.HTTPResponse, part: _PartFile) -> int | None:
    """Line `part` up with the body that follows; the file's total size when the server says it."""
    if response.status == 206:
        start, total = _parse_content_range(response.headers.get("Content-Range", ""))
        if start != part.size:
            part.reset()
            raise _Cut(f"the server resumed at byte {start} instead of {part.size}; restarting")
        return total
    if part.size:
        # A 200 answer to a Range request carries the whole file: start over.
        log.info("the server does not resume %s; restarting it", part.target_name)
        part.reset()
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def _parse_content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, total size) from a Content-Range header; None for what it does not say."""
    match = _CONTENT_RANGE.search(value or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total.isdigit() else None)


def _stream(
    response: http.client.HTTPResponse,
    part: _PartFile,
    expected_size: int | None,
    total: int | None,
    progress: _Progress,
) -> None:
    with part.open() as fh:
        while chunk := response.read(_CHUNK):
            part.write(fh, chunk)
            if expected_size is not None and part.size > expected_size:
                raise _Mismatch("size", expected_size, f"more than {expected_size} bytes")
            progress.update(part.size, total)
        part.sync(fh)


def _verify(part: _PartFile, expected_size: int | None, sha256: str | None) -> None:
    if expected_size is not None and part.size != expected_size:
        raise _Mismatch("size", expected_size, part.size)
    if sha256 and part.hexdigest() != sha256.lower():
        raise _Mismatch("SHA-256", sha256.lower(), part.hexdigest())


def _is_offline(error: BaseException) -> bool:
    """True when the request failed for lack of a network (no DNS, no route), which no retry fixes soon."""
    cause = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(cause, socket.gaierror):
        return True
    return isinstance(cause, OSError) and cause.errno in _OFFLINE_ERRNOS


def _reason(error: Exception) -> str:
    """A readable cause: URLError's str() wraps the real reason in '<urlopen error ...>'."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _http_hint(code: int) -> str:
    if code in (401, 403):
        return "; the repository may be gated or private: accept its terms on huggingface.co and set HF_TOKEN"
    if code == 404:
        return "; check the address and the revision"
    return ""


class _PartFile:
    """The `.part` file of a download, with a running SHA-256 of everything in it."""

    def __init__(self, path: Path, target_name: str) -> None:
        self.path = path
        self.target_name = target_name
        self._hasher = hashlib.sha256()
        self.size = 0
        # Resuming: the bytes already on disk are part of the hash.
        with cache_io(path.parent), contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                self._hasher.update(chunk)
                self.size += len(chunk)

    def open(self) -> IO[bytes]:
        with cache_io(self.path.parent):
            return open(self.path, "ab")

    def write(self, fh: IO[bytes], chunk: bytes) -> None:
        with cache_io(self.path.parent):
            fh.write(chunk)
            fh.flush()  # so `size` always matches the disk, even if the connection dies next
        self._hasher.update(chunk)
        self.size += len(chunk)

    def sync(self, fh: IO[bytes]) -> None:
        with cache_io(self.path.parent):
            os.fsync(fh.fileno())

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    def reset(self) -> None:
        self.remove()
        self._hasher = hashlib.sha256()
        self.size = 0

    def remove(self) -> None:
        unlink(self.path)


class _Progress:
    """Progress reports for one download: throttled callbacks, or a tqdm bar when there is no callback."""

    def __init__(self, callback: ProgressCallback | None, name: str) -> None:
        self._callback = callback
        self._name = name
        self._bar: Any = None
        self._last = float("-inf")

    def update(self, done: int, total: int | None) -> None:
        if self._callback is None:
            self._update_bar(done, total)
            return
        now = time.monotonic()
        if now - self._last < _PROGRESS_INTERVAL:
            return
        self._last = now
        percentage = min(100.0, done * 100.0 / total) if total else 0.0
        self._report(percentage, done, total)

    def finish(self, done: int) -> None:
        if self._callback is None:
            self._update_bar(done, done)
        else:
            self._report(100.0, done, done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _report(self, percentage: float, done: int, total: int | None) -> None:
        assert self._callback is not None
        self._callback({"percentage": percentage, "downloaded_bytes": done, "total_bytes": total, "file": self._name})

    def _update_bar(self, done: int, total: int | None) -> None:
        if self._bar is None:
            from tqdm.auto import tqdm  # imported late: only needed when no callback is given

            self._bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024, desc=self._name)
            return
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)


