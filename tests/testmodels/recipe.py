"""What one test model is: how to build its files and how to load them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Recipe:
    """A random-weight model in a real architecture.

    `build(folder)` writes the files into `folder` and returns {role: file name}, roles
    being the engine's: model, diffusion_model, clip_l, clip_g, t5xxl, llm, vae, upscaler.
    `config` holds the extra `model_config` keys the model needs (e.g. prediction "v").
    """

    name: str
    family: str
    build: Callable[[Path], dict[str, str]]
    config: dict[str, object] = field(default_factory=dict)
