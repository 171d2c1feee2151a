"""Finding model files and downloading them into the cache.

Cache folder: `$QVAC_NB_CACHE` if set, else `$XDG_CACHE_HOME/qvac_nb`, else `~/.cache/qvac_nb`.
That is the XDG convention pip and huggingface_hub also follow, so multi-GB models land
where users expect caches (and where cache cleaners look), never inside a project folder.
Layout inside it:

    hf/<owner>--<repo>/<revision>/<path>     files from Hugging Face (hf:// and catalogue entries)
    url/<sha256(url)[:16]>/<basename>        files from any other URL

A file that is already in the Hugging Face hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`,
else `~/.cache/huggingface/hub`) with the right size is used in place, never copied.

Downloads stream into `<file>.part`, resume with an HTTP Range request after a cut, are
checked against the expected size and SHA-256, and only then renamed to their final name,
so a file under its final name is always complete. A lock file next to it keeps two
processes from downloading the same file at once. `HF_ENDPOINT` replaces
https://huggingface.co (mirrors, tests) and `HF_TOKEN` is sent to it for gated repositories.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote, unquote, urlparse

from .catalog import CATALOG, ModelEntry, get_entry
from .errors import CorruptModelError, DownloadError, InvalidParameterError, InvalidTypeError, ModelFileError, suggest

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent downloads of one file are not guarded there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("qvac_nb.download")

ProgressCallback = Callable[[dict[str, Any]], None]

CACHE_ENV = "QVAC_NB_CACHE"
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
_USER_AGENT = "qvac_nb (+https://github.com/tetherto/qvac)"
_CHUNK = 1 << 20
_TIMEOUT = 60.0  # seconds without data before a connection counts as cut
_MAX_FAILURES = 5  # consecutive attempts without any new byte before giving up
_RETRY_DELAY = 1.0  # seconds before the first retry; doubles after each failed attempt
_PROGRESS_INTERVAL = 0.1  # at most ~10 progress callbacks a second
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}
_COMMIT = re.compile(r"[0-9a-f]{40}")
_CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")  # what catalogue names look like
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")


# ---------------------------------------------------------------- locations


def cache_dir() -> Path:
    """The qvac_nb cache folder: $QVAC_NB_CACHE, else $XDG_CACHE_HOME/qvac_nb, else ~/.cache/qvac_nb."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return _xdg_cache() / "qvac_nb"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, located the way huggingface_hub locates it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    hf_home = os.environ.get("HF_HOME")
    base = Path(hf_home).expanduser() if hf_home else _xdg_cache() / "huggingface"
    return base / "hub"


