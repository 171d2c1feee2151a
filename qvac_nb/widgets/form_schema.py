"""The parameter schema the widgets' front-end reads: the Studio builds its form from it, and the Studio's and
the Gallery's full-size view label an image's (or a video's) parameters with it."""

from __future__ import annotations

from typing import Any

from .. import families, schema, video_schema
from ..engine import enum_names


def form_schema() -> dict[str, Any]:
    """diffusion()'s fields with the engine's sampler/scheduler names, then video()'s own (shown for a video
    model), and every family's row, the video families' included."""
    names = enum_names()
    out = schema.schema_json(names)
    out["params"] += [schema.param_json(p, names, None) for p in video_schema.form_params()]
    out["families"].update({name: row.as_json() for name, row in families.VIDEO_FAMILIES.items()})
    return out
