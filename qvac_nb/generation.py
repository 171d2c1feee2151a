"""diffusion(), upscale() and cancel(): validate, queue a job, run it on the engine."""

from __future__ import annotations

import random
from typing import Any

from . import engine, guards, models, runner
from .errors import UnsupportedOperationError
from .images import to_rgb_array
from .jobs import DiffusionJob, UpscaleJob
from .png import stored_record
from .validation import (
    CACHE_PRESETS,
    DIFFUSION_PARAMS,
    MAX_BATCH,
    MAX_SIDE,
    MAX_STEPS,
    MAX_UPSCALE_REPEATS,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_str,
    check_unknown,
    check_upscale,
)
from .worker import protocol

MAX_SEED = 2**63 - 1
MAX_OUTPUT_SIDE = 16384


def diffusion(
    *,
    model_id: str,
    prompt: str,
    negative_prompt: str = "",
    width: int = 512,
    height: int = 512,
    steps: int = 20,
    cfg_scale: float = 7.0,
    guidance: float = 3.5,
    sampling_method: str | None = None,
    scheduler: str | None = None,
    seed: int = -1,
    batch_count: int = 1,
    vae_tiling: bool = False,
    cache_preset: str | None = None,
    init_image: Any = None,
    strength: float = 0.75,
    upscale: bool | dict[str, int] | None = None,
    clip_skip: int = -1,
    eta: float | None = None,
    preview: bool = False,
    **unexpected: Any,
) -> DiffusionJob:
    """Queue a text-to-image (or image-to-image) generation and return its job at once."""
    check_unknown("diffusion", unexpected, DIFFUSION_PARAMS)
    model = models.get_model(model_id)
    models.require(model, "diffusion", "diffusion")
    names = engine.enum_names()
    params: dict[str, Any] = {
        "prompt": check_str("prompt", prompt),
        "negative_prompt": check_str("negative_prompt", negative_prompt),
        "width": check_int("width", width, 64, MAX_SIDE, multiple_of=8),
        "height": check_int("height", height, 64, MAX_SIDE, multiple_of=8),
        "steps": check_int("steps", steps, 1, MAX_STEPS),
        "cfg_scale": check_float("cfg_scale", cfg_scale, 0.0, 50.0),
        "guidance": check_float("guidance", guidance, 0.0, 50.0),
        "sampling_method": check_choice("sampling_method", sampling_method, names["sample_method"], allow_none=True),
        "scheduler": check_choice("scheduler", scheduler, names["scheduler"], allow_none=True),
        "seed": check_int("seed", seed, 0, MAX_SEED, extra=(-1,)),
        "batch_count": check_int("batch_count", batch_count, 1, MAX_BATCH),
        "vae_tiling": check_bool("vae_tiling", vae_tiling),
        "cache_preset": check_choice("cache_preset", cache_preset, CACHE_PRESETS, allow_none=True),
        "strength": check_float("strength", strength, 0.0, 1.0, lo_open=True),
        "clip_skip": check_int("clip_skip", clip_skip, 1, 12, extra=(-1,)),
        "eta": None if eta is None else check_float("eta", eta, 0.0, 10.0),
    }
    repeats = check_upscale(upscale)
    check_bool("preview", preview)
    if repeats and not model.has_upscaler:
        raise UnsupportedOperationError(
            "upscale: this model was loaded without an upscaler; pass "
            "model_config={'upscaler': {'model_src': ...}} to load_model"
        )
    factor = model.upscale_factor**repeats if repeats else 1
    if max(params["width"], params["height"]) * factor > MAX_OUTPUT_SIDE:
        raise UnsupportedOperationError(f"upscale: {repeats} repeat(s) would exceed {MAX_OUTPUT_SIDE} pixels a side")
    init = None
    if init_image is not None:
        init = to_rgb_array("init_image", init_image)
        if model.family == "flux2" and model.prediction != "flux2_flow":
            raise UnsupportedOperationError(
                "init_image: FLUX.2 image-to-image (in-context conditioning) needs the model loaded with "
                "model_config={'prediction': 'flux2_flow'}"
            )
    if params["seed"] == -1:
        params["seed"] = random.randrange(0, 2**31)
    params["sampling_method"] = params["sampling_method"] or model.default_sampler
    params["scheduler"] = params["scheduler"] or model.default_scheduler
    params["upscale_repeats"] = repeats
    params["model"] = model.source
    params["init_image_used"] = init is not None
    guards.check_diffusion(model, params, init)
    job = DiffusionJob(model.model_id, params)
    runner.submit(job, protocol.DIFFUSION, {"params": params, "init": init, "preview": preview})
    return job


UPSCALE_PARAMS = ("model_id", "image", "repeats")


def upscale(*, model_id: str, image: Any, repeats: int = 1, **unexpected: Any) -> UpscaleJob:
    """Queue an ESRGAN upscale of `image` (PNG/JPEG bytes, PIL, array or path).

    Works on a model loaded with mode="upscale" and on a diffusion model loaded with a
    paired upscaler. A PNG that qvac_nb wrote keeps its parameters in the output.
    """
    check_unknown("upscale", unexpected, UPSCALE_PARAMS)
    model = models.get_model(model_id)
    if not model.has_upscaler:
        models.require(model, "upscale", "upscale")
    repeats = check_int("repeats", repeats, 1, MAX_UPSCALE_REPEATS)
    pixels = to_rgb_array("image", image)
    if max(pixels.shape[:2]) * model.upscale_factor**repeats > MAX_OUTPUT_SIDE:
        raise UnsupportedOperationError(f"repeats: {repeats} repeat(s) would exceed {MAX_OUTPUT_SIDE} pixels a side")
    guards.check_upscale(model, pixels, repeats)
    record = stored_record(bytes(image)) if isinstance(image, (bytes, bytearray)) else {}
    if record:
        record["upscaled"] = {"factor": model.upscale_factor**repeats, "repeats": repeats}
    job = UpscaleJob(model.model_id, {"repeats": repeats, "model": model.source})
    runner.submit(job, protocol.UPSCALE, {"pixels": pixels, "repeats": repeats, "record": record or None})
    return job


def cancel(*, model_id: str, **unexpected: Any) -> int:
    """Cancel every queued and running job of a model; returns how many were cancelled."""
    check_unknown("cancel", unexpected, ("model_id",))
    models.get_model(model_id)
    jobs = runner.jobs_for(model_id)
    for job in jobs:
        job.cancel()
    return len(jobs)