def hf_endpoint() -> str:
    """$HF_ENDPOINT (a mirror or a test server), else https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")


def _xdg_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg).expanduser() if xdg else Path.home() / ".cache"


@dataclass(frozen=True)
class HfFile:
    """One file of a Hugging Face repository at a revision."""

    repo: str
    path: str
    revision: str = "main"

    @classmethod
    def parse(cls, uri: str) -> HfFile:
        """Parse `hf://owner/repo/path/inside[@revision]` (revision defaults to "main")."""
        parts = uri[len("hf://") :].split("/", 2)
        if len(parts) < 3 or not all(parts):
            raise InvalidParameterError(
                f"model_src {uri!r} is not a valid Hugging Face address; expected hf://owner/repo/path/in/repo[@revision]"
            )
        owner, name, inner = parts
        path, at, revision = inner.rpartition("@")
        if not at:
            path, revision = inner, "main"
        if not revision or not _is_safe_relative(path):
            raise InvalidParameterError(
                f"model_src {uri!r} is not a valid Hugging Face address; expected hf://owner/repo/path/in/repo[@revision]"
            )
        return cls(f"{owner}/{name}", path, revision)

    def url(self) -> str:
        return f"{hf_endpoint()}/{self.repo}/resolve/{quote(self.revision, safe='')}/{quote(self.path)}"

    def cache_path(self) -> Path:
        """Where qvac_nb keeps this file: <cache>/hf/<owner>--<repo>/<revision>/<path>."""
        return cache_dir() / "hf" / self.repo.replace("/", "--") / self.revision.replace("/", "--") / self.path

    def hub_path(self) -> Path | None:
        """Where the Hugging Face hub cache would hold this file, or None if its revision is unknown there."""
        base = hf_hub_cache() / f"models--{self.repo.replace('/', '--')}"
        commit = self.revision
        if not _COMMIT.fullmatch(commit):
            # A branch or tag: the hub cache records which commit it pointed to.
            try:
                commit = (base / "refs" / self.revision).read_text(encoding="utf-8").strip()
            except OSError:
                return None
        return base / "snapshots" / commit / self.path


def _is_safe_relative(path: str) -> bool:
    """A non-empty relative path that cannot climb out of the folder it is joined to."""
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and not any(part in ("..", ".") for part in parts)


def url_cache_path(url: str) -> Path:
    """Where qvac_nb keeps a file downloaded from a URL: <cache>/url/<sha256(url)[:16]>/<basename>."""
    name = unquote(urlparse(url).path).rsplit("/", 1)[-1]
    if name in ("", ".", ".."):
        name = "download"
    return cache_dir() / "url" / hashlib.sha256(url.encode("utf-8")).hexdigest()[:16] / name


def _entry_locations(entry: ModelEntry) -> list[Path]:
    """Where a catalogue entry may already be on disk, in order of preference."""
    if entry.source != "hf":
        return [url_cache_path(entry.url)]
    hf = _entry_hf(entry)
    hub = hf.hub_path()
    return [hf.cache_path()] + ([hub] if hub is not None else [])


def _entry_hf(entry: ModelEntry) -> HfFile:
    return HfFile(str(entry.repo), str(entry.path), str(entry.revision))


def _is_complete(path: Path, size: int | None) -> bool:
    try:
        return path.is_file() and (size is None or path.stat().st_size == size)
    except OSError:
        return False


# ---------------------------------------------------------------- resolving


def resolve_source(
    src: str | os.PathLike[str] | ModelEntry,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """The local file for a model source, downloading it into the cache when needed.

    `src` is a catalogue name (e.g. "SD_V2_1_1B_Q8_0"; its size and SHA-256 come from the
    catalogue and override the arguments), an existing local path, an https:// URL, or
    `hf://owner/repo/path/in/repo[@revision]`. `expected_size` and `sha256`, when given,
    are checked after a download (and on a local file). `on_progress` receives dicts with
    percentage, downloaded_bytes, total_bytes and file (percentage stays 0 until the end when
    the size is unknown); without it a tqdm bar is shown.
    An exception raised by `on_progress` aborts the download; the next call resumes it.
    """
    if isinstance(src, ModelEntry):
        return _resolve_entry(src, on_progress)
    if isinstance(src, os.PathLike):
        return _resolve_local(os.fspath(src), expected_size, sha256)
    if not isinstance(src, str):
        raise InvalidTypeError(f"model_src must be a str or a path, got {type(src).__name__}")
    if not src.strip():
        raise InvalidParameterError("model_src is empty; pass a catalogue name, a file path, a URL or hf://...")
    if src in CATALOG:
        return _resolve_entry(CATALOG[src], on_progress)
    if src.startswith("hf://"):
        return _resolve_hf(HfFile.parse(src), expected_size, sha256, on_progress)
    if src.startswith(("https://", "http://")):
        return download(src, url_cache_path(src), expected_size=expected_size, sha256=sha256, on_progress=on_progress)
    return _resolve_local(src, expected_size, sha256)


def _resolve_entry(entry: ModelEntry, on_progress: ProgressCallback | None) -> Path:
    if entry.source == "hf":
        return _resolve_hf(_entry_hf(entry), entry.size, entry.sha256, on_progress)
    return download(
        entry.url, url_cache_path(entry.url), expected_size=entry.size, sha256=entry.sha256, on_progress=on_progress
    )


def _resolve_hf(hf: HfFile, size: int | None, sha256: str | None, on_progress: ProgressCallback | None) -> Path:
    target = hf.cache_path()
    if _is_complete(target, size):
        return target
    hub = hf.hub_path()
    if hub is not None and _is_complete(hub, size):
        log.info("using %s from the Hugging Face cache", hub)
        return hub
    return download(hf.url(), target, expected_size=size, sha256=sha256, on_progress=on_progress, headers=_hf_auth())


def _hf_auth() -> dict[str, str]:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _resolve_local(src: str, expected_size: int | None, sha256: str | None) -> Path:
    path = Path(src).expanduser()
    if not path.exists():
        hint = "" if "/" in src or os.sep in src else suggest(src, CATALOG)
        raise ModelFileError(
            f"model file {src!r} not found (looked at {path.absolute()}); pass an existing file, a catalogue "
            f"name such as 'SD_V2_1_1B_Q8_0', an https:// URL or hf://owner/repo/path{hint}"
        )
    if path.is_file():
        _check_local(path, expected_size, sha256)
    return path


def _check_local(path: Path, expected_size: int | None, sha256: str | None) -> None:
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise CorruptModelError(f"{path} is {size} bytes, expected {expected_size}")
    if sha256:
        got = _sha256_of(path)
        if got != sha256.lower():
            raise CorruptModelError(f"{path} has SHA-256 {got}, expected {sha256.lower()}")


def _sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


# ---------------------------------------------------------------- downloading


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
    with _cache_io(target.parent):
        target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        # Another process may have finished the file while this one waited for the lock.
        if _is_complete(target, expected_size):
            return target
        _unlink(target)
        part = _PartFile(target.with_name(target.name + ".part"))
        _check_free_space(target, expected_size, part.size)
        progress = _Progress(on_progress, target.name)
        try:
            _fetch(url, part, expected_size, progress, headers or {})
            _verify(part, expected_size, sha256)
            with _cache_io(target.parent):
                os.replace(part.path, target)
            progress.finish(part.size)
        except _Mismatch as exc:
            part.remove()
            _unlink(target)
            raise DownloadError(
                f"{exc.what} mismatch for {target.name} downloaded from {url}: expected {exc.expected}, got "
                f"{exc.got}; the download was deleted"
            ) from None
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

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target_name = path.name.removesuffix(".part")
        self._hasher = hashlib.sha256()
        self.size = 0
        # Resuming: the bytes already on disk are part of the hash.
        with _cache_io(path.parent), contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                self._hasher.update(chunk)
                self.size += len(chunk)

    def open(self) -> IO[bytes]:
        with _cache_io(self.path.parent):
            return open(self.path, "ab")

    def write(self, fh: IO[bytes], chunk: bytes) -> None:
        with _cache_io(self.path.parent):
            fh.write(chunk)
            fh.flush()  # so `size` always matches the disk, even if the connection dies next
        self._hasher.update(chunk)
        self.size += len(chunk)

    def sync(self, fh: IO[bytes]) -> None:
        with _cache_io(self.path.parent):
            os.fsync(fh.fileno())

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    def reset(self) -> None:
        self.remove()
        self._hasher = hashlib.sha256()
        self.size = 0

    def remove(self) -> None:
        _unlink(self.path)


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


# ---------------------------------------------------------------- cache folder safety


def _shown_folder(folder: Path) -> Path:
    """The folder to name in an error: the cache root when `folder` is inside it (that is what the user sets)."""
    root = cache_dir()
    return root if _is_within(folder, root) else folder


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


@contextlib.contextmanager
def _cache_io(folder: Path) -> Iterator[None]:
    """Turn a failure to write into the cache into a DownloadError that says what to do."""
    try:
        yield
    except DownloadError:
        raise
    except OSError as exc:
        state = "is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "is not writable"
        raise DownloadError(
            f"cache folder {_shown_folder(folder)} {state} ({exc.strerror or exc}: {exc.filename or folder}); "
            f"set {CACHE_ENV} to a writable folder with enough free space"
        ) from exc


def _check_free_space(target: Path, expected_size: int | None, have: int) -> None:
    if expected_size is None:
        return
    try:
        free = shutil.disk_usage(target.parent).free
    except OSError:
        return
    needed = expected_size - have
    if needed > free:
        raise DownloadError(
            f"cache folder {_shown_folder(target.parent)} is full: {target.name} needs {needed} more bytes but "
            f"{free} are free; set {CACHE_ENV} to a folder with enough free space"
        )


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<target>.lock` so one process at a time downloads `target`."""
    with _cache_io(target.parent):
        fh = open(target.with_name(target.name + ".lock"), "a+b")  # closed by the with below
    with fh:  # closing the file releases the lock
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another process that is downloading %s", target.name)
                fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _unlink(path: Path) -> None:
    with _cache_io(path.parent):
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------- cache management (CLI `models`)


