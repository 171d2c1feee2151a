"""Batch items: each one normalised to diffusion() (or, for a video model, video()) parameters, merged over the
defaults, validated, keyed.

Validation runs in the kernel before any model loads, for every item, and reports every bad item at
once. It is the schema's validation (types, ranges, choices, the family's sizes); what depends on the
loaded model or on the machine that runs it (the memory guard, say) is checked again where the item
runs, and a failure there is recorded on that item.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import families, schema, video_schema
from ..checks import guards, tables
from ..errors import InvalidParameterError, InvalidTypeError, QvacError
from ..history_folder import item_key

MAX_LISTED_ERRORS = 20  # more bad items than this are counted, not listed
# Parameters a batch sets itself: each item gets its own model copy and makes one image.
_NOT_PER_ITEM = ("model_id", "preview")


@dataclass(frozen=True)
class Item:
    """One image to make: `params` go to diffusion() as they are; `key` identifies the finished image."""

    index: int  # position in the batch, after batch_count > 1 items were split into one item per image
    source: int  # position in the caller's items
    params: dict[str, Any]
    key: str

    @property
    def seed(self) -> int:
        return int(self.params["seed"])


class BatchValidationError(InvalidParameterError):
    """Some batch items are invalid; `errors` holds `(item position, error)` for every one of them."""

    def __init__(self, message: str, errors: list[tuple[int, QvacError]]) -> None:
        super().__init__(message, param="items")
        self.errors = errors


def as_dicts(items: Any) -> list[dict[str, Any]]:
    """The caller's items as parameter dicts: prompts become {'prompt': ...}; a DataFrame gives its rows."""
    if isinstance(items, (str, bytes)) or isinstance(items, Mapping):
        raise InvalidTypeError(f"items: expected a list of prompts or parameter dicts, got one "
                               f"{type(items).__name__}; wrap it in a list", param="items")
    if hasattr(items, "to_dict") and hasattr(items, "columns"):  # a pandas DataFrame, without importing pandas
        items = items.to_dict("records")
    if not isinstance(items, Iterable):
        raise InvalidTypeError(f"items: expected a list of prompts or parameter dicts, got {type(items).__name__}",
                               param="items")
    out: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        if isinstance(item, str):
            out.append({"prompt": item})
        elif isinstance(item, Mapping):
            # A DataFrame row has NaN where a column is empty for it: that parameter was not given.
            out.append({k: v for k, v in item.items() if not (isinstance(v, float) and math.isnan(v))})
        else:
            raise InvalidTypeError(f"items: item {n} is a {type(item).__name__}; expected a prompt (str) or a dict "
                                   "of diffusion() parameters", param="items")
    return out


