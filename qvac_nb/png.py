"""PNG encoding with the generation parameters embedded, and reading them back.

Two chunks: `parameters` in the A1111 text layout (read by most image tools) and
`qvac_nb` with the exact keyword arguments as JSON, which `read_parameters` prefers so
that passing them back to `diffusion` reproduces the image byte for byte.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from . import records, schema
from .errors import InvalidParameterError, InvalidTypeError
from .regular_file import open_regular

JSON_KEY = "qvac_nb"
# zlib level 1: a 512x512 image encodes in a few ms; higher levels cost 5-10x for ~10 % smaller files.
COMPRESS_LEVEL = 1


def a1111_text(params: dict[str, Any]) -> str:
    """The `parameters` chunk as AUTOMATIC1111 writes it (labels and order come from the schema)."""
    return records.a1111_text(params)


def encode_png(pixels: np.ndarray, params: dict[str, Any] | None = None) -> bytes:
    texts = {}
    if params is not None:
        texts = {"parameters": a1111_text(params), JSON_KEY: json.dumps(params, sort_keys=True)}
    return png_bytes(Image.fromarray(np.ascontiguousarray(pixels)), texts)


def png_bytes(image: Image.Image, texts: dict[str, str]) -> bytes:
    """`image` as PNG bytes with `texts` as its text chunks, at qvac_nb's compression level."""
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, compress_level=COMPRESS_LEVEL)
    return out.getvalue()


def read_parameters(png: bytes | str | Path | Image.Image) -> dict[str, Any]:
    """The `diffusion` keyword arguments stored in a PNG that qvac_nb wrote (for an MP4 or WebP video
    qvac_nb wrote: the `video` keyword arguments).

    The PNG's text chunks are untrusted input: a missing record, or one that is not a JSON object
    (bad JSON, a list, nesting deeper than MAX_RECORD_DEPTH, more than MAX_RECORD_CHARS characters),
    raises InvalidParameterError naming `png`. Keys whose value has the wrong type are left out,
    so what comes back can always be passed to `diffusion` as far as its types go.
    """
    if isinstance(png, Image.Image):
        text = png.info.get(JSON_KEY)
    else:
        if isinstance(png, (str, Path)):
            png = _read_png_file(png)
        if not isinstance(png, (bytes, bytearray, memoryview)):
            raise InvalidTypeError(f"png: expected PNG bytes, a path or a PIL image, got {type(png).__name__}")
        try:
            text = _record_text(bytes(png))
        except Exception as exc:  # noqa: BLE001 - PIL and PyAV raise several types for bad bytes
            raise InvalidParameterError(f"png: not a readable image ({type(exc).__name__}: {exc})") from None
    if text is None:
        raise InvalidParameterError("png: has no qvac_nb parameters (was it written by qvac_nb?)")
    record = parse_record(text)
    if record is None:
        raise InvalidParameterError(
            f"png: its {JSON_KEY} text is not a JSON object of at most {MAX_RECORD_CHARS} characters and "
            f"{MAX_RECORD_DEPTH} levels; it was not written by qvac_nb or was altered"
        )
    return replayable_params(record)


def parameters_of(png: bytes) -> dict[str, Any]:
    """`read_parameters` of a PNG a job just made, from the record it carries (parsed only when it has none)."""
    record = getattr(png, "record", None)
    return replayable_params(record) if isinstance(record, dict) else read_parameters(png)


# A PNG read back for its parameters: an image qvac_nb made is far smaller (a 4096x4096 RGBA image
# stored uncompressed is 64 MiB); a larger "PNG" is not one of them, or a device with no end.
MAX_PNG_FILE_BYTES = 256 * 2**20


