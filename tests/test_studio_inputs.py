"""The Studio's extra inputs in the kernel: image slots, the painted mask, the LoRA file list."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import qvac_nb
from qvac_nb.widgets.inputs import FeatureInputs, ImageSlots, find_loras, mask_png


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


@dataclass
class _Host:
    """What FeatureInputs needs of its widget (InputsHost), with a fixed init image size; plain attributes
    where the Studio has synced traits."""

    ref_images: list[Any] = field(default_factory=list)
    control_image: list[Any] = field(default_factory=list)
    end_image: list[Any] = field(default_factory=list)
    mask: dict[str, Any] = field(default_factory=dict)
    lora_files: list[Any] = field(default_factory=list)
    lora_folders: list[str] = field(default_factory=list)
    lora: list[Any] = field(default_factory=list)
    inputs_shown: dict[str, Any] = field(default_factory=dict)

    def init_image_size(self) -> tuple[int, int] | None:
        return (6, 4)


def test_feature_inputs_route_messages_and_add_only_what_the_model_uses(tmp_path: Path) -> None:
    (tmp_path / "style.safetensors").write_bytes(b"x")
    w = _Host()
    inputs = FeatureInputs(w, [tmp_path])
    assert [f["name"] for f in w.lora_files] == ["style.safetensors"]
    assert w.lora_folders == [str(tmp_path)]  # the picker says where it looks
    handle = inputs.handlers()
    handle["slot_add"]({"slot": "ref_images", "name": "r.png"}, [_png(16, 8)])
    handle["slot_add"]({"slot": "control_image", "name": "c.png"}, [_png(8, 8)])
    handle["mask"]({"width": 6, "height": 4}, [b"\xff" * 24])
    assert [r["name"] for r in w.ref_images] == ["r.png"] and w.mask == {"width": 6, "height": 4}

    inputs.show_for("flux2")  # reference images apply; a mask and a control image do not
    assert w.inputs_shown == {"ref_images": True, "control_image": False, "end_image": False, "mask": False,
                              "lora": True}
    params = inputs.params(has_init_image=True)
    assert list(params) == ["init_images"] and params["init_images"][0][:4] == b"\x89PNG"

    inputs.show_for("sd1", has_control_net=True)
    params = inputs.params(has_init_image=True)
    assert sorted(params) == ["control_image", "mask_image"]
    with Image.open(io.BytesIO(params["mask_image"])) as mask:
        assert mask.size == (6, 4) and mask.getextrema() == (255, 255)
    assert "mask_image" not in inputs.params(has_init_image=False)  # a mask without an init image means nothing

    handle["slot_add"]({"slot": "end_image", "name": "last.png"}, [_png(8, 8)])
    assert [e["name"] for e in w.end_image] == ["last.png"]
    assert "end_image" not in inputs.params(True)  # an image model reads no last frame
    inputs.show_for("wan", end_image=True)  # a first/last-frame video model
    assert w.inputs_shown["end_image"] and inputs.params(True)["end_image"][:4] == b"\x89PNG"
    handle["slot_clear"]({"slot": "end_image"}, [])
    assert "end_image" not in inputs.params(True)
    inputs.show_for("sd1", has_control_net=True)

    w.lora = [[w.lora_files[0]["source"], 0.5]]  # as the picker sets it
    assert inputs.params(True)["lora"] == [(w.lora_files[0]["source"], 0.5)]
    w.lora = []
    handle["slot_remove"]({"slot": "ref_images", "index": 0}, [])
    handle["mask_clear"]({}, [])
    assert w.ref_images == [] and w.mask == {} and sorted(inputs.params(True)) == ["control_image"]
    with pytest.raises(qvac_nb.InvalidParameterError, match="init image is 6x4"):
        handle["mask"]({"width": 8, "height": 8}, [b"\x00" * 64])
    (tmp_path / "new.safetensors").write_bytes(b"x")
    handle["lora_refresh"]({}, [])
    assert [f["name"] for f in w.lora_files] == ["new.safetensors", "style.safetensors"]
