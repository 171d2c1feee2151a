"""The Studio's form: its fields, their defaults, and how they become `diffusion` keyword arguments.

The fields are the schema's Studio parameters (qvac_nb/schema.py) plus two switches of the
form itself: `random_seed` (the seed control's dice) and `upscale` (the upscale toggle,
whose passes are the `upscale_repeats` field).

The form always holds values, never "the family's default" as None: with no model it holds the
schema's defaults, and when a model is chosen every field still at the previous model's default
takes the new model's (`model_form_defaults`, `rebase_form`), so the kernel and the browser show
and send the same numbers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .. import schema, video_schema
from ..checks.values import check_unknown, check_upscale
from ..errors import InvalidTypeError
from .family_form import rules_for, skipped

# diffusion()'s form fields, then video()'s own (a video model's form shows those instead of the image-only ones).
_FIELDS = schema.form_params() + video_schema.form_params()
# A nullable choice shows "" for None ("the model's default", "off").
_BLANK_IS_NONE = tuple(p.name for p in _FIELDS if p.type == "choice" and p.nullable)
_FLOAT_FIELDS = tuple(p.name for p in _FIELDS if p.type == "float")
_NULLABLE = tuple(p.name for p in _FIELDS if p.nullable)


def _form_default(p: schema.Param) -> Any:
    if p.default is schema.REQUIRED:
        return ""  # a required text (the prompt) starts empty; diffusion() is what insists on it
    return _field_value(p.name, p.default)


def _field_value(name: str, value: Any) -> Any:
    """A parameter value as the form holds it (a nullable choice shows "" for None)."""
    return "" if name in _BLANK_IS_NONE and value is None else value


FORM_DEFAULTS: dict[str, Any] = {
    **{p.name: _form_default(p) for p in _FIELDS},
    "random_seed": True,
    "upscale": False,
}
INT_FIELDS = tuple(p.name for p in _FIELDS if p.type == "int")
BOOL_FIELDS = (*(p.name for p in _FIELDS if p.type == "bool"), "random_seed", "upscale")
# What `Studio(**defaults)` accepts: the form's fields under their `diffusion` names.
DEFAULT_KEYS = (*(p.name for p in _FIELDS if p is not schema.UPSCALE_REPEATS), "upscale", "init_image")
# Parameters a gallery image's record may put back into the form ("reuse all").
REUSABLE = tuple(p.name for p in _FIELDS if p.replayable and p.reuse)
_SEED = next(p.name for p in _FIELDS if p.control == "seed")
# The fields `Studio(**defaults)` sets besides those of the same name.
_SET_BY = {"upscale": ("upscale", schema.UPSCALE_REPEATS.name), _SEED: (_SEED, "random_seed")}
_NO_MODEL_RULES = rules_for(None)  # no model: nothing hidden but the init image's own


def given_fields(defaults: Mapping[str, Any]) -> set[str]:
    """The form fields `Studio(**defaults)` sets: they keep their values when a model is chosen."""
    return {field for key in defaults for field in _SET_BY.get(key, (key,)) if field in FORM_DEFAULTS}


def model_form_defaults(model_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Where the form starts for a model: the schema's defaults with the model's own (family and variant)."""
    out = dict(FORM_DEFAULTS)
    out.update({key: _field_value(key, value) for key, value in model_defaults.items() if key in FORM_DEFAULTS})
    return out


def rebase_form(form: Mapping[str, Any], old: Mapping[str, Any], new: Mapping[str, Any],
                keep: Collection[str] = ()) -> dict[str, Any]:
    """`form` moved from one model's defaults (`old`) to another's (`new`).

    A field still at the old default (or empty: None) takes the new one; a field whose value
    differs, or that is in `keep` (set by the user), stays as it is.
    """
    out = dict(form)
    for key, value in new.items():
        current = out.get(key)
        if key not in keep and (current is None or current == old.get(key)):
            out[key] = value
    return out


