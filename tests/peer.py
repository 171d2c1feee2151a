"""The peer oracle for the family tests: stable-diffusion-cpp-python's own generate_image on the same files.

It runs in a process of its own (the engine's callbacks are process-global) and makes all its images
there; images and other inputs are passed as paths.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from conftest import THREADS

from qvac_nb.png import stored_record

# Test-model roles -> the peer's constructor arguments.
PEER_FILES = {"model": "model_path", "diffusion_model": "diffusion_model_path", "clip_l": "clip_l_path",
              "clip_g": "clip_g_path", "t5xxl": "t5xxl_path", "llm": "llm_path", "vae": "vae_path"}
SIZE = {"width": 64, "height": 64}
SEED = 7


def peer_images(files: dict[str, Path], out: Path, *generations: dict[str, Any],
                timeout: float = 120.0) -> list[np.ndarray]:
    """The peer's image for each of `generations` (generate_image keyword arguments over 64x64, seed 7) on
    `files` (role -> path), all in one child process, ended if it outlives `timeout`."""
    paths = {PEER_FILES[role]: str(path) for role, path in files.items()}
    calls = [{**SIZE, "seed": SEED, **kwargs} for kwargs in generations]
    code = f"""
        import numpy as np
        from stable_diffusion_cpp import StableDiffusion
        sd = StableDiffusion(**{paths!r}, n_threads={THREADS}, rng_type="cuda", vae_decode_only=False, verbose=False)
        images = [sd.generate_image(**kwargs)[0] for kwargs in {calls!r}]
        np.save({str(out)!r}, np.stack([np.asarray(img.convert("RGB")) for img in images]))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return list(np.load(out))


def record_has(png: bytes, **expected: Any) -> None:
    """The PNG's whole record (read_parameters leaves out what cannot be replayed) holds `expected`."""
    record = stored_record(png)
    assert {key: record.get(key) for key in expected} == expected


def peer_video(files: dict[str, Path], out: Path, *, images: dict[str, Path] | None = None, timeout: float = 600.0,
               **kwargs: Any) -> np.ndarray:
    """The peer's frames (T, H, W, 3) from generate_video(**kwargs) on `files`, in a child process; `images`
    names generate_video's image arguments (init_image, end_image) as PNG paths."""
    paths = {PEER_FILES[role]: str(path) for role, path in files.items()}
    opened = {name: str(path) for name, path in (images or {}).items()}
    code = f"""
        import numpy as np
        from PIL import Image
        from stable_diffusion_cpp import StableDiffusion
        sd = StableDiffusion(**{paths!r}, n_threads={THREADS}, rng_type="cuda", vae_decode_only=False, verbose=False)
        images = {{name: Image.open(path).convert("RGB") for name, path in {opened!r}.items()}}
        frames = sd.generate_video(**{kwargs!r}, **images)
        np.save({str(out)!r}, np.stack([np.asarray(f.convert("RGB")) for f in frames]))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return np.load(out)
