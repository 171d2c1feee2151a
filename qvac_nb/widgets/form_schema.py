"""The parameter schema the widgets' front-end reads: the Studio builds its form (and its Grid's axis list) from
it, and the Studio's and the Gallery's full-size view label an image's (or a video's) parameters with it.

`schema_json(names, family=None)`::

    {"params": [{"name": "steps", "type": "int"|"float"|"str"|"bool"|"choice"|"image"|"text",
                 "label": "Steps", "doc": "...", "default": 20, "min": 1, "max": 150, "step": 1,
                 "choices": ["euler", ...] or null, "nullable": false,
                 "control": "number"|"slider"|"select"|"text"|"textarea"|"checkbox"|"image"|"seed"|"hidden",
                 "group": "prompt"|"basic"|"advanced", "families": null or ["sd1", ...],
                 "replayable": true, "grid_axis": 0 (not offered) or its place in the Grid's list}, ...],
     "families": {"flux2": {"uses_guidance": true, "dit": true, "defaults": {"cfg_scale": 1.0},
                            "size_multiple": 16, "img2img": "reference", "hidden": ["strength"]}, ...}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import families, schema, video_schema
from ..engine import enum_names
from ..schema import REQUIRED, Param


def param_json(p: Param, names: Mapping[str, Sequence[str]] | None, family: str | None) -> dict[str, Any]:
    """One parameter as the front-end reads it (see the module docstring)."""
    kind = {"path": "str", "upscale": "bool", "images": "image", "hires": "str", "layers": "str", "sigmas": "str",
            "lora": "str"}.get(p.type, p.type)  # lora: the Studio's LoRA picker, not a form field
    default = p.default_for(family)
    hidden_in = [f.name for f in families.FAMILIES.values() if p.name in f.hidden]
    return {
        "name": p.name, "type": kind, "label": p.label_text, "doc": p.doc,
        "default": None if default is REQUIRED else default,
        "min": p.min, "max": p.max, "step": p.step or (1 if p.type == "int" else None),
        "choices": p.allowed(names) if p.type == "choice" else None, "nullable": p.nullable,
        "control": "select" if p.type == "choice" and p.control == "number" else p.control, "group": p.group,
        "families": [f for f in families.diffusion_families() if f not in hidden_in
                     and (p.families is None or f in p.families)] if hidden_in or p.families else None,
        "replayable": p.replayable, "grid_axis": p.grid_axis,
    }


def schema_json(names: Mapping[str, Sequence[str]] | None = None, family: str | None = None) -> dict[str, Any]:
    """diffusion()'s fields and every image family's row (shape in the module docstring)."""
    return {
        "params": [param_json(p, names, family) for p in (*schema.DIFFUSION, schema.UPSCALE_REPEATS)],
        "families": {name: f.as_json() for name, f in families.FAMILIES.items()},
    }


def form_schema() -> dict[str, Any]:
    """diffusion()'s fields with the engine's sampler/scheduler names, then video()'s own (shown for a video
    model), and every family's row, the video families' included."""
    names = enum_names()
    out = schema_json(names)
    out["params"] += [param_json(p, names, None) for p in video_schema.form_params()]
    out["families"].update({name: row.as_json() for name, row in families.VIDEO_FAMILIES.items()})
    return out
