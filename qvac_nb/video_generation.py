"""video(): validate a video request, queue it on the model's worker, and hand back a VideoJob.

A video model (Wan 2.1 / 2.2) loads with `model_config={"mode": "video", ...}`; its job streams
progress like an image job (sampling steps, then decoding) and gives one `Video`: the MP4 or WebP
file's bytes, with the engine's frames and the parameters beside them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any, get_type_hints

import numpy as np
from typing_extensions import Unpack

from . import docstrings, engine, families, models, runner
from .checks import guards, tables
from .errors import InvalidParameterError, InvalidTypeError, UnsupportedOperationError
from .generation import shared_model_name
from .images import to_rgb_array
from .jobs import Job
from .loaded_model import LoadedModel
from .modelfiles.reading import inspect_file
from .request_types import VideoKwargs
from .video_files import Video
from .video_schema import VIDEO, VideoRequest, frames_made
from .worker import protocol

log = logging.getLogger("qvac_nb")
TI2V_SIZE_MULTIPLE = 32  # Wan 2.2 TI2V's VAE scales by 16, its DiT patches 2x2
MAX_CONTROL_FRAMES = 257
# Wan 2.2 A14B (a high-noise expert loaded beside the low-noise model): docs/wan.md runs it at cfg 3.5 for
# 10 steps, 8 of them on the high-noise expert.
A14B_DEFAULTS = {"cfg_scale": 3.5, "steps": 10, "high_noise_steps": 8}


class VideoJob(Job):
    """A queued or running video(): `progress_stream`, `outputs.result()` -> [Video], `stats`, `cancel()`."""

    kind = "video"

    def _finish(self, outputs: Sequence[bytes] | None, stats: Any, error: BaseException | None) -> None:
        if outputs is not None and error is None:
            outputs = [self._video(outputs, stats)]
        super()._finish(outputs, stats, error)

    def _video(self, parts: Sequence[bytes], stats: Any) -> Video:
        data, raw = parts
        array = np.frombuffer(raw, np.uint8).reshape(stats.total_frames, stats.height, stats.width, 3)
        record = {**self.params, "video_frames": stats.total_frames}
        return Video(data, array, stats.fps, self.params["output_format"], record)

    def video(self, timeout: float | None = None) -> Video:
        """The finished video (waits for it)."""
        return self.outputs.result(timeout)[0]

    def images(self, timeout: float | None = None) -> list[Any]:
        """The frames as PIL images (waits for them)."""
        return self.video(timeout).frames


def video(*, model_id: str, prompt: str, **params: Unpack[VideoKwargs]) -> VideoJob:
    """Queue a video generation and return its job at once."""
    request = validate_video(model_id=model_id, prompt=prompt, **params)
    model = models.get_model(request.model_id)
    job = VideoJob(model.model_id, request.record())
    runner.submit(job, protocol.VIDEO, protocol.VideoWork(request, job.params))
    return job


def validate_video(**given: Any) -> VideoRequest:
    """A VideoRequest for `given`: every parameter checked, defaults resolved for the model."""
    folded = tables.fold_aliases("video", given, VIDEO)
    for name in ("model_id", "prompt"):
        if name not in folded:
            raise TypeError(f"video() missing required keyword-only argument: '{name}'")
    model = models.get_model(folded["model_id"])
    if model.mode != "video":
        raise UnsupportedOperationError(
            f"model_id: '{model.model_id}' is a {families.get(model.family).label} model loaded with "
            f"mode='{model.mode}'; video() needs a video model (Wan) loaded with model_config={{'mode': 'video'}}",
            param="model_id")
    family = families.for_model(model)
    defaults = dict(family.defaults)
    if "high_noise_diffusion_model" in model.files:
        defaults.update(A14B_DEFAULTS)
    for name, value in defaults.items():
        if name in folded and folded[name] is not None:
            continue
        folded[name] = value
    # With the family named, sizes are left to its own rule (_check_size: a variant's step, TI2V's 32).
    values = tables.validate(VIDEO, folded, where="video", names=engine.enum_names(), family=model.family)
    asked = values["video_frames"]
    values["video_frames"] = made = frames_made(asked)
    if made != asked:
        log.warning("video_frames: the engine makes 4k+1 frames; %d asked, %d will be made", asked, made)
    _check_size(model, values)
    values["mode"] = _mode(model, values)
    for name in ("init_image", "end_image"):
        if values[name] is not None:
            values[name] = to_rgb_array(name, values[name])
    values["control_frames"] = _control_frames(values["control_frames"])
    if values["seed"] == -1:
        values["seed"] = random.randrange(0, 2**31)
    if values["sampling_method"] is None:
        values["sampling_method"] = model.default_sampler
    if values["scheduler"] is None:
        values["scheduler"] = model.default_scheduler
    if "high_noise_diffusion_model" not in model.files:
        for name in ("high_noise_steps", "high_noise_sampling_method"):
            if folded.get(name) not in (None, -1):
                raise UnsupportedOperationError(
                    f"{name}: the high-noise settings are for Wan 2.2 A14B, loaded with "
                    "model_config={'high_noise_diffusion_model_src': ...}", param=name)
    _check_memory(model, values)
    return VideoRequest(**values, model=shared_model_name(model.source), family=model.family, frames_asked=asked)


def _check_size(model: LoadedModel, values: dict[str, Any]) -> None:
    multiple = TI2V_SIZE_MULTIPLE if model.version == "WAN2_2_TI2V" else None
    guards.check_size(model.family, values, multiple)


def model_inputs(model: LoadedModel) -> dict[str, Any]:
    """What a loaded video model takes, for a form: its size step, and whether it reads a first frame
    (init_image), a last frame (end_image) and the high-noise expert's settings (Wan 2.2 A14B)."""
    modes = _MODES[_kind(model)]
    step = TI2V_SIZE_MULTIPLE if model.version == "WAN2_2_TI2V" else families.get(model.family).size_multiple
    return {"size_multiple": step, "init_image": "img2vid" in modes or "flf2vid" in modes,
            "end_image": "flf2vid" in modes, "high_noise": "high_noise_diffusion_model" in model.files}


