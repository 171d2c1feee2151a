"""History folders that fight back: stray non-files, a full disk, a tiny PNG of a huge image.

No model is needed. What could hang or eat memory if it regressed (reading a FIFO or /dev/zero,
decoding a 13000x13000 image) runs in a child process with a timeout and a capped address space.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import small_tmpfs

import qvac_nb
from qvac_nb import history_folder as hist
from qvac_nb.png import encode_png

CHILD_TIMEOUT = 180  # a bound for a hang, not a speed limit: the child needs a few seconds
CHILD_HEADROOM = 512 << 20  # address space the child may add after its imports; reading /dev/zero runs into it
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs mkfifo and /dev/zero")


def _png(seed: int, prompt: str = "a cat") -> tuple[bytes, dict[str, Any]]:
    params = {"prompt": prompt, "seed": seed, "steps": 2, "model": "m.gguf"}
    return encode_png(np.full((8, 8, 3), seed % 256, dtype=np.uint8), params), params


def _leftovers(folder: Path) -> list[str]:
    """Temporary files, and PNGs that are empty (a name reserved and never filled)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name.endswith(".part") or (p.suffix == ".png" and p.stat().st_size == 0))


def _run_child(code: str, *args: str) -> Any:
    """Run `code` in a fresh interpreter whose address space is capped once imported; its printed JSON."""
    prelude = textwrap.dedent(f"""
        import json, resource, sys

        def cap_memory():
            with open("/proc/self/status") as status:
                vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
            resource.setrlimit(resource.RLIMIT_AS, (vm + {CHILD_HEADROOM}, resource.getrlimit(resource.RLIMIT_AS)[1]))
    """)
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "GGML_NO_BACKTRACE": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args], capture_output=True,
                              text=True, timeout=CHILD_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:  # subprocess.run has killed and reaped it
        pytest.fail(f"the child did not finish in {CHILD_TIMEOUT} s (blocked reading a FIFO?)")
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- 1. files that are not regular files -----------------------------------------------------------


