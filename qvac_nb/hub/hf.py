"""Hugging Face files in the standard hub cache, fetched with huggingface_hub.

huggingface_hub locates the file (`get_hf_file_metadata`: a HEAD on the endpoint's resolve URL,
with the token from HF_TOKEN or from the file `hf auth login` writes, following the Hub's
redirects) and moves the bytes (`transfer.fetch`, on its HTTP client). The file lands where
`hf_hub_download` puts it, so diffusers, the `hf` CLI and `hf cache scan` see it:

    <hub cache>/models--<owner>--<repo>/
    ├── blobs/<etag>                         the bytes (<etag>.incomplete while downloading)
    ├── snapshots/<commit>/<path/in/repo>    a relative symlink to the blob
    └── refs/<revision>                      the commit a branch or tag pointed to

qvac_nb downloads the file itself instead of calling `hf_hub_download` because that deletes its
partial file whenever a download stops, and a Cancel in the Studio must leave a resumable one.
Xet transfers are not used for the same reason: the plain HTTP route resumes from a file qvac_nb
keeps. A file already there (downloaded by any tool) is used without a request, as is one in
qvac_nb's old cache folder (see `hub.cache`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from posixpath import basename
from urllib.parse import urlparse

from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.utils import build_hf_headers

from ..errors import DownloadError
from . import failures, transfer
from .cache import cache_io, hf_hub_cache, in_slot, is_complete, is_within, prune_empty_folders, unlink
from .sources import COMMIT, HfFile

log = logging.getLogger("qvac_nb.download")

_SHA256 = re.compile(r"[0-9a-f]{64}")  # the ETag of a file stored with Git LFS is its SHA-256


def find_cached(hf: HfFile, size: int | None) -> Path | None:
    """Where `hf` is already on disk with the right size (hub cache first, then the old qvac_nb folder), else None."""
    for path in (hf.hub_path(), hf.legacy_path()):
        if path is not None and is_complete(path, size):
            return path
    return None


def fetch_hf(hf: HfFile, size: int | None, sha256: str | None, on_progress: transfer.ProgressCallback | None) -> Path:
    """The local file for `hf`: found in a cache, else downloaded into the hub cache and verified."""
    found = find_cached(hf, size)
    if found is not None:
        if not is_within(found, hf_hub_cache()):
            log.info("using %s from qvac_nb's old cache folder", found)
        return found
    name = basename(hf.path)
    if constants.is_offline_mode():
        raise failures.offline_error(name, f"looked in {hf_hub_cache()} for {hf}")
    headers = build_hf_headers()  # the token: HF_TOKEN, else the token file of `hf auth login`
    url = hf_hub_url(hf.repo, hf.path, revision=hf.revision)
    try:
        meta = get_hf_file_metadata(url, headers=headers)
    except Exception as exc:  # every failure of the request, said as a DownloadError
        raise failures.download_error(exc, file=name, source=str(hf), url=url) from None
    if not meta.commit_hash or not COMMIT.fullmatch(meta.commit_hash) or not meta.etag:
        raise DownloadError(
            f"could not download {name}: {url} did not answer like a Hugging Face Hub (no X-Repo-Commit or ETag "
            "header); check HF_ENDPOINT and the proxy settings"
        )
    folder = hf.repo_folder()
    blob = in_slot(folder / "blobs", meta.etag, what="model_src")
    pointer = in_slot(folder / "snapshots", meta.commit_hash, *hf.path.split("/"), what="model_src")
    if not is_complete(pointer, size):
        if urlparse(meta.location).netloc != urlparse(url).netloc:
            headers.pop("authorization", None)  # a signed CDN URL: the token stays with the Hub
        lock = hf_hub_cache() / ".locks" / folder.name / f"{meta.etag}.lock"
        expected = size if size is not None else meta.size
        check = sha256 or (meta.etag if _SHA256.fullmatch(meta.etag) else None)
        transfer.fetch(meta.location, blob, expected_size=expected, sha256=check, on_progress=on_progress,
                       headers=headers, part=blob.with_name(f"{blob.name}.incomplete"), lock=lock, name=name)
        _link(blob, pointer)
    if hf.revision != meta.commit_hash:
        _remember_ref(folder, hf.revision, meta.commit_hash)
    return pointer


def _link(blob: Path, pointer: Path) -> None:
    """Make the snapshot entry point at the blob: a relative symlink, or a hard link where symlinks are refused."""
    with cache_io(pointer.parent):
        pointer.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            pointer.unlink()  # a broken or wrong-size entry
        try:
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        except FileExistsError:
            pass  # another process linked it meanwhile
        except OSError:
            os.link(blob, pointer)  # e.g. Windows without developer mode


def _remember_ref(folder: Path, revision: str, commit: str) -> None:
    """Record which commit a branch or tag names, as huggingface_hub does (so offline use finds it)."""
    ref = in_slot(folder / "refs", *revision.split("/"), what="model_src")
    with cache_io(folder):
        if ref.is_file() and ref.read_text(encoding="utf-8").strip() == commit:
            return
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
        tmp.write_text(commit, encoding="utf-8")
        os.replace(tmp, ref)


def delete_hf(hf: HfFile, sha256: str | None = None) -> bool:
    """Delete `hf` from the hub cache (its snapshot entry, and its blob unless another snapshot uses it).

    With the file's SHA-256 (its ETag on the Hub), a partial download of it goes too.
    """
    folder = hf.repo_folder()
    removed = False
    if sha256 and _SHA256.fullmatch(sha256):
        partial = folder / "blobs" / f"{sha256}.incomplete"
        removed = partial.is_file()
        unlink(partial)
    pointer = hf.hub_path()
    if pointer is None or not (pointer.is_symlink() or pointer.exists()):
        return removed
    blob = pointer.resolve() if pointer.is_symlink() else None
    unlink(pointer)
    if blob is not None and is_within(blob, folder / "blobs") and not _still_used(folder, blob):
        unlink(blob)
    prune_empty_folders(pointer.parent, folder / "snapshots")
    return True


def _still_used(folder: Path, blob: Path) -> bool:
    snapshots = folder / "snapshots"
    return snapshots.is_dir() and any(
        entry.is_symlink() and entry.resolve() == blob for entry in snapshots.rglob("*")
    )
