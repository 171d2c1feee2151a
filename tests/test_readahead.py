"""load_model starts reading the model's files from disk while the worker starts (qvac_nb.readahead)."""

from __future__ import annotations

import ctypes
import mmap
import os
import time
from pathlib import Path
from typing import Any

import pytest

import qvac_nb
from qvac_nb import readahead

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this system")

SIZE = 16 * 2**20
WAIT_S = 20.0


def _resident_fraction(path: Path) -> float:
    """The share of `path`'s pages in the page cache: mincore on a mapping that touches none of them."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        base = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert base not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vec = (ctypes.c_ubyte * pages)()
            assert libc.mincore(base, size, vec) == 0, os.strerror(ctypes.get_errno())
            return sum(v & 1 for v in vec) / pages
        finally:
            libc.munmap(base, size)
    finally:
        os.close(fd)


def _evicted_file(folder: Path) -> Path:
    path = folder / "weights.bin"
    with open(path, "wb") as f:
        f.write(os.urandom(SIZE))
        f.flush()
        os.fsync(f.fileno())  # dirty pages cannot be dropped
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if _resident_fraction(path) > 0.5:
        pytest.skip(f"{folder}'s file system keeps files in memory (tmpfs?): nothing to read ahead")
    return path


def test_readahead_brings_an_evicted_file_into_the_page_cache(tmp_path: Path) -> None:
    path = _evicted_file(tmp_path)
    time.sleep(0.2)
    assert _resident_fraction(path) < 0.5  # nothing reads it on its own
    thread = readahead.start([path, tmp_path / "missing.gguf"])  # a missing file is the load's error to report
    assert thread is not None
    thread.join(WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while _resident_fraction(path) < 0.9 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _resident_fraction(path) >= 0.9


def test_load_model_reads_ahead_every_file_of_the_model(flux2_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Path] = []
    real_start = readahead.start

    def spy(paths: Any) -> Any:
        paths = list(paths)
        asked.extend(paths)
        return real_start(paths)

    monkeypatch.setattr(readahead, "start", spy)
    model_id = qvac_nb.load_model(str(flux2_model.primary), model_config={**flux2_model.model_config(), "threads": 2})
    try:
        expected = sorted(str(p.resolve()) for p in flux2_model.files.values())
        assert sorted(str(Path(p).resolve()) for p in asked) == expected
    finally:
        qvac_nb.unload_model(model_id=model_id)