def model_identity(model_src: str, model_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the resume key records about the model: its source and load options, as given."""
    return {"model_src": str(model_src), "model_config": dict(model_config or {})}


def prepare(items: Any, defaults: Mapping[str, Any], *, model: Mapping[str, Any], family: str | None,
            names: Mapping[str, list[str]] | None, has_upscaler: bool, video: bool = False) -> list[Item]:
    """Validate every item (all errors at once) and split each into one Item per image it makes.

    An item without a seed (or with -1) gets one derived from its parameters, so a re-run makes
    the same image and finds it done; identical items get different seeds (the n-th copy's own).
    `video`: the model makes videos; items are video() parameters, one video each.
    """
    table = video_schema.VIDEO if video else schema.DIFFUSION
    tables.fold_aliases("batch", defaults, table)  # a misspelt default: one error, not one per item
    raw = as_dicts(items)
    if not raw:
        raise InvalidParameterError("items: the batch is empty", param="items")
    checked: list[tuple[dict[str, Any], dict[str, Any]]] = []
    errors: list[tuple[int, QvacError]] = []
    for n, item in enumerate(raw):
        try:
            checked.append(_check(item, defaults, family, names, has_upscaler, video))
        except QvacError as exc:
            errors.append((n, exc))
    if errors:
        raise BatchValidationError(_summary(errors, raw), errors)

    out: list[Item] = []
    copies: Counter[str] = Counter()
    for n, (given, values) in enumerate(checked):
        identity = {**values, "model": dict(model)}
        if values["seed"] == -1:
            base = item_key({**identity, "seed": None})
            seed = _derived_seed(base, copies[base])
            copies[base] += 1
        else:
            seed = values["seed"]
        for i in range(values.get("batch_count", 1)):  # a video item is one video
            params = {**given, "seed": seed + i} if video else {**given, "seed": seed + i, "batch_count": 1}
            key = item_key({**identity, "seed": seed + i, "batch_count": 1})
            out.append(Item(len(out), n, params, key))
    return out


def _check(item: Mapping[str, Any], defaults: Mapping[str, Any], family: str | None,
           names: Mapping[str, list[str]] | None, has_upscaler: bool,
           video: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the item's own parameters to send, its validated values with every default filled in)."""
    where, table = ("video", video_schema.VIDEO) if video else ("diffusion", schema.DIFFUSION)
    given = tables.fold_aliases(where, {**defaults, **item}, table)
    for name in _NOT_PER_ITEM:
        if name in given:
            raise InvalidParameterError(f"{name}: batch sets it itself (each worker loads its own copy of "
                                        "model_src); leave it out", param=name)
    if "prompt" not in given:
        raise InvalidParameterError("prompt: every item needs a prompt", param="prompt")
    values = tables.validate(table, given, where=where, names=names, family=family)
    if not video and values["upscale"] and not has_upscaler:
        raise InvalidParameterError("upscale: the batch's model has no upscaler; pass "
                                    "model_config={'upscaler': {'model_src': ...}}", param="upscale")
    if family is not None:
        guards.check_size(family, values)
    for name in ("init_image", "end_image"):
        if values.get(name) is not None:
            # Pixels travel to any worker or node (a path might not exist there); the key has their hash.
            given[name], values[name] = _pixels(name, values[name])
    if values.get("control_frames") is not None:
        frames = [_pixels(f"control_frames[{i}]", frame) for i, frame in enumerate(values["control_frames"])]
        given["control_frames"] = [pixels for pixels, _ in frames]
        values["control_frames"] = [identity for _, identity in frames]
    return given, values


def _pixels(name: str, image: Any) -> tuple[Any, dict[str, Any]]:
    """An image as RGB pixels, and what the resume key records of it (their hash and shape)."""
    from ..images import to_rgb_array

    pixels = to_rgb_array(name, image)
    return pixels, {"sha256": hashlib.sha256(pixels.tobytes()).hexdigest(), "shape": list(pixels.shape)}


def _derived_seed(base: str, copy: int) -> int:
    digest = hashlib.sha256(f"{base}:{copy}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**31


def _summary(errors: list[tuple[int, QvacError]], raw: list[dict[str, Any]]) -> str:
    lines = [f"items: {len(errors)} of {len(raw)} items are invalid (nothing was run):"]
    for n, exc in errors[:MAX_LISTED_ERRORS]:
        prompt = raw[n].get("prompt")
        shown = f" ({json.dumps(prompt)[:40]})" if isinstance(prompt, str) else ""
        lines.append(f"  item {n}{shown}: {exc}")
    if len(errors) > MAX_LISTED_ERRORS:
        lines.append(f"  ... and {len(errors) - MAX_LISTED_ERRORS} more")
    return "\n".join(lines)


def model_family(model_src: str) -> str | None:
    """The model's family when the kernel can tell without loading it (a catalogue name or a local file)."""
    from .. import catalog
    from ..modelfiles.reading import inspect_file

    if model_src in catalog.CATALOG:
        return catalog.CATALOG[model_src].family
    path = Path(model_src).expanduser()
    if path.is_file():
        family = inspect_file(path, "model_src").family
        return family if families.get(family).kind in ("unet", "dit") else None
    return None  # a URL or a path on the cluster's nodes: the worker checks what depends on the family
