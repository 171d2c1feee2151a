"""`LoadedModel`: the kernel's handle on a loaded model (its files, family, config and engine defaults).

Its own module so that what reads a model (guards, generation, photomaker, video) can name the type
without importing load_model's machinery (models.py imports them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import engine, engine_mapping, families, schema


@dataclass
class LoadedModel:
    """The kernel's handle on a loaded model; the model itself lives in a worker process."""

    model_id: str
    mode: str  # diffusion | upscale | video
    family: str
    source: str
    files: dict[str, Path]
    config: dict[str, Any]
    load_ms: float
    role: str = "model"  # the engine's name for the primary file: model | diffusion_model | upscaler
    # The engine's version of the primary file (e.g. "SD1_PIX2PIX"), as detected when it loaded: it picks
    # the family's variant (families.for_model).
    version: str | None = None
    upscale_factor: int = 0
    default_sampler: str | None = None
    default_scheduler: str | None = None
    shared: bool = True  # load_model may hand this copy out again for the same files and config
    # Its files (as they were when it loaded) and config: what load_model compares (see _identity).
    identity: tuple[Any, ...] = dataclasses.field(default=(), repr=False, compare=False)
    # Textual-inversion embeddings (model_config["embeddings"]) as local files: {name: path}.
    embeddings: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def prediction(self) -> str:
        return str(self.config.get("prediction", "auto"))

    @property
    def uses_guidance(self) -> bool:
        return families.get(self.family).uses_guidance

    @property
    def has_upscaler(self) -> bool:
        return "upscaler" in self.files

    def worker_spec(self) -> dict[str, Any]:
        """What a worker needs to load this model (plain data: it crosses to another process).

        "context" is the engine's context fields, mapped here so the worker's load path needs no schema
        (its import cost 30-40 ms of a worker's start); "threads" stays as given: -1 is resolved where
        the engine library is open.
        """
        config = dict(self.config)
        fields = engine_mapping.engine_fields({k: v for k, v in config.items() if k != "threads"}, schema.MODEL_CONFIG,
                                      engine.enum_names())
        return {"mode": self.mode, "family": self.family, "role": self.role,
                "files": {role: str(path) for role, path in self.files.items()}, "config": config,
                "context": fields, "embeddings": [(name, str(path)) for name, path in self.embeddings.items()]}
