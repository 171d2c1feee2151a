"""The cache folder: where downloaded model files live, and the rules that keep it consistent.

The root is `$QVAC_NB_CACHE` if set, else `$XDG_CACHE_HOME/qvac_nb`, else `~/.cache/qvac_nb`:
the XDG convention pip and huggingface_hub also follow, so multi-GB models land where users
expect caches (and where cache cleaners look), never inside a project folder. Layout:

    <root>/
    ├── hf/                                    files from Hugging Face (hf:// and catalogue entries)
    │   └── <owner>--<repo>/                   one slot per repository ("--" never occurs in a repo id)
    │       └── <revision>/                    a "/" in the revision (refs/pr/1) becomes "--"
    │           └── <path/in/repo>             complete, verified files only
    └── url/                                   files from any other URL
        └── <sha256(url)[:16]>/
            └── <basename>

    next to a file while it downloads:
        <name>.part    the bytes received so far (kept after a network cut so the next call resumes;
                       deleted after any other failure)
        <name>.lock    held by the process downloading <name>; deleted when it is done or fails
    When `<name>.part` or `<name>.lock` would be longer than the file system allows, the side file
    is `.<sha256(name)[:16]>.part` / `.lock` instead, so any name that fits can be downloaded.

Every path is checked to stay inside its slot (resolved, symlinks followed) before it is used.
A file already in the Hugging Face hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
`~/.cache/huggingface/hub`) with the right size is used in place, never copied.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import DownloadError, InvalidParameterError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent downloads of one file are not guarded there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("qvac_nb.download")

CACHE_ENV = "QVAC_NB_CACHE"
_NAME_MAX = 255  # bytes in one file name on every common file system


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


def _xdg_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg).expanduser() if xdg else Path.home() / ".cache"


def in_slot(slot: Path, *parts: str, what: str) -> Path:
    """`slot/parts...`, refused with InvalidParameterError naming `what` unless it stays inside `slot`."""
    path = slot.joinpath(*parts)
    if not is_within(path, slot) or path.resolve() == slot.resolve():
        raise InvalidParameterError(f"{what}: would be stored at {path}, outside its cache folder {slot}")
    return path


def is_within(path: Path, root: Path) -> bool:
    """True when `path` (resolved, symlinks followed) is `root` or lies under it."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def side_file(target: Path, suffix: str) -> Path:
    """`<target>.part` / `.lock`, or a short hashed name when that one would be too long for the file system."""
    name = target.name + suffix
    if len(os.fsencode(name)) <= _NAME_MAX:
        return target.with_name(name)
    digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:16]
    return target.with_name(f".{digest}{suffix}")


def is_side_file(path: Path) -> bool:
    return path.name.endswith((".part", ".lock"))


def is_complete(path: Path, size: int | None) -> bool:
    try:
        return path.is_file() and (size is None or path.stat().st_size == size)
    except OSError:
        return False


def shown_folder(folder: Path) -> Path:
    """The folder to name in an error: the cache root when `folder` is inside it (that is what the user sets)."""
    root = cache_dir()
    return root if is_within(folder, root) else folder


@contextlib.contextmanager
def cache_io(folder: Path) -> Iterator[None]:
    """Turn a failure to write into the cache into a DownloadError that says what to do."""
    try:
        yield
    except DownloadError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            state = "cannot hold a file of this name (too long)"
        else:
            state = "is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "is not writable"
        raise DownloadError(
            f"cache folder {shown_folder(folder)} {state} ({exc.strerror or exc}: {exc.filename or folder}); "
            f"set {CACHE_ENV} to a writable folder with enough free space"
        ) from exc


def check_free_space(target: Path, expected_size: int | None, have: int) -> None:
    """Refuse a download that cannot fit before its first byte."""
    if expected_size is None:
        return
    try:
        free = shutil.disk_usage(target.parent).free
    except OSError:
        return
    needed = expected_size - have
    if needed > free:
        raise DownloadError(
            f"cache folder {shown_folder(target.parent)} is full: {target.name} needs {needed} more bytes but "
            f"{free} are free; set {CACHE_ENV} to a folder with enough free space"
        )


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on `target`'s lock file so one process at a time downloads `target`.

    The lock file is deleted on the way out, while still held. A process that was waiting on it
    then holds a lock on a deleted file, so after locking it checks that the file it locked is
    still the one at the path, and starts over if not.
    """
    path = side_file(target, ".lock")
    while True:
        with cache_io(target.parent):
            fh = open(path, "a+b")  # closed below or by the with
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("waiting for another process that is downloading %s", target.name)
                    fcntl.flock(fh, fcntl.LOCK_EX)
            if _same_file(fh.fileno(), path):
                break
        except BaseException:
            fh.close()
            raise
        fh.close()  # the lock file was deleted by its last holder: lock the new one
    with fh:  # closing the file releases the lock
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def unlink(path: Path) -> None:
    with cache_io(path.parent):
        path.unlink(missing_ok=True)


def prune_empty_folders(folder: Path, root: Path) -> None:
    """Remove now-empty folders between a deleted file and the cache root."""
    root = root.resolve()
    folder = folder.resolve()
    while folder != root and is_within(folder, root):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or not ours to remove)
        folder = folder.parent


def cached_files(root: Path) -> Iterator[Path]:
    """Every complete file under the cache's hf/ and url/ folders (no side files)."""
    for folder in (root / "hf", root / "url"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not is_side_file(path):
                yield path
