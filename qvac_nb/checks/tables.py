"""A call's keyword arguments against its parameter table (qvac_nb/schema.py): names (camelCase aliases,
unknown ones with a suggestion), defaults (per family), and each value through its parameter's check.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import embeddings, loras
from ..errors import InvalidParameterError, InvalidTypeError
from ..schema import HIRES, HIRES_ENGINE_NAMES, MAX_LAYER, MAX_STEPS, REQUIRED, UPSCALER, Param
from .values import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_path,
    check_str,
    check_text,
    check_unknown,
    check_upscale,
)


def check_param(p: Param, value: Any, label: str, names: Mapping[str, Sequence[str]] | None) -> Any:
    """The validated value, or a QvacError naming `label` (the same messages as always)."""
    if p.type == "upscale":
        return check_upscale(value)  # None and False mean 0 repeats
    if value is None and p.nullable:
        return None
    if p.type == "int":
        return check_int(label, value, int(p.min or 0), int(p.max or 0), multiple_of=p.multiple_of,
                         extra=p.extra)
    if p.type == "float":
        if not isinstance(value, bool) and value in p.extra:
            return float(value)  # a sentinel such as -1 ("reuse cfg_scale")
        return check_float(label, value, float(p.min or 0), float(p.max or 0), lo_open=p.lo_open)
    if p.type == "bool":
        return check_bool(label, value)
    if p.type == "choice":
        return check_choice(label, value, p.allowed(names))
    if p.type == "path":
        return check_path(label, value)  # bytes and names that are not UTF-8 are file names too
    if p.type == "text":
        return check_text(label, value)
    if p.type == "str":
        return check_str(label, value)
    if p.type == "upscaler":
        return check_upscaler(value)
    if p.type == "lora":
        return loras.check(value)  # resolves, checks and hashes each file
    if p.type == "embeddings":
        return embeddings.check(value)  # {name: source}; the files are fetched and checked at load
    if p.type == "hires":
        return check_hires(value)
    if p.type == "layers":
        return check_layers(label, value)
    if p.type == "sigmas":
        return check_sigmas(label, value)
    return value  # image(s): decoded by the caller, which knows the accepted forms


def camel_to_snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def fold_aliases(where: str, given: Mapping[str, Any], params: Sequence[Param], *, kind: str = "parameter") -> dict:
    """`given` with camelCase aliases folded into the parameters' names; unknown names are refused."""
    out: dict[str, Any] = {}
    names = [p.name for p in params]
    for raw_key, value in given.items():
        if not isinstance(raw_key, str):
            raise InvalidTypeError(f"{where}: keys must be strings, got {raw_key!r}", param=where)
        key = camel_to_snake(raw_key)
        check_unknown(where, [key], names)
        if key in out:
            raise InvalidTypeError(f"{where}: '{key}' given twice (as '{raw_key}' too)", param=key)
        out[key] = value
    return out


def validate(params: Sequence[Param], given: Mapping[str, Any], *, where: str, prefix: str = "",
             names: Mapping[str, Sequence[str]] | None = None, fill: bool = True,
             family: str | None = None) -> dict[str, Any]:
    """Checked values of `given` in declaration order; with `fill`, defaults for what is missing.

    A None for a parameter whose default depends on the family means that family's default.
    """
    folded = fold_aliases(where, given, params)
    out: dict[str, Any] = {}
    for p in params:
        if p.name not in folded:
            if fill and p.default is not REQUIRED:
                default = p.default_for(family)
                out[p.name] = check_upscale(default) if p.type == "upscale" else default
            continue
        value = folded[p.name]
        if value is None and p.per_family:
            value = p.default_for(family)
        out[p.name] = check_param(_with_size_step(p, family), value, prefix + p.name, names)
    return out


def _with_size_step(p: Param, family: str | None) -> Param:
    """A size parameter of a known family is left to the family's own check (guards.check_size, which every
    caller passing `family` runs next): one rule, one message naming the family, and every size it suggests
    is one the model accepts. Without a family the generic step applies."""
    if family is None or p.multiple_of <= 1 or p.name not in ("width", "height"):
        return p
    return dataclasses.replace(p, multiple_of=1)


