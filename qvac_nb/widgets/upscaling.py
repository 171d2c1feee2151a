"""Upscaling a gallery image with the Studio model's upscaler.

A model loaded with mode="upscale" goes through `qvac_nb.upscale`. A diffusion model loaded
with a paired upscaler (model_config={"upscaler": ...}) has no public call that upscales an
existing image, so this runs `model.upscaler.upscale` itself, as an `UpscaleJob` on the
API's runner (one engine call at a time, under the model's lock, cancellable).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import _engine, models, runner
from ..errors import CancelledError, EngineError, UnsupportedOperationError
from ..generation import MAX_OUTPUT_SIDE, upscale
from ..images import to_rgb_array
from ..jobs import ProgressTick, Stats, UpscaleJob
from ..png import encode_png
from ..validation import check_int
from .store import stored_record


def can_upscale(model_id: str | None) -> bool:
    if not model_id:
        return False
    try:
        return models.get_model(model_id).upscaler is not None
    except Exception:  # noqa: BLE001 - an unloaded model simply cannot
        return False


def upscale_image(model_id: str, png: bytes, repeats: int = 1) -> UpscaleJob:
    """Queue an upscale of `png` by the model's own upscaler; the output keeps the source's parameters."""
    model = models.get_model(model_id)
    if model.mode == "upscale":
        return upscale(model_id=model_id, image=png, repeats=repeats)
    if model.upscaler is None:
        raise UnsupportedOperationError(
            f"upscale: model '{model_id}' has no upscaler; "
            "load it with model_config={'upscaler': {'model_src': ...}}"
        )
    repeats = check_int("repeats", repeats, 1, 3)
    pixels = to_rgb_array("image", png)
    if max(pixels.shape[:2]) * model.upscale_factor**repeats > MAX_OUTPUT_SIDE:
        raise UnsupportedOperationError(f"repeats: {repeats} repeat(s) would exceed {MAX_OUTPUT_SIDE} pixels a side")
    record = stored_record(png)
    if record:
        record["upscaled"] = {"factor": model.upscale_factor**repeats, "repeats": repeats}
    job = UpscaleJob(model.model_id, {"repeats": repeats, "model": model.source})
    runner.submit(job, lambda: _run(job, model, pixels, record or None))
    return job


def _run(job: UpscaleJob, model: models.LoadedModel, pixels: np.ndarray, record: dict[str, Any] | None) -> None:
    if job.cancelled:
        job._finish(None, None, job._cancelled_error())
        return
    try:
        with model.lock:
            if model.upscaler is None:
                raise CancelledError(f"model '{model.model_id}' was unloaded before the job ran")
            t0 = time.perf_counter()
            for _ in range(job.params["repeats"]):
                pixels = _once(job, model, pixels, t0)
            upscale_ms = (time.perf_counter() - t0) * 1000
        png = encode_png(pixels, record)
        now = time.perf_counter()
        h, w = pixels.shape[:2]
        stats = Stats(model.load_ms, upscale_ms, (now - t0) * 1000, (now - job.created) * 1000, 0,
                      job.params["repeats"], 1, w * h, w, h, int((record or {}).get("seed", -1)))
        job._finish([png], stats, None)
    except _engine.Cancelled:
        job._finish(None, None, job._cancelled_error())
    except _engine.EngineError as exc:
        job._finish(None, None, EngineError(str(exc)))
    except BaseException as exc:
        job._finish(None, None, exc)


def _once(job: UpscaleJob, model: models.LoadedModel, pixels: np.ndarray, t0: float) -> np.ndarray:
    engine_job = _engine.Job()
    engine_job.on_progress = lambda step, total, _secs, _phase: job.progress_stream.push(
        ProgressTick(step, total, (time.perf_counter() - t0) * 1000, "upscale")
    )
    job._attach(engine_job)
    return model.upscaler.upscale(pixels, model.upscale_factor, engine_job)
