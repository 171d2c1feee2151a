"""Checks every user argument before the engine sees it.

Each failure raises a QvacError subclass whose message names the parameter and what
it accepts, with the closest valid name suggested for misspellings.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidParameterError, InvalidTypeError, UnknownParameterError, suggest

MAX_SIDE = 4096
MAX_STEPS = 150
MAX_BATCH = 16
MAX_UPSCALE_REPEATS = 3
CACHE_PRESETS = ("slow", "medium", "fast", "ultra")
# The docs' "flow" is the engine's "sd3_flow"; "auto" lets the engine infer it.
PREDICTION_ALIASES = {"flow": "sd3_flow", "sd3_flow": "sd3_flow"}
# Every keyword `diffusion` takes (the contract with the QVAC SDK, plus clip_skip, eta, preview).
DIFFUSION_PARAMS = (
    "model_id",
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "steps",
    "cfg_scale",
    "guidance",
    "sampling_method",
    "scheduler",
    "seed",
    "batch_count",
    "vae_tiling",
    "cache_preset",
    "init_image",
    "strength",
    "upscale",
    "clip_skip",
    "eta",
    "preview",
)
PREDICTIONS = ("auto", "eps", "v", "edm_v", "flow", "flux_flow", "flux2_flow")


def check_unknown(kind: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in given:
        if key not in allowed:
            raise UnknownParameterError(
                f"{kind}: unknown {'key' if kind == 'model_config' else 'parameter'} '{key}'{suggest(key, allowed)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


def check_str(name: str, value: Any, *, allow_none: bool = False) -> str | None:
    """`value` as a str the engine can take: no NUL (C strings end there) and encodable as UTF-8."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name}: expected a string, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidParameterError(f"{name}: must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate (e.g. "\ud800" from a bad decode) has no UTF-8 form; the binding would
        # raise TypeError only after the job was queued.
        bad = value[exc.start : exc.end]
        raise InvalidParameterError(
            f"{name}: contains {bad!r} at position {exc.start}, a lone surrogate that is not valid text"
        ) from None
    return value


def check_path(name: str, value: Any, *, allow_none: bool = False) -> str | None:
    """A file path or model source as str: any name the OS accepts, including names that are not UTF-8.

    bytes and os.PathLike are accepted and turned into str with os.fsdecode, so a file name such as
    b"model\\xff.gguf" becomes "model\\udcff.gguf" (surrogateescape) and reaches the engine as its
    original bytes. Lone surrogates that do not stand for a byte, and NULs, are refused.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bytes, os.PathLike)):
        value = os.fsdecode(value)
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name}: expected a str, bytes or path, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidParameterError(f"{name}: must not contain NUL characters")
    try:
        os.fsencode(value)
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        raise InvalidParameterError(
            f"{name}: contains {bad!r} at position {exc.start}, which is not part of any file name"
        ) from None
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{name}: expected True or False, got {value!r}")
    return value


def check_int(name: str, value: Any, lo: int, hi: int, *, multiple_of: int = 1, extra: Iterable[int] = ()) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidTypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value in tuple(extra):
        return value
    if not lo <= value <= hi:
        also = "".join(f" or {e}" for e in extra)
        raise InvalidParameterError(f"{name}: must be between {lo} and {hi}{also}, got {value}")
    if value % multiple_of:
        down, up = value - value % multiple_of, value - value % multiple_of + multiple_of
        raise InvalidParameterError(f"{name}: must be a multiple of {multiple_of}, got {value} (try {down} or {up})")
    return value


def check_float(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo):
        bracket = "(" if lo_open else "["
        raise InvalidParameterError(f"{name}: must be in {bracket}{lo}, {hi}], got {value}")
    return value


def normalize_name(value: str) -> str:
    value = value.strip().lower().replace(" ", "_").replace("-", "_")
    return re.sub(r"^dpmpp", "dpm++", value)


def check_choice(name: str, value: Any, allowed: Iterable[str], *, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    allowed = list(allowed)
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name}: expected one of {', '.join(allowed)}, got {type(value).__name__}")
    candidates = {normalize_name(a): a for a in allowed}
    key = normalize_name(value)
    if key in candidates:
        return candidates[key]
    raise InvalidParameterError(f"{name}: '{value}' is not one of {', '.join(allowed)}{suggest(value, allowed)}")


def check_upscale(value: Any) -> int:
    """`upscale=True | {"repeats": N}` as a repeat count (0 = no upscale)."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, Mapping):
        check_unknown("upscale", value.keys(), ["repeats"])
        return check_int("upscale.repeats", value.get("repeats", 1), 1, MAX_UPSCALE_REPEATS)
    raise InvalidTypeError(f"upscale: expected True, False, None or {{'repeats': N}}, got {value!r}")
