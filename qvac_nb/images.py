"""Turning what users pass as an image into RGB pixels, and pixels into PIL images.

Accepted inputs and how their values become 8-bit RGB:

- PNG/JPEG/... bytes, a path, or a PIL image, in any mode Pillow reads. Each mode is scaled
  by its real range: 8-bit modes as they are; 16-bit modes (I;16, I;16B, ...) by 1/257, so
  65535 becomes 255; 32-bit integer images (mode I) by 1/257 when their values fit 16 bits
  (that is how Pillow opens some 16-bit files) and by 255/(2**31-1), their full signed range,
  otherwise; negative values are refused; float images (mode F) must lie in [0, 1]. Palette, LA, CMYK, YCbCr,
  LAB, HSV and 1-bit images go through Pillow's own conversion. The EXIF orientation is applied,
  so a photo comes out the way viewers show it.
- numpy arrays HxW, HxWx3 or HxWx4 of uint8 (used as they are) or float in [0, 1]; anything
  else is refused with the range found.

Images larger than MAX_IMAGE_PIXELS are refused from their header, before any decoding.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidParameterError, InvalidTypeError, ModelFileError

MAX_IMAGE_PIXELS = 8192 * 8192
# Modes whose samples are 16 bits wide (Pillow names the byte order in the suffix).
_MODES_16 = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb_array(name: str, value: Any) -> np.ndarray:
    """PNG/JPEG bytes, a PIL image, an HxWx3/HxWx4/HxW uint8 or [0, 1] float array or a path -> HxWx3 uint8."""
    if isinstance(value, np.ndarray):
        return _from_array(name, value)
    if isinstance(value, Image.Image):
        _check_pixels(name, value.width, value.height)
        return _from_pil(name, value)
    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ModelFileError(f"{name}: no image file at {path}")
        value = path.read_bytes()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _from_bytes(name, bytes(value))
    raise InvalidTypeError(
        f"{name}: expected PNG/JPEG bytes, a PIL image, a numpy array or a path, got {type(value).__name__}"
    )


def to_mask_array(name: str, value: Any) -> np.ndarray:
    """An inpainting mask in any form to_rgb_array takes -> HxW uint8 luminance (white = repaint)."""
    rgb = to_rgb_array(name, value)
    return np.asarray(Image.fromarray(rgb).convert("L"))  # ITU-R 601 luma, as Pillow's "L"


def _check_pixels(name: str, width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidParameterError(
            f"{name}: image of {width}x{height} is too large (at most {MAX_IMAGE_PIXELS} pixels, e.g. 8192x8192)"
        )


def _from_bytes(name: str, data: bytes) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own bomb limit and raises above twice that, both while opening;
            # our limit is checked right after, from the header, before anything is decoded.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                _check_pixels(name, img.width, img.height)
                img.load()
                return _from_pil(name, img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidParameterError(f"{name}: image is too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, InvalidParameterError):
            raise
        raise InvalidParameterError(f"{name}: the bytes are not a readable image ({exc})") from None


def _from_pil(name: str, img: Image.Image) -> np.ndarray:
    """RGB uint8 pixels of a PIL image, upright and scaled by the real range of its mode."""
    img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode in _MODES_16 or mode == "I":
        values = np.asarray(img).astype(np.int64)
        if values.size and values.min() < 0:
            raise InvalidParameterError(
                f"{name}: 32-bit integer image has negative values (min {values.min()}); expected 0..2**31-1"
            )
        # Pillow opens 16-bit PNGs as mode I, so a mode-I image whose values fit 16 bits is 16-bit.
        top = 65535 if mode in _MODES_16 or not values.size or values.max() <= 65535 else 2**31 - 1
        return _gray_to_rgb((values * 255 + top // 2) // top)
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        return _gray_to_rgb(_float_to_uint8(name, values, "float image"))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Transparent pixels keep their colour (alpha is dropped, not composited), like the array path.
        return np.asarray(img.convert("RGBA"))[:, :, :3].copy()
    return np.asarray(img.convert("RGB"))


def _gray_to_rgb(values: np.ndarray) -> np.ndarray:
    gray = np.clip(values, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _float_to_uint8(name: str, arr: np.ndarray, what: str) -> np.ndarray:
    if arr.size and not np.isfinite(arr).all():
        raise InvalidParameterError(f"{name}: {what} contains NaN or infinite values")
    if arr.size:
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidParameterError(
                f"{name}: {what} values must be in [0, 1], found [{lo:g}, {hi:g}]"
                + ("; for a [-1, 1] image pass (x + 1) / 2" if lo >= -1.0 and hi <= 1.0 else "")
            )
    return np.floor(arr * 255.0 + 0.5).astype(np.uint8)


def _from_array(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = _float_to_uint8(name, arr, f"{arr.dtype} array")
        else:
            found = f", found [{arr.min()}, {arr.max()}]" if arr.size and np.issubdtype(arr.dtype, np.number) else ""
            raise InvalidParameterError(
                f"{name}: array dtype must be uint8 (0..255) or float in [0, 1], got {arr.dtype}{found}"
            )
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InvalidParameterError(f"{name}: array shape must be HxW, HxWx3 or HxWx4, got {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InvalidParameterError(f"{name}: image is empty ({arr.shape})")
    return np.ascontiguousarray(arr[:, :, :3])


def png_to_pil(data: bytes) -> Image.Image:
    """Decode PNG bytes that qvac_nb produced (trusted: its own output)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img
