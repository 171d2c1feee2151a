"""The parameters of video(), in one table: validation, the docstring, the CLI and the record read it.

Rows shared with diffusion() are the same `schema.Param` objects (re-documented where a video reads
them differently), so a sampler, scheduler or size check means the same thing in both calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from . import cache_presets, loras, records, schema
from .schema import Param

MAX_FRAMES = 257  # Wan's longest published clips are 81 frames; 257 keeps room and bounds memory
MAX_FPS = 120
OUTPUT_FORMATS = ("mp4", "webp")
VIDEO_MODES = ("txt2vid", "img2vid", "flf2vid", "vace")


def frames_made(asked: int) -> int:
    """The frame count the engine makes for `asked`: rounded down to 4k + 1 (its VAE packs 4 frames a latent)."""
    return (asked - 1) // 4 * 4 + 1


def _shared(name: str, **changes: Any) -> Param:
    """diffusion()'s row as video() reads it: a copy, so the image families' per-family defaults stay theirs."""
    return dataclasses.replace(schema.param(name), **changes)


_IMAGE = "PNG/JPEG bytes, a path, a PIL image or a uint8 array"
_SAMPLE = ("steps", "cfg_scale", "sampling_method", "scheduler", "flow_shift")

VIDEO: tuple[Param, ...] = (
    Param("model_id", "str", "An id returned by load_model for a video model (model_config={'mode': 'video'}).",
          stored=False, replayable=False, cli=None),
    _shared("prompt"),
    _shared("negative_prompt"),
    Param("mode", "choice", "What to make: 'txt2vid' from the prompt, 'img2vid' from init_image, 'flf2vid' "
          "between init_image and end_image, 'vace' guided by control_frames. Checked against the inputs given.",
          None, choices=VIDEO_MODES, nullable=True, default_doc="told by the inputs given", cli=None, studio=False),
    _shared("width", doc="Frame width in pixels, a multiple of the model's size step (16 for Wan 2.1, 32 for "
            "Wan 2.2 TI2V).", default=832, multiple_of=16),
    _shared("height", doc="Frame height in pixels (the same size step as width).", default=480, multiple_of=16),
    Param("video_frames", "int", "Frames to make. The engine makes 4k+1 frames (its VAE packs four frames into "
          "one latent): other counts are rounded down, with a warning, and the record holds the count made.", 33,
          label="Frames", min=1, max=MAX_FRAMES, step=4, cli=("--frames", "--video-frames")),
    Param("fps", "int", "Frames per second of the file written (Wan 2.1: 16, Wan 2.2 TI2V: 24).", None, min=1,
          max=MAX_FPS, nullable=True, default_doc="the model's (16; Wan 2.2 TI2V: 24)"),
    _shared("steps"),
    _shared("cfg_scale", doc="Classifier-free guidance; 1 skips the unconditional pass.", default=6.0),
    _shared("sampling_method"),
    _shared("scheduler"),
    _shared("flow_shift", doc="Shift of the flow schedule (Wan's examples use 3).", default=3.0, nullable=False,
            families=None, default_doc=None, record_with=None),
    _shared("seed", doc="Random seed.", values_doc="0 to 2^63-1, or -1 for a random one"),
    _shared("init_image", doc=f"First frame ({_IMAGE}): image-to-video for Wan 2.1 I2V and Wan 2.2 I2V/TI2V, "
            "the start of a first/last-frame video for FLF2V, a reference image for VACE."),
    Param("end_image", "image", f"Last frame ({_IMAGE}) of a first/last-frame video (Wan FLF2V and 2.2 I2V).",
          None, nullable=True, cli=("--end-image",), cli_metavar="PATH", studio=False),  # the Studio: an image slot
    Param("control_frames", "images", f"VACE control video: a list of frames ({_IMAGE}), stretched to width x "
          "height; frames past video_frames are not used.", None, nullable=True, cli=None, studio=False),
    Param("vace_strength", "float", "How strongly the VACE control video steers.", 1.0, min=0.0, max=2.0,
          step=0.05, record_with="control_frames", studio=False),
    Param("high_noise_steps", "int", "Wan 2.2 A14B: steps of the high-noise expert (the rest of steps run on the "
          "low-noise model); -1 lets the engine split at moe_boundary.", -1, min=1, max=schema.MAX_STEPS,
          extra=(-1,), group="advanced"),
    Param("high_noise_cfg_scale", "float", "Wan 2.2 A14B: cfg_scale of the high-noise expert.", 3.5, min=1.0,
          max=30.0, step=0.5, group="advanced"),
    Param("high_noise_sampling_method", "choice", "Wan 2.2 A14B: sampler of the high-noise expert.", None,
          choices_from="sample_method", nullable=True, default_doc="the model's default", model_default=None,
          group="advanced"),
    Param("moe_boundary", "float", "Wan 2.2 A14B: the fraction of the timesteps (from the noisy end) the "
          "high-noise expert runs when high_noise_steps is -1.", 0.875, min=0.0, max=1.0, step=0.005,
          group="advanced"),
    _shared("vae_tiling"),
    _shared("cache_preset", doc="Step cache (the engine's EasyCache for Wan's DiT): reuse steps whose change is small "
            "for speed, more reuse from slow to ultra."),
    _shared("lora", doc="LoRA adapters of the video model: a source (weight 1), a list of sources or (source, "
            "weight) pairs, or a {source: weight} dict. The record keeps each file's name, SHA-256 and weight."),
    Param("output_format", "choice", "The file made: 'mp4' (H.264) or 'webp' (animated, lossless).", "mp4",
          choices=OUTPUT_FORMATS, cli=("--format",)),
    _shared("preview", doc="Attach small PNG previews of the first frame's latent to progress ticks."),
)
# The Wan 2.2 A14B expert's settings: the Studio shows them for a model loaded with its high-noise expert.
HIGH_NOISE_PARAMS = ("high_noise_steps", "high_noise_cfg_scale", "high_noise_sampling_method", "moe_boundary")


def form_params() -> list[Param]:
    """The Studio form's video-only fields; the others a video reads are diffusion()'s own form fields."""
    shared = {p.name for p in schema.DIFFUSION}
    return [p for p in VIDEO if p.studio and p.name not in shared and p.type not in records.IMAGE_TYPES]


def video_names() -> frozenset[str]:
    """Every parameter video() takes."""
    return frozenset(p.name for p in VIDEO)


_BY_NAME = {p.name: p for p in VIDEO}
# Where the engine's VideoRequest takes each parameter (names of qvac_nb._engine.VideoRequest's fields).
ENGINE_FIELDS = {
    "prompt": "prompt", "negative_prompt": "negative_prompt", "width": "width", "height": "height",
    "video_frames": "video_frames", "steps": "steps", "cfg_scale": "cfg_scale", "flow_shift": "flow_shift",
    "seed": "seed", "vace_strength": "vace_strength", "high_noise_steps": "high_noise_steps",
    "high_noise_cfg_scale": "high_noise_cfg_scale", "moe_boundary": "moe_boundary", "vae_tiling": "vae_tiling",
}
ENGINE_ENUMS = {"sampling_method": ("sample_method", "sample_method"), "scheduler": ("scheduler", "scheduler"),
                "high_noise_sampling_method": ("high_noise_sample_method", "sample_method")}


@dataclasses.dataclass(frozen=True, eq=False)
class VideoRequest:
    """A validated video() call: every parameter checked, defaults resolved for the model, images as RGB arrays."""

    model_id: str
    prompt: str
    negative_prompt: str
    mode: Literal["txt2vid", "img2vid", "flf2vid", "vace"]
    width: int
    height: int
    video_frames: int  # the count the engine makes (4k + 1)
    fps: int
    steps: int
    cfg_scale: float
    sampling_method: str
    scheduler: str
    flow_shift: float
    seed: int
    init_image: Any  # numpy uint8 (h, w, 3) or None
    end_image: Any
    control_frames: tuple[Any, ...] | None
    vace_strength: float
    high_noise_steps: int
    high_noise_cfg_scale: float
    high_noise_sampling_method: str | None
    moe_boundary: float
    vae_tiling: bool
    cache_preset: str | None
    lora: tuple[dict[str, Any], ...]  # checked and hashed entries (loras.check)
    output_format: Literal["mp4", "webp"]
    preview: bool
    model: str  # the model's source as given to load_model
    family: str
    frames_asked: int  # video_frames as the caller gave it

    def record(self) -> dict[str, Any]:
        """What the file's metadata keeps: the stored parameters, which images were given, the model's name."""
        out: dict[str, Any] = {}
        for p in VIDEO:
            if not p.stored or p.type in records.IMAGE_TYPES:
                continue
            if p.record_with is not None and getattr(self, p.record_with) is None:
                continue  # vace_strength says nothing without a control video
            out[p.name] = getattr(self, p.name)
        out["lora"] = loras.record_form(self.lora)  # None, or without the local paths of downloaded files
        for name in ("init_image", "end_image", "control_frames"):
            out[records.used_key(name)] = getattr(self, name) is not None
        out.update(model=self.model, family=self.family, kind="video")
        if self.frames_asked != self.video_frames:
            out["video_frames_asked"] = self.frames_asked
        return out

    def engine_fields(self, names: Mapping[str, list[str]]) -> dict[str, Any]:
        """`{VideoRequest attribute: value}` for the engine (enum names become the engine's indices)."""
        out = {attr: getattr(self, name) for name, attr in ENGINE_FIELDS.items()}
        for name, (attr, enum) in ENGINE_ENUMS.items():
            value = getattr(self, name)
            if value is not None:
                out[attr] = names[enum].index(value)
        if self.high_noise_sampling_method is None:
            out["high_noise_sample_method"] = names["sample_method"].index(self.sampling_method)
        if self.cache_preset is not None:
            out.update(cache_presets.engine_fields(self.cache_preset, self.family))
        return out
