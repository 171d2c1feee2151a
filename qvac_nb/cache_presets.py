"""Step-cache presets mapped to the engine's step-cache parameters.

Presets trade fidelity for speed monotonically: "slow" reuses least, "ultra" most.
U-Net models (SD 1.x/2.x/XL) use the engine's UCache; DiT models (FLUX, SD3) use EasyCache
(the family table in qvac_nb/families.py says which a family is).
The thresholds are relative change limits: a larger one skips more steps.
"""

from __future__ import annotations

from typing import Any

from . import families

SD_CACHE_EASYCACHE = families.SD_CACHE_EASYCACHE
SD_CACHE_UCACHE = families.SD_CACHE_UCACHE

# preset -> (reuse_threshold, start_percent, end_percent)
PRESETS: dict[str, tuple[float, float, float]] = {
    "slow": (0.30, 0.30, 0.90),
    "medium": (0.40, 0.20, 0.95),
    "fast": (0.60, 0.15, 0.95),
    "ultra": (1.00, 0.10, 0.98),
}


# The _engine.Request attributes a preset sets (the schema's engine mapping for cache_preset).
ENGINE_FIELDS = ("cache_mode", "cache_reuse_threshold", "cache_start_percent", "cache_end_percent")


def engine_fields(preset: str, family: str) -> dict[str, Any]:
    """The _engine.Request fields a preset sets for a model of `family`."""
    return dict(zip(ENGINE_FIELDS, (families.get(family).cache_mode, *PRESETS[preset]), strict=True))