def _kind(model: LoadedModel) -> str:
    """What the loaded Wan network conditions on: 't2v', 'i2v' (2.1 I2V, 2.2 I2V A14B), 'flf2v', 'ti2v', 'vace'."""
    if model.version == "WAN2_2_TI2V":
        return "ti2v"
    if model.version == "WAN2_2_I2V":
        return "i2v"
    names = inspect_file(model.files.get("diffusion_model") or model.files["model"]).tensors
    if any("vace_blocks." in n for n in names):
        return "vace"
    if any("img_emb.emb_pos" in n for n in names):
        return "flf2v"
    return "i2v" if any("img_emb" in n for n in names) else "t2v"


# The modes each kind of Wan network makes, the first being what it makes when no mode is given.
_MODES = {"t2v": ("txt2vid",), "i2v": ("img2vid", "flf2vid"), "flf2v": ("flf2vid", "img2vid"),
          "ti2v": ("txt2vid", "img2vid"), "vace": ("vace", "txt2vid")}
_KIND_LABEL = {"t2v": "text-to-video", "i2v": "image-to-video", "flf2v": "first/last-frame",
               "ti2v": "text/image-to-video", "vace": "VACE"}


def _mode(model: LoadedModel, values: dict[str, Any]) -> str:
    kind = _kind(model)
    init, end, control = (values[n] is not None for n in ("init_image", "end_image", "control_frames"))
    told = "flf2vid" if end else "vace" if control else "img2vid" if init else None
    mode = values["mode"] or told or _MODES[kind][0]
    label = f"this {_KIND_LABEL[kind]} model"
    if mode not in _MODES[kind]:
        raise UnsupportedOperationError(f"mode: {label} makes {', '.join(_MODES[kind])}, not '{mode}'", param="mode")
    if mode == "img2vid" and not init:
        raise InvalidParameterError("init_image: image-to-video (mode 'img2vid') needs init_image, the first frame",
                                    param="init_image")
    if mode == "flf2vid" and not (init and end):
        raise InvalidParameterError("end_image: a first/last-frame video needs init_image and end_image",
                                    param="end_image" if init else "init_image")
    if mode == "txt2vid" and (init or end):
        raise UnsupportedOperationError(
            f"{'init_image' if init else 'end_image'}: {label} does not take images in 'txt2vid' mode",
            param="init_image" if init else "end_image")
    if control and mode != "vace":
        raise UnsupportedOperationError(f"control_frames: only a Wan VACE model reads a control video, not {label}",
                                        param="control_frames")
    if end and mode != "flf2vid":
        raise UnsupportedOperationError(f"end_image: {label} takes no last frame", param="end_image")
    return mode


