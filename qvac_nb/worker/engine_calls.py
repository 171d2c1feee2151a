"""The only code that calls the engine: opening a model, generating, upscaling (runs in a worker).

Every function here takes plain, already validated data (the kernel checked it) and reports
progress through a `send_tick(step, total, elapsed_ms, phase, image_index, preview)` callable.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from .. import _engine, engine, families, loras, schema
from ..png import encode_png
from . import split_unet

PREVIEW_MIN_INTERVAL_S = 0.1  # at most ten latent previews a second are encoded and sent
SendTick = Callable[[int, int, float, str, int, "bytes | None"], None]
_COMPANION_ROLES = ("llm", "vae", "clip_l", "clip_g", "t5xxl", "taesd", "control_net")
# Benchmark-only, off by default: $QVAC_NB_TICK_PROBE=/path makes every diffusion progress callback append
# "perf_counter_ns phase step" to that file at its entry (benchmarks/run.py section 3 measures tick latency).
TICK_PROBE_ENV = "QVAC_NB_TICK_PROBE"
_tick_probe = open(os.environ[TICK_PROBE_ENV], "a", buffering=1) if os.environ.get(TICK_PROBE_ENV) else None  # noqa: SIM115


class OpenModel:
    """A loaded engine context and/or ESRGAN upscaler, as one worker holds it."""

    def __init__(self, family: str, context: Any = None, upscaler: Any = None) -> None:
        self.family = family
        self.context = context
        self.upscaler = upscaler
        self.upscaler_path: str | None = None  # the hires fix's 'model' upscaler reads the same file

    @property
    def upscale_factor(self) -> int:
        return int(self.upscaler.factor) if self.upscaler is not None else 0

    def close(self) -> None:
        for handle in (self.context, self.upscaler):
            if handle is not None:
                handle.close()
        self.context = self.upscaler = None


def threads(config: dict[str, Any]) -> int:
    return schema.resolve_threads(config.get("threads", -1))


def _load_job(on_tick: Callable[[str, int, int, float], None] | None, role: str) -> Any:
    job = _engine.Job()
    if on_tick is not None:
        start = time.perf_counter()
        job.on_progress = lambda step, total, _s, _p: on_tick(role, step, total, (time.perf_counter() - start) * 1000)
    return job


def _context_config(files: dict[str, str], role: str, config: dict[str, Any]) -> Any:
    cc = _engine.ContextConfig()
    setattr(cc, role, files[role])
    for key in _COMPANION_ROLES:
        if key in files:
            setattr(cc, key, files[key])
    # threads is always set: -1 (the default) means every physical core.
    fields = schema.engine_fields({"threads": -1, **config}, schema.MODEL_CONFIG, engine.enum_names())
    return schema.fill_engine_object(cc, fields)


def _open_upscaler(path: str, config: dict[str, Any], on_tick: Callable[..., None] | None) -> Any:
    up = config.get("upscaler") or {}
    own_threads = up.get("threads", -1)
    return _engine.Upscaler(
        path,
        schema.resolve_threads(own_threads) if own_threads != -1 else threads(config),
        up.get("tile_size", 128),
        bool(up.get("offload_params_to_cpu") or config.get("offload_to_cpu", False)),
        bool(up.get("direct", False)),
        _load_job(on_tick, "upscaler"),
    )


# device='cpu': what hides each GPU backend from ggml. The engine always picks a GPU as its main
# device when one is visible (it has no backend choice), so the worker, which holds this one model,
# hides them before the engine first lists its devices. Metal has no such switch.
HIDE_GPUS_ENV = {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": "", "GGML_VK_VISIBLE_DEVICES": ""}


def keep_on_cpu(config: dict[str, Any]) -> dict[str, str]:
    """Hide the GPUs from this worker's engine when the model is loaded with device='cpu'; returns what was set."""
    if config.get("device") != "cpu":
        return {}
    os.environ.update(HIDE_GPUS_ENV)
    return dict(HIDE_GPUS_ENV)


def open_model(spec: dict[str, Any], on_tick: Callable[[str, int, int, float], None] | None) -> OpenModel:
    """Load what `spec` names: {"mode", "family", "role", "files": {role: path}, "config"}."""
    files, config = spec["files"], spec["config"]
    keep_on_cpu(config)
    if spec["mode"] == "upscale":
        return OpenModel("esrgan", upscaler=_open_upscaler(files["upscaler"], config, on_tick))
    cc = _context_config(files, spec["role"], config)
    if split_unet.needs_marker(spec["family"], spec["role"], files):
        cc.model = str(split_unet.marker_file())  # lets the engine see an SDXL U-Net-only file as SDXL
    context = _engine.Context(cc, _load_job(on_tick, "model"))
    model = OpenModel(spec["family"], context=context)
    model.upscaler_path = files.get("upscaler")
    if "upscaler" in files:
        try:
            model.upscaler = _open_upscaler(files["upscaler"], config, on_tick)
        except BaseException:
            context.close()  # don't keep the diffusion model loaded but unreachable
            raise
    return model


