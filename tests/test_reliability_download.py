"""Downloads into a full disk: a clear DownloadError, nothing half-written under the final name.

test_download.py covers cuts, resumes, checksum and size mismatches and read-only caches;
these add the full-disk cases: a real tiny filesystem (when the test may mount one), a
write failing with ENOSPC, and the free-space check made before a download starts.
"""

from __future__ import annotations

import errno
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import small_tmpfs
from test_download import DATA, SHA, Server, env, server  # noqa: F401 - fixtures used by name

from qvac_nb.errors import DownloadError, QvacError
from qvac_nb.hub import transfer
from qvac_nb.hub.resolve import resolve_source


def _complete_files(folder: Path) -> list[Path]:
    """Files under their final name (not .part, not .lock)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith((".part", ".lock")))


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 128 KiB tmpfs, so writes fail with ENOSPC the way a full disk makes them fail."""
    with small_tmpfs(tmp_path / "tiny", "128k") as mount:
        yield mount


def test_a_really_full_disk_is_a_clear_error(
    server: Server, tiny_fs: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    # No expected size, so the free-space check cannot refuse it up front: the write itself fails.
    server.files["/big.bin"] = DATA
    monkeypatch.setenv("QVAC_NB_CACHE", str(tiny_fs / "cache"))
    with pytest.raises(DownloadError) as info:
        resolve_source(server.url("/big.bin"), on_progress=lambda _: None)
    assert "is full" in str(info.value) and "QVAC_NB_CACHE" in str(info.value)
    assert _complete_files(tiny_fs) == []


class _FullDisk(io.BytesIO):
    """A part file whose writes fail the way a full disk makes them fail."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def write(self, chunk: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "not a real file")


def test_enospc_during_the_write(server: Server, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    server.files["/m.bin"] = DATA
    real_open = transfer._open_part
    monkeypatch.setattr(transfer, "_open_part", _FullDisk)
    with pytest.raises(DownloadError) as info:
        resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert isinstance(info.value, QvacError)
    assert "is full" in str(info.value) and "QVAC_NB_CACHE" in str(info.value)
    assert _complete_files(env) == []
    # Once there is space again, the next call downloads the file.
    monkeypatch.setattr(transfer, "_open_part", real_open)
    path = resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert path.read_bytes() == DATA


def test_not_enough_free_space_is_refused_before_downloading(
    server: Server, env: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    server.files["/m.bin"] = DATA
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(DownloadError) as info:
        resolve_source(server.url("/m.bin"), expected_size=len(DATA), sha256=SHA, on_progress=lambda _: None)
    assert "is full" in str(info.value) and str(len(DATA)) in str(info.value)
    assert server.requests == []
    assert _complete_files(env) == []
