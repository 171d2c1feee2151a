"""Small JPEG thumbnails: the only image bytes kept in synced widget state (and so in saved notebooks)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, PngImagePlugin

from ..png import JSON_KEY

THUMB_SIDE = 160
THUMB_QUALITY = 80


def image_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as img:
        return img.size


def thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A JPEG of at most `side` pixels a side."""
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((side, side), Image.LANCZOS)
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=THUMB_QUALITY, optimize=True)
        return out.getvalue()


def to_png(image: Any) -> bytes:
    """PNG bytes from PNG bytes or a PIL image (other inputs go through the API's image rules)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if data.startswith(b"\x89PNG"):
            return data
        image = Image.open(io.BytesIO(data))
    if not isinstance(image, Image.Image):
        from ..images import to_rgb_array

        image = Image.fromarray(to_rgb_array("image", image))
    # Keep the generation parameters of an image qvac_nb made (PIL holds them in .info).
    info = PngImagePlugin.PngInfo()
    for key in ("parameters", JSON_KEY):
        if isinstance(image.info.get(key), str):
            info.add_text(key, image.info[key])
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, compress_level=1)
    return out.getvalue()
