"""What went wrong with a download, said as a DownloadError a user can act on.

huggingface_hub and its HTTP client raise their own exceptions (GatedRepoError, HfHubHTTPError,
httpx2 transport errors, OfflineModeIsEnabled); qvac_nb's callers catch `QvacError`, so every one
of them is turned into a `DownloadError` here, with the message saying what to do next.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx2
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..errors import DownloadError

LOGIN_HINT = "accept its terms on its Hugging Face page and log in with `hf auth login` (or set HF_TOKEN)"


def offline_error(file: str, looked_in: str) -> DownloadError:
    """The file is needed but HF_HUB_OFFLINE forbids asking for it."""
    return DownloadError(
        f"{file} is not in the cache ({looked_in}) and offline mode is on (HF_HUB_OFFLINE=1); "
        "unset HF_HUB_OFFLINE to download it, or pass a local file"
    )


def download_error(exc: BaseException, *, file: str, source: str, url: str | None = None,
                   part: Path | None = None) -> DownloadError:
    """A DownloadError for `exc`, raised while fetching `file` from `source` (an hf:// address or a URL).

    `url` is the one requested when `source` is not one; `part` is the partial file left for the next
    call to resume, named in the message when it holds bytes.
    """
    host = urlparse(url or source).hostname or source
    if isinstance(exc, OfflineModeIsEnabled):
        return offline_error(file, "no request may be made")
    if isinstance(exc, GatedRepoError) or _status(exc) in (401, 403):
        return DownloadError(f"could not download {file}: {source} is gated or private; {LOGIN_HINT}")
    if isinstance(exc, RevisionNotFoundError):
        return DownloadError(f"could not download {file}: the revision in {source} does not exist")
    if isinstance(exc, RepositoryNotFoundError):
        return DownloadError(f"could not download {file}: the repository of {source} does not exist; check its name")
    if isinstance(exc, RemoteEntryNotFoundError) or _status(exc) == 404:
        return DownloadError(f"could not download {file}: {source} was not found (HTTP 404); check the address "
                             "and the revision")
    if isinstance(exc, HfHubHTTPError):
        return DownloadError(f"could not download {file} from {source}: HTTP {_status(exc)}{_kept(part)}")
    if isinstance(exc, httpx2.ProxyError):
        return DownloadError(f"could not download {file} through the proxy ({exc}); check HTTPS_PROXY / "
                             f"HTTP_PROXY{_kept(part)}")
    if isinstance(exc, httpx2.ConnectError):
        return DownloadError(
            f"no network connection: could not reach {host} to download {file} ({exc}); check the network "
            f"connection and the address (HF_ENDPOINT for Hugging Face files), or pass a local file{_kept(part)}"
        )
    return DownloadError(f"could not download {file} from {source}: {exc or type(exc).__name__}{_kept(part)}")


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None) if isinstance(exc, HfHubHTTPError) else None
    return getattr(response, "status_code", None)


def _kept(part: Path | None) -> str:
    try:
        has_bytes = part is not None and part.stat().st_size > 0
    except OSError:
        has_bytes = False
    return f"; the partial file {part} is kept and the next call resumes it" if has_bytes else ""
