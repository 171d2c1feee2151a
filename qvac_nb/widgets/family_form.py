"""What the Studio shows for a model family, worked out from the family table's data alone.

`form_rules(family_json)` reads a family's row as the front-end gets it (`Family.as_json()`; for a
loaded model the row resolved for its variant, `families.for_model`) and says which form fields
apply, what the init image is for and which extra inputs show. The Studio sends the result to the
front-end (its `form_rules` trait) and uses it itself to pass only the parameters the form shows,
so a value the user cannot see never reaches `diffusion`.

`companion_needs(row)` says which model_config companions the model bar asks for when loading a
model of that family, and `companion_fields()` names every companion field the bar has.
Nothing here names a family: a new row of the table works without touching this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .. import families, schema, video_schema

CFG = "cfg_scale"
NEGATIVE = "negative_prompt"
# What the init image input is called, by the table's img2img mode ("" = the family takes none). A mode
# added to the table later without an entry here gets the neutral label.
INIT_LABELS = {"sdedit": "Init image", "reference": "Image to edit", "edit": "Image to edit",
               "pix2pix": "Condition image", "none": ""}
NEUTRAL_LABEL = "Init image"
RENOISED = "sdedit"  # the one mode that re-noises the init image
RENOISE_ONLY = ("strength",)  # how much of a re-noised init image is repainted
# Parameters about the init image: they sit beside it and show once one is set (where the row uses them).
IMAGE_PARAMS = ("strength", "img_cfg_scale")
# How reference images are encoded: only models that read their images as references (FLUX.2, edit models).
REFERENCE_OPTIONS = ("increase_ref_index", "auto_resize_ref_image")
REFERENCE_MODES = ("reference", "edit")

UPSCALE_SWITCH = "upscale"  # the form's own toggle beside upscale_repeats
# A video model's init image is its first frame (image-to-video); its form has the video fields instead
# of the image-only ones (batch count, hires fix, upscaling, ...), and an image model's the reverse.
FIRST_FRAME_LABEL = "First frame"
VIDEO_ONLY = tuple(p.name for p in video_schema.form_params())
IMAGE_ONLY = tuple(p.name for p in schema.form_params() if p.name not in video_schema.video_names())

Need = Literal["required", "one of", "optional"]
# Labels of the model bar's companion fields, by the engine role of their model_config key.
COMPANION_LABELS = {"llm": "Text encoder (LLM)", "vae": "VAE", "clip_l": "CLIP-L", "clip_g": "CLIP-G",
                    "t5xxl": "T5-XXL", "llm_vision": "LLM vision tower"}
VAE_KEY = "vae_model_src"


def form_rules(family_json: Mapping[str, Any]) -> dict[str, Any]:
    """The Studio form's view of a family row: {video, hidden, size_multiple, init_label, init_params, mask,
    ref_images}.

    `family_json` is `Family.as_json()` (its `defaults` are the model's: the variant's included).

    - video: the family makes videos (Generate runs `video()`); hidden then holds the image-only
      fields, and for an image family the video-only ones.
    - hidden: form fields the model ignores: the row's `hidden`; the reference-image options unless the
      family reads its images as references; cfg_scale for a guidance-distilled
      model run at cfg 1 (one pass per step: cfg does nothing); the negative prompt when cfg_scale is
      1 and hidden (no unconditional pass reads it); strength unless the init image is re-noised (sdedit).
    - size_multiple: what the width and height fields snap to (the family's size step).
    - init_label: what the init image input is called ("Image to edit", "Init image", ...), "" when the
      family takes none; init_params: fields shown beside it once an image is set (strength, img_cfg_scale).
    - mask: the inpainting mask painter applies (the family inpaints, or re-noises the init image);
      ref_images: the reference images input applies.
    """
    video = family_json.get("makes") == "video"
    mode = "video" if video else str(family_json.get("img2img") or RENOISED)
    label = FIRST_FRAME_LABEL if video else INIT_LABELS.get(mode, NEUTRAL_LABEL)
    cfg = (family_json.get("defaults") or {}).get(CFG)
    hidden = set(family_json.get("hidden") or ())
    hidden.update(IMAGE_ONLY if video else VIDEO_ONLY)
    if video:
        hidden.add(UPSCALE_SWITCH)  # the form's upscale toggle: a video model has no upscaler
    if family_json.get("uses_guidance") and cfg == 1:
        hidden.add(CFG)
    if cfg == 1 and CFG in hidden:
        hidden.add(NEGATIVE)
    if mode != RENOISED or not label:
        hidden.update(RENOISE_ONLY)
    if not label:
        hidden.update(IMAGE_PARAMS)
    if mode not in REFERENCE_MODES:
        hidden.update(REFERENCE_OPTIONS)
    return {
        "video": video,
        "hidden": sorted(hidden),
        "size_multiple": int(family_json.get("size_multiple") or 8),
        "init_label": label,
        "init_params": [p for p in IMAGE_PARAMS if p not in hidden],
        "mask": bool(label) and (mode == RENOISED or bool(family_json.get("inpaints"))),
        "ref_images": mode == "reference",
    }


def rules_for(row: families.Family | None, *, has_high_noise: bool = False) -> dict[str, Any]:
    """`form_rules` of a family row (for a loaded model: `families.for_model(model)`); None: no model.

    `has_high_noise`: a video model loaded with a Wan 2.2 A14B high-noise expert, whose settings then show.
    """
    rules = form_rules((row or families.UNKNOWN).as_json())
    if rules["video"] and not has_high_noise:
        rules["hidden"] = sorted({*rules["hidden"], *video_schema.HIGH_NOISE_PARAMS})
    return rules


def skipped(rules: Mapping[str, Any], has_init_image: bool) -> set[str]:
    """Form fields not to pass to `diffusion`: those hidden, and the init image's own without one."""
    out = set(rules.get("hidden") or ())
    if not has_init_image:
        out.update(rules.get("init_params") or ())
    return out


def companion_label(key: str) -> str:
    """The model bar's label for a model_config companion key ("vae_model_src" -> "VAE")."""
    role = schema.COMPANION_ROLES.get(key, key.removesuffix("_model_src"))
    return COMPANION_LABELS.get(role, role.replace("_", " "))


def companion_fields(rows: Iterable[families.Family] | None = None) -> list[dict[str, str]]:
    """Every companion field of the model bar: [{field, key, label}], from the family table (or `rows`).

    The keys any family reads or needs, VAE first (every diffusion model can take one); `field` is the
    load message's name for it (the engine role: "vae", "llm", "clip_l", ...).
    """
    keys = [VAE_KEY]
    for row in families.FAMILIES.values() if rows is None else rows:
        keys += [*row.required_companions, *row.text_encoders]
    return [{"field": schema.COMPANION_ROLES[key], "key": key, "label": companion_label(key)}
            for key in dict.fromkeys(keys)]


def companion_needs(row: families.Family | None, fields: list[dict[str, str]] | None = None) -> dict[str, Need]:
    """{model_config key: "required" | "one of" | "optional"} for loading a model of the family `row`.

    required: the row's required_companions; "one of": its text encoders when a diffusion-only file
    needs at least one of them (requires_text_encoder, published split); optional: the other text
    encoders and a VAE. No row (a family without one, or not known yet) gets every field of `fields`
    (default: the model bar's), optional.
    """
    if row is None or row.kind not in ("unet", "dit"):
        return {f["key"]: "optional" for f in (companion_fields() if fields is None else fields)}
    needs: dict[str, Need] = {key: "required" for key in row.required_companions}
    encoder_need: Need = "one of" if row.requires_text_encoder and row.split_layout else "optional"
    for key in row.text_encoders:
        needs.setdefault(key, encoder_need)
    needs.setdefault(VAE_KEY, "optional")
    return needs
