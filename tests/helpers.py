"""Small shared checks for the end-to-end tests."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest
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


def run_at_once(call: Callable[[], object], count: int,
                timeout: float = 60.0) -> tuple[list[object], list[BaseException]]:
    """`call()` on `count` threads started together: what the calls returned, and what they raised."""
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(call())
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results, errors


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


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "128k") mounted at `where`: writes fail with ENOSPC as on a full disk.

    Skips the test where it cannot be mounted (needs root and mount(8)); unmounted on the way out.
    """
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