def cached_path(entry_name: str | ModelEntry) -> Path | None:
    """Where catalogue model `entry_name` is already on disk (qvac_nb or Hugging Face cache), else None."""
    entry = get_entry(entry_name)
    return next((path for path in _entry_locations(entry) if _is_complete(path, entry.size)), None)


def delete_cached(entry_or_path: str | os.PathLike[str] | ModelEntry) -> bool:
    """Delete a cached file (and any partial download of it); True if something was deleted.

    Accepts a catalogue name or entry, an hf:// or https:// source, or a path inside the
    qvac_nb cache. Files outside that cache are never deleted, so passing a model's own
    source is always safe: the user's own files and the Hugging Face hub cache (which
    belongs to huggingface_hub) are left alone and False is returned. An unknown
    catalogue-style name raises UnknownModelError with the closest name.
    """
    target = _cache_target(entry_or_path)
    root = cache_dir()
    if not _is_within(target, root) or target.resolve() == root.resolve():
        log.info("not deleting %s: it is not inside the qvac_nb cache %s", target, root)
        return False
    if target.is_dir():
        raise InvalidParameterError(f"refusing to delete {target}: it is a folder, pass one model file")
    removed = False
    for path in (target, target.with_name(target.name + ".part")):
        if path.is_file() or path.is_symlink():
            _unlink(path)
            removed = True
    _unlink(target.with_name(target.name + ".lock"))
    _prune_empty_folders(target.parent, root)
    return removed


