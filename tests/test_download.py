"""The download layer, against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_http import Server, serving

from qvac_nb import catalog, download
from qvac_nb.catalog import ModelEntry
from qvac_nb.download import HfFile, cache_dir, cached_path, delete_cached, list_cached, resolve_source
from qvac_nb.errors import DownloadError, InvalidParameterError, InvalidTypeError, ModelFileError, QvacError
from qvac_nb.hub import transfer

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


# ---------------------------------------------------------------- local server


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as state:
        yield state


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache and HF hub cache, no proxies or tokens, no waiting between retries."""
    monkeypatch.setenv("QVAC_NB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for var in ("HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "http_proxy", "HTTP_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(transfer, "_RETRY_DELAY", 0.0)
    return tmp_path / "cache"


def _files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and not path.name.endswith(".lock"))


def _events() -> tuple[list[dict], download.ProgressCallback]:
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


def test_resume_survives_several_cuts(server: Server) -> None:
    server.files["/m.bin"] = DATA
    server.cuts = [50_000, 50_000, 50_000]
    path = resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert path.read_bytes() == DATA
    assert [request["range"] for request in server.requests] == [None, "bytes=50000-", "bytes=100000-", "bytes=150000-"]


def test_resume_from_an_earlier_partial_file(server: Server) -> None:
    server.files["/m.bin"] = DATA
    url = server.url("/m.bin")
    part = download.url_cache_path(url).with_suffix(".bin.part")
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
    part = download.url_cache_path(url).with_suffix(".bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA)
    assert resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None).read_bytes() == DATA
    assert server.requests == []


def test_gives_up_after_repeated_cuts_and_keeps_the_part(server: Server) -> None:
    server.files["/m.bin"] = DATA
    server.cuts = [10_000] + [0] * 20
    with pytest.raises(DownloadError, match="after 5 attempts") as info:
        resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert "resumes" in str(info.value)
    part = download.url_cache_path(server.url("/m.bin")).with_suffix(".bin.part")
    assert part.read_bytes() == DATA[:10_000]


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
    part = download.url_cache_path(url).with_suffix(".bin.part")
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
    target = download.url_cache_path(url)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    assert resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None).read_bytes() == DATA


# ---------------------------------------------------------------- Hugging Face