def _control_frames(given: Any) -> tuple[np.ndarray, ...] | None:
    if given is None:
        return None
    if isinstance(given, (str, bytes, bytearray)) or not isinstance(given, (list, tuple)):
        raise InvalidTypeError(f"control_frames: expected a list of images, got {type(given).__name__}",
                               param="control_frames")
    if not 1 <= len(given) <= MAX_CONTROL_FRAMES:
        raise InvalidParameterError(f"control_frames: give 1-{MAX_CONTROL_FRAMES} frames, got {len(given)}",
                                    param="control_frames")
    return tuple(to_rgb_array(f"control_frames[{i}]", frame) for i, frame in enumerate(given))


def video_memory(width: int, height: int, frames: int, *, vae_tiling: bool, flash_attention: bool) -> dict[str, int]:
    """Bytes of a Wan video's largest engine buffers: the DiT's attention over every latent frame's 2x2 patches,
    and the VAE decoding frame by frame into a float video (12 bytes a pixel) plus the uint8 frames."""
    latent_frames = (frames - 1) // 4 + 1
    tokens = latent_frames * (width // 16) * (height // 16)
    heads = 24
    attention = heads * tokens * 128 * 16 if flash_attention else heads * tokens * tokens * 4
    frame_pixels = min(width * height, 512 * 512) if vae_tiling else width * height
    return {"attention": attention, "vae_decode": frame_pixels * 96 * 50 + frames * width * height * 15}


def _check_memory(model: LoadedModel, values: dict[str, Any]) -> None:
    free = guards.available_memory()
    if free is None:
        return
    config = getattr(model, "config", {})
    parts = video_memory(values["width"], values["height"], values["video_frames"], vae_tiling=values["vae_tiling"],
                         flash_attention=bool(config.get("diffusion_fa") or config.get("flash_attn")))
    part, need = max(parts.items(), key=lambda item: item[1])
    if need + guards.MEMORY_HEADROOM <= free:
        return
    gib = 2**30
    raise InvalidParameterError(
        f"video_frames: {values['video_frames']} frames of {values['width']}x{values['height']} need about "
        f"{need / gib:.1f} GiB for the {part.replace('_', ' ')} but only {free / gib:.1f} GiB of RAM are free; "
        "make fewer frames or a smaller size" + (", or load with model_config={'diffusion_fa': True}"
                                                 if part == "attention" else ", or vae_tiling=True"),
        param="video_frames")


video.__signature__ = docstrings.signature(VIDEO, get_type_hints(VideoKwargs), returns=VideoJob)  # type: ignore[attr-defined]
video.__doc__ = docstrings.docstring(
    "Queue a video generation (Wan 2.1 / 2.2) and return its job at once.\n\n"
    "Load the model with model_config={'mode': 'video', 't5_xxl_model_src': UMT5, 'vae_model_src': WAN_VAE}.\n"
    "The job's `video()` (or `outputs.result()[0]`) is a `Video`: the MP4 or WebP file's bytes, which plays\n"
    "inline in a notebook, with the exact frames (`array`, `frames`), `fps`, `record` and `save(path)`.",
    VIDEO, "VideoJob\n    Progress stream, outputs ([Video]), stats, cancel().",
)