def loaded_facts(model: OpenModel, load_ms: float) -> dict[str, Any]:
    sampler = model.context.default_sample_method() if model.context is not None else None
    return {
        "default_sampler": sampler,
        "default_scheduler": model.context.default_scheduler(sampler) if model.context is not None else None,
        "upscale_factor": model.upscale_factor,
        "load_ms": load_ms,
    }


def _request(request: Any, family: str, upscaler_path: str | None = None) -> Any:
    """The engine's Request for a validated DiffusionRequest (every field mapped by the schema)."""
    req = schema.fill_engine_object(_engine.Request(), schema.engine_fields(request))
    init = request.init_image
    if init is not None:
        if families.get(family).img2img == "reference":
            req.ref_images = [init]  # in-context conditioning
        else:
            req.init_image = _fit(init, request.width, request.height)
    _set_loras(req, request)
    _image_inputs(req, request, upscaler_path)
    return req


def _set_loras(req: Any, request: Any) -> None:
    """The engine's loras/lora_count: each LoRA file with its weight (applied for this generation only)."""
    req.loras = loras.engine_pairs(getattr(request, "lora", None))


def _image_inputs(req: Any, request: Any, upscaler_path: str | None) -> None:
    """Mask, reference images, ControlNet image and the hires fix's upscaler file."""
    if request.mask_image is not None:
        req.mask = _fit(request.mask_image, request.width, request.height)  # aligned with the stretched init image
    if request.init_images is not None:
        req.ref_images = list(request.init_images)
    if request.control_image is not None:
        req.control_image = _fit(request.control_image, request.width, request.height)
    if request.hires is not None and request.hires["upscaler"] == "model" and upscaler_path:
        req.hires_model_path = upscaler_path


def _fit(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """SDEdit encodes the init image at the output size (masks and control images follow it)."""
    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.LANCZOS))


def _preview_png(width: int, height: int, channels: int, data: bytes) -> bytes:
    img = Image.frombytes("RGB" if channels == 3 else "RGBA", (width, height), data)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _progress_hooks(engine_job: Any, batch: int, preview: bool, send_tick: SendTick) -> dict[str, Any]:
    state: dict[str, Any] = {"last_preview": 0.0, "preview": None, "sample_total": 0, "sample_ticks": 0}
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


def run_diffusion(model: OpenModel, request: dict[str, Any], attach: Callable[[Any], None],
                  send_tick: SendTick) -> tuple[list[bytes], dict[str, Any]]:
    """Generate (and upscale when asked); returns the PNGs and the worker-side stats."""
    params, images = request["params"], schema.image_count(request["params"])
    engine_job = _engine.Job()
    progress = _progress_hooks(engine_job, images, request["preview"], send_tick)
    attach(engine_job)
    t0 = time.perf_counter()
    pixels = model.context.generate(_request(request["request"], model.family, model.upscaler_path), engine_job)
    t_generated = time.perf_counter()
    generation_ms = (t_generated - t0) * 1000
    for _ in range(params["upscale_repeats"]):
        pixels = [_upscale_once(model, p, i, attach, send_tick) for i, p in enumerate(pixels)]
    outputs = [encode_png(p, schema.image_record(params, i)) for i, p in enumerate(pixels)]
    # Sampling steps only: upscaler and VAE-tile ticks are not steps.
    steps = progress["sample_ticks"] or progress["sample_total"]
    stats = _stats(pixels, t0, generation_ms, steps, images, params["seed"])
    stats.update(phase_times(engine_job.phase_marks, (time.perf_counter() - t_generated) * 1000, steps))
    return outputs, stats


def run_upscale(model: OpenModel, request: dict[str, Any], attach: Callable[[Any], None],
                send_tick: SendTick) -> tuple[list[bytes], dict[str, Any]]:
    """Upscale one image `repeats` times; the PNG keeps the source's record when it had one."""
    out, record, repeats = request["pixels"], request["record"], request["repeats"]
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = _upscale_once(model, out, 0, attach, send_tick)
    upscale_ms = (time.perf_counter() - t0) * 1000
    png = encode_png(out, record)
    return [png], _stats([out], t0, upscale_ms, 0, repeats, int((record or {}).get("seed", -1)))