def _cache_target(src: str | os.PathLike[str] | ModelEntry) -> Path:
    """Where qvac_nb's own cache keeps `src` (for a path: the path itself)."""
    if isinstance(src, ModelEntry) or (
        isinstance(src, str) and _CONSTANT_NAME.fullmatch(src) and not Path(src).exists()
    ):
        return _entry_locations(get_entry(src))[0]  # an unknown name raises with a suggestion
    if isinstance(src, str) and src.startswith("hf://"):
        return HfFile.parse(src).cache_path()
    if isinstance(src, str) and src.startswith(("https://", "http://")):
        return url_cache_path(src)
    return Path(src).expanduser()


def _prune_empty_folders(folder: Path, root: Path) -> None:
    """Remove now-empty folders between a deleted file and the cache root."""
    root = root.resolve()
    folder = folder.resolve()
    while folder != root and _is_within(folder, root):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or not ours to remove)
        folder = folder.parent


def list_cached() -> list[tuple[str, Path, int]]:
    """(name, path, size) of every complete model file on disk, sorted by name.

    Catalogue files are named by their catalogue name, including those found in the
    Hugging Face hub cache; other files by their hf:// address or their path in the cache.
    """
    root = cache_dir()
    known = {path: entry.name for entry in CATALOG.values() for path in _entry_locations(entry)}
    found: dict[Path, str] = {path: known.get(path) or _describe(path, root) for path in _cached_files(root)}
    for entry in CATALOG.values():
        path = cached_path(entry)
        if path is not None:
            found.setdefault(path, entry.name)
    rows = [(name, path, path.stat().st_size) for path, name in found.items() if path.is_file()]
    return sorted(rows, key=lambda row: (row[0], str(row[1])))


def _cached_files(root: Path) -> Iterator[Path]:
    for folder in (root / "hf", root / "url"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.endswith((".part", ".lock")):
                yield path


def _describe(path: Path, root: Path) -> str:
    """hf://owner/repo/path@revision for a Hugging Face file in the cache, else its path relative to the cache."""
    parts = path.relative_to(root).parts
    if parts[0] == "hf" and len(parts) >= 4:
        repo = parts[1].replace("--", "/", 1)
        return f"hf://{repo}/{'/'.join(parts[3:])}@{parts[2]}"
    return path.relative_to(root).as_posix()
