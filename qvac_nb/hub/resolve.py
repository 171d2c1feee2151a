"""Finding model files and downloading them: what the rest of qvac_nb calls in `qvac_nb.hub`.

`resolve_source` turns a catalogue name, a path, an https:// URL or an `hf://` address into a
local file; `cached_path`, `delete_cached` and `list_cached` manage the caches for the CLI.
Hugging Face files go to the standard hub cache through huggingface_hub (`hub.hf`), honouring its
settings: HF_TOKEN or the `hf auth login` token file, HF_ENDPOINT, HF_HUB_OFFLINE,
HF_HUB_DISABLE_PROGRESS_BARS, HF_HUB_CACHE / HF_HOME and the proxy variables. Plain URLs go to
qvac_nb's own cache folder (`hub.cache`) on the same HTTP client (`hub.transfer`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..catalog import CATALOG, ModelEntry, get_entry
from ..errors import CorruptModelError, DownloadError, InvalidParameterError, InvalidTypeError, ModelFileError, suggest
from .cache import (
    cache_dir,
    cached_files,
    is_complete,
    is_within,
    prune_empty_folders,
    side_file,
    unlink,
)
from .hf import delete_hf, fetch_hf, find_cached
from .sources import HfFile, check_url, url_cache_path
from .transfer import ProgressCallback, fetch, sha256_of

log = logging.getLogger("qvac_nb.download")

_CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")  # what catalogue names look like


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
    the size is unknown); without it a tqdm bar is shown (unless HF_HUB_DISABLE_PROGRESS_BARS).
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
        return fetch_hf(HfFile.parse(src), expected_size, sha256, on_progress)
    if src.startswith(("https://", "http://")):
        check_url(src)
        return fetch(src, url_cache_path(src), expected_size=expected_size, sha256=sha256, on_progress=on_progress)
    return _resolve_local(src, expected_size, sha256)


def _resolve_entry(entry: ModelEntry, on_progress: ProgressCallback | None) -> Path:
    if entry.source == "hf":
        return fetch_hf(_entry_hf(entry), entry.size, entry.sha256, on_progress)
    return fetch(entry.url, url_cache_path(entry.url), expected_size=entry.size, sha256=entry.sha256,
                 on_progress=on_progress)


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
        got = sha256_of(path)
        if got != sha256.lower():
            raise CorruptModelError(f"{path} has SHA-256 {got}, expected {sha256.lower()}")


# ---------------------------------------------------------------- cache management (CLI `models`)


def cached_path(entry_name: str | ModelEntry) -> Path | None:
    """Where catalogue model `entry_name` is already on disk (hub cache or qvac_nb's folder), else None."""
    entry = get_entry(entry_name)
    if entry.source == "hf":
        return find_cached(_entry_hf(entry), entry.size)
    path = url_cache_path(entry.url)
    return path if is_complete(path, entry.size) else None


def delete_cached(src: str | os.PathLike[str] | ModelEntry) -> bool:
    """Delete a cached model file (and any partial download of it); True if something was deleted.

    Accepts a catalogue name or entry, an hf:// or https:// source, or a path inside qvac_nb's
    cache folder. A Hugging Face file goes from the hub cache (its snapshot entry, and its blob
    unless another revision uses it) and from qvac_nb's old folder. Paths outside qvac_nb's folder
    are never deleted, so passing a model's own source is always safe: the user's own files are
    left alone and False is returned. An unknown catalogue-style name raises UnknownModelError.
    """
    if isinstance(src, ModelEntry) or (isinstance(src, str) and _CONSTANT_NAME.fullmatch(src)
                                       and not Path(src).exists()):
        entry = get_entry(src)  # an unknown name raises with a suggestion
        if entry.source != "hf":
            return _delete_file(url_cache_path(entry.url))
        hf, sha256 = _entry_hf(entry), entry.sha256
    elif isinstance(src, str) and src.startswith("hf://"):
        hf, sha256 = HfFile.parse(src), None
    elif isinstance(src, str) and src.startswith(("https://", "http://")):
        return _delete_file(url_cache_path(src))
    else:
        return _delete_file(Path(src).expanduser())
    removed_hub = delete_hf(hf, sha256)
    return _delete_file(hf.legacy_path()) or removed_hub


def _delete_file(target: Path) -> bool:
    """Delete `target` and its side files if it lies inside qvac_nb's cache folder."""
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


def list_cached() -> list[tuple[str, Path, int]]:
    """(name, path, size) of every complete model file qvac_nb knows on disk, sorted by name.

    Catalogue files are named by their catalogue name, wherever they are (hub cache or qvac_nb's
    folder); other files in qvac_nb's folder by their hf:// address or their path there. The rest of
    the hub cache belongs to every Hugging Face tool: `hf cache scan` lists it.
    """
    root = cache_dir()
    found: dict[Path, str] = {path: _describe(path, root) for path in cached_files(root)}
    for entry in CATALOG.values():
        path = cached_path(entry)
        if path is not None:
            found[path] = entry.name
    rows = [(name, path, path.stat().st_size) for path, name in found.items() if path.is_file()]
    return sorted(rows, key=lambda row: (row[0], str(row[1])))


def _describe(path: Path, root: Path) -> str:
    """hf://owner/repo/path@revision for a file in qvac_nb's old hf/ folder, else its path relative to the folder."""
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
    except (ModelFileError, DownloadError) as exc:  # name the parameter, as every other load_model error does
        raise type(exc)(f"{role}: {exc}") from None
