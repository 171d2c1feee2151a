"""Build test models on demand into a cache keyed by the generator's own source.

The cache lives outside the repo (QVAC_NB_TEST_MODELS, else ~/.cache/qvac_nb/test-models)
in a folder named after a hash of this package's sources, so editing the generator
rebuilds and an unchanged generator is reused across runs and clones.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .recipe import Recipe

FAMILY_MODULES = ("unet_family", "sd3", "flux2", "esrgan", "lora", "sd1_full", "sdxl_full", "flux1",
                  "ovis_image", "ernie_image", "anima", "zimage", "qwen_image", "unet_variants",
                  "wan", "photomaker")
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class TestModel:
    name: str
    family: str
    files: dict[str, Path]
    config: dict[str, object]

    def model_config(self) -> dict[str, object]:
        """`model_config` for qvac_nb.load_model: companions plus the recipe's extras."""
        companion_keys = {
            "llm": "llm_model_src",
            "vae": "vae_model_src",
            "clip_l": "clip_l_model_src",
            "clip_g": "clip_g_model_src",
            "t5xxl": "t5_xxl_model_src",
            "control_net": "control_net_model_src",
        }
        cfg: dict[str, object] = {companion_keys[r]: str(p) for r, p in self.files.items() if r in companion_keys}
        cfg.update(self.config)
        return cfg

    @property
    def primary(self) -> Path:
        for role in ("model", "diffusion_model", "upscaler"):
            if role in self.files:
                return self.files[role]
        raise KeyError(f"{self.name} has no primary file")


def recipes() -> dict[str, Recipe]:
    out: dict[str, Recipe] = {}
    for module in FAMILY_MODULES:
        for recipe in importlib.import_module(f"{__package__}.{module}").RECIPES:
            out[recipe.name] = recipe
    return out


def generator_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(_HERE.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    base = os.environ.get("QVAC_NB_TEST_MODELS") or Path.home() / ".cache" / "qvac_nb" / "test-models"
    return Path(base) / generator_hash()


def prune_stale(max_age_s: float = 3600.0) -> None:
    """Drop caches of older generator versions, so edits to the generator don't fill the disk."""
    root = cache_root()
    for sibling in root.parent.iterdir() if root.parent.is_dir() else ():
        if sibling != root and sibling.is_dir() and time.time() - sibling.stat().st_mtime > max_age_s:
            shutil.rmtree(sibling, ignore_errors=True)


def get(name: str) -> TestModel:
    """The test model `name`, built into the cache first if it is not there."""
    recipe = recipes()[name]
    folder = cache_root() / name
    manifest = folder / "manifest.json"
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time per model, so parallel test processes share the work.
    with open(folder.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not manifest.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            roles = recipe.build(folder)
            manifest.write_text(json.dumps(roles))
            prune_stale()
    roles = json.loads(manifest.read_text())
    return TestModel(recipe.name, recipe.family, {r: folder / f for r, f in roles.items()}, dict(recipe.config))


def build_all() -> dict[str, TestModel]:
    return {name: get(name) for name in recipes()}
