"""A generation's record: the parameters each PNG keeps (its JSON chunk) and their AUTOMATIC1111 text.

The kernel makes the record once per job (`record`), each image's from it (`image_record`: seed + index);
png.py writes and reads the chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import loras
from .request_types import DiffusionRequest
from .schema import DIFFUSION, Param, param

# Record keys the A1111 text lists besides the parameters' own labels: (position, label, key).
_A1111_RECORD = ((75, "Model", "model"),)


def record(request: DiffusionRequest) -> dict[str, Any]:
    """The job's parameter dict: the stored parameters plus what the PNG record adds."""
    out = {p.name: _record_value(getattr(request, p.name)) for p in DIFFUSION if p.stored and _recorded(p, request)}
    out["upscale_repeats"] = request.upscale
    out["model"] = request.model
    out.update({used_key(p.name): getattr(request, p.name) is not None for p in DIFFUSION if p.type in IMAGE_TYPES})
    out["lora"] = loras.record_form(request.lora)  # None, or without the local paths of downloaded files
    return out


def _recorded(p: Param, request: DiffusionRequest) -> bool:
    """Whether a stored parameter is in the record: always, or (record_with) only while its switch is on,
    so records of calls that leave the switch alone stay as they were."""
    if p.record_with is None:
        return True
    switch = param(p.record_with)
    return bool(getattr(request, switch.name) != switch.default)


def _record_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value  # as JSON gives it back


IMAGE_TYPES = ("image", "images")


def used_key(name: str) -> str:
    """The record key saying an image parameter was given (images themselves are not stored)."""
    return f"{name}_used"


def image_count(params: Mapping[str, Any]) -> int:
    """How many images a job with these parameters makes (an upscale job: one)."""
    return int(params.get("batch_count", 1))


def image_record(params: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The PNG record of image `index` of a batch: replaying it makes that one image (seed + index)."""
    out = {k: v for k, v in params.items() if k != "upscale_repeats"}
    out.update(seed=params["seed"] + index, batch_count=1)
    return out


def a1111_text(record_: Mapping[str, Any]) -> str:
    """The `parameters` chunk as AUTOMATIC1111 writes it, composed from the schema's a1111 labels."""
    fields: list[tuple[int, str, Any]] = []
    head, lines = str(record_.get("prompt", "")), []
    for p in DIFFUSION:
        if p.a1111 is None:
            continue
        position, label = p.a1111
        value = record_.get(p.name)
        if position < 10:  # the prompt lines before the key: value list
            if position and value:
                lines.append(f"{label}: {value}")
            continue
        if p.name == "width":
            value = f"{record_.get('width')}x{record_.get('height')}"
        elif p.name == "strength" and not record_.get("init_image_used"):
            value = None
        elif p.extra and not isinstance(value, bool) and value in p.extra:
            value = None  # a sentinel such as img_cfg_scale -1 (reuse cfg_scale) says nothing
        fields.append((position, label, value))
    fields += [(pos, label, record_.get(key)) for pos, label, key in _A1111_RECORD]
    fields.append((100, "Version", "qvac_nb"))
    tail = ", ".join(f"{label}: {value}" for _, label, value in sorted(fields, key=lambda f: f[0]) if value is not None)
    return "\n".join([head, *lines, tail])
