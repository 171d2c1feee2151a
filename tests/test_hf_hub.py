"""Hugging Face files through huggingface_hub, against a local stand-in for the Hub (HF_ENDPOINT at 127.0.0.1).

The server answers the HEAD on `/<repo>/resolve/<revision>/<path>` with the headers huggingface_hub
reads and redirects large files to a "CDN" host name; no Xet headers, so no Xet transfer is tried.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import run_at_once
from huggingface_hub import constants, scan_cache_dir, try_to_load_from_cache
from local_http import COMMIT, Server
from test_download import DATA, SHA, env, hub, server, set_endpoint  # noqa: F401 - fixtures used by name

from qvac_nb import catalog
from qvac_nb.catalog import ModelEntry
from qvac_nb.errors import CancelledError, DownloadError, QvacError
from qvac_nb.hub import transfer
from qvac_nb.hub.resolve import cached_path, delete_cached, list_cached, resolve_for, resolve_source

REPO = "owner/repo"
NAME = "TEST_HF_MODEL"


def _repo_folder(tmp_path: Path, repo: str = REPO) -> Path:
    return tmp_path / "hub" / f"models--{repo.replace('/', '--')}"


def _entry(monkeypatch: pytest.MonkeyPatch, path: str = "sub/w.gguf", sha: str = SHA) -> ModelEntry:
    """A catalogue entry pinned to COMMIT, as the real ones are."""
    entry = ModelEntry(name=NAME, family="sd2", role="model", url="", filename=path.rsplit("/", 1)[-1],
                       size=len(DATA), sha256=sha, source="hf", repo=REPO, revision=COMMIT, path=path)
    monkeypatch.setitem(catalog.CATALOG, NAME, entry)
    return entry


def _hub_files(tmp_path: Path) -> list[str]:
    """Files under the hub cache (relative), without the lock files huggingface_hub also leaves."""
    root = tmp_path / "hub"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if (p.is_file() or p.is_symlink()) and ".locks" not in p.parts)


# ---------------------------------------------------------------- into the hub cache


def test_download_lands_in_the_hub_cache_where_huggingface_hub_finds_it(
    hub: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    cdn = hub.add_hub_file(REPO, "sub/w.gguf", DATA)
    _entry(monkeypatch)
    path = resolve_source(NAME, on_progress=lambda _: None)
    folder = _repo_folder(tmp_path)
    assert path == folder / "snapshots" / COMMIT / "sub" / "w.gguf"
    assert path.is_symlink() and path.resolve() == folder / "blobs" / SHA and path.read_bytes() == DATA
    assert _hub_files(tmp_path) == [f"models--owner--repo/blobs/{SHA}",
                                    f"models--owner--repo/snapshots/{COMMIT}/sub/w.gguf"]
    # huggingface_hub (and so diffusers, `hf cache scan`) sees the file qvac_nb downloaded.
    assert try_to_load_from_cache(REPO, "sub/w.gguf", revision=COMMIT, cache_dir=tmp_path / "hub") == str(path)
    assert [repo.repo_id for repo in scan_cache_dir(tmp_path / "hub").repos] == [REPO]
    assert [(r["method"], r["path"]) for r in hub.requests] == [
        ("HEAD", f"/{REPO}/resolve/{COMMIT}/sub/w.gguf"), ("GET", cdn)]
    assert cached_path(NAME) == path and (NAME, path, len(DATA)) in list_cached()
    assert resolve_source(NAME) == path and len(hub.requests) == 2  # the second call asked nothing


def test_a_branch_is_recorded_in_refs_and_used_offline_later(
    hub: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    hub.add_hub_file(REPO, "w.gguf", DATA, cdn=False)  # a small file: served by the resolve URL itself
    path = resolve_source(f"hf://{REPO}/w.gguf", on_progress=lambda _: None)
    assert (_repo_folder(tmp_path) / "refs" / "main").read_text() == COMMIT
    assert path.read_bytes() == DATA  # the ETag is the SHA-256: checked without a catalogue entry
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    requests = len(hub.requests)
    assert resolve_source(f"hf://{REPO}/w.gguf") == path and len(hub.requests) == requests


def test_resume_after_a_cut(hub: Server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    cdn = hub.add_hub_file(REPO, "sub/w.gguf", DATA)
    _entry(monkeypatch)
    hub.cuts = [100_000]
    assert resolve_source(NAME, on_progress=lambda _: None).read_bytes() == DATA
    assert [r["range"] for r in hub.gets(cdn)] == [None, "bytes=100000-"]


def test_checksum_mismatch_deletes_the_file_and_names_it(
    hub: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    hub.add_hub_file(REPO, "sub/w.gguf", DATA)
    _entry(monkeypatch)
    hub.corrupt = True
    with pytest.raises(DownloadError, match=r"SHA-256 mismatch for w\.gguf .*the download was deleted") as info:
        resolve_source(NAME, on_progress=lambda _: None)
    assert SHA in str(info.value) and isinstance(info.value, QvacError)
    assert _hub_files(tmp_path) == []  # no blob, no partial, no snapshot entry
    assert cached_path(NAME) is None


# ---------------------------------------------------------------- access


@pytest.mark.parametrize("status", [401, 403])
def test_gated_repository_says_how_to_get_access(
    hub: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int  # noqa: F811
) -> None:
    hub.add_hub_file(REPO, "sub/w.gguf", DATA)
    hub.token, hub.gated_status = "hf_secret", status
    _entry(monkeypatch)
    with pytest.raises(DownloadError) as info:
        resolve_for(NAME, "model_src", None)
    message = str(info.value)
    assert message.startswith("model_src: could not download w.gguf: hf://owner/repo/sub/w.gguf@")
    assert "accept its terms" in message and "log in with `hf auth login`" in message
    assert info.value.param == "model_src" and _hub_files(tmp_path) == []


def test_token_from_the_login_token_file_in_a_fresh_process(hub: Server, tmp_path: Path) -> None:  # noqa: F811
    """What `hf auth login` leaves (HF_HOME/token, no HF_TOKEN), read by a process that sets nothing else."""
    cdn = hub.add_hub_file(REPO, "w.gguf", DATA)
    hub.token = "hf_from_the_file"
    home = tmp_path / "fresh-home"
    home.mkdir()
    (home / "token").write_text("hf_from_the_file\n")
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    child_env.update(HF_HOME=str(home), HF_ENDPOINT=hub.url(""), NO_PROXY="127.0.0.1,localhost",
                     QVAC_NB_CACHE=str(tmp_path / "cache"), HF_HUB_DISABLE_PROGRESS_BARS="1")
    code = "from qvac_nb.hub.resolve import resolve_source; print(resolve_source('hf://owner/repo/w.gguf'))"
    result = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.read_bytes() == DATA and path.is_relative_to(home / "hub")  # HF_HOME/hub: the default hub cache
    heads = [r for r in hub.requests if r["method"] == "HEAD"]
    assert [r["auth"] for r in heads] == ["Bearer hf_from_the_file"]
    assert [r["auth"] for r in hub.gets(cdn)] == [None]  # the token never goes to the CDN host


# ---------------------------------------------------------------- offline and files from other tools


def test_offline_mode_uses_the_cache_and_fails_clearly_for_a_missing_file(
    hub: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    hub.add_hub_file(REPO, "sub/w.gguf", DATA)
    hub.add_hub_file(REPO, "other.gguf", DATA)
    entry = _entry(monkeypatch)
    path = resolve_source(NAME, on_progress=lambda _: None)
    requests = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve_source(entry.name) == path
    with pytest.raises(DownloadError) as info:
        resolve_for(f"hf://{REPO}/other.gguf@{COMMIT}", "model_src", None)
    message = str(info.value)
    assert message.startswith("model_src: other.gguf is not in the cache")
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in message and str(tmp_path / "hub") in message
    assert len(hub.requests) == requests  # offline: nothing was asked


def test_a_file_another_tool_downloaded_is_used_without_a_request(
    hub: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Laid out the way huggingface_hub lays it out: a blob, a snapshot symlink and a ref."""
    folder = _repo_folder(tmp_path)
    blob = folder / "blobs" / SHA
    blob.parent.mkdir(parents=True)
    blob.write_bytes(DATA)
    snapshot = folder / "snapshots" / COMMIT / "sub" / "w.gguf"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    _entry(monkeypatch)
    assert resolve_source(NAME) == snapshot
    assert resolve_source(f"hf://{REPO}/sub/w.gguf") == snapshot  # main, through refs/main
    assert cached_path(NAME) == snapshot
    assert hub.requests == []


