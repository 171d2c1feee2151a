"""Moving one file over HTTP into the cache with huggingface_hub's client: resume, verify, rename.

The bytes come from `huggingface_hub.file_download.http_get`, which brings its HTTP client's
proxy, CA and offline settings and resumes a cut connection within the call. What this module
adds is what lasts across calls: the bytes go to a `.part` file that stays after a cut, a
Cancel or any other failure, so the next call continues from it; a checksum or size mismatch
deletes it. Only a verified file is renamed to its final name, under a lock held while the
file downloads (the lock huggingface_hub itself takes, for hub files), so two processes never
download one file at once.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import WeakFileLock, are_progress_bars_disabled

from ..errors import DownloadError
from . import failures
from .cache import cache_io, check_free_space, is_complete, side_file, unlink

ProgressCallback = Callable[[dict[str, Any]], None]

_CHUNK = 1 << 20
_PROGRESS_INTERVAL = 0.1  # at most ~10 progress callbacks a second
# http_get reports progress (and so lets a Cancel raised from the callback through) once per
# chunk; its 10 MiB chunks take seconds on a slow line, 1 MiB ones keep a Cancel within a second.
constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, _CHUNK)


def fetch(
    url: str,
    target: Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    on_progress: ProgressCallback | None = None,
    headers: dict[str, str] | None = None,
    part: Path | None = None,
    lock: Path | None = None,
    name: str | None = None,
) -> Path:
    """Download `url` to `target` (resuming `part`, default `<target>.part`), verify it, return `target`.

    `headers` go with the requests; `lock` defaults to `<target>.lock`; `name` is the file named in
    progress events and errors (default: the target's name). An exception raised by `on_progress`
    stops the download and leaves the partial file for the next call.
    """
    name = name or target.name
    part = part or side_file(target, ".part")
    lock = lock or side_file(target, ".lock")
    if not is_complete(target, expected_size) and constants.is_offline_mode():
        raise failures.offline_error(name, str(target.parent))
    for folder in {target.parent, part.parent, lock.parent}:
        with cache_io(folder):
            folder.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
        # Another process may have finished the file while this one waited for the lock.
        if is_complete(target, expected_size):
            return target
        unlink(target)
        have = _usable_part(part, expected_size)
        check_free_space(target, expected_size, have)
        progress = Progress(on_progress, name)
        try:
            _get(url, part, have, expected_size, headers or {}, progress)
            _verify(part, expected_size, sha256, name, url)
            with cache_io(target.parent):
                os.replace(part, target)
            progress.finish(target.stat().st_size)
        finally:
            progress.close()
    return target


def _usable_part(part: Path, expected_size: int | None) -> int:
    """How many bytes of `part` the download can continue from (0 after dropping one that cannot be right)."""
    try:
        have = part.stat().st_size
    except FileNotFoundError:
        return 0
    if expected_size is not None and have > expected_size:
        unlink(part)  # longer than the file can be: stale
        return 0
    return have


def _get(url: str, part: Path, have: int, expected_size: int | None, headers: dict[str, str],
         progress: Progress) -> None:
    try:
        with _open_part(part) as fh:
            # Writes land at the end of the part; a 200 answer to the Range request is truncated there by http_get.
            # http_get wants a tqdm class; any callable making a tqdm-like bar works (Progress.start).
            http_get(url, fh, resume_size=have, headers=headers,  # type: ignore[arg-type]
                     expected_size=expected_size, displayed_filename=progress.name,
                     tqdm_class=progress.start)  # type: ignore[arg-type]
            fh.flush()
            with cache_io(part.parent):
                os.fsync(fh.fileno())
    except HfHubHTTPError as exc:
        if exc.response.status_code == 416 and have and expected_size is None:
            unlink(part)  # a stale part at least as long as the file: start over once
            return _get(url, part, 0, None, headers, progress)
        raise failures.download_error(exc, file=progress.name, source=url, part=part) from None
    except (httpx2.HTTPError, ConnectionError) as exc:
        raise failures.download_error(exc, file=progress.name, source=url, part=part) from None
    except OSError as exc:
        if exc.errno is not None or isinstance(exc, DownloadError):
            with cache_io(part.parent):  # the disk: full, read-only, ...
                raise
        # http_get's "Consistency check failed": the server sent another size than expected.
        _mismatch("size", expected_size, part.stat().st_size, progress.name, url, part)
    finally:
        _drop_if_empty(part)


def _open_part(part: Path) -> IO[bytes]:
    with cache_io(part.parent):
        return open(part, "ab")


def _drop_if_empty(part: Path) -> None:
    try:
        if part.stat().st_size == 0:
            part.unlink()
    except OSError:
        pass


def _verify(part: Path, expected_size: int | None, sha256: str | None, name: str, url: str) -> None:
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        _mismatch("size", expected_size, size, name, url, part)
    if sha256:
        got = sha256_of(part)
        if got != sha256.lower():
            _mismatch("SHA-256", sha256.lower(), got, name, url, part)


def _mismatch(what: str, expected: object, got: object, name: str, url: str, part: Path) -> None:
    unlink(part)
    raise DownloadError(
        f"{what} mismatch for {name} downloaded from {url}: expected {expected}, got {got}; the download was deleted"
    )


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


class Progress:
    """The `tqdm_class` handed to http_get: its byte counts go to `callback` (throttled) or to a tqdm bar.

    http_get calls `start(total=..., initial=...)` for a bar, then `update(n)` after each chunk; an
    exception raised by the callback ends http_get there, before that chunk is written.
    """

    def __init__(self, callback: ProgressCallback | None, name: str) -> None:
        self._callback = callback
        self.name = name
        self._done = 0
        self._total: int | None = None
        self._bar: Any = None
        self._last = float("-inf")

    def start(self, *, total: int | None = None, initial: int = 0, **_: Any) -> Progress:
        self._total, self._done = total, initial
        if self._callback is None and self._bar is None and not are_progress_bars_disabled():
            from tqdm.auto import tqdm  # imported late: only needed when no callback is given

            self._bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=self.name)
        return self

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # closed by `fetch`, after the final 100 %

    def update(self, n: int) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
        now = time.monotonic()
        if self._callback is not None and now - self._last >= _PROGRESS_INTERVAL:
            self._last = now
            percentage = min(100.0, self._done * 100.0 / self._total) if self._total else 0.0
            self._report(percentage, self._done, self._total)

    def finish(self, size: int) -> None:
        if self._callback is not None:
            self._report(100.0, size, size)
        elif self._bar is not None:
            self._bar.update(size - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _report(self, percentage: float, done: int, total: int | None) -> None:
        assert self._callback is not None
        self._callback({"percentage": percentage, "downloaded_bytes": done, "total_bytes": total, "file": self.name})
