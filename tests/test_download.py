"""The download layer, against a local HTTP server on 127.0.0.1: plain URLs, local paths, addresses.

The Hugging Face hub cache (resolve requests, tokens, offline mode, Cancel) is in test_hf_hub.py,
which shares this module's fixtures.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from helpers import run_at_once
from huggingface_hub import constants, file_download
from huggingface_hub.utils import _detect_agent
from local_http import Server, serving

from qvac_nb import catalog
from qvac_nb.catalog import ModelEntry
from qvac_nb.errors import DownloadError, InvalidParameterError, InvalidTypeError, ModelFileError, QvacError
from qvac_nb.hub import transfer
from qvac_nb.hub.cache import cache_dir
from qvac_nb.hub.resolve import cached_path, delete_cached, list_cached, resolve_source
from qvac_nb.hub.sources import HfFile, url_cache_path
from qvac_nb.hub.transfer import ProgressCallback

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


# ---------------------------------------------------------------- local server


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as state:
        yield state
    huggingface_hub.close_session()  # no pooled connection outlives the server


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private qvac_nb cache and HF home, no proxies, tokens or offline mode.

    huggingface_hub reads its settings once, at import: the variables are set for the code
    that reads them late, and its constants are set to what those variables would give.
    """
    monkeypatch.setenv("QVAC_NB_CACHE", str(tmp_path / "cache"))
    hf_vars = {"HF_HOME": tmp_path / "hfhome", "HF_HUB_CACHE": tmp_path / "hub",
               "HF_TOKEN_PATH": tmp_path / "hfhome" / "token"}
    for var, value in hf_vars.items():
        monkeypatch.setenv(var, str(value))
        monkeypatch.setattr(constants, var, str(value))
    for var in ("HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "http_proxy", "HTTP_PROXY",
                "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # huggingface_hub fetches a registry of AI agents once per process (for its User-Agent): not from these tests.
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "hfhome" / ".agent_harnesses.json"))
    monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY)
    set_endpoint(monkeypatch, "https://huggingface.co")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # Bytes reach the file (and a resume point) in whole chunks: small ones make cuts land on chunk edges.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 10_000)
    monkeypatch.setattr(file_download, "time", SimpleNamespace(sleep=lambda _s: None))  # no wait between retries
    huggingface_hub.close_session()  # the shared client reads the proxy variables when it is made
    return tmp_path / "cache"


