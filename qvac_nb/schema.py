"""One declaration per parameter of `diffusion`, `upscale` and `load_model`'s `model_config`.

Each `Param` below says everything qvac_nb knows about a parameter: its type and range
(or choices, possibly the engine's own enum names), its default (which may depend on the
model family, see qvac_nb/families.py), its doc text, the engine field it fills, whether
it is stored in the PNG record and can be replayed, how the CLI spells it and how the
Studio shows it. Everything else is derived from these tables: validation and its error
messages (here), the typed request objects (request_types.py, generated from these tables),
the engine request (engine_mapping.py), the PNG record and its A1111 text (records.py), the CLI
flags (cli.py), the Studio form's JSON (widgets/form_schema.py), the docstrings and signatures of
`diffusion`, `upscale`, `load_model` (docstrings.py), and the README's API tables
(`python tools/gen_readme_tables.py` rewrites them, `--check` reports drift).

Adding a plain parameter means adding one `Param` here (and binding its engine field).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import cache_presets, embeddings, engine_types, families, loras
from .checks.values import MAX_TEXT_CHARS

MAX_SIDE = 4096
MAX_STEPS = 150
MAX_BATCH = 16
MAX_SEED = 2**63 - 1
MAX_UPSCALE_REPEATS = 3
PREDICTIONS = ("auto", "eps", "v", "edm_v", "flow", "flux_flow", "flux2_flow")
# The docs' "flow" is the engine's "sd3_flow"; "auto" lets the engine infer it.
PREDICTION_ALIASES = {"flow": "sd3_flow", "sd3_flow": "sd3_flow"}
MODEL_TYPES = ("diffusion", "upscale", "video")
# The engine's enum names for docs written without opening the engine (import time, README),
# from the generated qvac_nb/engine_types.py (tests/test_packaging.py checks them against the engine).
DOC_ENUMS: dict[str, tuple[str, ...]] = {key: engine_types.values(key) for key in engine_types.ENUMS}


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()
FAMILY_DEFAULT = "the model family's default"


@dataclass(frozen=True)
class Param:
    """One parameter; see the module docstring for what is derived from it."""

    name: str
    type: str  # int | float | str | bool | choice | image | text | path | upscale | upscaler | lora
    doc: str
    default: Any = REQUIRED
    label: str = ""
    min: float | None = None
    max: float | None = None
    step: float | None = None
    lo_open: bool = False  # min itself is excluded
    multiple_of: int = 1
    extra: tuple[int, ...] = ()  # sentinel values accepted outside [min, max], e.g. -1
    choices: tuple[str, ...] | None = None
    choices_from: str | None = None  # name of an engine enum (engine.enum_names())
    nullable: bool = False  # None is accepted (meaning: the default_doc)
    default_doc: str | None = None  # how the docs describe the default when it is not a value
    model_default: str | None = None  # attribute of the loaded model that replaces None (its own default)
    values_doc: str | None = None  # how the docs describe the accepted values, when derived text won't do
    engine: str | tuple[str, ...] | None = None  # _engine.Request / ContextConfig attribute(s)
    stored: bool = True  # kept in the PNG record
    replayable: bool = True  # read_parameters hands it back to diffusion()
    reuse: bool = True  # the Studio's "reuse all" puts it back into the form
    a1111: tuple[int, str] | None = None  # (position, label) in the A1111 `parameters` text
    cli: tuple[str, ...] | None = ()  # flags; () = --name-with-dashes, None = not on the command line
    cli_metavar: str | None = None
    cli_help: str | None = None  # the CLI's wording, when `doc` speaks of Python objects
    control: str = "number"  # how the Studio shows it (see the module docstring)
    group: str = "basic"
    studio: bool = True  # a field of the Studio's form
    grid_axis: int = 0  # the Studio's Grid offers it as an axis, in this place (1 first); 0: not offered
    summary: bool = False  # listed under an image in the saved (static HTML) copy of a gallery
    families: tuple[str, ...] | None = None  # the only families the engine reads it for (None: every one)
    record_with: str | None = None  # kept in the record only while that parameter is off its default

    @property
    def label_text(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def aliases(self) -> tuple[str, ...]:
        camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), self.name)
        return (camel,) if camel != self.name else ()

    @property
    def per_family(self) -> bool:
        # Only diffusion()'s own parameters: the hires block has a `strength` of its own.
        return any(self.name in f.defaults for f in families.FAMILIES.values()) and any(p is self for p in DIFFUSION)

    def default_for(self, family: str | None) -> Any:
        return families.get(family).default(self.name, self.default) if family else self.default

    def allowed(self, names: Mapping[str, Sequence[str]] | None) -> list[str]:
        if self.choices is not None:
            return list(self.choices)
        source = names if names is not None and self.choices_from in names else DOC_ENUMS
        values = list(source[self.choices_from or ""])
        # The engine's weight-type list has placeholders that are not real types.
        return [v for v in values if v.isidentifier() and v != "DEPRECATED"] if self.choices_from == "type" else values

    def values_text(self) -> str:
        """The accepted values in words, for docs, --help and the README."""
        if self.values_doc:
            return self.values_doc
        if self.type == "int":
            text = f"{_num(self.min)}-{_num(self.max)}"
            if self.multiple_of > 1:
                text += f", multiple of {self.multiple_of}"
            return text + "".join(f" or {e}" for e in self.extra)
        if self.type == "float":
            text = f"{'(' if self.lo_open else '['}{_num(self.min)}, {_num(self.max)}]"
            return text + "".join(f" or {e}" for e in self.extra)
        if self.type == "bool":
            return "True or False"
        if self.type == "choice":
            return ", ".join(self.allowed(None))
        if self.type == "text":
            return f"text of at most {MAX_TEXT_CHARS:,} characters"
        return "a string" if self.type in ("str", "path") else ""

    def default_text(self) -> str:
        if self.default is REQUIRED:
            return "required"
        if self.per_family:
            special = ", ".join(f"{f.label}: {_num(f.defaults[self.name])}" for f in families.FAMILIES.values()
                                if self.name in f.defaults)
            return f"{_num(self.default)} ({special})"
        if self.default_doc:
            return self.default_doc
        return repr(self.default) if isinstance(self.default, str) else _num(self.default)


def _num(value: Any) -> str:
    return str(value) if not isinstance(value, float) or not value.is_integer() or abs(value) >= 1e6 else f"{value:.1f}"


# ---------------------------------------------------------------- diffusion(): image inputs and hires fix

# The engine's sd_hires_upscaler_t, by index (stable-diffusion-cpp-python spells them the same way).
HIRES_UPSCALERS = ("none", "latent", "latent_nearest", "latent_nearest_exact", "latent_antialiased", "latent_bicubic",
                   "latent_bicubic_antialiased", "lanczos", "nearest", "model")
MAX_HIRES_SCALE = 4.0
MAX_REF_IMAGES = 8
# PhotoMaker ID images: the engine runs them through its vision tower as one batch and puts one token per image
# (two for v2) after the class word; PhotoMaker's authors use up to four.
MAX_PM_ID_IMAGES = 8
HIRES: tuple[Param, ...] = (
    Param("scale", "float", "Size of the second pass relative to width x height.", 2.0, min=0.0, max=MAX_HIRES_SCALE,
          lo_open=True),
    Param("width", "int", "Target width of the second pass instead of scale; 0 = from scale (or from height).", 0,
          min=64, max=MAX_SIDE, extra=(0,), values_doc="64-4096, or 0"),
    Param("height", "int", "Target height of the second pass; 0 = from scale (or from width).", 0, min=64,
          max=MAX_SIDE, extra=(0,), values_doc="64-4096, or 0"),
    Param("steps", "int", "Sampling steps of the second pass; 0 = the same as steps (the engine schedules steps / "
          "strength and runs the last strength share, which can be one step more).", 0, min=1, max=MAX_STEPS,
          extra=(0,), values_doc="1-150, or 0"),
    Param("strength", "float", "Denoising strength of the second pass.", 0.7, min=0.0, max=1.0, lo_open=True),
    Param("upscaler", "choice", "How the first image is enlarged: in latent space, in pixels (lanczos, nearest) or "
          "with the model's paired ESRGAN upscaler ('model').", "latent", choices=HIRES_UPSCALERS[1:]),
    Param("tile_size", "int", "Tile side of the 'model' upscaler.", 128, min=16, max=2048),
)
# The engine's own names for the hires keys (sd_hires_params_t, stable-diffusion-cpp-python's hires_*).
HIRES_ENGINE_NAMES = {"denoising_strength": "strength", "target_width": "width", "target_height": "height",
                      "upscale_tile_size": "tile_size"}


def hires_target(hires: Mapping[str, Any], width: int, height: int) -> tuple[int, int]:
    """The second pass's size, as the engine works it out (before it rounds to the model's size step)."""
    w, h = int(hires.get("width", 0)), int(hires.get("height", 0))
    if w and h:
        return w, h
    if w or h:
        return (w or h), (w or h)
    scale = float(hires.get("scale", 2.0))
    return round(width * scale), round(height * scale)


_IMAGE_FORMS = "PNG/JPEG bytes, a path, a PIL image or an array"
IMAGE_INPUT_PARAMS: tuple[Param, ...] = (
    Param("mask_image", "image", f"Inpainting mask over init_image ({_IMAGE_FORMS}; the forms of init_image): "
          "white is repainted, black is kept. Stretched to width x height like init_image. SD models only; "
          "an SD inpainting checkpoint also sees the masked image.", None, label="Mask image", nullable=True,
          default_doc="None", stored=False, replayable=False, cli=("--mask-image",), cli_metavar="PATH",
          cli_help="PNG/JPEG inpainting mask over --init-image (white = repaint)", control="image",
          group="prompt", studio=False),
    Param("init_images", "images", f"FLUX.2 reference images (a list of 1-{MAX_REF_IMAGES}, each in the forms of "
          "init_image), fused in one generation; instead of init_image, not with it.", None, label="Reference images",
          nullable=True, default_doc="None", values_doc=f"a list of 1-{MAX_REF_IMAGES} images", stored=False,
          replayable=False, cli=("--ref-image",), cli_metavar="PATH", control="image", group="prompt",
          studio=False),
    Param("increase_ref_index", "bool", "Reference images: give each its own position index (the engine always "
          "does for FLUX.2; other edit models follow this flag).", False, engine="increase_ref_index",
          control="checkbox", group="advanced"),
    Param("auto_resize_ref_image", "bool", "FLUX.2 references: resize each to about the output's area before "
          "encoding (False encodes them at their own size).", True, engine="auto_resize_ref_image",
          control="checkbox", group="advanced"),
    Param("control_image", "image", f"ControlNet condition image ({_IMAGE_FORMS}), stretched to width x height; "
          "needs model_config['control_net_model_src'].", None, label="Control image", nullable=True,
          default_doc="None", stored=False, replayable=False, cli=("--control-image",), cli_metavar="PATH",
          cli_help="PNG/JPEG ControlNet condition image (needs --control-net)", control="image", group="prompt",
          studio=False),
    Param("control_strength", "float", "How strongly the ControlNet steers.", 0.9, min=0.0, max=2.0, step=0.05,
          engine="control_strength", group="advanced"),
    # PhotoMaker (SDXL): the ID images and embeddings are set by the worker (engine_calls), like init_images.
    Param("pm_id_images", "images", f"PhotoMaker ID images of the person to draw (a list of 1-{MAX_PM_ID_IMAGES}, "
          "each in the forms of init_image); needs an SDXL model loaded with model_config['photo_maker_model_src'], "
          "which then takes them on every generation, and the engine's trigger word 'img' in the prompt right "
          "after a class word ('a photo of a man img').", None, label="ID images", nullable=True,
          default_doc="None", values_doc=f"a list of 1-{MAX_PM_ID_IMAGES} images", stored=False, replayable=False,
          cli=("--pm-id-image",), cli_metavar="PATH", cli_help="a PhotoMaker ID image (PNG/JPEG); repeat for several "
          "(needs --photo-maker)", control="image", group="prompt", studio=False, families=("sdxl",)),
    Param("pm_style_strength", "float", "PhotoMaker: the share of the steps, in percent, drawn from the prompt "
          "alone before the ID images take over (lower follows the ID more closely; 10-20 is typical). The engine "
          "as pinned applies it from the model's next generation on: a generation uses the value of the one "
          "before it (20 for the first after loading).", 20.0, label="ID style strength", min=0.0, max=100.0,
          step=1.0, engine="pm_style_strength", control="slider", group="advanced", studio=False,
          families=("sdxl",), record_with="pm_id_images"),
    Param("pm_id_embed_path", "path", "PhotoMaker v2: the ID embeddings of pm_id_images, one per image in their "
          "order (the id_embeds.bin the engine's face_detect.py writes); required by a v2 PhotoMaker file (one "
          "with 'v2' in its name), refused with v1.", None, label="ID embeddings", nullable=True,
          default_doc="None", stored=False, replayable=False, cli_metavar="PATH", control="hidden",
          group="advanced", studio=False, families=("sdxl",)),
    Param("hires", "hires", "Hires fix: a second sampling pass at a larger size: True, or a dict of scale, width, "
          "height, steps, strength, upscaler, tile_size (the hires keys below; the engine's names such as "
          "denoising_strength work too).", None, nullable=True, default_doc="None (off)",
          values_doc="True, a dict of the hires keys, False or None", engine="hires", cli=("--hires",),
          cli_metavar="on|JSON", control="hidden",
          group="advanced", studio=False),
)

# ---------------------------------------------------------------- diffusion(): sampler switches

# The families the engine reads each switch for (stable-diffusion.cpp as pinned); elsewhere it ignores the
# value, at most with a log line, so guards.check_diffusion refuses a value set there, and schema_json gives
# these families as the field's `families`. Skip layers: only SD3's MMDiT and the FLUX DiT (FLUX.1, the
# models built on it, FLUX.2) leave the listed blocks out; the engine's other DiTs would run the extra pass
# unchanged.
SLG_FAMILIES = ("sd3", "flux", "flux_kontext", "flux_fill", "chroma", "ovis_image", "flux2", "flux_controls",
                "flex2", "chroma_radiance")
# Flow denoisers whose shift the request sets. FLUX.2 works its shift out from the image size at every
# generation; U-Nets predict noise or v (unless loaded with a flow `prediction`, which guards allow).
FLOW_SHIFT_FAMILIES = ("sd3", "flux", "flux_kontext", "flux_fill", "chroma", "ovis_image", "qwen_image",
                       "qwen_image_edit", "zimage", "ernie_image", "anima", "wan", "flux_controls", "flex2",
                       "chroma_radiance")
# The engine shifts timesteps for its SDXL versions only (every one of them is the sdxl family here).
TIMESTEP_SHIFT_FAMILIES = ("sdxl",)
# FLUX models raise e to the shift: far below float32's overflow, far above any schedule in use.
MAX_FLOW_SHIFT = 50.0
MAX_TIMESTEP = 1000
MAX_LAYER = 999  # far past the deepest DiT; guards check against the model's own depth
ENGINE_SKIP_LAYERS = (7, 8, 9)  # the engine's command line and server default (made for SD3.5 Medium)


_SLG_WINDOW = "a step s of n runs it when int(skip_layer_start x (n + 1)) < s < int(skip_layer_end x (n + 1))"
SAMPLER_SWITCHES: tuple[Param, ...] = (
    Param("flow_shift", "float", "Shift of a flow model's noise schedule: higher spends more steps at high noise "
          "(overall layout), lower at low noise (detail). SD3, FLUX.1 and the other flow-matching DiTs; not FLUX.2 "
          "(the engine works its shift out from the image size), and not with sigmas.", None, min=0.0,
          max=MAX_FLOW_SHIFT, step=0.1, lo_open=True, nullable=True,
          default_doc="None (the engine's for the model: 3.0 for SD3, Qwen-Image, Z-Image and Anima, 4.0 for "
          "ERNIE-Image, 1.15 for FLUX.1 with distilled guidance, else 1.0 for FLUX-based models)",
          engine="flow_shift", families=FLOW_SHIFT_FAMILIES, record_with="flow_shift", group="advanced"),
    Param("timestep_shift", "int", "SDXL only: the network sees every timestep scaled by timestep_shift / 1000, "
          "for NitroFusion's one-step NitroSD models (about 250 for Realism, 500 for Vibrant); 0 = off.", 0,
          min=0, max=MAX_TIMESTEP, step=1, engine="shifted_timestep", families=TIMESTEP_SHIFT_FAMILIES,
          record_with="timestep_shift", group="advanced"),
    Param("slg_scale", "float", "Skip-layer guidance (SD3 and FLUX-based DiTs): in the steps between "
          "skip_layer_start and skip_layer_end the model runs once more without the skip_layers blocks, and the "
          "result is pushed away from that weaker prediction by this much (2.5 suits SD3.5 Medium); 0 = off.",
          0.0, label="SLG scale", min=0.0, max=50.0, step=0.1, engine="slg_scale", families=SLG_FAMILIES,
          record_with="slg_scale", group="advanced"),
    Param("skip_layers", "layers", "Blocks the skip-layer guidance pass leaves out, counted from 0 (SD3: its joint "
          "blocks; FLUX: the double blocks, then the single blocks). Read only when slg_scale is not 0.",
          ENGINE_SKIP_LAYERS, values_doc=f"a list of block indices 0-{MAX_LAYER} within the model's depth, or the "
          "same as text ('7, 8, 9')", default_doc="[7, 8, 9] (the engine's command-line default, made for SD3.5 "
          "Medium)", engine="skip_layers", families=SLG_FAMILIES, record_with="slg_scale", cli_metavar="N,N,...",
          control="text", group="advanced"),
    Param("skip_layer_start", "float", f"Where skip-layer guidance starts, as a fraction of the steps: {_SLG_WINDOW}. "
          "Read only when slg_scale is not 0.", 0.01, label="Skip layers from", min=0.0, max=1.0, step=0.01,
          engine="skip_layer_start", families=SLG_FAMILIES, record_with="slg_scale", group="advanced"),
    Param("skip_layer_end", "float", "Where skip-layer guidance stops, as a fraction of the steps (see "
          "skip_layer_start); the default guides no step of a run of 8 steps or fewer. Read only when slg_scale is "
          "not 0.", 0.2, label="Skip layers until", min=0.0, max=1.0, step=0.01, engine="skip_layer_end",
          families=SLG_FAMILIES, record_with="slg_scale", group="advanced"),
    Param("sigmas", "sigmas", "Custom noise schedule in place of the scheduler's: steps + 1 noise levels from the "
          "first down to the last (usually 0), e.g. [14.6, 7.8, 3.5, 0.0] for 3 steps of an SD model; a flow "
          "model's levels lie in [0, 1].", None, nullable=True, default_doc="None (the scheduler's)",
          values_doc=f"a list of 2-{MAX_STEPS + 1} finite numbers >= 0 that never rise (as many as steps + 1), or "
          "the same as text ('14.6, 7.8, 3.5, 0')", engine="sigmas", record_with="sigmas", cli_metavar="S,S,...",
          control="text", group="advanced"),
)

# ---------------------------------------------------------------- diffusion()

SAMPLER_DOC = "the model's default"
DIFFUSION: tuple[Param, ...] = (
    Param("model_id", "str", "An id returned by load_model (a model loaded with mode='diffusion').", stored=False,
          replayable=False, cli=None, control="hidden", studio=False),
    Param("prompt", "text", "What to draw.", label="Prompt", engine="prompt", a1111=(0, ""), cli=None,
          control="textarea", group="prompt", summary=True),
    Param("negative_prompt", "text", "What to avoid.", "", label="Negative prompt", engine="negative_prompt",
          a1111=(1, "Negative prompt"), cli=("-n", "--negative-prompt"), control="textarea", group="prompt",
          summary=True),
    Param("width", "int", "Image width in pixels, a multiple of the model's size step (64 for SD 1.x/2.x/XL, "
          "16 for FLUX.2, 8 for SD3/FLUX.1); other sizes are refused with the nearest two named.", 512,
          min=64, max=MAX_SIDE, step=8, multiple_of=8, engine="width", a1111=(70, "Size"), cli=("-W", "--width")),
    Param("height", "int", "Image height in pixels (the same size step as width).", 512,
          min=64, max=MAX_SIDE, step=8, multiple_of=8, engine="height", cli=("-H", "--height")),
    Param("steps", "int", "Sampling steps.", 20, min=1, max=MAX_STEPS, step=1, engine="steps", a1111=(10, "Steps"),
          grid_axis=4, summary=True),
    Param("cfg_scale", "float", "Classifier-free guidance (SD models; 1 skips the unconditional pass, for "
          "distilled models).", 7.0, label="CFG scale", min=0.0, max=50.0, step=0.5, nullable=True,
          engine="cfg_scale", a1111=(40, "CFG scale"), grid_axis=2, summary=True),
    Param("guidance", "float", "Distilled guidance (FLUX models).", 3.5, min=0.0, max=50.0, step=0.1,
          engine="guidance", a1111=(50, "Distilled CFG Scale"), grid_axis=3, summary=True),
    Param("sampling_method", "choice", "Sampler.", None, label="Sampler", choices_from="sample_method",
          nullable=True, default_doc=SAMPLER_DOC, model_default="default_sampler", engine="sample_method",
          a1111=(20, "Sampler"), cli=("--sampler",),
          control="select", grid_axis=5, summary=True),
    Param("scheduler", "choice", "Noise schedule.", None, choices_from="scheduler", nullable=True,
          default_doc=SAMPLER_DOC, model_default="default_scheduler", engine="scheduler", a1111=(30, "Schedule type"),
          control="select", grid_axis=6, summary=True),
    Param("seed", "int", "Random seed; image i of a batch uses seed + i.", -1, min=0, max=MAX_SEED, extra=(-1,),
          values_doc="0 to 2^63-1, or -1 for a random one", engine="seed", a1111=(60, "Seed"), cli=("-s", "--seed"),
          control="seed", grid_axis=1),
    Param("batch_count", "int", "Images to make.", 1, label="Batch", min=1, max=MAX_BATCH, step=1,
          engine="batch_count", reuse=False, cli=("-b", "--batch-count")),
    Param("vae_tiling", "bool", "Decode in tiles (less memory for large images).", False, label="VAE tiling",
          engine="vae_tiling", control="checkbox", group="advanced"),
    Param("vae_tile_size", "int", "VAE tile side in latent pixels (image pixels / 8) when vae_tiling is on.", 0,
          label="VAE tile size", min=4, max=512, extra=(0,), values_doc="4-512, or 0 for the engine's (32)",
          engine=("vae_tile_x", "vae_tile_y"), group="advanced"),
    Param("vae_tile_overlap", "float", "Overlap of neighbouring VAE tiles, as a fraction of a tile.", 0.5,
          label="VAE tile overlap", min=0.0, max=0.5, step=0.05, engine="vae_tile_overlap", group="advanced"),
    Param("cache_preset", "choice", "Step cache: reuse steps for speed, more reuse from slow to ultra.", None,
          label="Step cache", choices=tuple(cache_presets.PRESETS), nullable=True, default_doc="None (off)",
          engine=cache_presets.ENGINE_FIELDS, a1111=(90, "Cache"), control="select", group="advanced"),
    Param("init_image", "image", "Image to start from: PNG/JPEG bytes, a path, a PIL image, or a uint8 "
          "HxW/HxWx3/HxWx4 array (floats in [0, 1] too).", None, label="Init image", nullable=True,
          default_doc="None", stored=False, replayable=False, cli=("-i", "--init-image"),
          cli_help="PNG/JPEG to start from (image-to-image)", cli_metavar="PATH", control="image",
          group="prompt", studio=False),
    Param("strength", "float", "How much of init_image SD models repaint.", 0.75, min=0.0, max=1.0, step=0.01,
          lo_open=True, engine="strength", a1111=(80, "Denoising strength"), control="slider", group="prompt",
          grid_axis=7, summary=True),
    Param("img_cfg_scale", "float", "Image guidance of inpainting and edit models (SD 1.x/2.x/XL inpainting, "
          "instruct-pix2pix); other models use cfg_scale.", -1.0, label="Image CFG scale", min=0.0, max=50.0,
          step=0.5, extra=(-1,), nullable=True, values_doc="0-50, or -1 (or None) to reuse cfg_scale",
          engine="img_cfg_scale", a1111=(45, "Image CFG scale"), group="advanced"),
    *IMAGE_INPUT_PARAMS,
    Param("upscale", "upscale", "Upscale each image with the model's paired upscaler: True (one x4 pass) or "
          "{'repeats': 1-3}.", None, nullable=True, values_doc="True, {'repeats': 1-3}, False or None",
          default_doc="None", stored=False, replayable=False, cli=None, control="checkbox", studio=False),
    Param("clip_skip", "int", "Text-encoder layers to skip.", -1, min=1, max=12, extra=(-1,),
          values_doc="1-12, or -1 for the model's default", engine="clip_skip", group="advanced"),
    Param("eta", "float", "Noise of eta-based samplers.", None, min=0.0, max=10.0, step=0.1, nullable=True,
          default_doc="None (the sampler's)", engine="eta", group="advanced"),
    *SAMPLER_SWITCHES,
    # LoRA: its own block (qvac_nb/loras.py); the worker sets the engine's loras/lora_count from it.
    Param("lora", "lora", "LoRA adapters: a source (weight 1), a list of sources or (source, weight) pairs, or a "
          "{source: weight} dict; sources resolve like model_src. The record keeps each file's name, SHA-256 and "
          "weight.", None, nullable=True, values_doc=loras.VALUES_DOC, default_doc="None", cli=("--lora",),
          cli_metavar="PATH[:WEIGHT]", cli_help="a LoRA file or source, with an optional :weight (default 1); "
          "repeat for several", control="hidden", group="advanced", studio=False),
    Param("preview", "bool", "Attach small PNG previews of the latent to progress ticks (at most ten a second).",
          False, stored=False, replayable=False, cli=None, control="hidden", studio=False),
)
# A Studio-only field: how many passes its upscale toggle runs.
UPSCALE_REPEATS = Param("upscale_repeats", "int", "Upscale passes (x4 each).", 1, label="Upscale passes", min=1,
                        max=MAX_UPSCALE_REPEATS, step=1, stored=False, replayable=False, cli=None, group="advanced")
# Record fields that are not parameters: (position, A1111 label, record key).

# ---------------------------------------------------------------- upscale()

UPSCALE: tuple[Param, ...] = (
    Param("model_id", "str", "An id from load_model: mode='upscale', or a diffusion model with a paired upscaler.",
          cli=None),
    Param("image", "image", "PNG/JPEG bytes, a path, a PIL image or an array; a PNG that qvac_nb wrote keeps its "
          "parameters in the output.", cli=None),
    Param("repeats", "int", "Upscale passes (2 gives x16 with a x4 model).", 1, min=1, max=MAX_UPSCALE_REPEATS,
          cli=("-r", "--repeats")),
)

# ---------------------------------------------------------------- load_model(model_config=...)


def _companion(name: str, role: str, flag: str, doc: str) -> Param:
    return Param(name, "path", doc, None, nullable=True, default_doc="the catalogue's companion, else none",
                 values_doc="same forms as model_src", engine=role, cli=(flag,), cli_metavar="MODEL")


# device='cpu': the engine's keep-on-CPU flags (the worker also hides the GPUs, see worker/engine_calls.py).
CPU_FLAGS = ("clip_on_cpu", "vae_on_cpu", "control_net_on_cpu")


# ControlNet and load-time VAE tiling (their own block: see IMAGE_INPUT_PARAMS for the diffusion side).
CONTROL_NET_CONFIG: tuple[Param, ...] = (
    Param("control_net_model_src", "path", "ControlNet model for control_image (SD 1.x ControlNets with SD 1.x "
          "models, ...).", None, nullable=True, default_doc="none", values_doc="same forms as model_src",
          engine="control_net", cli=("--control-net",), cli_metavar="MODEL"),
    Param("control_net_on_cpu", "bool", "Keep the ControlNet on the CPU.", None, default_doc="the engine's",
          engine="control_net_on_cpu", cli=None),
    Param("vae_tiling", "bool", "Decode in tiles by default (diffusion's vae_tiling, when not given, follows this).",
          None, default_doc="False", cli=None),
)
MODEL_CONFIG: tuple[Param, ...] = (
    Param("device", "choice", "Where to run. 'cpu' keeps everything on the CPU on a GPU build too: the text "
          "encoders, VAE and ControlNet through the engine's keep-on-CPU flags, the diffusion model (and an "
          "upscaler) by hiding the CUDA/ROCm/Vulkan devices from the model's worker (Metal cannot be hidden).", None,
          choices=("gpu", "cpu"), default_doc="the engine build's backend", engine=CPU_FLAGS),
    Param("threads", "int", "CPU threads.", -1, min=1, max=256, extra=(-1,),
          values_doc="1-256, or -1 for every physical core", engine="threads"),
    Param("prediction", "choice", "Prediction type ('flow' is SD3's).", "auto", choices=PREDICTIONS,
          default_doc="'auto' (the engine infers it; catalogue entries set what they need)", engine="prediction"),
    _companion("llm_model_src", "llm", "--llm", "Text encoder LLM of split models (FLUX.2: QWEN3_4B_Q4_K_M)."),
    _companion("vae_model_src", "vae", "--vae", "VAE of split models (FLUX.2: FLUX_2_KLEIN_4B_VAE)."),
    _companion("clip_l_model_src", "clip_l", "--clip-l", "CLIP-L text encoder (SD3, FLUX.1)."),
    _companion("clip_g_model_src", "clip_g", "--clip-g", "CLIP-G text encoder (SD3)."),
    _companion("t5_xxl_model_src", "t5xxl", "--t5xxl", "T5-XXL text encoder (SD3, FLUX.1)."),
    _companion("taesd_model_src", "taesd", "--taesd", "Tiny autoencoder for fast decoding."),
    _companion("clip_vision_model_src", "clip_vision", "--clip-vision",
               "CLIP vision encoder (Wan 2.1 image-to-video and first/last-frame models)."),
    _companion("llm_vision_model_src", "llm_vision", "--llm-vision",
               "Vision tower of the LLM text encoder, when the LLM file lacks it (Qwen-Image-Edit)."),
    _companion("high_noise_diffusion_model_src", "high_noise_diffusion_model", "--high-noise-diffusion-model",
               "Second diffusion model of the same family, run for the high-noise steps (Wan 2.2 A14B)."),
    _companion("photo_maker_model_src", "photo_maker", "--photo-maker",
               "PhotoMaker ID encoder (SDXL); a file name containing 'v2' selects PhotoMaker v2."),
    Param("embeddings", "embeddings", "Textual-inversion embeddings (SD 1.x/2.x/XL), each used by writing its name "
          "in the prompt.", None, nullable=True, default_doc="none", values_doc=embeddings.VALUES_DOC + "; sources "
          "as for model_src", cli=None),
    *CONTROL_NET_CONFIG,
    Param("upscaler", "upscaler", "A paired ESRGAN upscaler: {'type': 'esrgan', 'model_src': ..., 'tile_size': "
          "16-2048} (a string is taken as model_src).", None, nullable=True, default_doc="none; tile_size 128",
          values_doc="a dict of the upscaler keys below", cli=None),
    Param("mode", "choice", "What the model is loaded for.", None, choices=MODEL_TYPES, default_doc="model_type",
          cli=None),
    Param("type", "choice", "Weight type to convert to on load ('f16', 'q8_0', 'q4_0', ...).", None,
          choices_from="type", default_doc="as stored", values_doc="the engine's weight types", engine="weight_type",
          cli=None),
    Param("rng", "choice", "Noise generator.", None, choices_from="rng", default_doc="the engine's", engine="rng",
          cli=None),
    Param("sampler_rng", "choice", "Noise generator of the sampler.", None, choices_from="rng",
          default_doc="the engine's", engine="sampler_rng", cli=None),
    *(Param(name, "bool", doc, None, default_doc="the engine's", engine=attr, cli=None) for name, attr, doc in (
        ("clip_on_cpu", "clip_on_cpu", "Keep the text encoders on the CPU."),
        ("vae_on_cpu", "vae_on_cpu", "Keep the VAE on the CPU."),
        ("offload_to_cpu", "offload_to_cpu", "Keep weights in RAM and move them to the device when used."),
        ("flash_attn", "flash_attn", "Flash attention everywhere."),
        ("diffusion_fa", "diffusion_flash_attn", "Flash attention in the diffusion model (less memory)."),
    )),
    Param("lora_apply_mode", "choice", "How LoRAs are applied.", None, choices_from="lora_apply_mode",
          default_doc="'auto'", engine="lora_apply_mode", cli=None),
    *(Param(name, "bool", doc, None, default_doc="the engine's", engine=name, cli=None) for name, doc in (
        ("mmap", "Map the model file instead of reading it."),
        ("diffusion_conv_direct", "Direct convolution in the diffusion model."),
        ("vae_conv_direct", "Direct convolution in the VAE."),
    )),
    *(Param(name, "bool", doc, None, default_doc=default, engine=name, cli=None) for name, doc, default in (
        ("circular_x", "Wrap the image around left to right (seamless horizontal tiling).", "False"),
        ("circular_y", "Wrap the image around top to bottom (seamless vertical tiling).", "False"),
        ("tae_preview_only", "With taesd_model_src: the tiny autoencoder draws only the previews and the VAE "
         "decodes the image.", "False"),
        ("force_sdxl_vae_conv_scale", "SDXL: scale the VAE's convolutions as for the built-in VAE also with a "
         "vae_model_src.", "False"),
        ("chroma_use_dit_mask", "Chroma: mask the prompt's padding in the diffusion model.", "True"),
        ("chroma_use_t5_mask", "Chroma: mask the prompt's padding in T5.", "False"),
        ("qwen_image_zero_cond_t", "Qwen-Image-Edit 2511: its zero_cond_t mode (edits degrade without it).", "False"),
    )),
    Param("chroma_t5_mask_pad", "int", "Chroma: padding tokens left unmasked after the prompt with "
          "chroma_use_t5_mask.", None, min=0, max=512, default_doc="1", engine="chroma_t5_mask_pad", cli=None),
    Param("max_vram", "float", "GiB a compute graph may use on the device; larger graphs run in segments "
          "(0: no splitting).", None, min=0.0, max=1024.0, default_doc="0", engine="max_vram", cli=None),
)
UPSCALER: tuple[Param, ...] = (
    Param("type", "choice", "Upscaler architecture.", "esrgan", choices=("esrgan",)),
    Param("model_src", "path", "The ESRGAN model: a catalogue constant, a path, an https URL or hf://..."),
    Param("tile_size", "int", "Tile side in pixels.", 128, min=16, max=2048),
    Param("direct", "bool", "Direct convolution instead of im2col + matrix product (less memory, often slower).",
          False),
    Param("offload_params_to_cpu", "bool", "Keep the upscaler's weights in RAM and move them to the device when "
          "used.", False),
    Param("threads", "int", "CPU threads of the upscaler.", -1, min=1, max=256, extra=(-1,),
          values_doc="1-256, or -1 for model_config's threads"),
)

DIFFUSION_PARAMS = tuple(p.name for p in DIFFUSION)
UPSCALE_PARAMS = tuple(p.name for p in UPSCALE)
CONFIG_KEYS = tuple(p.name for p in MODEL_CONFIG)
COMPANION_ROLES = {p.name: str(p.engine) for p in MODEL_CONFIG if p.type == "path"}
REPLAYABLE = frozenset(p.name for p in DIFFUSION if p.replayable)
_BY_NAME = {p.name: p for p in DIFFUSION}


def param(name: str) -> Param:
    return _BY_NAME[name] if name != UPSCALE_REPEATS.name else UPSCALE_REPEATS


# ---------------------------------------------------------------- Studio


def form_params() -> list[Param]:
    """diffusion()'s parameters that are fields of the Studio's form (widgets/form_schema.py sends them)."""
    return [p for p in DIFFUSION if p.studio] + [UPSCALE_REPEATS]
