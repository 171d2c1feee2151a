"""Small JPEG thumbnails: the only image bytes kept in synced widget state (and so in saved notebooks)."""

from __future__ import annotations

import io
import struct
from typing import Any

from PIL import Image, ImageDraw

from ..images import MAX_IMAGE_PIXELS
from ..png import JSON_KEY, png_bytes

THUMB_SIDE = 160
THUMB_QUALITY = 80


def image_size(png: bytes) -> tuple[int, int]:
    """(width, height) from the image's header, nothing decoded."""
    if png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR":
        # Read directly: Pillow's open refuses (DecompressionBombError) the largest images qvac_nb can upscale to.
        width, height = struct.unpack(">II", png[16:24])
        return width, height
    with Image.open(io.BytesIO(png)) as img:
        return img.size


def thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A JPEG of at most `side` pixels a side.

    An image with more pixels than the input path accepts (images.MAX_IMAGE_PIXELS) is not decoded
    (a 500 KB PNG can hold a 13000x13000 image: over 1 GB decoded); it gets a placeholder saying so.
    """
    width, height = image_size(data)
    if width * height > MAX_IMAGE_PIXELS:
        return too_large_placeholder(width, height, side)
    with Image.open(io.BytesIO(data)) as opened:
        img = opened.convert("RGB")
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=THUMB_QUALITY, optimize=True)
        return out.getvalue()


def too_large_placeholder(width: int, height: int, side: int = THUMB_SIDE) -> bytes:
    """A grey JPEG thumbnail that says the image is too large to preview, and its size."""
    img = Image.new("RGB", (side, side), (96, 96, 96))
    ImageDraw.Draw(img).multiline_text((8, side // 2 - 24), f"{width}x{height}\ntoo large\nto preview",
                                       fill=(235, 235, 235), spacing=6)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=THUMB_QUALITY)
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
    texts = {key: image.info[key] for key in ("parameters", JSON_KEY) if isinstance(image.info.get(key), str)}
    return png_bytes(image, texts)
