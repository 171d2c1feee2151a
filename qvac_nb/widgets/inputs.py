"""The Studio's extra inputs, kept in the kernel: image slots (FLUX.2 reference images, a control image),
the painted inpainting mask, and the LoRA files it offers.

Full-size bytes stay here; the widget state only carries thumbnails (`ImageSlots.trait`).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import InvalidParameterError
from .thumbs import image_size, thumbnail

LORA_SUFFIXES = (".safetensors", ".gguf", ".ckpt", ".pt")
MAX_LORA_FILES = 500  # a picker, not a file browser: a huge folder is cut, not walked for minutes


@dataclass(frozen=True)
class SlotImage:
    name: str
    data: bytes
    width: int
    height: int
    thumb: bytes


class ImageSlots:
    """Named lists of uploaded images, each with a maximum count."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = dict(limits)
        self.images: dict[str, list[SlotImage]] = {slot: [] for slot in limits}

    def _slot(self, slot: Any) -> list[SlotImage]:
        if slot not in self.images:
            raise InvalidParameterError(f"slot: expected one of {', '.join(self.images)}, got {slot!r}")
        return self.images[slot]

    def add(self, slot: Any, data: bytes, name: str) -> None:
        images = self._slot(slot)
        if len(images) >= self.limits[slot]:
            raise InvalidParameterError(f"{slot}: holds at most {self.limits[slot]} image(s); remove one first")
        try:
            width, height = image_size(data)
            thumb = thumbnail(data)
        except Exception:  # noqa: BLE001 - PIL raises several types for bytes that are not an image
            raise InvalidParameterError(f"{slot}: {name} is not a PNG, JPEG or WebP image") from None
        images.append(SlotImage(name, bytes(data), width, height, thumb))

    def remove(self, slot: Any, index: Any) -> None:
        images = self._slot(slot)
        if isinstance(index, int) and 0 <= index < len(images):
            del images[index]

    def clear(self, slot: Any) -> None:
        self._slot(slot).clear()

    def trait(self, slot: str) -> list[dict[str, Any]]:
        """What the front-end shows: names, sizes and thumbnails only."""
        return [{"name": i.name, "width": i.width, "height": i.height, "thumb": i.thumb} for i in self.images[slot]]

    def data(self, slot: str) -> list[bytes]:
        return [i.data for i in self.images[slot]]


def mask_png(width: Any, height: Any, data: bytes, image_size: tuple[int, int] | None = None) -> bytes:
    """A painted mask (one byte a pixel, 255 = repaint) as a grayscale PNG.

    `image_size` is the init image's (width, height): a mask painted for another image is refused.
    """
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise InvalidParameterError(f"mask_image: the painted mask has no valid size ({width!r} x {height!r})")
    if len(data) != width * height:
        raise InvalidParameterError(
            f"mask_image: the painted mask has {len(data)} bytes, expected {width} x {height} = {width * height}"
        )
    if image_size is not None and (width, height) != tuple(image_size):
        raise InvalidParameterError(
            f"mask_image: painted at {width}x{height} but the init image is {image_size[0]}x{image_size[1]}; "
            "clear the mask and paint it again"
        )
    out = io.BytesIO()
    Image.frombytes("L", (width, height), bytes(data)).save(out, format="PNG")
    return out.getvalue()


def find_loras(folders: list[str | os.PathLike[str]]) -> list[dict[str, str]]:
    """LoRA files in `folders` (recursively, sorted by name): [{"name", "source"}] for the picker."""
    found: dict[str, dict[str, str]] = {}
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if len(found) >= MAX_LORA_FILES:
                break
            if path.suffix.lower() in LORA_SUFFIXES and path.is_file():
                found.setdefault(str(path.resolve()), {"name": path.name, "source": str(path.resolve())})
    return sorted(found.values(), key=lambda f: (f["name"].lower(), f["source"]))
