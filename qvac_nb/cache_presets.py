"""cache_preset names mapped to the engine's step-cache parameters.

Presets trade fidelity for speed monotonically: "slow" reuses least, "ultra" most.
UNet models (SD 1.x/2.x/XL) use the engine's UCache; DiT models (FLUX, SD3) use EasyCache.
The thresholds are relative change limits: a larger one skips more steps.
"""

from __future__ import annotations

from typing import Any

SD_CACHE_EASYCACHE = 1
SD_CACHE_UCACHE = 2
DIT_FAMILIES = ("flux", "flux2", "sd3")

# preset -> (reuse_threshold, start_percent, end_percent)
PRESETS: dict[str, tuple[float, float, float]] = {
    "slow": (0.30, 0.30, 0.90),
    "medium": (0.40, 0.20, 0.95),
    "fast": (0.60, 0.15, 0.95),
    "ultra": (1.00, 0.10, 0.98),
}


def apply_cache_preset(request: Any, preset: str, family: str) -> None:
    threshold, start, end = PRESETS[preset]
    request.cache_mode = SD_CACHE_EASYCACHE if family in DIT_FAMILIES else SD_CACHE_UCACHE
    request.cache_reuse_threshold = threshold
    request.cache_start_percent = start
    request.cache_end_percent = end
