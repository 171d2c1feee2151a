"""Small shared checks for the end-to-end tests."""

from __future__ import annotations

import io
import signal
from collections.abc import Iterator
from contextlib import contextmanager

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


# A process started in the background by a non-interactive shell (`cmd &`, nohup) inherits SIGINT
# ignored, and Python then leaves it ignored: Ctrl-C tests would see nothing. These put back what a
# terminal or a Jupyter kernel has.
def restore_sigint() -> None:
    """preexec_fn for a child that must react to SIGINT: the default disposition, so Python installs its handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def python_sigint_handler() -> Iterator[None]:
    """In this process, SIGINT (and _thread.interrupt_main) raises KeyboardInterrupt for the block's duration."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