@pytest.fixture
def stray_folder(tmp_path: Path) -> Path:
    """A history folder with one good image and *.png names that are a FIFO, /dev/zero, a folder, a dead link."""
    folder = tmp_path / "out"
    hist.save(*_png(1), folder, key="k1")
    os.mkfifo(folder / "stray.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "dir.png").mkdir()
    (folder / "gone.png").symlink_to(folder / "nothing-here")
    with (folder / hist.INDEX_NAME).open("a") as index:  # index lines naming them are skipped too
        for name in ("stray.png", "zero.png"):
            index.write(json.dumps({"file": name, "created": "2026-01-01T00:00:00+00:00", "parameters": {},
                                    "key": name}) + "\n")
    return folder


# Each child resolves what it calls (importing it) before capping its memory, then calls it on the folder.
ENTRY_POINTS = {
    "history": """
        import qvac_nb
        history = qvac_nb.history
        cap_memory()
        print(json.dumps([r.path.name for r in history(sys.argv[1])]))
    """,
    "done_keys": """
        from qvac_nb import history_folder
        cap_memory()
        print(json.dumps(sorted(history_folder.done_keys(sys.argv[1]))))
    """,
    "Gallery.from_folder": """
        import qvac_nb
        Gallery = qvac_nb.Gallery
        cap_memory()
        print(json.dumps([e["file"] for e in Gallery.from_folder(sys.argv[1]).images]))
    """,
    "Studio": """
        import qvac_nb
        from qvac_nb import engine
        Studio = qvac_nb.Studio
        engine.enum_names()  # the engine library loads before the cap
        cap_memory()
        print(json.dumps([e["file"] for e in Studio(output_dir=sys.argv[1]).gallery]))
    """,
    # batch's resume scan runs before any model loads; a stand-in backend ends the call right after it.
    "batch": """
        import qvac_nb
        from qvac_nb import engine
        from qvac_nb.batching import local

        class ScanDone(Exception):
            pass

        def stand_in(*_args, **_kwargs):
            raise ScanDone

        local.LocalBackend = stand_in
        batch = qvac_nb.batch
        engine.enum_names()
        cap_memory()
        try:
            batch(["a red fox"], model_src=sys.argv[1] + "/no-model.gguf", output_dir=sys.argv[1], progress=False)
        except ScanDone:
            print(json.dumps("scanned"))
    """,
}
LISTINGS = ("history", "Gallery.from_folder", "Studio")  # these list the folder's images


@linux_only
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_stray_fifo_and_dev_zero_are_skipped_unread(stray_folder: Path, entry: str) -> None:
    got = _run_child(ENTRY_POINTS[entry], str(stray_folder))
    if entry in LISTINGS:
        assert got == [p.name for p in stray_folder.glob("*.png") if p.is_file()]  # the good image, nothing else
    else:
        assert got == {"done_keys": ["k1"], "batch": "scanned"}[entry]
    assert stat.S_ISFIFO(os.lstat(stray_folder / "stray.png").st_mode)  # left as it was


def test_read_png_refuses_what_is_not_a_bounded_regular_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    png, _ = _png(3)
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")  # a link to a regular file is fine
    assert hist.read_png(tmp_path / "a.png") == png == hist.read_png(tmp_path / "link.png")
    assert hist.read_png(tmp_path) is None and hist.read_png(tmp_path / "missing.png") is None
    monkeypatch.setattr(hist, "max_png_bytes", lambda: len(png) - 1)
    assert hist.read_png(tmp_path / "a.png") is None  # larger than any image qvac_nb makes


# -- 5. a full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: writes fail with ENOSPC the way they do on a full disk."""
    with small_tmpfs(tmp_path / "small", "256k") as mount:
        yield mount


def _fill(path: Path) -> None:
    """Write zeros into `path` until the filesystem is full (tmpfs stops at a page boundary)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _check_failed_save(folder: Path, png: bytes, params: dict[str, Any], key: str) -> None:
    before = sorted(p.name for p in folder.glob("*.png"))
    with pytest.raises(qvac_nb.QvacError) as info:
        hist.save(png, params, folder, key=key)
    assert isinstance(info.value, OSError) and info.value.param == "output_dir"
    assert str(folder) in str(info.value) and "output_dir" in str(info.value)
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert sorted(p.name for p in folder.glob("*.png")) == before  # no PNG without its index line
    assert _leftovers(folder) == []


def test_full_tmpfs_loses_nothing_but_the_failed_saves(small_fs: Path) -> None:
    folder = small_fs / "out"
    prompt = "a lighthouse at dusk, " * 230  # index lines of ~5 KB: longer than a page
    saves = {f"k{i}": _png(i, prompt) for i in range(6)}
    for key in ("k0", "k1", "k2"):
        hist.save(*saves[key], folder, key=key)
    index = folder / hist.INDEX_NAME
    assert index.stat().st_size % 4096, "the index must end inside a page for its next line to be torn"

    filler = small_fs / "filler"
    _fill(filler)
    _check_failed_save(folder, *saves["k3"], "k3")  # the PNG itself does not fit

    # Room for the PNG but not for its index line: the append writes what fits of the page, then fails.
    pages = math.ceil(len(saves["k4"][0]) / 4096)
    os.truncate(filler, filler.stat().st_size - pages * 4096)
    _check_failed_save(folder, *saves["k4"], "k4")
    assert not index.read_bytes().endswith(b"\n"), "the scenario should have torn the index's last line"

    filler.unlink()  # space again
    hist.save(*saves["k5"], folder, key="k5")
    lines = index.read_bytes().split(b"\n")
    assert lines[-1] == b"" and json.loads(lines[-2])["key"] == "k5"  # on a line of its own, not glued
    assert sorted(hist.done_keys(folder)) == ["k0", "k1", "k2", "k5"]
    assert sorted(r.path.name for r in hist.history(folder)) == sorted(p.name for p in folder.glob("*.png"))
    assert _leftovers(folder) == []


def _enospc_on(folder: Path, victim: Callable[[str], bool], monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write to a file of `folder` whose name `victim` picks writes half, then fails with ENOSPC."""
    real_write = os.write
    torn: set[tuple[int, int]] = set()

    def write(fd: int, data: Any) -> int:
        info = os.fstat(fd)
        names = [e.name for e in os.scandir(folder) if (e.stat().st_dev, e.stat().st_ino) == (info.st_dev, info.st_ino)]
        if not (names and victim(names[0])):
            return real_write(fd, data)
        if (info.st_dev, info.st_ino) in torn:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        torn.add((info.st_dev, info.st_ino))
        return real_write(fd, bytes(data[: max(1, len(data) // 2)]))  # a short write, as a disk filling up does

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("failing", ["png", "index"])
def test_enospc_midway_leaves_no_files_and_no_glued_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    folder = tmp_path / "out"
    hist.save(*_png(1), folder, key="k1")
    with monkeypatch.context() as patch:
        _enospc_on(folder, (lambda n: n.endswith(".part")) if failing == "png" else (lambda n: n == hist.INDEX_NAME),
                   patch)
        _check_failed_save(folder, *_png(2), "k2")
    with pytest.raises(hist.SaveError):  # the class the message above came from: an OSError and a QvacError
        with monkeypatch.context() as patch:
            _enospc_on(folder, lambda n: n == hist.INDEX_NAME, patch)
            hist.save(*_png(3), folder, key="k3")
    hist.save(*_png(4), folder, key="k4")
    assert sorted(hist.done_keys(folder)) == ["k1", "k4"]
    assert len(list(folder.glob("*.png"))) == 2 and _leftovers(folder) == []
    assert json.loads((folder / hist.INDEX_NAME).read_text().split("\n")[-2])["key"] == "k4"


def test_a_torn_line_glued_to_the_next_record_loses_only_itself(tmp_path: Path) -> None:
    # An index written before appends started a fresh line after a torn one.
    folder = tmp_path / "out"
    for i in (1, 2, 3, 4):
        hist.save(*_png(i), folder, key=f"k{i}")
    index = folder / hist.INDEX_NAME
    lines = index.read_text().splitlines()
    index.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2] + lines[2] + "\n" + lines[3] + "\n")
    records = hist.history(folder)
    assert sorted(r.parameters["seed"] for r in records) == [1, 2, 3, 4]  # 2 from its PNG's own record
    assert sorted(hist.done_keys(folder)) == ["k1", "k3", "k4"]


# -- 10. a small PNG of a huge image ---------------------------------------------------------------


def _huge_png(width: int, height: int, record: dict[str, Any]) -> bytes:
    """An 8-bit grey PNG of zeros, built row by row: small on disk, width*height bytes decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate = zlib.compressobj(9)
    row = bytes(width + 1)  # the filter byte and the samples
    pixels = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"tEXt", b"qvac_nb\0" + json.dumps(record).encode()) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


@linux_only
def test_gallery_of_a_huge_image_shows_a_placeholder_without_decoding_it(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    hist.save(*_png(1), folder)
    (folder / "huge.png").write_bytes(_huge_png(13000, 13000, {"prompt": "huge", "seed": 7}))
    assert (folder / "huge.png").stat().st_size < 1 << 20
    got = _run_child("""
        import io, warnings
        import qvac_nb
        from PIL import Image
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Gallery = qvac_nb.Gallery
        cap_memory()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        images = Gallery.from_folder(sys.argv[1]).images
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        entries = {e["file"]: [e["width"], e["height"], list(Image.open(io.BytesIO(e["thumb"])).size)] for e in images}
        print(json.dumps({"entries": entries, "grown_kib": grown}))
    """, str(folder))
    assert got["entries"]["huge.png"] == [13000, 13000, [160, 160]]  # listed, its thumbnail a placeholder
    assert len(got["entries"]) == 2
    # Decoded, the image alone is 169 MB (grey) and 507 MB as RGB for the thumbnail.
    assert got["grown_kib"] < 100 * 1024


def test_thumbnail_placeholder_for_images_above_the_input_pixel_limit() -> None:
    from qvac_nb.images import MAX_IMAGE_PIXELS
    from qvac_nb.widgets.thumbs import image_size, thumbnail, too_large_placeholder

    side = math.isqrt(MAX_IMAGE_PIXELS) + 1
    png = _huge_png(side, side, {"seed": 1})
    assert image_size(png) == (side, side)
    assert thumbnail(png) == too_large_placeholder(side, side)
    small, _ = _png(1)
    assert thumbnail(small) != too_large_placeholder(8, 8)


def test_videos_copied_in_without_the_index_are_read_from_their_own_record(tmp_path: Path) -> None:
    from PIL import Image

    from qvac_nb.video_files import encode_mp4, encode_webp

    frames = np.random.default_rng(3).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    record = {"prompt": "a walking cat", "seed": 4, "kind": "video", "video_frames": 5, "fps": 8}
    (tmp_path / "a.mp4").write_bytes(encode_mp4(frames, 8, record))
    (tmp_path / "b.webp").write_bytes(encode_webp(frames, 8, {**record, "seed": 5}))
    Image.fromarray(frames[0]).save(tmp_path / "still.webp")  # not one of ours: no record, not history
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 64)  # damaged: skipped
    found = {r.path.name: r for r in hist.history(tmp_path)}
    assert set(found) == {"a.mp4", "b.webp"} and all(r.is_video for r in found.values())
    assert found["a.mp4"].parameters == record and found["b.webp"].parameters["seed"] == 5
    assert hist.read_saved(tmp_path / "a.mp4") == (tmp_path / "a.mp4").read_bytes()
