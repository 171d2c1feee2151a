"""The Studio's extra inputs in the kernel: image slots, the painted mask, the LoRA file list."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import qvac_nb
from qvac_nb.widgets.inputs import ImageSlots, find_loras, mask_png


def _png(width: int, height: int, value: int = 128) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (value, 0, 0)).save(out, format="PNG")
    return out.getvalue()


def test_slots_keep_full_bytes_and_show_thumbnails_only() -> None:
    slots = ImageSlots({"ref_images": 2, "control_image": 1})
    big = _png(640, 320)
    slots.add("ref_images", big, "a.png")
    slots.add("ref_images", _png(8, 8), "b.png")
    assert slots.data("ref_images")[0] == big
    shown = slots.trait("ref_images")
    assert [(s["name"], s["width"], s["height"]) for s in shown] == [("a.png", 640, 320), ("b.png", 8, 8)]
    assert all(s["thumb"][:2] == b"\xff\xd8" and len(s["thumb"]) < len(big) for s in shown)  # JPEG thumbnails
    with pytest.raises(qvac_nb.InvalidParameterError, match="at most 2"):
        slots.add("ref_images", _png(8, 8), "c.png")
    slots.remove("ref_images", 0)
    slots.remove("ref_images", 7)  # a stale index from the front-end: nothing happens
    assert [s["name"] for s in slots.trait("ref_images")] == ["b.png"]
    with pytest.raises(qvac_nb.InvalidParameterError, match="not a PNG"):
        slots.add("control_image", b"nope", "x.png")
    with pytest.raises(qvac_nb.InvalidParameterError, match="ref_images, control_image"):
        slots.clear("other")


def test_painted_mask_becomes_a_grayscale_png_of_the_init_images_size() -> None:
    data = np.zeros((4, 6), dtype=np.uint8)
    data[1:3, 2:5] = 255
    png = mask_png(6, 4, data.tobytes(), image_size=(6, 4))
    with Image.open(io.BytesIO(png)) as img:
        assert img.mode == "L" and img.size == (6, 4)
        assert np.array_equal(np.asarray(img), data)
    with pytest.raises(qvac_nb.InvalidParameterError, match="expected 6 x 4 = 24"):
        mask_png(6, 4, b"\x00" * 23)
    with pytest.raises(qvac_nb.InvalidParameterError, match="init image is 8x8"):
        mask_png(6, 4, data.tobytes(), image_size=(8, 8))
    with pytest.raises(qvac_nb.InvalidParameterError, match="mask_image"):
        mask_png(0, 4, b"")


def test_lora_files_are_found_recursively_sorted_and_deduplicated(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.safetensors", "A.safetensors", "sub/c.gguf", "notes.txt", "sub/d.SAFETENSORS"):
        (tmp_path / name).write_bytes(b"x")
    found = find_loras([tmp_path, tmp_path / "sub", tmp_path / "missing"])
    assert [f["name"] for f in found] == ["A.safetensors", "b.safetensors", "c.gguf", "d.SAFETENSORS"]
    assert all(Path(f["source"]).is_absolute() and Path(f["source"]).exists() for f in found)
