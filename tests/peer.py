"""The peer oracle for the family tests: stable-diffusion-cpp-python's own generate_image on the same files.

It runs in a process of its own (the engine's callbacks are process-global) and makes all its images
there; images and other inputs are passed as paths.

The peer's outputs are kept beside the test models (`<test-model cache>/peer-outputs/`), keyed by everything
that decides them: the peer package's version and its engine library's bytes, the CPU's instruction sets, the
thread count, the call's arguments and the input files (small files by content, the large model files by
path, size and modification time inside the test-model cache, whose folder changes with the generator). The
first run of a comparison runs the peer; later runs with identical inputs read its saved output, and the
comparison with qvac_nb's fresh output is the same. QVAC_NB_PEER_CACHE=0 runs the peer every time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from conftest import THREADS
from testmodels.registry import cache_root

from qvac_nb.png import stored_record

CONTENT_HASHED_BYTES = 64 * 2**20  # inputs up to this size are keyed by their bytes (images, small models)

# Test-model roles -> the peer's constructor arguments.
PEER_FILES = {"model": "model_path", "diffusion_model": "diffusion_model_path", "clip_l": "clip_l_path",
              "clip_g": "clip_g_path", "t5xxl": "t5xxl_path", "llm": "llm_path", "vae": "vae_path"}
SIZE = {"width": 64, "height": 64}
SEED = 7


def peer_images(files: dict[str, Path], out: Path, *generations: dict[str, Any], timeout: float = 120.0,
                options: dict[str, Any] | None = None, read: dict[str, Path] | None = None) -> list[np.ndarray]:
    """The peer's image for each of `generations` (generate_image keyword arguments over 64x64, seed 7) on
    `files` (role -> path), all in one child process, ended if it outlives `timeout`. `options` are further
    StableDiffusion arguments (e.g. circular_x, lora_model_dir); `read` names other files the peer reads through
    them (a LoRA in that folder), so that its saved output follows their content."""
    paths = {PEER_FILES[role]: str(path) for role, path in files.items()}
    calls = [{**SIZE, "seed": SEED, **kwargs} for kwargs in generations]
    constructor = {**paths, **(options or {})}
    def run() -> list[np.ndarray]:
        _run_script(code, timeout)
        return list(np.load(out))

    code = f"""
        import numpy as np
        from stable_diffusion_cpp import StableDiffusion
        sd = StableDiffusion(**{constructor!r}, n_threads={THREADS}, rng_type="cuda", vae_decode_only=False,
                             verbose=False)
        images = [sd.generate_image(**kwargs)[0] for kwargs in {calls!r}]
        np.save({str(out)!r}, np.stack([np.asarray(img.convert("RGB")) for img in images]))
    """
    # Without options the key is the calls alone, as before they existed (the saved outputs stay valid).
    arguments = {"options": options, "calls": calls} if options else calls
    return cached_outputs("images", {**files, **(read or {})}, arguments, run)


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
    def run() -> list[np.ndarray]:
        _run_script(code, timeout)
        return [np.load(out)]

    code = f"""
        import numpy as np
        from PIL import Image
        from stable_diffusion_cpp import StableDiffusion
        sd = StableDiffusion(**{paths!r}, n_threads={THREADS}, rng_type="cuda", vae_decode_only=False, verbose=False)
        images = {{name: Image.open(path).convert("RGB") for name, path in {opened!r}.items()}}
        frames = sd.generate_video(**{kwargs!r}, **images)
        np.save({str(out)!r}, np.stack([np.asarray(f.convert("RGB")) for f in frames]))
    """
    return cached_outputs("video", {**files, **(images or {})}, kwargs, run)[0]


def _run_script(code: str, timeout: float) -> None:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]


def cached_outputs(kind: str, inputs: dict[str, Path], arguments: Any,
                   run: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
    """`run()`'s arrays (the peer's outputs), read from the peer-output cache when this exact run was made before.

    `inputs` are the files the run reads (keyed by content or cache identity), `arguments` everything else
    it is given (JSON-able; no paths of temporary files, which differ from run to run).
    """
    key = peer_key(kind, inputs, arguments)
    cached = _cached(key)
    if cached is not None:
        return cached
    outputs = run()
    _keep(key, outputs)
    return outputs


def peer_key(kind: str, inputs: dict[str, Path], arguments: Any) -> str:
    """The identity of one peer run: what it computes, on which inputs, with which peer, on which CPU."""
    identity = {"kind": kind, "peer": _peer_identity(), "cpu": _cpu_identity(), "threads": THREADS,
                "oracle": _oracle_identity(), "arguments": arguments,
                "inputs": {name: _file_identity(Path(p)) for name, p in inputs.items()}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _file_identity(path: Path) -> Any:
    """A small file's or a file outside the test-model cache's bytes; a large cached model's path, size and time
    (the cache's folder changes with its generator, and a rebuilt file gets a new time)."""
    info = path.stat()
    if info.st_size > CONTENT_HASHED_BYTES and path.resolve().is_relative_to(cache_root().resolve()):
        return [str(path.resolve()), info.st_size, info.st_mtime_ns]
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(2**24):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def _peer_identity() -> list[Any]:
    """stable-diffusion-cpp-python's version and the bytes of its compiled libraries (found, not imported)."""
    spec = importlib.util.find_spec("stable_diffusion_cpp")
    assert spec is not None and spec.submodule_search_locations, "stable-diffusion-cpp-python is not installed"
    folder = Path(next(iter(spec.submodule_search_locations)))
    from importlib.metadata import version

    digest = hashlib.sha256()
    for lib in sorted(folder.rglob("*.so*")):
        digest.update(lib.name.encode() + lib.read_bytes())
    return [version("stable_diffusion_cpp_python"), digest.hexdigest()]


@functools.cache
def _oracle_identity() -> str:
    """This module's own text: a change to how the peer is called (its scripts) runs it again."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@functools.cache
def _cpu_identity() -> str:
    """The CPU's model and instruction sets: ggml picks its kernels by them, and the outputs follow."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    lines = sorted({line for line in text.splitlines() if line.startswith(("model name", "flags"))})
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _cache_file(key: str) -> Path:
    return cache_root() / "peer-outputs" / f"{key}.npz"


def _cached(key: str) -> list[np.ndarray] | None:
    """The saved outputs of this exact peer run, or None to run the peer."""
    if os.environ.get("QVAC_NB_PEER_CACHE", "1") == "0" or not _cache_file(key).is_file():
        return None
    with np.load(_cache_file(key)) as saved:
        return [saved[f"output{i}"] for i in range(len(saved.files))]


def _keep(key: str, outputs: list[np.ndarray]) -> None:
    target = _cache_file(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.{os.getpid()}.npz")
    np.savez(partial, **{f"output{i}": array for i, array in enumerate(outputs)})
    os.replace(partial, target)  # a reader never sees half a file