def initial_form(defaults: dict[str, Any]) -> dict[str, Any]:
    """The starting form from `Studio(**defaults)`; init_image is handled by the caller."""
    check_unknown("Studio", defaults, DEFAULT_KEYS)
    form = dict(FORM_DEFAULTS)
    for key, value in defaults.items():
        if key == "upscale":
            repeats = check_upscale(value)
            form["upscale"], form[schema.UPSCALE_REPEATS.name] = bool(repeats), max(repeats, 1)
        elif key != "init_image":
            form[key] = _field_value(key, value)
    if _SEED in defaults:
        form["random_seed"] = defaults[_SEED] == -1
    return form


def merge_form(form: dict[str, Any], incoming: Any) -> dict[str, Any]:
    """The form with the front-end's values folded in (unknown keys ignored, numbers coerced)."""
    if not isinstance(incoming, dict):
        raise InvalidTypeError(f"params: expected a dict, got {type(incoming).__name__}")
    out = dict(form)
    for key, value in incoming.items():
        if key in FORM_DEFAULTS:
            out[key] = coerce_field(key, value)
    return out


def coerce_field(key: str, value: Any) -> Any:
    """A form field's value as `diffusion` wants it: numbers typed as text become numbers.

    Browsers send numbers from text inputs as strings; anything unparsable is left for `diffusion`
    to reject, and keys that are not form fields are left as they are.
    """
    if key in INT_FIELDS and isinstance(value, (str, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            return None if key in _NULLABLE and not str(value).strip() else value
        return int(number) if number.is_integer() and abs(number) < 2**53 else _int_text(value)
    if key in _FLOAT_FIELDS and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None if key in _NULLABLE and not value.strip() else value
    return value


def _int_text(value: Any) -> Any:
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else value


def diffusion_kwargs(form: dict[str, Any], model_id: str, init_image: bytes | None, has_upscaler: bool,
                     rules: Mapping[str, Any] = _NO_MODEL_RULES) -> dict:
    """`diffusion`'s (or, for a video model, `video`'s) keyword arguments from the form.

    `rules` are the model's form rules (family_form.form_rules): fields the form hides for its family,
    and those of the init image without one (strength), are left out, so `diffusion` uses its
    defaults for them rather than a value the user cannot see.
    """
    kwargs: dict[str, Any] = {"model_id": model_id}
    left_out = skipped(rules, has_init_image=init_image is not None)
    for p in _FIELDS:
        if p is schema.UPSCALE_REPEATS or p.name in left_out:
            continue
        value = form.get(p.name, FORM_DEFAULTS[p.name])
        kwargs[p.name] = None if p.name in _BLANK_IS_NONE and value == "" else value
    if form["random_seed"]:
        kwargs[_SEED] = -1
    kwargs["preview"] = True
    if init_image is not None:
        kwargs["init_image"] = init_image
    # The toggle is greyed out without an upscaler; a stale True must not fail the run.
    if form["upscale"] and has_upscaler:
        kwargs["upscale"] = {"repeats": form[schema.UPSCALE_REPEATS.name]}
    return kwargs


def form_from_record(form: dict[str, Any], record: dict[str, Any], keys: tuple[str, ...] = REUSABLE) -> dict:
    """The form with an image's stored parameters put back (seed fixed, not random)."""
    out = dict(form)
    for key in keys:
        if key in record:
            value = record[key]
            out[key] = "" if key in _BLANK_IS_NONE and value is None else value
    if _SEED in keys and _SEED in record:
        out["random_seed"] = False
    return out


def params_to_json(form: dict[str, Any], _widget: Any = None) -> dict[str, Any]:
    """Seeds go to the browser as text: JavaScript numbers lose integers past 2**53."""
    return {**form, _SEED: str(form.get(_SEED, -1))}


def params_from_json(data: dict[str, Any], _widget: Any = None) -> dict[str, Any]:
    return merge_form(FORM_DEFAULTS, data)
