"""Where model files live on disk, and the rules that keep the cache folders consistent.

Hugging Face files (catalogue entries and `hf://` addresses) live in the standard hub cache,
`huggingface_hub.constants.HF_HUB_CACHE` ($HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub), shared with diffusers and the `hf` CLI (`hf cache scan` sees them).
Plain https:// files live in qvac_nb's own folder, `$QVAC_NB_CACHE`, else
`$XDG_CACHE_HOME/qvac_nb`, else `~/.cache/qvac_nb`:

    <root>/
    ├── url/<sha256(url)[:16]>/<basename>     files from any other URL
    └── hf/<owner>--<repo>/<revision>/<path>  Hugging Face files of qvac_nb before it used the hub
                                              cache: still used in place, never written any more

    next to a file while it downloads:
        <name>.part    the bytes received so far (kept after a cut or a Cancel so the next call
                       resumes; deleted after a checksum or size mismatch)
        <name>.lock    held by the process downloading <name> (the empty file stays, as huggingface_hub's do)
    When `<name>.part` / `.lock` would be longer than the file system allows, the side file is
    `.<sha256(name)[:16]>.part` / `.lock` instead, so any name that fits can be downloaded.

Every path is checked to stay inside its slot (resolved, symlinks followed) before it is used.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import DownloadError, InvalidParameterError

CACHE_ENV = "QVAC_NB_CACHE"
_NAME_MAX = 255  # bytes in one file name on every common file system


def cache_dir() -> Path:
    """The qvac_nb cache folder: $QVAC_NB_CACHE, else $XDG_CACHE_HOME/qvac_nb, else ~/.cache/qvac_nb."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "qvac_nb"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, exactly as huggingface_hub located it when it was imported."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


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


def is_complete(path: Path, size: int | None) -> bool:
    """True when `path` is a file (symlinks followed) of `size` bytes (any size when None)."""
    try:
        return path.is_file() and (size is None or path.stat().st_size == size)
    except OSError:
        return False


def shown_folder(folder: Path) -> Path:
    """The folder to name in an error: the cache root it lies in (that is what the user sets)."""
    for root in (cache_dir(), hf_hub_cache()):
        if is_within(folder, root):
            return root
    return folder


def _setting_for(folder: Path) -> str:
    return "HF_HUB_CACHE (or HF_HOME)" if is_within(folder, hf_hub_cache()) else CACHE_ENV


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
            f"set {_setting_for(folder)} to a writable folder with enough free space"
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
            f"{free} are free; set {_setting_for(target.parent)} to a folder with enough free space"
        )


def unlink(path: Path) -> None:
    with cache_io(path.parent):
        path.unlink(missing_ok=True)


def prune_empty_folders(folder: Path, root: Path) -> None:
    """Remove now-empty folders between a deleted file and `root`."""
    root = root.resolve()
    folder = folder.resolve()
    while folder != root and is_within(folder, root):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or not ours to remove)
        folder = folder.parent


def cached_files(root: Path) -> Iterator[Path]:
    """Every complete file under qvac_nb's hf/ and url/ folders (no side files)."""
    for folder in (root / "hf", root / "url"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.endswith((".part", ".lock")):
                yield path
