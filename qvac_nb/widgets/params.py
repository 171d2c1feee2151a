"""The Studio's form: its fields, their defaults, and how they become `diffusion` keyword arguments."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidTypeError
from ..validation import check_unknown, check_upscale

FORM_DEFAULTS: dict[str, Any] = {
    "prompt": "",
    "negative_prompt": "",
    "width": 512,
    "height": 512,
    "steps": 20,
    "cfg_scale": 7.0,
    "guidance": 3.5,
    "sampling_method": "",  # "" = the model's default
    "scheduler": "",
    "seed": -1,
    "random_seed": True,
    "batch_count": 1,
    "strength": 0.75,
    "upscale": False,
    "upscale_repeats": 1,
    "vae_tiling": False,
    "cache_preset": "",  # "" = no step cache
    "clip_skip": -1,
    "eta": None,
}
INT_FIELDS = ("width", "height", "steps", "seed", "batch_count", "upscale_repeats", "clip_skip")
BOOL_FIELDS = ("random_seed", "upscale", "vae_tiling")
# What `Studio(**defaults)` accepts: the form's fields under their `diffusion` names.
DEFAULT_KEYS = tuple(k for k in FORM_DEFAULTS if k not in ("random_seed", "upscale_repeats")) + ("init_image",)
# Parameters a gallery image's record may put back into the form ("reuse all").
REUSABLE = ("prompt", "negative_prompt", "width", "height", "steps", "cfg_scale", "guidance", "sampling_method",
            "scheduler", "seed", "vae_tiling", "cache_preset", "strength", "clip_skip", "eta")


def initial_form(defaults: dict[str, Any]) -> dict[str, Any]:
    """The starting form from `Studio(**defaults)`; init_image is handled by the caller."""
    check_unknown("Studio", defaults, DEFAULT_KEYS)
    form = dict(FORM_DEFAULTS)
    for key, value in defaults.items():
        if key == "upscale":
            repeats = check_upscale(value)
            form["upscale"], form["upscale_repeats"] = bool(repeats), max(repeats, 1)
        elif key != "init_image":
            form[key] = "" if key in ("sampling_method", "scheduler", "cache_preset") and value is None else value
    if "seed" in defaults:
        form["random_seed"] = defaults["seed"] == -1
    return form


def merge_form(form: dict[str, Any], incoming: Any) -> dict[str, Any]:
    """The form with the front-end's values folded in (unknown keys ignored, numbers coerced)."""
    if not isinstance(incoming, dict):
        raise InvalidTypeError(f"params: expected a dict, got {type(incoming).__name__}")
    out = dict(form)
    for key, value in incoming.items():
        if key in FORM_DEFAULTS:
            out[key] = _coerce(key, value)
    return out


def _coerce(key: str, value: Any) -> Any:
    # Browsers send numbers from text inputs as strings; anything unparsable is left for `diffusion` to reject.
    if key in INT_FIELDS and isinstance(value, (str, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and abs(number) < 2**53 else _int_text(value)
    if key in ("cfg_scale", "guidance", "strength", "eta") and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None if key == "eta" and not value.strip() else value
    return value


def _int_text(value: Any) -> Any:
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else value


def diffusion_kwargs(form: dict[str, Any], model_id: str, init_image: bytes | None, has_upscaler: bool) -> dict:
    kwargs: dict[str, Any] = {
        "model_id": model_id,
        "prompt": form["prompt"],
        "negative_prompt": form["negative_prompt"],
        "width": form["width"],
        "height": form["height"],
        "steps": form["steps"],
        "cfg_scale": form["cfg_scale"],
        "guidance": form["guidance"],
        "sampling_method": form["sampling_method"] or None,
        "scheduler": form["scheduler"] or None,
        "seed": -1 if form["random_seed"] else form["seed"],
        "batch_count": form["batch_count"],
        "vae_tiling": form["vae_tiling"],
        "cache_preset": form["cache_preset"] or None,
        "clip_skip": form["clip_skip"],
        "eta": form["eta"],
        "preview": True,
    }
    if init_image is not None:
        kwargs["init_image"] = init_image
        kwargs["strength"] = form["strength"]
    # The toggle is greyed out without an upscaler; a stale True must not fail the run.
    if form["upscale"] and has_upscaler:
        kwargs["upscale"] = {"repeats": form["upscale_repeats"]}
    return kwargs


def form_from_record(form: dict[str, Any], record: dict[str, Any], keys: tuple[str, ...] = REUSABLE) -> dict:
    """The form with an image's stored parameters put back (seed fixed, not random)."""
    out = dict(form)
    for key in keys:
        if key in record:
            value = record[key]
            out[key] = "" if key in ("sampling_method", "scheduler", "cache_preset") and value is None else value
    if "seed" in keys and "seed" in record:
        out["random_seed"] = False
    return out


def params_to_json(form: dict[str, Any], _widget: Any = None) -> dict[str, Any]:
    """Seeds go to the browser as text: JavaScript numbers lose integers past 2**53."""
    return {**form, "seed": str(form.get("seed", -1))}


def params_from_json(data: dict[str, Any], _widget: Any = None) -> dict[str, Any]:
    return merge_form(FORM_DEFAULTS, data)
