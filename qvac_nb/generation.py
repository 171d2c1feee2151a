"""diffusion(), upscale() and cancel(): validate, queue a job, run it on the engine."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any, get_type_hints

from typing_extensions import Unpack

from . import docstrings, engine, families, models, photomaker, records, runner, schema
from .catalog import CATALOG
from .checks import guards, tables
from .checks.values import check_unknown
from .errors import InvalidParameterError, InvalidTypeError, UnsupportedOperationError
from .images import to_mask_array, to_rgb_array
from .jobs import DiffusionJob, UpscaleJob
from .loaded_model import LoadedModel
from .png import record_of
from .request_types import DiffusionKwargs, DiffusionRequest, ImageInput, UpscaleKwargs, UpscaleRequest
from .worker import protocol

MAX_OUTPUT_SIDE = 16384


def diffusion(*, model_id: str, prompt: str, **params: Unpack[DiffusionKwargs]) -> DiffusionJob:
    """Queue a text-to-image (or image-to-image) generation and return its job at once."""
    request, record = _validated(model_id=model_id, prompt=prompt, **params)
    model = models.get_model(model_id)
    job = DiffusionJob(model.model_id, record)
    # The worker knows the family, not the variant: say where init_image goes (instruct-pix2pix: the reference).
    work = protocol.DiffusionWork(request, record, families.for_model(model).init_as_reference)
    runner.submit(job, protocol.DIFFUSION, work)
    return job


def shared_model_name(source: object) -> str:
    """How a PNG names its model: a catalogue name or a URL as given, a local file by its name only (the
    folders it sits in are the user's own: a shared image carries no local path)."""
    text = str(source)
    if text in CATALOG or text.startswith(("hf://", "http://", "https://")):
        return text
    return Path(text).name


def validate_diffusion(**given: Any) -> DiffusionRequest:
    """A DiffusionRequest for `given`: every parameter checked and defaults resolved for the model's family."""
    return _validated(**given)[0]


def _validated(**given: Any) -> tuple[DiffusionRequest, dict[str, Any]]:
    """validate_diffusion's request and its record (the job's parameters and each PNG's text), made once."""
    folded = tables.fold_aliases("diffusion", given, schema.DIFFUSION)
    for name in ("model_id", "prompt"):
        if name not in folded:
            raise TypeError(f"diffusion() missing required keyword-only argument: '{name}'")
    model = models.get_model(folded["model_id"])
    models.require(model, "diffusion", "diffusion")
    family = families.for_model(model)
    values = tables.validate(schema.DIFFUSION, {**folded, **_variant_defaults(family, folded)}, where="diffusion",
                             names=engine.enum_names(), family=model.family)
    repeats = values["upscale"]
    if repeats and not model.has_upscaler:
        raise UnsupportedOperationError(
            "upscale: this model was loaded without an upscaler; pass "
            "model_config={'upscaler': {'model_src': ...}} to load_model"
        )
    factor = model.upscale_factor**repeats if repeats else 1
    if max(values["width"], values["height"]) * factor > MAX_OUTPUT_SIDE:
        raise UnsupportedOperationError(f"upscale: {repeats} repeat(s) would exceed {MAX_OUTPUT_SIDE} pixels a side")
    init = None
    if values["init_image"] is not None:
        init = to_rgb_array("init_image", values["init_image"])
        if family.img2img == "reference" and model.prediction != "flux2_flow":
            raise UnsupportedOperationError(
                f"init_image: {family.label} image-to-image (in-context conditioning) needs the model loaded with "
                "model_config={'prediction': 'flux2_flow'}"
            )
    values["init_image"] = init
    refs = _image_inputs(model, family, folded, values)
    if values["seed"] == -1:
        values["seed"] = random.randrange(0, 2**31)
    for p in schema.DIFFUSION:
        if p.model_default and values[p.name] is None:
            values[p.name] = getattr(model, p.model_default)  # the sampler/scheduler the engine picked for it
    request = DiffusionRequest(**values, family=model.family, model=shared_model_name(model.source))
    record = records.record(request)
    guards.check_diffusion(model, record, init)
    guards.check_image_inputs(model, request, refs)
    return request, record


def _variant_defaults(family: families.Family, folded: dict[str, Any]) -> dict[str, Any]:
    """The defaults of the model's variant when the engine version tells it (SDXS: 1 step, cfg 1), for what
    the call leaves out (or gives as None where None means the default).

    A variant told only by a name (FLUX.2 klein) is a guess: its defaults start the Studio's form, and
    diffusion() keeps the family's.
    """
    row = next((v for v in families.get(family.name).variant_rows if v.name == family.variant), None)
    if row is None or not row.versions:
        return {}
    return {name: value for name, value in row.defaults.items()
            if name not in folded or (folded[name] is None and schema.param(name).per_family)}


def _image_inputs(model: LoadedModel, family: families.Family, given: dict[str, Any],
                  values: dict[str, Any]) -> list[Any]:
    """Decode and check mask_image, init_images, control_image and the PhotoMaker inputs, and the hires and
    vae_tiling options.

    Returns the decoded reference images (init_images, or a FLUX.2 init_image) for the memory guards.
    """
    if "vae_tiling" not in given and model.config.get("vae_tiling"):
        values["vae_tiling"] = True  # load-time default; an explicit vae_tiling wins
    if values["mask_image"] is not None:
        if values["init_image"] is None:
            raise InvalidParameterError("mask_image: inpainting needs init_image (the image the mask covers)",
                                        param="mask_image")
        if family.img2img != "sdedit":
            raise UnsupportedOperationError(f"mask_image: {family.label} models do not inpaint; use an SD 1.x/2.x/XL "
                                            "model (an inpainting one reads the mask itself)")
        values["mask_image"] = to_mask_array("mask_image", values["mask_image"])
    refs = [values["init_image"]] if values["init_image"] is not None and family.img2img == "reference" else []
    if values["init_images"] is not None:
        refs = _reference_images(model, family, values)
        values["init_images"] = refs
    if values["control_image"] is not None:
        if "control_net" not in model.files:
            raise UnsupportedOperationError(
                "control_image: this model was loaded without a ControlNet; pass "
                "model_config={'control_net_model_src': ...} to load_model")
        values["control_image"] = to_rgb_array("control_image", values["control_image"])
    photomaker.check_inputs(model, values)
    hires = values["hires"]
    if hires is not None:
        if hires["upscaler"] == "model" and not model.has_upscaler:
            raise UnsupportedOperationError(
                "hires: upscaler 'model' uses the model's paired ESRGAN upscaler; pass "
                "model_config={'upscaler': {'model_src': ...}} to load_model, or use upscaler 'latent'")
        width, height = schema.hires_target(hires, values["width"], values["height"])
        factor = model.upscale_factor ** values["upscale"] if values["upscale"] else 1
        if max(width, height) > schema.MAX_SIDE or max(width, height) * factor > MAX_OUTPUT_SIDE:
            raise InvalidParameterError(f"hires: the second pass would be {width}x{height}, larger than "
                                        f"{schema.MAX_SIDE} pixels a side", param="hires")
    return refs


def _reference_images(model: LoadedModel, family: families.Family, values: dict[str, Any]) -> list[Any]:
    given = values["init_images"]
    if values["init_image"] is not None:
        raise InvalidParameterError("init_image, init_images: give one or the other (init_images is a list of "
                                    "FLUX.2 reference images; init_image is one)", param="init_images")
    if family.img2img != "reference":
        raise UnsupportedOperationError(f"init_images: reference images are for FLUX.2 models, not {family.label}; "
                                        "use init_image")
    if model.prediction != "flux2_flow":
        raise UnsupportedOperationError("init_images: FLUX.2 reference images need the model loaded with "
                                        "model_config={'prediction': 'flux2_flow'}")
    if isinstance(given, (str, bytes, bytearray)) or not isinstance(given, (list, tuple)):
        raise InvalidTypeError(f"init_images: expected a list of images, got {type(given).__name__}",
                               param="init_images")
    if not 1 <= len(given) <= schema.MAX_REF_IMAGES:
        raise InvalidParameterError(f"init_images: give 1-{schema.MAX_REF_IMAGES} images, got {len(given)}",
                                    param="init_images")
    return [to_rgb_array(f"init_images[{i}]", image) for i, image in enumerate(given)]


def upscale(*, model_id: str, image: ImageInput, **params: Unpack[UpscaleKwargs]) -> UpscaleJob:
    """Queue an ESRGAN upscale of `image` (PNG/JPEG bytes, PIL, array or path)."""
    given = tables.fold_aliases("upscale", {"model_id": model_id, "image": image, **params}, schema.UPSCALE)
    model = models.get_model(model_id)
    if not model.has_upscaler:
        models.require(model, "upscale", "upscale")
    values = tables.validate(schema.UPSCALE, given, where="upscale")
    request = UpscaleRequest(**{**values, "image": to_rgb_array("image", image)})
    repeats, pixels = request.repeats, request.image
    if max(pixels.shape[:2]) * model.upscale_factor**repeats > MAX_OUTPUT_SIDE:
        raise UnsupportedOperationError(f"repeats: {repeats} repeat(s) would exceed {MAX_OUTPUT_SIDE} pixels a side")
    guards.check_upscale(model, pixels, repeats)
    record = record_of(image) if isinstance(image, (bytes, bytearray)) else {}
    if record:
        record["upscaled"] = {"factor": model.upscale_factor**repeats, "repeats": repeats}
    job = UpscaleJob(model.model_id, {"repeats": repeats, "model": model.source}, record or None)
    runner.submit(job, protocol.UPSCALE, protocol.UpscaleWork(pixels, repeats, record or None))
    return job


def cancel(*, model_id: str, **unexpected: Any) -> int:
    """Cancel every queued and running job of a model; returns how many were cancelled."""
    check_unknown("cancel", unexpected, ("model_id",))
    models.get_model(model_id)
    jobs = runner.jobs_for(model_id)
    for job in jobs:
        job.cancel()
    return len(jobs)


# The real reference: signatures and numpy-style docstrings generated from the schema.
diffusion.__signature__ = docstrings.signature(  # type: ignore[attr-defined]
    schema.DIFFUSION, get_type_hints(DiffusionKwargs), returns=DiffusionJob)
diffusion.__doc__ = docstrings.docstring(
    "Queue a text-to-image (or image-to-image) generation and return its job at once.\n\n"
    "The job's outputs are PNGs that carry their parameters (see read_parameters).",
    schema.DIFFUSION, "DiffusionJob\n    Progress stream, outputs (PNG bytes), stats, cancel().",
    extra_doc="\nhires keys\n----------",
    extra_params=tuple(dataclasses.replace(p, name=f"hires.{p.name}") for p in schema.HIRES),
)
upscale.__signature__ = docstrings.signature(schema.UPSCALE, get_type_hints(UpscaleKwargs), returns=UpscaleJob)  # type: ignore[attr-defined]
upscale.__doc__ = docstrings.docstring(
    "Queue an ESRGAN upscale of `image` and return its job at once.\n\n"
    "Works on a model loaded with mode='upscale' and on a diffusion model loaded with a paired upscaler.",
    schema.UPSCALE, "UpscaleJob\n    Its output is one PNG.",
)
