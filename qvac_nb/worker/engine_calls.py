"""The engine calls that generate and upscale (run in a worker; opening a model is in opening.py).

Every function here takes plain, already validated data (the kernel checked it) and reports
progress through a `send_tick(step, total, elapsed_ms, phase, image_index, preview)` callable.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .. import _engine, engine_mapping, families, loras, records
from ..png import encode_png
from . import protocol
from .opening import OpenModel

if TYPE_CHECKING:  # the worker unpickles requests; it need not import their module up front
    from ..request_types import DiffusionRequest

PREVIEW_MIN_INTERVAL_S = 0.1  # at most ten latent previews a second are encoded and sent
SendTick = Callable[[int, int, float, str, int, "bytes | None"], None]
# Benchmark-only, off by default: $QVAC_NB_TICK_PROBE=/path makes every diffusion progress callback append
# "perf_counter_ns phase step" to that file at its entry (benchmarks/run.py section 3 measures tick latency).
TICK_PROBE_ENV = "QVAC_NB_TICK_PROBE"
_tick_probe = open(os.environ[TICK_PROBE_ENV], "a", buffering=1) if os.environ.get(TICK_PROBE_ENV) else None  # noqa: SIM115


def _request(request: DiffusionRequest, family: str, upscaler_path: str | None = None,
             init_as_reference: bool | None = None) -> Any:
    """The engine's Request for a validated DiffusionRequest (every field mapped by the schema).

    `init_as_reference` is the kernel's word on where init_image goes for this model's variant
    (an instruct-pix2pix U-Net reads it as its reference image); None: as the family says.
    """
    req = engine_mapping.fill_engine_object(_engine.Request(), engine_mapping.engine_fields(request))
    init = request.init_image
    if init is not None:
        if families.get(family).init_as_reference if init_as_reference is None else init_as_reference:
            # In-context conditioning (FLUX.2), the image to edit (FLUX.1 Kontext, instruct-pix2pix).
            req.ref_images = [init]
        else:
            req.init_image = _fit(init, request.width, request.height)
    _set_loras(req, request)
    _image_inputs(req, request, upscaler_path)
    return req


def _set_loras(req: Any, request: DiffusionRequest) -> None:
    """The engine's loras/lora_count: each LoRA file with its weight (applied for this generation only)."""
    req.loras = loras.engine_pairs(getattr(request, "lora", None))


def _image_inputs(req: Any, request: DiffusionRequest, upscaler_path: str | None) -> None:
    """Mask, reference images, PhotoMaker ID images, ControlNet image and the hires fix's upscaler file."""
    if request.mask_image is not None:
        req.mask = _fit(request.mask_image, request.width, request.height)  # aligned with the stretched init image
    if request.init_images is not None:
        req.ref_images = list(request.init_images)
    if request.pm_id_images is not None:
        # As given: the engine crops and resizes each to its vision tower's 224x224 itself.
        req.pm_id_images = list(request.pm_id_images)
    if request.pm_id_embed_path is not None:
        req.pm_id_embed_path = request.pm_id_embed_path
    if request.control_image is not None:
        req.control_image = _fit(request.control_image, request.width, request.height)
    if request.hires is not None and request.hires["upscaler"] == "model" and upscaler_path:
        req.hires_model_path = upscaler_path


def _fit(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """SDEdit encodes the init image at the output size (masks and control images follow it)."""
    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS))


