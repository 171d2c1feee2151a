"""diffusion(), upscale() and cancel(): validate, queue a job, run it on the engine."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from . import _engine, engine, guards, models, runner
from .cache_presets import apply_cache_preset
from .errors import CancelledError, EngineError, UnsupportedOperationError
from .images import to_rgb_array
from .jobs import DiffusionJob, Stats, UpscaleJob
from .png import encode_png, stored_record
from .progress_stream import ProgressTick
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

MAX_SEED = 2**63 - 1
MAX_OUTPUT_SIDE = 16384
PREVIEW_MIN_INTERVAL_S = 0.1  # at most ten latent previews a second reach Python


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
    if repeats and model.upscaler is None:
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
    runner.submit(job, lambda: _run_diffusion(job, model, init, preview))
    return job


def _request(params: dict[str, Any], model: models.LoadedModel, init: np.ndarray | None) -> Any:
    names = engine.enum_names()
    req = _engine.Request()
    req.prompt = params["prompt"]
    req.negative_prompt = params["negative_prompt"]
    req.width, req.height = params["width"], params["height"]
    req.steps = params["steps"]
    req.cfg_scale = params["cfg_scale"]
    req.guidance = params["guidance"]
    req.sample_method = names["sample_method"].index(params["sampling_method"])
    req.scheduler = names["scheduler"].index(params["scheduler"])
    req.seed = params["seed"]
    req.batch_count = params["batch_count"]
    req.vae_tiling = params["vae_tiling"]
    req.strength = params["strength"]
    req.clip_skip = params["clip_skip"]
    if params["eta"] is not None:
        req.eta = params["eta"]
    if params["cache_preset"]:
        apply_cache_preset(req, params["cache_preset"], model.family)
    if init is not None:
        if model.family == "flux2":
            req.ref_images = [init]  # in-context conditioning
        else:
            req.init_image = _fit(init, params["width"], params["height"])
    return req


def _fit(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """SDEdit encodes the init image at the output size."""
    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.LANCZOS))


def _preview_png(width: int, height: int, channels: int, data: bytes) -> bytes:
    img = Image.frombytes("RGB" if channels == 3 else "RGBA", (width, height), data)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _progress_hooks(job: DiffusionJob | UpscaleJob, batch: int, engine_job: Any, preview: bool) -> None:
    state = {"last_preview": 0.0, "preview": None}
    start = time.perf_counter()

    def on_progress(step: int, total: int, _secs: float, phase: str) -> None:
        if step <= 0 or total <= 0:
            return
        index = engine_job.batch_index if phase == "sample" else 0
        done = index * total + step
        shown_phase = "upscale" if phase == "upscale" else "sample" if phase in ("sample", "encode") else phase
        tick = ProgressTick(
            done, total * batch, (time.perf_counter() - start) * 1000, shown_phase, index, state.pop("preview", None)
        )
        job.progress_stream.push(tick)
        if phase == "sample" and step == total:
            job.progress_stream.push(ProgressTick(done, total * batch, tick.elapsed_ms, "decode", index))

    def on_preview(_step: int, width: int, height: int, channels: int, data: bytes) -> None:
        now = time.perf_counter()
        if now - state["last_preview"] >= PREVIEW_MIN_INTERVAL_S:
            state["last_preview"] = now
            state["preview"] = _preview_png(width, height, channels, data)

    engine_job.on_progress = on_progress
    if preview:
        engine_job.on_preview = on_preview


def _settle(job: DiffusionJob | UpscaleJob, work: Callable[[], tuple[list[bytes], Stats]]) -> None:
    """Run a job's engine work and report its outcome; engine errors become QvacErrors."""
    if job.cancelled:
        job._finish(None, None, job._cancelled_error())
        return
    try:
        outputs, stats = work()
        job._finish(outputs, stats, None)
    except _engine.Cancelled:
        job._finish(None, None, job._cancelled_error())
    except _engine.EngineError as exc:
        job._finish(None, None, EngineError(str(exc)))
    except BaseException as exc:  # handed to whoever waits on the job
        job._finish(None, None, exc)


