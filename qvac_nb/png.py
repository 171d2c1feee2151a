"""PNG encoding with the generation parameters embedded, and reading them back.

Two chunks: `parameters` in the A1111 text layout (read by most image tools) and
`qvac_nb` with the exact keyword arguments as JSON, which `read_parameters` prefers so
that passing them back to `diffusion` reproduces the image byte for byte.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from . import schema
from .errors import InvalidParameterError, InvalidTypeError

JSON_KEY = "qvac_nb"
# zlib level 1: a 512x512 image encodes in a few ms; higher levels cost 5-10x for ~10 % smaller files.
COMPRESS_LEVEL = 1


def a1111_text(params: dict[str, Any]) -> str:
    """The `parameters` chunk as AUTOMATIC1111 writes it (labels and order come from the schema)."""
    return schema.a1111_text(params)


def encode_png(pixels: np.ndarray, params: dict[str, Any] | None = None) -> bytes:
    image = Image.fromarray(np.ascontiguousarray(pixels))
    info = PngImagePlugin.PngInfo()
    if params is not None:
        info.add_text("parameters", a1111_text(params))
        info.add_text(JSON_KEY, json.dumps(params, sort_keys=True))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, compress_level=COMPRESS_LEVEL)
    return out.getvalue()


def read_parameters(png: bytes | str | Path | Image.Image) -> dict[str, Any]:
    """The `diffusion` keyword arguments stored in a PNG that qvac_nb wrote."""
    if isinstance(png, Image.Image):
        text = png.info
    else:
        if isinstance(png, (str, Path)):
            png = Path(png).read_bytes()
        if not isinstance(png, (bytes, bytearray, memoryview)):
            raise InvalidTypeError(f"png: expected PNG bytes, a path or a PIL image, got {type(png).__name__}")
        try:
            with Image.open(io.BytesIO(bytes(png))) as img:
                text = dict(img.info)
        except Exception as exc:  # PIL raises several types for bad bytes
            raise InvalidParameterError(f"png: not a readable image ({exc})") from None
    if JSON_KEY not in text:
        raise InvalidParameterError("png: has no qvac_nb parameters (was it written by qvac_nb?)")
    return replayable_params(json.loads(text[JSON_KEY]))


def replayable_params(record: dict[str, Any]) -> dict[str, Any]:
    """The keys of a stored record that `diffusion` accepts back."""
    return {k: v for k, v in record.items() if k in _REPLAYABLE}


def stored_record(png: bytes) -> dict[str, Any]:
    """The full record qvac_nb stored in a PNG (parameters, model, seed...), or {} if none."""
    try:
        with Image.open(io.BytesIO(png)) as img:
            text = img.info.get(JSON_KEY)
        return json.loads(text) if isinstance(text, str) else {}
    except Exception:  # noqa: BLE001 - an image without a readable record simply has none
        return {}


# The keys of a stored record that `diffusion` accepts back (the schema's replayable parameters).
_REPLAYABLE = schema.REPLAYABLE
