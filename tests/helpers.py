"""Small shared checks for the end-to-end tests."""

from __future__ import annotations

import io

import numpy as np
import psutil
from PIL import Image


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))


def assert_real_image(png: bytes, width: int, height: int) -> np.ndarray:
    """The right size, finite and not a constant image."""
    arr = pixels(png)
    assert arr.shape == (height, width, 3)
    assert np.isfinite(arr.astype(np.float32)).all()
    assert arr.astype(np.float32).std() > 1.0, "the image is (nearly) constant"
    return arr


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20