def _read_png_file(path: str | Path) -> bytes:
    """The bytes of the PNG at `path`; InvalidParameterError naming `png` for a FIFO, device, folder or huge file."""
    try:
        opened = open_regular(path)
        if opened is None:
            raise InvalidParameterError(f"png: {path} is not a regular file (a folder, device or pipe?)", param="png")
        file, info = opened
        with file:
            if info.st_size > MAX_PNG_FILE_BYTES:
                raise InvalidParameterError(f"png: {path} is {info.st_size:,} bytes, more than any PNG qvac_nb "
                                            f"writes ({MAX_PNG_FILE_BYTES:,})", param="png")
            return file.read(info.st_size)
    except OSError as exc:
        raise InvalidParameterError(f"png: cannot read {path} ({exc.strerror or exc})", param="png") from None


def replayable_params(record: dict[str, Any]) -> dict[str, Any]:
    """The keys of a stored record that `diffusion` (for a video's record: `video`) accepts back."""
    if record.get("kind") == "video":
        from .video_schema import VIDEO  # noqa: PLC0415

        return {k: v for k, v in record.items() if k in {p.name for p in VIDEO if p.replayable and p.stored}}
    return {k: v for k, v in record.items() if k in _REPLAYABLE}


def record_of(png: bytes) -> dict[str, Any]:
    """The record of a PNG: the one a job's `PngImage` carries (never parsed back), else `stored_record`'s."""
    record = getattr(png, "record", None)
    return dict(record) if isinstance(record, dict) else stored_record(png)


def stored_record(png: bytes) -> dict[str, Any]:
    """The full record qvac_nb stored in a PNG (parameters, model, seed...), or {} if none or unreadable.

    Never raises: a record that is not a well-formed JSON object counts as no record, so callers
    (upscale, the gallery) decide up front and cannot fail later on what they read here.
    """
    try:
        text = _record_text(png)
    except Exception:  # noqa: BLE001 - an image without a readable record simply has none
        return {}
    return (parse_record(text) if text is not None else None) or {}


def parse_record(text: Any) -> dict[str, Any] | None:
    """A `qvac_nb` text chunk as a record, or None when it is not one.

    Accepts a JSON object within the size and depth limits; keys this package knows keep only
    values of the type it wrote (others are dropped), unknown keys are kept as they are.
    """
    if not isinstance(text, str) or len(text) > MAX_RECORD_CHARS:
        return None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or _depth(record) > MAX_RECORD_DEPTH:
        return None
    return {k: v for k, v in record.items() if _RECORD_TYPES.get(k, _any)(v)}


def _record_text(png: bytes) -> Any:
    from . import video_files  # noqa: PLC0415 - PyAV loads only for videos

    if video_files.sniff(png) in ("mp4", "webp"):
        return video_files.read_record(png)
    with Image.open(io.BytesIO(png)) as img:
        return img.info.get(JSON_KEY)


def _depth(value: Any) -> int:
    """How deeply `value` nests lists and dicts, counted without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (list, dict)):
            if level > MAX_RECORD_DEPTH:
                return level
            deepest = max(deepest, level)
            todo.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _any(value: Any) -> bool:
    return True


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


MAX_RECORD_CHARS = 1 << 20  # qvac_nb's own records are a few hundred characters
MAX_RECORD_DEPTH = 8  # they nest two levels ("upscaled": {...})
# What each stored parameter's value may be, from its type in the schema (None where it is nullable).
_CHECKS_BY_TYPE = {"int": _int, "float": _number, "bool": _flag, "str": _text, "text": _text, "choice": _text}


def _record_check(p: schema.Param) -> Any:
    check = _CHECKS_BY_TYPE.get(p.type, _any)
    return (lambda value: value is None or check(value)) if p.nullable else check


# The type each known key of a record has when qvac_nb wrote it.
_RECORD_TYPES = {
    **{p.name: _record_check(p) for p in schema.DIFFUSION if p.stored and p.type in _CHECKS_BY_TYPE},
    "model": _text, "family": _text_or_none,
    **{records.used_key(p.name): _flag for p in schema.DIFFUSION if p.type in records.IMAGE_TYPES},
}


# The keys of a stored record that `diffusion` accepts back (the schema's replayable parameters).
_REPLAYABLE = schema.REPLAYABLE
