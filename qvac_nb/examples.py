"""Helpers for the example notebooks in `notebooks/`.

By default the notebooks use the real catalogue models (downloaded on first use). Setting

    QVAC_NB_EXAMPLES_USE_TEST_MODELS=1

switches them to the tiny random-weight test models built by the repository's
`tests/testmodels` package, at 64x64 with 2 steps (and cfg 1 where a notebook names a
cfg_scale), so CI can run every notebook in minutes. That package is not installed with
qvac_nb; it is imported from `$QVAC_NB_TEST_MODELS_SRC` (the repository's `tests/` folder)
or, failing that, from a `tests/` folder next to or above the current directory (notebooks
run from `notebooks/`).

`QVAC_NB_EXAMPLES_OUT` names the folder under which the notebooks save their images
(in an `outputs/` sub-folder); it defaults to the current directory.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

USE_TEST_MODELS_ENV = "QVAC_NB_EXAMPLES_USE_TEST_MODELS"
TEST_MODELS_SRC_ENV = "QVAC_NB_TEST_MODELS_SRC"
OUT_ENV = "QVAC_NB_EXAMPLES_OUT"

TEST_SIZE = {"width": 64, "height": 64, "steps": 2}
TEST_CFG_SCALE = 1.0  # what example_size gives for a cfg_scale with test models

# catalogue name -> (test model, file role inside it); companions map to the files of their main model.
_TEST_MODELS: dict[str, tuple[str, str]] = {
    "SD_V2_1_1B_Q8_0": ("sd2", "model"),
    "SD_V2_1_1B_Q4_0": ("sd2", "model"),
    "SDXL_BASE_1_0_3B_Q4_0": ("sdxl", "model"),
    "SDXL_BASE_1_0_3B_Q8_0": ("sdxl", "model"),
    "FLUX_2_KLEIN_4B_Q4_0": ("flux2", "diffusion_model"),
    "FLUX_2_KLEIN_4B_Q4_K_M": ("flux2", "diffusion_model"),
    "FLUX_2_KLEIN_4B_Q6_K": ("flux2", "diffusion_model"),
    "QWEN3_4B_Q4_K_M": ("flux2", "llm"),
    "FLUX_2_KLEIN_4B_VAE": ("flux2", "vae"),
    # The 6-block test ESRGAN stands in for x4plus too: an x16 pass through the 23-block one takes minutes on a CPU.
    "REALESRGAN_X4PLUS": ("esrgan_anime6b", "upscaler"),
    "REALESRGAN_X4PLUS_ANIME_6B": ("esrgan_anime6b", "upscaler"),
}


def using_test_models() -> bool:
    """True when QVAC_NB_EXAMPLES_USE_TEST_MODELS is set to something other than "", "0" or "false"."""
    return os.environ.get(USE_TEST_MODELS_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _test_models_dir() -> Path:
    """The folder that holds the `testmodels` package (the repository's `tests/`)."""
    override = os.environ.get(TEST_MODELS_SRC_ENV)
    candidates = [Path(override).expanduser()] if override else []
    cwd = Path.cwd()
    candidates += [folder / "tests" for folder in (cwd, *cwd.parents)]
    for folder in candidates:
        if (folder / "testmodels" / "registry.py").is_file():
            return folder
    raise RuntimeError(
        f"{USE_TEST_MODELS_ENV} is set but the test-model builder was not found; set {TEST_MODELS_SRC_ENV} "
        "to the qvac_nb repository's tests/ folder"
    )


def _registry() -> Any:
    folder = str(_test_models_dir())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("testmodels.registry")


def example_model(name: str) -> tuple[str, dict[str, Any]]:
    """`(model_src, model_config_extras)` for catalogue model `name`.

    Normally that is `(name, {})`: load_model downloads the file and applies the
    catalogue's defaults itself. With test models it is the path of the matching test
    file and the config that file needs (its companions and its recipe's options);
    pass the extras first in `model_config` so the notebook's own keys win.
    """
    if not using_test_models():
        return name, {}
    if name not in _TEST_MODELS:
        raise KeyError(f"no test model stands in for {name!r}; known: {', '.join(_TEST_MODELS)}")
    test_name, role = _TEST_MODELS[name]
    model = _registry().get(test_name)
    extras = dict(model.model_config()) if model.files[role] == model.primary else {}
    return str(model.files[role]), extras


def example_size(width: int = 512, height: int = 512, steps: int = 20,
                 cfg_scale: float | None = None) -> dict[str, Any]:
    """`width`, `height` and `steps` (and `cfg_scale` when given) for a `diffusion` call: as given, or 64x64 in
    2 steps (at cfg 1: one text encoding and one U-Net pass a step) with test models, whose images are noise anyway."""
    test = using_test_models()
    size: dict[str, Any] = dict(TEST_SIZE) if test else {"width": width, "height": height, "steps": steps}
    if cfg_scale is not None:
        size["cfg_scale"] = TEST_CFG_SCALE if test else cfg_scale
    return size


def output_dir() -> Path:
    """`$QVAC_NB_EXAMPLES_OUT/outputs` (default `./outputs`), created if missing."""
    folder = Path(os.environ.get(OUT_ENV) or ".").expanduser() / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_and_show(pngs: Iterable[bytes], stem: str) -> None:
    """Write PNG bytes (metadata included) as `<stem>.png` or `<stem>-1.png`, ..., say where, and display them."""
    pngs = list(pngs)
    folder = output_dir()
    for index, png in enumerate(pngs, start=1):
        path = folder / (f"{stem}.png" if len(pngs) == 1 else f"{stem}-{index}.png")
        path.write_bytes(png)
        print(f"saved {path}")
    try:
        from IPython.display import Image, display
    except ImportError:  # plain Python: saving is enough
        return
    for png in pngs:
        display(Image(data=png))


__all__ = ["example_model", "example_size", "output_dir", "save_and_show", "using_test_models"]