def test_a_file_in_the_old_qvac_nb_folder_is_used_in_place(
    hub: Server, env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    old = env / "hf" / "owner--repo" / COMMIT / "sub" / "w.gguf"
    old.parent.mkdir(parents=True)
    old.write_bytes(DATA)
    _entry(monkeypatch)
    assert resolve_source(NAME) == old and cached_path(NAME) == old
    assert (NAME, old, len(DATA)) in list_cached()
    assert hub.requests == [] and not (tmp_path / "hub").exists()  # neither downloaded nor moved
    assert delete_cached(NAME) is True and not old.exists()


# ---------------------------------------------------------------- Cancel


def test_cancel_mid_download_then_a_later_call_resumes(
    hub: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The Studio cancels by raising from the progress callback (models.load_model_until)."""
    cdn = hub.add_hub_file(REPO, "sub/w.gguf", DATA)
    _entry(monkeypatch)
    monkeypatch.setattr(transfer, "_PROGRESS_INTERVAL", 0.0)
    hub.hold, hub.hold_after = threading.Event(), 100_000  # the rest waits until the test lets it go
    stop = threading.Event()
    seen: list[int] = []

    def progress(info: dict) -> None:
        seen.append(info["downloaded_bytes"])
        if info["downloaded_bytes"] >= 50_000:
            stop.set()  # the user clicks Cancel
        if stop.is_set():
            raise CancelledError("loading was cancelled")

    with pytest.raises(CancelledError):
        resolve_for(NAME, "model_src", progress)
    # It stopped while the server still held the rest of the body: it did not wait for the download to end.
    assert not hub.hold.is_set() and seen[-1] < 100_000
    hub.hold.set()
    part = _repo_folder(tmp_path) / "blobs" / f"{SHA}.incomplete"
    kept = part.stat().st_size
    assert 0 < kept < len(DATA) and DATA.startswith(part.read_bytes())
    hub.hold = None
    assert resolve_source(NAME, on_progress=lambda _: None).read_bytes() == DATA
    assert hub.gets(cdn)[-1]["range"] == f"bytes={kept}-"
    assert not part.exists()


# ---------------------------------------------------------------- listing and deleting


def test_delete_frees_the_hub_cache_but_keeps_a_blob_another_revision_uses(
    hub: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    hub.add_hub_file(REPO, "sub/w.gguf", DATA)
    hub.add_hub_file(REPO, "copy.gguf", DATA)  # same bytes, so the same blob
    _entry(monkeypatch)
    path = resolve_source(NAME, on_progress=lambda _: None)
    other = resolve_source(f"hf://{REPO}/copy.gguf@{COMMIT}", on_progress=lambda _: None)
    assert delete_cached(NAME) is True
    assert not path.exists() and not path.is_symlink() and other.read_bytes() == DATA
    assert delete_cached(f"hf://{REPO}/copy.gguf@{COMMIT}") is True
    assert _hub_files(tmp_path) == [] and cached_path(NAME) is None
    assert delete_cached(NAME) is False


def test_no_network_says_so_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    calls: list[str] = []

    def no_dns(host: str, *args: object, **kwargs: object) -> list:
        calls.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    set_endpoint(monkeypatch, "https://hub.example.org")
    with pytest.raises(DownloadError, match="^no network connection: could not reach hub.example.org"):
        resolve_source(f"hf://{REPO}/w.gguf", on_progress=lambda _: None)
    assert calls == ["hub.example.org"]  # the metadata request is not retried: no network is said at once
    assert not (tmp_path / "hub").exists() or _hub_files(tmp_path) == []


def test_two_loads_of_one_file_download_it_once(hub: Server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    cdn = hub.add_hub_file(REPO, "sub/w.gguf", DATA)
    _entry(monkeypatch)
    hub.delay = 0.3  # the first download is still running when the second call asks
    results, errors = run_at_once(lambda: resolve_source(NAME, on_progress=lambda _: None), 2)
    assert errors == [] and len(results) == 2 and len(set(results)) == 1
    assert results[0].read_bytes() == DATA
    assert len(hub.gets(cdn)) == 1  # the second waited on huggingface_hub's lock for the blob, then used it


def test_a_missing_file_and_a_full_hub_cache_are_clear_errors(
    hub: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    with pytest.raises(DownloadError, match=r"^model_src: could not download nope\.gguf: hf://owner/repo/nope\.gguf@"
                                            r"main was not found \(HTTP 404\)"):
        resolve_for(f"hf://{REPO}/nope.gguf", "model_src", None)
    cdn = hub.add_hub_file(REPO, "sub/w.gguf", DATA)
    _entry(monkeypatch)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(DownloadError) as info:
        resolve_source(NAME, on_progress=lambda _: None)
    assert f"cache folder {tmp_path / 'hub'} is full" in str(info.value) and "HF_HUB_CACHE" in str(info.value)
    assert hub.gets(cdn) == [] and _hub_files(tmp_path) == []


def test_delete_also_frees_a_cancelled_partial_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _entry(monkeypatch)
    partial = _repo_folder(tmp_path) / "blobs" / f"{SHA}.incomplete"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(DATA[:1000])
    assert delete_cached(NAME) is True and not partial.exists()
