"""Upscaling a gallery image with the Studio model's upscaler, through the plain API."""

from __future__ import annotations

from .. import models
from ..generation import upscale
from ..jobs import UpscaleJob


def can_upscale(model_id: str | None) -> bool:
    if not model_id:
        return False
    try:
        return models.get_model(model_id).has_upscaler
    except Exception:  # noqa: BLE001 - an unloaded model simply cannot
        return False


def upscale_image(model_id: str, png: bytes, repeats: int = 1) -> UpscaleJob:
    """Queue an upscale of `png` (standalone or paired upscaler); the output keeps its parameters."""
    return upscale(model_id=model_id, image=png, repeats=repeats)