def check_hires(value: Any) -> dict[str, Any] | None:
    """diffusion(hires=...): True (the defaults), a dict of HIRES keys, or None/False (off)."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise InvalidTypeError(f"hires: expected True, None or a dict like {{'scale': 2.0, 'steps': 10}}, "
                               f"got {value!r}", param="hires")
    keys = [camel_to_snake(k) if isinstance(k, str) else k for k in value]
    renamed = {HIRES_ENGINE_NAMES.get(k.removeprefix("hires_"), k.removeprefix("hires_")) if isinstance(k, str)
               else k: v for k, v in zip(keys, value.values(), strict=True)}
    return validate(HIRES, renamed, where="hires", prefix="hires.")


def check_upscaler(value: Any) -> dict[str, Any] | None:
    """model_config["upscaler"]: a dict of UPSCALER keys, or a string taken as its model_src."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"model_src": value}
    if not isinstance(value, Mapping):
        raise InvalidTypeError(f"model_config.upscaler: expected a dict like {{'model_src': ...}}, got {value!r}",
                               param="model_config.upscaler")
    return validate(UPSCALER, value, where="model_config.upscaler", prefix="model_config.upscaler.")


def _items(label: str, value: Any, parse: Callable[[str], Any], what: str) -> list[Any]:
    """A list parameter's items: from a list, tuple or 1-D array, or from text such as '7, 8, 9' (CLI, Studio)."""
    if isinstance(value, str):
        text = value.strip().removeprefix("[").removesuffix("]")
        out = []
        for item in re.split(r"[\s,]+", text):
            if not item:
                continue
            try:
                out.append(parse(item))
            except ValueError:
                raise InvalidTypeError(f"{label}: {item!r} is not {what}", param=label) from None
        return out
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # a numpy array
    if not isinstance(value, (list, tuple)):
        raise InvalidTypeError(f"{label}: expected a list of {what}s or text such as '1, 2', got "
                               f"{type(value).__name__}", param=label)
    return list(value)


def check_layers(label: str, value: Any) -> tuple[int, ...]:
    """skip_layers: block indices, each 0-MAX_LAYER (the model's own depth is checked by guards)."""
    layers = _items(label, value, int, "a block index")
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
            raise InvalidTypeError(f"{label}: block indices are whole numbers, got {layer!r}", param=label)
        if not 0 <= int(layer) <= MAX_LAYER:
            raise InvalidParameterError(f"{label}: block indices run from 0 (the first block) to {MAX_LAYER}, "
                                        f"got {layer}", param=label)
    return tuple(int(layer) for layer in layers)


def check_sigmas(label: str, value: Any) -> tuple[float, ...] | None:
    """sigmas: 2 to MAX_STEPS + 1 finite noise levels >= 0, the first above 0, none above the one before."""
    levels = _items(label, value, float, "a number")
    if not levels and isinstance(value, str):
        return None  # a blank text field: the scheduler's schedule
    for i, level in enumerate(levels):
        if isinstance(level, bool) or not isinstance(level, numbers.Real) or not math.isfinite(level) or level < 0:
            raise InvalidParameterError(f"{label}: noise levels are finite numbers >= 0, got {level!r} at "
                                        f"position {i}", param=label)
    if not 2 <= len(levels) <= MAX_STEPS + 1:
        raise InvalidParameterError(f"{label}: give 2-{MAX_STEPS + 1} noise levels (steps + 1: each step goes "
                                    f"from one to the next), got {len(levels)}", param=label)
    for i, (before, after) in enumerate(itertools.pairwise(levels), start=1):
        if after > before:
            raise InvalidParameterError(f"{label}: noise levels must not rise, but {before:g} is followed by "
                                        f"{after:g} at position {i}", param=label)
    if levels[0] <= 0:
        raise InvalidParameterError(f"{label}: the first noise level must be above 0 (the noise sampling starts "
                                    "from)", param=label)
    return tuple(float(level) for level in levels)
