"""diffusion(), upscale() and cancel(): validate, queue a job, run it on the engine."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from . import _engine, engine, families, guards, models, runner, schema
from .errors import CancelledError, EngineError, UnsupportedOperationError
from .images import to_rgb_array
from .jobs import DiffusionJob, Stats, UpscaleJob
from .png import encode_png, stored_record
from .progress_stream import ProgressTick
from .validation import check_unknown

MAX_OUTPUT_SIDE = 16384
PREVIEW_MIN_INTERVAL_S = 0.1  # at most ten latent previews a second reach Python


def diffusion(*, model_id: str, prompt: str, **params: Any) -> DiffusionJob:
    """Queue a text-to-image (or image-to-image) generation and return its job at once."""
    request = validate_diffusion(model_id=model_id, prompt=prompt, **params)
    model = models.get_model(model_id)
    preview = request.preview
    job = DiffusionJob(model.model_id, schema.record(request))
    runner.submit(job, lambda: _run_diffusion(job, model, request, preview))
    return job


def validate_diffusion(**given: Any) -> Any:
    """A DiffusionRequest for `given`: every parameter checked and defaults resolved for the model's family."""
    folded = schema.fold_aliases("diffusion", given, schema.DIFFUSION)
    for name in ("model_id", "prompt"):
        if name not in folded:
            raise TypeError(f"diffusion() missing required keyword-only argument: '{name}'")
    model = models.get_model(folded["model_id"])
    models.require(model, "diffusion", "diffusion")
    values = schema.validate(schema.DIFFUSION, folded, where="diffusion", names=engine.enum_names(),
                             family=model.family)
    repeats = values["upscale"]
    if repeats and model.upscaler is None:
        raise UnsupportedOperationError(
            "upscale: this model was loaded without an upscaler; pass "
            "model_config={'upscaler': {'model_src': ...}} to load_model"
        )
    factor = model.upscale_factor**repeats if repeats else 1
    if max(values["width"], values["height"]) * factor > MAX_OUTPUT_SIDE:
        raise UnsupportedOperationError(f"upscale: {repeats} repeat(s) would exceed {MAX_OUTPUT_SIDE} pixels a side")
    family = families.get(model.family)
    init = None
    if values["init_image"] is not None:
        init = to_rgb_array("init_image", values["init_image"])
        if family.img2img == "reference" and model.prediction != "flux2_flow":
            raise UnsupportedOperationError(
                f"init_image: {family.label} image-to-image (in-context conditioning) needs the model loaded with "
                "model_config={'prediction': 'flux2_flow'}"
            )
    values["init_image"] = init
    if values["seed"] == -1:
        values["seed"] = random.randrange(0, 2**31)
    for p in schema.DIFFUSION:
        if p.model_default and values[p.name] is None:
            values[p.name] = getattr(model, p.model_default)  # the sampler/scheduler the engine picked for it
    request = schema.DiffusionRequest(**values, family=model.family, model=model.source)
    guards.check_diffusion(model, schema.record(request), init)
    return request


def _request(request: Any, model: models.LoadedModel) -> Any:
    req = schema.fill_engine_object(_engine.Request(), schema.engine_fields(request))
    init = request.init_image
    if init is not None:
        if families.get(model.family).img2img == "reference":
            req.ref_images = [init]  # in-context conditioning
        else:
            req.init_image = _fit(init, request.width, request.height)
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


def _run_diffusion(job: DiffusionJob, model: models.LoadedModel, request: Any, preview: bool) -> None:
    params = job.params
    engine_job = _engine.Job()
    _progress_hooks(job, schema.image_count(params), engine_job, preview)

    def work() -> tuple[list[bytes], Stats]:
        job._attach(engine_job)
        with model.lock:
            if model.context is None:
                raise CancelledError(f"model '{model.model_id}' was unloaded before the job ran")
            t0 = time.perf_counter()
            pixels = model.context.generate(_request(request, model), engine_job)
            generation_ms = (time.perf_counter() - t0) * 1000
            for _ in range(params["upscale_repeats"]):
                pixels = [_upscale_once(job, model, p, i) for i, p in enumerate(pixels)]
        outputs = []
        for i, p in enumerate(pixels):
            outputs.append(encode_png(p, schema.image_record(params, i)))
        ticks = job.progress_stream.ticks
        return outputs, _stats(
            job,
            model,
            pixels,
            t0,
            generation_ms,
            ticks[-1].total_steps if ticks else 0,
            schema.image_count(params),
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


def upscale(*, model_id: str, image: Any, **params: Any) -> UpscaleJob:
    """Queue an ESRGAN upscale of `image` (PNG/JPEG bytes, PIL, array or path)."""
    given = schema.fold_aliases("upscale", {"model_id": model_id, "image": image, **params}, schema.UPSCALE)
    model = models.get_model(model_id)
    if model.upscaler is None:
        models.require(model, "upscale", "upscale")
    values = schema.validate(schema.UPSCALE, given, where="upscale")
    request = schema.UpscaleRequest(**{**values, "image": to_rgb_array("image", image)})
    repeats, pixels = request.repeats, request.image
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


# The real reference: signatures and numpy-style docstrings generated from the schema.
diffusion.__signature__ = schema.signature(schema.DIFFUSION, returns=DiffusionJob)  # type: ignore[attr-defined]
diffusion.__doc__ = schema.docstring(
    "Queue a text-to-image (or image-to-image) generation and return its job at once.\n\n"
    "The job's outputs are PNGs that carry their parameters (see read_parameters).",
    schema.DIFFUSION, "DiffusionJob\n    Progress stream, outputs (PNG bytes), stats, cancel().",
)
upscale.__signature__ = schema.signature(schema.UPSCALE, returns=UpscaleJob)  # type: ignore[attr-defined]
upscale.__doc__ = schema.docstring(
    "Queue an ESRGAN upscale of `image` and return its job at once.\n\n"
    "Works on a model loaded with mode='upscale' and on a diffusion model loaded with a paired upscaler.",
    schema.UPSCALE, "UpscaleJob\n    Its output is one PNG.",
)
