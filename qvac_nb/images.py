"""Turning what users pass as an image into RGB pixels, and pixels into PIL images."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InvalidParameterError, InvalidTypeError, ModelFileError

MAX_IMAGE_PIXELS = 8192 * 8192


def to_rgb_array(name: str, value: Any) -> np.ndarray:
    """PNG/JPEG bytes, a PIL image, an HxWx3/HxWx4/HxW uint8 array or a path -> HxWx3 uint8."""
    if isinstance(value, np.ndarray):
        return _from_array(name, value)
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGB"))
    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ModelFileError(f"{name}: no image file at {path}")
        value = path.read_bytes()
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            with Image.open(io.BytesIO(bytes(value))) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise InvalidParameterError(f"{name}: image of {img.width}x{img.height} is too large")
                return np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InvalidParameterError(f"{name}: the bytes are not a PNG or JPEG image ({exc})") from None
    raise InvalidTypeError(
        f"{name}: expected PNG/JPEG bytes, a PIL image, a numpy array or a path, got {type(value).__name__}"
    )


def _from_array(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and np.nanmax(arr) <= 1.0:
            arr = np.clip(np.nan_to_num(arr) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            raise InvalidParameterError(f"{name}: array dtype must be uint8 (or float in [0, 1]), got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InvalidParameterError(f"{name}: array shape must be HxW, HxWx3 or HxWx4, got {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InvalidParameterError(f"{name}: image is empty ({arr.shape})")
    return np.ascontiguousarray(arr[:, :, :3])


def png_to_pil(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img