def test_hf_address_downloads_through_hf_endpoint(server: Server, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    server.files["/owner/repo/resolve/abc123/sub/dir/w.gguf"] = DATA
    path = resolve_source("hf://owner/repo/sub/dir/w.gguf@abc123", sha256=SHA, on_progress=lambda _: None)
    assert path == env / "hf" / "owner--repo" / "abc123" / "sub" / "dir" / "w.gguf"
    assert path.read_bytes() == DATA


def test_hf_address_defaults_to_main(server: Server, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url("/"))
    server.files["/owner/repo/resolve/main/w.gguf"] = DATA
    assert resolve_source("hf://owner/repo/w.gguf", on_progress=lambda _: None) == env / "hf/owner--repo/main/w.gguf"


def test_hf_redirects_keep_range_and_the_token_stays_on_its_host(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    monkeypatch.setenv("HF_TOKEN", "secret")
    # A same-host redirect first, then one to another host name (the CDN) on the same server.
    server.redirects["/o/r/resolve/main/w.gguf"] = server.url("/api/resolve-cache/w.gguf")
    server.redirects["/api/resolve-cache/w.gguf"] = f"http://localhost:{server.port}/cdn/blob"
    server.files["/cdn/blob"] = DATA
    server.cuts = [70_000]
    path = resolve_source("hf://o/r/w.gguf", expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert path.read_bytes() == DATA
    hops = [
        ("/o/r/resolve/main/w.gguf", "Bearer secret"),
        ("/api/resolve-cache/w.gguf", "Bearer secret"),
        ("/cdn/blob", None),
    ]
    expected = [(p, None, auth) for p, auth in hops] + [(p, "bytes=70000-", auth) for p, auth in hops]
    assert [(r["path"], r["range"], r["auth"]) for r in server.requests] == expected


def _put_in_hub(tmp_path: Path, repo: str, path: str, data: bytes, ref: str | None = "main") -> Path:
    """Lay a file out like huggingface_hub does: a blob, a snapshot symlink and a ref."""
    base = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    blob = base / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    snapshot = base / "snapshots" / commit / path
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(blob)
    if ref:
        (base / "refs").mkdir()
        (base / "refs" / ref).write_text(commit)
    return snapshot


def test_reuses_a_file_from_the_hf_hub_cache(server: Server, tmp_path: Path, env: Path) -> None:
    snapshot = _put_in_hub(tmp_path, "owner/repo", "sub/w.gguf", DATA)
    assert resolve_source("hf://owner/repo/sub/w.gguf", expected_size=len(DATA)) == snapshot
    commit = snapshot.parts[-3]
    assert resolve_source(f"hf://owner/repo/sub/w.gguf@{commit}", expected_size=len(DATA)) == snapshot
    assert server.requests == [] and not env.exists()  # nothing downloaded, nothing copied


def test_hub_file_of_the_wrong_size_is_not_reused(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    _put_in_hub(tmp_path, "owner/repo", "w.gguf", DATA[:10])
    server.files["/owner/repo/resolve/main/w.gguf"] = DATA
    path = resolve_source("hf://owner/repo/w.gguf", expected_size=len(DATA), on_progress=lambda _: None)
    assert path.read_bytes() == DATA and "hub" not in path.parts


def test_hub_cache_location_follows_hf_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert download.hf_hub_cache() == tmp_path / "hfhome" / "hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.hf_hub_cache() == tmp_path / "xdg" / "huggingface" / "hub"


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


def test_catalogue_constant_downloads_from_hf(server: Server, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    server.files["/test/repo/resolve/rev1/w.gguf"] = DATA
    entry = _fake_entry("TEST_MODEL_Q8_0", source="hf", repo="test/repo", revision="rev1", path="w.gguf")
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    path = resolve_source("TEST_MODEL_Q8_0", on_progress=lambda _: None)
    assert path == env / "hf" / "test--repo" / "rev1" / "w.gguf" and path.read_bytes() == DATA
    assert cached_path("TEST_MODEL_Q8_0") == path
    assert ("TEST_MODEL_Q8_0", path, len(DATA)) in list_cached()
    assert resolve_source(entry) == path


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


def test_catalogue_entry_found_in_the_hf_hub_cache(server: Server, tmp_path: Path) -> None:
    entry = catalog.CATALOG["QWEN3_4B_Q4_K_M"]
    assert cached_path(entry.name) is None
    # A sparse file has the catalogue size without using the disk space.
    snapshot = _put_in_hub(tmp_path, str(entry.repo), str(entry.path), b"")
    os.truncate(snapshot, entry.size)
    assert cached_path(entry.name) == snapshot
    assert resolve_source(entry.name) == snapshot
    assert (entry.name, snapshot, entry.size) in list_cached()
    assert delete_cached(entry.name) is False and snapshot.exists()  # the hub cache is not ours to clean
    assert server.requests == []


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
    results: list[Path] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            results.append(resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1 and results[0].read_bytes() == DATA
    assert len(server.requests) == 1  # the others waited on the lock, then found the file


def test_delete_and_list(server: Server, env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    server.files["/o/r/resolve/main/w.gguf"] = DATA
    path = resolve_source("hf://o/r/w.gguf", on_progress=lambda _: None)
    assert list_cached() == [("hf://o/r/w.gguf@main", path, len(DATA))]
    assert delete_cached("hf://o/r/w.gguf") is True
    assert not path.exists() and list_cached() == []
    assert not (env / "hf").exists()  # empty folders are pruned
    assert delete_cached("hf://o/r/w.gguf") is False
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
    monkeypatch.setattr(transfer, "_CHUNK", 16_384)
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
    monkeypatch.setattr(transfer, "_CHUNK", 1024)
    server.files["/m.bin"] = DATA
    events, callback = _events()
    started = time.monotonic()
    resolve_source(server.url("/m.bin"), on_progress=callback)
    elapsed = time.monotonic() - started
    assert len(events) <= 10 * elapsed + 2  # ~10 a second plus the final 100 %
    assert events[-1]["percentage"] == 100.0


def test_progress_exception_aborts_and_the_next_call_resumes(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "_PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(transfer, "_CHUNK", 16_384)
    server.files["/m.bin"] = DATA
    url = server.url("/m.bin")

    def cancel(event: dict) -> None:
        if event["downloaded_bytes"] >= 100_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=cancel)
    assert resolve_source(url, expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None).read_bytes() == DATA
    assert server.requests[-1]["range"] is not None


def test_tqdm_bar_without_callback(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.files["/m.bin"] = DATA
    server.cuts = [100_000]
    path = resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA)
    assert path.read_bytes() == DATA
    assert "m.bin" in capsys.readouterr().err


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
def test_hf_addresses_follow_hugging_face_rules(server: Server, monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    with pytest.raises(InvalidParameterError, match=r"^model_src: .*hf://owner/repo"):
        resolve_source(uri, on_progress=lambda _: None)
    assert server.requests == []  # refused before any request


def test_hf_cache_path_stays_in_its_slot(env: Path) -> None:
    # Built directly (not parsed), the bad revision is still caught where the path is made.
    with pytest.raises(InvalidParameterError, match="^model_src: "):
        HfFile("evil/repo", "x", "..").cache_path()
    path = HfFile("o/r", "a/b.gguf", "refs/pr/1").cache_path()
    assert path == env / "hf" / "o--r" / "refs--pr--1" / "a" / "b.gguf"


def test_victim_slot_is_not_served_for_an_evil_address(
    server: Server, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    server.files["/victim/repo/resolve/main/x"] = DATA
    with pytest.raises(InvalidParameterError):
        resolve_source("hf://evil/repo/victim--repo/main/x@..", on_progress=lambda _: None)
    assert not (env / "hf" / "victim--repo").exists()


@pytest.mark.parametrize("url", ["/m%00.bin", "/a%00/m.bin%00", "/m%0a.bin"])
def test_url_with_nul_or_control_characters_is_refused(server: Server, url: str) -> None:
    with pytest.raises(InvalidParameterError, match="^model_src: ") as info:
        resolve_source(server.url(url), on_progress=lambda _: None)
    assert isinstance(info.value, QvacError)
    assert server.requests == []


def _all_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


@pytest.mark.parametrize("failure", ["checksum", "size", "http404"])
def test_no_side_file_outlives_a_failed_download(server: Server, env: Path, failure: str) -> None:
    server.files["/m.bin"] = DATA
    server.corrupt = failure == "checksum"
    url = server.url("/missing.bin" if failure == "http404" else "/m.bin")
    size = len(DATA) + 1 if failure == "size" else len(DATA)
    with pytest.raises(DownloadError):
        resolve_source(url, expected_size=size, sha256=SHA, on_progress=lambda _: None)
    assert _all_files(env) == []  # no .lock, no .part, no file


def test_successful_download_leaves_no_lock(server: Server, env: Path) -> None:
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


def test_offline_is_said_at_once(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    import socket

    calls: list[str] = []

    def no_dns(host: str, *args: object, **kwargs: object) -> list:
        calls.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(transfer, "_RETRY_DELAY", 5.0)  # a retry would show as a 5 s wait
    start = time.monotonic()
    with pytest.raises(DownloadError, match="^no network connection: could not reach models.example.org"):
        resolve_source("https://models.example.org/m.bin", on_progress=lambda _: None)
    assert time.monotonic() - start < 2.0
    assert calls == ["models.example.org"]  # asked once, not five times
    assert _all_files(env) == []