@pytest.fixture
def hub(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The local server as HF_ENDPOINT."""
    set_endpoint(monkeypatch, server.url(""))
    return server


def set_endpoint(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """HF_ENDPOINT=url, and the constants huggingface_hub derived from it at import."""
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


def _files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and not path.name.endswith(".lock"))


def _events() -> tuple[list[dict], ProgressCallback]:
    events: list[dict] = []
    return events, events.append


# ---------------------------------------------------------------- plain downloads


def test_plain_download_checks_sha256(server: Server, env: Path) -> None:
    server.files["/files/model.gguf"] = DATA
    url = server.url("/files/model.gguf")
    path = resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert path.read_bytes() == DATA
    assert path == env / "url" / hashlib.sha256(url.encode()).hexdigest()[:16] / "model.gguf"
    assert _files_under(env) == [path]  # no .part left behind
    assert resolve_source(url, expected_size=len(DATA), sha256=SHA) == path
    assert len(server.requests) == 1  # the second call used the cache


def test_resume_after_a_cut_connection(server: Server) -> None:
    server.files["/m.bin"] = DATA
    server.cuts = [100_000]
    path = resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert path.read_bytes() == DATA
    assert [request["range"] for request in server.requests] == [None, "bytes=100000-"]


def test_resume_from_an_earlier_partial_file(server: Server) -> None:
    server.files["/m.bin"] = DATA
    url = server.url("/m.bin")
    part = url_cache_path(url).with_suffix(".bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:123_456])
    path = resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert path.read_bytes() == DATA  # so the bytes already on disk were hashed too
    assert server.requests[0]["range"] == "bytes=123456-"
    assert not part.exists()


def test_server_answering_200_to_a_range_restarts(server: Server) -> None:
    server.files["/m.bin"] = DATA
    server.ignore_range = True
    server.cuts = [100_000]
    path = resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert path.read_bytes() == DATA
    assert [request["range"] for request in server.requests] == [None, "bytes=100000-"]


def test_complete_partial_file_is_not_downloaded_again(server: Server) -> None:
    server.files["/m.bin"] = DATA
    url = server.url("/m.bin")
    part = url_cache_path(url).with_suffix(".bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA)
    assert resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None).read_bytes() == DATA
    assert server.requests == []


def test_http_error_is_a_download_error(server: Server) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        resolve_source(server.url("/missing.bin"), on_progress=lambda _: None)


# ---------------------------------------------------------------- verification


def test_checksum_mismatch_deletes_everything(server: Server, env: Path) -> None:
    server.files["/m.bin"] = DATA
    server.corrupt = True
    with pytest.raises(DownloadError) as info:
        resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    message = str(info.value)
    got = hashlib.sha256(bytes(byte ^ 0xFF for byte in DATA)).hexdigest()
    assert "SHA-256 mismatch" in message and "m.bin" in message and SHA in message and got in message
    assert isinstance(info.value, QvacError)
    assert _files_under(env) == []


def test_checksum_mismatch_after_a_resume_deletes_everything(server: Server, env: Path) -> None:
    server.files["/m.bin"] = DATA
    url = server.url("/m.bin")
    part = url_cache_path(url).with_suffix(".bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 1000)  # a stale part with wrong bytes
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert _files_under(env) == []


@pytest.mark.parametrize("expected_size", [len(DATA) + 5, len(DATA) - 5])
def test_size_mismatch_deletes_everything(server: Server, env: Path, expected_size: int) -> None:
    server.files["/m.bin"] = DATA
    with pytest.raises(DownloadError) as info:
        resolve_source(server.url("/m.bin"), expected_size=expected_size, on_progress=lambda _: None)
    message = str(info.value)
    assert "size mismatch" in message and "m.bin" in message and str(expected_size) in message
    assert str(len(DATA)) in message
    assert _files_under(env) == []


def test_cached_file_of_the_wrong_size_is_replaced(server: Server) -> None:
    server.files["/m.bin"] = DATA
    url = server.url("/m.bin")
    target = url_cache_path(url)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    assert resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None).read_bytes() == DATA


# ---------------------------------------------------------------- Hugging Face addresses


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("hf://o/r/f.gguf", HfFile("o/r", "f.gguf", "main")),
        ("hf://o/r/a/b/f.gguf@v1.0", HfFile("o/r", "a/b/f.gguf", "v1.0")),
        ("hf://o/r/f.gguf@refs/pr/1", HfFile("o/r", "f.gguf", "refs/pr/1")),
    ],
)
def test_hf_address_parsing(uri: str, expected: HfFile) -> None:
    assert HfFile.parse(uri) == expected


@pytest.mark.parametrize("uri", ["hf://o/r", "hf://o//f.gguf", "hf://o/r/f.gguf@", "hf://o/r/../../etc/passwd"])
def test_bad_hf_addresses(uri: str) -> None:
    with pytest.raises(InvalidParameterError, match="hf://owner/repo"):
        resolve_source(uri)


def test_catalogue_hf_addresses_round_trip() -> None:
    for entry in catalog.CATALOG.values():
        if entry.source == "hf":
            assert HfFile.parse(str(entry.hf_uri)) == HfFile(str(entry.repo), str(entry.path), str(entry.revision))


# ---------------------------------------------------------------- catalogue constants


def _fake_entry(name: str, sha: str = SHA, url: str = "", **facts: object) -> ModelEntry:
    return ModelEntry(
        name=name, family="sd2", role="model", url=url, filename="w.gguf", size=len(DATA), sha256=sha, **facts
    )


def test_catalogue_constant_with_a_plain_url(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["/esrgan.pth"] = DATA
    entry = _fake_entry("TEST_UPSCALER", url=server.url("/esrgan.pth"))
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    assert resolve_source("TEST_UPSCALER", on_progress=lambda _: None).read_bytes() == DATA


def test_catalogue_sha256_is_enforced(server: Server, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["/esrgan.pth"] = DATA
    entry = _fake_entry("TEST_UPSCALER", sha="0" * 64, url=server.url("/esrgan.pth"))
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    # The entry's facts win over whatever the caller passes.
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        resolve_source("TEST_UPSCALER", sha256=SHA, on_progress=lambda _: None)
    assert _files_under(env) == []


# ---------------------------------------------------------------- local paths and bad input


def test_existing_local_path_is_returned(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(DATA)
    assert resolve_source(str(model)) == model
    assert resolve_source(model, expected_size=len(DATA), sha256=SHA) == model


def test_missing_local_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelFileError) as info:
        resolve_source(str(missing))
    assert isinstance(info.value, FileNotFoundError)
    assert str(missing) in str(info.value)


def test_typo_of_a_catalogue_name_suggests_it() -> None:
    with pytest.raises(ModelFileError, match=r"did you mean 'SD_V2_1_1B_Q8_0'\?"):
        resolve_source("SD_V2_1_1B_Q8")


def test_wrong_type_and_empty_source() -> None:
    with pytest.raises(InvalidTypeError):
        resolve_source(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        resolve_source("  ")


# ---------------------------------------------------------------- cache folder


def _unwritable_cache(tmp_path: Path) -> Path:
    """A cache folder that cannot be written: read-only, or (as root, where chmod does not bind) under a file."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder
    (folder / "probe").unlink()
    folder.chmod(0o700)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "cache"


def test_unwritable_cache_folder_is_a_clear_error(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files["/m.bin"] = DATA
    cache = _unwritable_cache(tmp_path)
    monkeypatch.setenv("QVAC_NB_CACHE", str(cache))
    try:
        with pytest.raises(DownloadError) as info:
            resolve_source(server.url("/m.bin"), on_progress=lambda _: None)
    finally:
        (tmp_path / "readonly").chmod(0o700)
    assert f"cache folder {cache} is not writable" in str(info.value)
    assert "QVAC_NB_CACHE" in str(info.value)
    assert server.requests == []


def test_cache_dir_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("QVAC_NB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "qvac_nb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "qvac_nb"


def test_concurrent_downloads_of_one_file(server: Server) -> None:
    server.files["/m.bin"] = DATA
    server.delay = 0.3
    url = server.url("/m.bin")
    results, errors = run_at_once(
        lambda: resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None), 3)
    assert errors == []
    assert len({str(r) for r in results}) == 1 and Path(str(results[0])).read_bytes() == DATA
    assert len(server.requests) == 1  # the others waited on the lock, then found the file


def test_delete_and_list(server: Server, env: Path, tmp_path: Path) -> None:
    server.files["/w.gguf"] = DATA
    url = server.url("/w.gguf")
    path = resolve_source(url, on_progress=lambda _: None)
    assert list_cached() == [(path.relative_to(env).as_posix(), path, len(DATA))]
    assert delete_cached(url) is True
    assert not path.exists() and list_cached() == []
    assert not (env / "url").exists()  # empty folders are pruned
    assert delete_cached(url) is False
    outside = tmp_path / "keep.gguf"
    outside.write_bytes(b"x")
    assert delete_cached(outside) is False  # the user's own files are never deleted
    assert outside.exists()
    with pytest.raises(KeyError, match="did you mean 'SD_V2_1_1B_Q8_0'"):
        delete_cached("SD_V2_1_1B_Q8")


def test_delete_a_catalogue_entry(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["/esrgan.pth"] = DATA
    entry = _fake_entry("TEST_UPSCALER", url=server.url("/esrgan.pth"))
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    path = resolve_source(entry.name, on_progress=lambda _: None)
    assert delete_cached(entry.name) is True
    assert not path.exists() and cached_path(entry.name) is None


# ---------------------------------------------------------------- progress


def test_progress_callback_reports_increasing_percentages(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "_PROGRESS_INTERVAL", 0.0)
    server.files["/m.bin"] = DATA
    server.cuts = [100_000]
    events, callback = _events()
    resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA, on_progress=callback)
    assert len(events) > 10
    percentages = [event["percentage"] for event in events]
    assert percentages == sorted(percentages) and percentages[-1] == 100.0
    assert all(0.0 <= p <= 100.0 for p in percentages)
    assert events[-1] == {"percentage": 100.0, "downloaded_bytes": len(DATA), "total_bytes": len(DATA), "file": "m.bin"}
    assert all(event["total_bytes"] == len(DATA) for event in events)


def test_progress_callback_is_throttled(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    server.files["/m.bin"] = DATA
    events, callback = _events()
    started = time.monotonic()
    resolve_source(server.url("/m.bin"), on_progress=callback)
    elapsed = time.monotonic() - started
    assert len(events) <= 10 * elapsed + 2  # ~10 a second plus the final 100 %
    assert events[-1]["percentage"] == 100.0


def test_progress_exception_aborts_and_the_next_call_resumes(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "_PROGRESS_INTERVAL", 0.0)
    server.files["/m.bin"] = DATA
    url = server.url("/m.bin")

    def cancel(event: dict) -> None:
        if event["downloaded_bytes"] >= 100_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=cancel)
    part = url_cache_path(url).with_suffix(".bin.part")
    assert 0 < part.stat().st_size < len(DATA) and DATA.startswith(part.read_bytes())
    assert resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None).read_bytes() == DATA
    assert server.requests[-1]["range"] is not None


def test_tqdm_bar_without_callback(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.files["/m.bin"] = DATA
    path = resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA)
    assert path.read_bytes() == DATA
    assert "m.bin" in capsys.readouterr().err


def test_hf_hub_disable_progress_bars_hides_the_bar(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # HF_HUB_DISABLE_PROGRESS_BARS=1 as huggingface_hub read it at import.
    monkeypatch.setattr(importlib.import_module("huggingface_hub.utils.tqdm"), "HF_HUB_DISABLE_PROGRESS_BARS", True)
    server.files["/m.bin"] = DATA
    assert resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA).read_bytes() == DATA
    assert "m.bin" not in capsys.readouterr().err


# ---------------------------------------------------------------- issue 13: addresses, side files, offline


@pytest.mark.parametrize(
    "uri",
    [
        "hf://evil/repo/victim--repo/main/x@..",  # would land in victim/repo's cache slot
        "hf://o/r/f.gguf@.",
        "hf://o/r/f.gguf@a..b",
        "hf://o/r/f.gguf@.hidden",
        "hf://o/r/f.gguf@v1.lock",
        "hf://o/r/f.gguf@a b",
        "hf://ev--il/repo/f.gguf",
        "hf://-o/r/f.gguf",
        "hf://o/r./f.gguf",
        "hf://o/r/a\\b.gguf",
        "hf://o/r/a/./b.gguf",
        "hf://o/r/a//b.gguf",
        "hf://o/r/a\x00b.gguf",
    ],
)
def test_hf_addresses_follow_hugging_face_rules(hub: Server, uri: str) -> None:
    with pytest.raises(InvalidParameterError, match=r"^model_src: .*hf://owner/repo"):
        resolve_source(uri, on_progress=lambda _: None)
    assert hub.requests == []  # refused before any request


def test_hf_cache_path_stays_in_its_slot(env: Path) -> None:
    # Built directly (not parsed), the bad revision is still caught where the path is made.
    with pytest.raises(InvalidParameterError, match="^model_src: "):
        HfFile("evil/repo", "x", "..").legacy_path()
    path = HfFile("o/r", "a/b.gguf", "refs/pr/1").legacy_path()
    assert path == env / "hf" / "o--r" / "refs--pr--1" / "a" / "b.gguf"


def test_victim_slot_is_not_served_for_an_evil_address(hub: Server, env: Path, tmp_path: Path) -> None:
    hub.add_hub_file("victim/repo", "x", DATA)
    with pytest.raises(InvalidParameterError):
        resolve_source("hf://evil/repo/victim--repo/main/x@..", on_progress=lambda _: None)
    assert not (env / "hf" / "victim--repo").exists() and not (tmp_path / "hub").exists()


@pytest.mark.parametrize("url", ["/m%00.bin", "/a%00/m.bin%00", "/m%0a.bin"])
def test_url_with_nul_or_control_characters_is_refused(server: Server, url: str) -> None:
    with pytest.raises(InvalidParameterError, match="^model_src: ") as info:
        resolve_source(server.url(url), on_progress=lambda _: None)
    assert isinstance(info.value, QvacError)
    assert server.requests == []


def _all_files(folder: Path) -> list[Path]:
    """Every file but the (empty) lock files, which stay as huggingface_hub's do."""
    return _files_under(folder) if folder.exists() else []


@pytest.mark.parametrize("failure", ["checksum", "size", "http404"])
def test_no_side_file_outlives_a_failed_download(server: Server, env: Path, failure: str) -> None:
    server.files["/m.bin"] = DATA
    server.corrupt = failure == "checksum"
    url = server.url("/missing.bin" if failure == "http404" else "/m.bin")
    size = len(DATA) + 1 if failure == "size" else len(DATA)
    with pytest.raises(DownloadError):
        resolve_source(url, expected_size=size, sha256=SHA, on_progress=lambda _: None)
    assert _all_files(env) == []  # no .lock, no .part, no file


def test_successful_download_leaves_no_part(server: Server, env: Path) -> None:
    server.files["/m.bin"] = DATA
    path = resolve_source(server.url("/m.bin"), sha256=SHA, on_progress=lambda _: None)
    assert _all_files(env) == [path]


def test_long_file_name_that_only_the_side_files_would_overflow(server: Server, env: Path) -> None:
    name = "m" * 250 + ".bin"  # 254 bytes: fits, but not with ".lock" or ".part" added
    server.files[f"/{name}"] = DATA
    path = resolve_source(server.url(f"/{name}"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert path.name == name and path.read_bytes() == DATA
    assert _all_files(env) == [path]


def test_long_file_name_resumes_from_its_hashed_part(server: Server, env: Path) -> None:
    name = "m" * 250 + ".bin"
    server.files[f"/{name}"] = DATA
    server.cuts = [10_000] + [0] * 20
    with pytest.raises(DownloadError, match="resumes"):
        resolve_source(server.url(f"/{name}"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    (part,) = _all_files(env)
    assert part.name.endswith(".part") and len(part.name) < 30 and part.read_bytes() == DATA[:10_000]
    server.cuts = []
    path = resolve_source(server.url(f"/{name}"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert path.read_bytes() == DATA and _all_files(env) == [path]
    assert server.gets(f"/{name}")[-1]["range"] == "bytes=10000-"


def test_no_network_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    import socket

    calls: list[str] = []

    def no_dns(host: str, *args: object, **kwargs: object) -> list:
        calls.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(DownloadError, match="^no network connection: could not reach models.example.org"):
        resolve_source("https://models.example.org/m.bin", on_progress=lambda _: None)
    assert calls and set(calls) == {"models.example.org"}
    assert _all_files(env) == []


def test_offline_mode_refuses_a_url_without_a_request(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    server.files["/m.bin"] = DATA
    with pytest.raises(DownloadError, match="m.bin is not in the cache .* offline mode is on .HF_HUB_OFFLINE=1."):
        resolve_source(server.url("/m.bin"), on_progress=lambda _: None)
    assert server.requests == []