def _preview_png(width: int, height: int, channels: int, data: bytes) -> bytes:
    img = Image.frombytes("RGB" if channels == 3 else "RGBA", (width, height), data)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _progress_hooks(engine_job: Any, batch: int, preview: bool, send_tick: SendTick) -> dict[str, Any]:
    state: dict[str, Any] = {"last_preview": 0.0, "preview": None, "sample_total": 0, "sample_ticks": 0,
                             "steps_by_image": [0] * batch}
    start = time.perf_counter()

    def on_progress(step: int, total: int, _secs: float, phase: str) -> None:
        if _tick_probe is not None:
            _tick_probe.write(f"{time.perf_counter_ns()} {phase} {step}\n")
        if step <= 0 or total <= 0:
            return
        index = engine_job.batch_index if phase == "sample" else 0
        done = index * total + step
        shown = "upscale" if phase == "upscale" else "sample" if phase in ("sample", "encode") else phase
        if shown == "sample":
            state["sample_total"] = total * batch
        if phase == "sample":  # one per sampling step, hires second pass included (not VAE-tile ticks)
            state["sample_ticks"] += 1
            if 0 <= index < batch:
                state["steps_by_image"][index] += 1
        elapsed = (time.perf_counter() - start) * 1000
        send_tick(done, total * batch, elapsed, shown, index, state.pop("preview", None))
        if phase == "sample" and step == total:
            send_tick(done, total * batch, elapsed, "decode", index, None)

    def on_preview(_step: int, width: int, height: int, channels: int, data: bytes) -> None:
        now = time.perf_counter()
        if now - state["last_preview"] >= PREVIEW_MIN_INTERVAL_S:
            state["last_preview"] = now
            state["preview"] = _preview_png(width, height, channels, data)

    engine_job.on_progress = on_progress
    if preview:
        engine_job.on_preview = on_preview
    return state


def _upscale_once(model: OpenModel, pixels: np.ndarray, index: int, attach: Callable[[Any], None],
                  send_tick: SendTick) -> np.ndarray:
    engine_job = _engine.Job()
    start = time.perf_counter()
    engine_job.on_progress = lambda step, total, _s, _p: send_tick(
        step, total, (time.perf_counter() - start) * 1000, "upscale", index, None
    )
    attach(engine_job)
    out = model.upscaler.upscale(pixels, model.upscale_factor, engine_job)
    # A one-tile image gets no tile ticks from the engine; every pass ends with one of ours.
    send_tick(1, 1, (time.perf_counter() - start) * 1000, "upscale", index, None)
    return out


def phase_times(marks: list[tuple[str, float]], post_ms: float, steps: int) -> dict[str, Any]:
    """Per-phase stats from the engine job's phase marks: (phase, ms since the call started), 'end' last."""
    spent: dict[str, float] = {}
    for (phase, at), (_next, until) in zip(marks, marks[1:], strict=False):
        spent[phase] = spent.get(phase, 0.0) + until - at
    denoising = spent.get("sample", 0.0)
    return {
        "conditioning_ms": spent.get("encode", 0.0),  # text encoders and VAE-encoding input images
        "denoising_ms": denoising,
        "vae_decode_ms": spent.get("decode", 0.0),
        "postprocess_ms": post_ms,  # paired upscaling and PNG encoding
        "steps_per_second": steps / (denoising / 1000) if denoising > 0 else 0.0,
    }


def image_spans(marks: list[tuple[str, float]], images: int) -> tuple[list[float], list[float]]:
    """Each image's sampling and decoding time (ms) from the engine job's phase marks.

    The engine samples the batch's images one after the other (a mark as each starts; a hires fix samples
    them all again in the same order), then decodes the latents one by one (a mark as each is done). When
    the marks do not have that shape, the phase's total is shared equally.
    """
    spans = [(phase, until - at) for (phase, at), (_next, until) in zip(marks, marks[1:], strict=False)]
    runs: list[float] = []  # consecutive sampling spans: one image's pass
    previous = ""
    for phase, spent in spans:
        if phase == "sample":
            if previous == "sample":
                runs[-1] += spent
            else:
                runs.append(spent)
        previous = phase
    decodes = [spent for phase, spent in spans if phase == "decode"]
    if images > 0 and len(runs) in (images, 2 * images):
        sampling = [sum(runs[i::images]) for i in range(images)]  # the hires pass adds its second run
    else:
        sampling = [sum(runs) / images] * images if images else []
    if images > 0 and len(decodes) == images + 1:  # the last span runs from the last latent's end to the end
        decoding = decodes[:images]
    else:
        decoding = [sum(decodes) / images] * images if images else []
    return sampling, decoding


