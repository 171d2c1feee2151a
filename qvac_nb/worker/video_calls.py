"""The engine call that makes a video (run in a worker): frames from the engine, then the file.

The worker sends back two byte messages: the encoded file (MP4 or WebP, chosen by the caller) and the
engine's frames as raw RGB (frames x height x width x 3), so the kernel has the exact pixels without
decoding its own file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _engine, engine, loras, video_files
from . import protocol
from .engine_calls import SendTick, _fit, _progress_hooks, _stats, phase_times
from .opening import OpenModel

if TYPE_CHECKING:
    from ..video_schema import VideoRequest


def _engine_request(request: VideoRequest) -> Any:
    req = _engine.VideoRequest()
    req.clip_skip = -1  # as for images (the engine's video init leaves 0); UMT5 does not read it
    for attr, value in request.engine_fields(engine.enum_names()).items():
        setattr(req, attr, value)
    req.loras = loras.engine_pairs(request.lora)
    if request.init_image is not None:
        req.init_image = _fit(request.init_image, request.width, request.height)
    if request.end_image is not None:
        req.end_image = _fit(request.end_image, request.width, request.height)
    if request.control_frames is not None:
        req.control_frames = [_fit(f, request.width, request.height) for f in request.control_frames]
    return req


def run_video(model: OpenModel, work: protocol.VideoWork, attach: Callable[[Any], None],
              send_tick: SendTick) -> tuple[list[bytes], dict[str, Any]]:
    """Make one video; returns [file, raw frames] and the worker-side stats."""
    request, record = work.request, work.record
    engine_job = _engine.Job()
    progress = _progress_hooks(engine_job, 1, request.preview, send_tick)
    attach(engine_job)
    t0 = time.perf_counter()
    frames = model.context.generate_video(_engine_request(request), engine_job)
    t_generated = time.perf_counter()
    array = np.stack(frames) if frames else np.zeros((0, request.height, request.width, 3), np.uint8)
    record = {**record, "video_frames": int(array.shape[0])}  # the count the engine made
    data = video_files.encode(array, request.fps, request.output_format, record)
    steps = progress["sample_ticks"] or progress["sample_total"]
    stats = _stats(list(array[:1]), t0, (t_generated - t0) * 1000, steps, 1, request.seed)
    stats.update(total_images=0, total_frames=int(array.shape[0]), fps=request.fps,
                 total_pixels=int(array.shape[0] * array.shape[1] * array.shape[2]))
    stats.update(phase_times(engine_job.phase_marks, (time.perf_counter() - t_generated) * 1000, steps))
    return [data, array.tobytes()], stats
