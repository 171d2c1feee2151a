"""Finding model files and downloading them into the cache: the entry point of `qvac_nb.hub`.

`resolve_source` turns a catalogue name, a path, an https:// URL or an `hf://` address into a
local file; `cached_path`, `delete_cached` and `list_cached` manage the cache for the CLI.
The parts live in `qvac_nb.hub`: `sources` (addresses, checked against Hugging Face's rules),
`transfer` (HTTP with resume and verification), `cache` (where files live; its docstring
draws the layout). Their public names are importable from here as before.
`HF_ENDPOINT` replaces https://huggingface.co (mirrors, tests) and `HF_TOKEN` is sent to it for
gated repositories.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .catalog import CATALOG, ModelEntry, get_entry
from .errors import CorruptModelError, InvalidParameterError, InvalidTypeError, ModelFileError, suggest
from .hub import transfer
from .hub.cache import (
    CACHE_ENV,
    cache_dir,
    cache_io,
    cached_files,
    hf_hub_cache,
    is_complete,
    is_within,
    prune_empty_folders,
    side_file,
    unlink,
)
from .hub.sources import HF_DEFAULT_ENDPOINT, HfFile, check_url, hf_endpoint, url_cache_path
from .hub.transfer import ProgressCallback, _PartFile, download  # noqa: F401 - _PartFile: used by tests

__all__ = [
    "CACHE_ENV", "HF_DEFAULT_ENDPOINT", "HfFile", "ProgressCallback", "cache_dir", "cached_path", "delete_cached",
    "download", "hf_endpoint", "hf_hub_cache", "list_cached", "resolve_source", "url_cache_path",
]

log = logging.getLogger("qvac_nb.download")

_CHUNK = transfer._CHUNK
_CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")  # what catalogue names look like
_cache_io = cache_io  # the old private name, used by tests that simulate a failing disk


def _entry_locations(entry: ModelEntry) -> list[Path]:
    """Where a catalogue entry may already be on disk, in order of preference."""
    if entry.source != "hf":
        return [url_cache_path(entry.url)]
    hf = _entry_hf(entry)
    hub = hf.hub_path()
    return [hf.cache_path()] + ([hub] if hub is not None else [])


def _entry_hf(entry: ModelEntry) -> HfFile:
    return HfFile(str(entry.repo), str(entry.path), str(entry.revision))


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
        check_url(src)
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
    if is_complete(target, size):
        return target
    hub = hf.hub_path()
    if hub is not None and is_complete(hub, size):
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


# ---------------------------------------------------------------- cache management (CLI `models`)


def cached_path(entry_name: str | ModelEntry) -> Path | None:
    """Where catalogue model `entry_name` is already on disk (qvac_nb or Hugging Face cache), else None."""
    entry = get_entry(entry_name)
    return next((path for path in _entry_locations(entry) if is_complete(path, entry.size)), None)


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
    if not is_within(target, root) or target.resolve() == root.resolve():
        log.info("not deleting %s: it is not inside the qvac_nb cache %s", target, root)
        return False
    if target.is_dir():
        raise InvalidParameterError(f"refusing to delete {target}: it is a folder, pass one model file")
    removed = False
    for path in (target, side_file(target, ".part")):
        if path.is_file() or path.is_symlink():
            unlink(path)
            removed = True
    unlink(side_file(target, ".lock"))
    prune_empty_folders(target.parent, root)
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


def list_cached() -> list[tuple[str, Path, int]]:
    """(name, path, size) of every complete model file on disk, sorted by name.

    Catalogue files are named by their catalogue name, including those found in the
    Hugging Face hub cache; other files by their hf:// address or their path in the cache.
    """
    root = cache_dir()
    known = {path: entry.name for entry in CATALOG.values() for path in _entry_locations(entry)}
    found: dict[Path, str] = {path: known.get(path) or _describe(path, root) for path in cached_files(root)}
    for entry in CATALOG.values():
        path = cached_path(entry)
        if path is not None:
            found.setdefault(path, entry.name)
    rows = [(name, path, path.stat().st_size) for path, name in found.items() if path.is_file()]
    return sorted(rows, key=lambda row: (row[0], str(row[1])))


def _describe(path: Path, root: Path) -> str:
    """hf://owner/repo/path@revision for a Hugging Face file in the cache, else its path relative to the cache."""
    parts = path.relative_to(root).parts
    if parts[0] == "hf" and len(parts) >= 4:
        repo = parts[1].replace("--", "/", 1)
        return f"hf://{repo}/{'/'.join(parts[3:])}@{parts[2]}"
    return path.relative_to(root).as_posix()


def resolve_for(src: str, role: str, on_progress: Callable[[dict], None] | None) -> tuple[Path, dict[str, Any]]:
    """A local file for `src` (downloading it first if needed) and its catalogue defaults.

    `role` names the parameter in errors and in the `{"phase": "download", "role": ...}` progress events.
    """
    if Path(src).expanduser().is_file():
        return Path(src).expanduser(), {}
    defaults: dict[str, Any] = {}
    if src in CATALOG:
        entry = CATALOG[src]
        defaults = {**entry.default_config, **entry.companions}

    def progress(info: dict) -> None:
        if on_progress is not None:
            on_progress({"phase": "download", "role": role, **info})

    try:
        return resolve_source(src, on_progress=progress if on_progress else None), defaults
    except ModelFileError as exc:  # name the parameter, as every other load_model error does
        raise ModelFileError(f"{role}: {exc}") from None