def _run_diffusion(job: DiffusionJob, model: models.LoadedModel, init: np.ndarray | None, preview: bool) -> None:
    params = job.params
    engine_job = _engine.Job()
    _progress_hooks(job, params["batch_count"], engine_job, preview)

    def work() -> tuple[list[bytes], Stats]:
        job._attach(engine_job)
        with model.lock:
            if model.context is None:
                raise CancelledError(f"model '{model.model_id}' was unloaded before the job ran")
            t0 = time.perf_counter()
            pixels = model.context.generate(_request(params, model, init), engine_job)
            generation_ms = (time.perf_counter() - t0) * 1000
            for _ in range(params["upscale_repeats"]):
                pixels = [_upscale_once(job, model, p, i) for i, p in enumerate(pixels)]
        outputs = []
        for i, p in enumerate(pixels):
            record = {k: v for k, v in params.items() if k != "upscale_repeats"}
            record.update(seed=params["seed"] + i, batch_count=1)
            outputs.append(encode_png(p, record))
        ticks = job.progress_stream.ticks
        return outputs, _stats(
            job,
            model,
            pixels,
            t0,
            generation_ms,
            ticks[-1].total_steps if ticks else 0,
            params["batch_count"],
            params["seed"],
        )

    _settle(job, work)


def _stats(
    job: DiffusionJob | UpscaleJob,
    model: models.LoadedModel,
    pixels: list[np.ndarray],
    t0: float,
    engine_ms: float,
    steps: int,
    generations: int,
    seed: int,
) -> Stats:
    h, w = pixels[0].shape[:2] if pixels else (0, 0)
    now = time.perf_counter()
    return Stats(
        model_load_ms=model.load_ms,
        generation_ms=engine_ms,
        total_generation_ms=(now - t0) * 1000,
        total_wall_ms=(now - job.created) * 1000,
        total_steps=steps,
        total_generations=generations,
        total_images=len(pixels),
        total_pixels=w * h * len(pixels),
        width=w,
        height=h,
        seed=seed,
    )


def _upscale_once(job: DiffusionJob | UpscaleJob, model: models.LoadedModel, pixels: np.ndarray, index: int) -> Any:
    engine_job = _engine.Job()
    start = time.perf_counter()
    engine_job.on_progress = lambda step, total, _s, _p: job.progress_stream.push(
        ProgressTick(step, total, (time.perf_counter() - start) * 1000, "upscale", index)
    )
    job._attach(engine_job)
    out = model.upscaler.upscale(pixels, model.upscale_factor, engine_job)
    # A one-tile image gets no tile ticks from the engine; every pass ends with one of ours.
    job.progress_stream.push(ProgressTick(1, 1, (time.perf_counter() - start) * 1000, "upscale", index))
    return out


UPSCALE_PARAMS = ("model_id", "image", "repeats")


def upscale(*, model_id: str, image: Any, repeats: int = 1, **unexpected: Any) -> UpscaleJob:
    """Queue an ESRGAN upscale of `image` (PNG/JPEG bytes, PIL, array or path).

    Works on a model loaded with mode="upscale" and on a diffusion model loaded with a
    paired upscaler. A PNG that qvac_nb wrote keeps its parameters in the output.
    """
    check_unknown("upscale", unexpected, UPSCALE_PARAMS)
    model = models.get_model(model_id)
    if model.upscaler is None:
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
    runner.submit(job, lambda: _run_upscale(job, model, pixels, record or None))
    return job


def _run_upscale(job: UpscaleJob, model: models.LoadedModel, pixels: np.ndarray, record: dict[str, Any] | None) -> None:
    def work() -> tuple[list[bytes], Stats]:
        out = pixels
        with model.lock:
            if model.upscaler is None:
                raise CancelledError(f"model '{model.model_id}' was unloaded before the job ran")
            t0 = time.perf_counter()
            for _ in range(job.params["repeats"]):
                out = _upscale_once(job, model, out, 0)
            upscale_ms = (time.perf_counter() - t0) * 1000
        png = encode_png(out, record)
        return [png], _stats(
            job, model, [out], t0, upscale_ms, 0, job.params["repeats"], int((record or {}).get("seed", -1))
        )

    _settle(job, work)


def cancel(*, model_id: str, **unexpected: Any) -> int:
    """Cancel every queued and running job of a model; returns how many were cancelled."""
    check_unknown("cancel", unexpected, ("model_id",))
    models.get_model(model_id)
    jobs = runner.jobs_for(model_id)
    for job in jobs:
        job.cancel()
    return len(jobs)