def _image_stats(pngs: list[bytes], pixels: list[np.ndarray], seeds: list[int], steps: list[int],
                 sampling: list[float], decoding: list[float], post_ms: list[float]) -> list[dict[str, Any]]:
    return [{"index": i, "seed": seeds[i], "width": int(pixels[i].shape[1]), "height": int(pixels[i].shape[0]),
             "steps": steps[i], "denoising_ms": sampling[i], "vae_decode_ms": decoding[i],
             "postprocess_ms": post_ms[i]} for i in range(len(pngs))]


def _stats(pixels: list[np.ndarray], t0: float, engine_ms: float, steps: int, generations: int,
           seed: int) -> dict[str, Any]:
    h, w = pixels[0].shape[:2] if pixels else (0, 0)
    return {
        "generation_ms": engine_ms,
        "total_generation_ms": (time.perf_counter() - t0) * 1000,
        "total_steps": steps,
        "total_generations": generations,
        "total_images": len(pixels),
        "total_pixels": w * h * len(pixels),
        "width": w,
        "height": h,
        "seed": seed,
    }


def run_diffusion(model: OpenModel, work: protocol.DiffusionWork, attach: Callable[[Any], None],
                  send_tick: SendTick) -> tuple[list[bytes], dict[str, Any]]:
    """Generate (and upscale when asked); returns the PNGs and the worker-side stats."""
    request, images = work.request, work.request.batch_count
    engine_job = _engine.Job()
    progress = _progress_hooks(engine_job, images, request.preview, send_tick)
    attach(engine_job)
    t0 = time.perf_counter()
    req = _request(request, model.family, model.upscaler_path, work.init_as_reference)
    pixels = model.context.generate(req, engine_job)
    t_generated = time.perf_counter()
    generation_ms = (t_generated - t0) * 1000
    outputs: list[bytes] = []
    post_ms: list[float] = []
    records_made = [records.image_record(work.record, i) for i in range(len(pixels))]
    for i, image in enumerate(pixels):
        started = time.perf_counter()
        for _ in range(request.upscale):
            image = _upscale_once(model, image, i, attach, send_tick)
        pixels[i] = image
        outputs.append(encode_png(image, records_made[i]))
        post_ms.append((time.perf_counter() - started) * 1000)
    # Sampling steps only: upscaler and VAE-tile ticks are not steps.
    steps = progress["sample_ticks"] or progress["sample_total"]
    stats = _stats(pixels, t0, generation_ms, steps, images, request.seed)
    marks = engine_job.phase_marks
    stats.update(phase_times(marks, (time.perf_counter() - t_generated) * 1000, steps))
    sampling, decoding = image_spans(marks, len(pixels))
    seeds = [int((record or {}).get("seed", request.seed)) for record in records_made]
    steps_by_image = (progress["steps_by_image"] + [0] * len(pixels))[:len(pixels)]
    stats["images"] = _image_stats(outputs, pixels, seeds, steps_by_image, sampling, decoding, post_ms)
    return outputs, stats


def run_upscale(model: OpenModel, work: protocol.UpscaleWork, attach: Callable[[Any], None],
                send_tick: SendTick) -> tuple[list[bytes], dict[str, Any]]:
    """Upscale one image `repeats` times; the PNG keeps the source's record when it had one."""
    out, record, repeats = work.pixels, work.record, work.repeats
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = _upscale_once(model, out, 0, attach, send_tick)
    upscale_ms = (time.perf_counter() - t0) * 1000
    png = encode_png(out, record)
    seed = int((record or {}).get("seed", -1))
    stats = _stats([out], t0, upscale_ms, 0, repeats, seed)
    stats["images"] = _image_stats([png], [out], [seed], [0], [0.0], [0.0], [stats["total_generation_ms"]])
    return [png], stats
