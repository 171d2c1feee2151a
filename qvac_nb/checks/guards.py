"""Guards in front of engine paths that abort or crash the process on legal-looking input.

Each check raises a QvacError naming the parameter before the engine is called. The
comment on each names the engine path it stands in front of (stable-diffusion.cpp as
vendored by stable-diffusion-cpp-python 0.4.7); docs/reliability.md lists them with the
test that shows each one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import families, schema
from ..errors import InvalidParameterError, QvacError, UnsupportedOperationError
from ..loaded_model import LoadedModel
from ..modelfiles.detection import decoder_channels, dit_heads
from ..modelfiles.reading import inspect_file
from ..request_types import DiffusionRequest
from ..schema import MAX_SIDE

# Weight types the engine can convert every tensor to. For q8_1, q8_K, f64 and the
# integer types ggml has no row quantizer, and ModelLoader::load_tensors -> convert_tensor
# -> ggml_quantize_chunk aborts (GGML_ASSERT(result == nrows * row_size)).
CONVERTIBLE_TYPES = ("f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K",
                     "q6_K", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "iq4_nl", "iq4_xs",
                     "tq1_0", "tq2_0", "mxfp4", "nvfp4")
# AYSScheduler has noise tables for SD 1.5, SDXL and SVD only; for SD 2.x it interpolates
# an empty table (reading out of bounds) and for the rest it returns all-zero sigmas.
AYS_FAMILIES = ("sd1", "sdxl")
# A FLUX.2 reference image is VAE-encoded at its own size; under 16 pixels a side the
# latent has no 2x2 patch left and ggml asserts (abort) while patchifying.
MIN_REF_SIDE = 16
MIN_SIDE = 64  # validation's lower bound for width and height
# CLIP ViT-L (SD 1.x, the first encoder of SDXL and SD3) has 12 layers; clip_skip=12
# leaves none and CLIPTextModel::forward segfaults.
CLIP_LAYERS = 12
# Room left for the weights' conversion buffers, Python and the notebook around the estimate.
MEMORY_HEADROOM = 512 * 2**20
# The head count assumed for an LLM text encoder attending over the whole prompt (Qwen3-4B has 32,
# Qwen2.5-VL-7B 28; the guard errs on the side of refusing).
LLM_ATTENTION_HEADS = 32


def check_load_config(config: Mapping[str, Any]) -> None:
    """model_config values the engine accepts but cannot load with."""
    weight_type = config.get("type")
    if weight_type is not None and weight_type not in CONVERTIBLE_TYPES:
        raise InvalidParameterError(
            f"model_config.type: the engine cannot convert weights to {weight_type!r}; "
            f"use one of {', '.join(CONVERTIBLE_TYPES)}"
        )


def available_memory() -> int | None:
    """Bytes of RAM the process can still get without swapping, or None when unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class _Geometry:
    vae_channels: int  # width of the VAE decoder at full resolution
    heads: int  # attention heads at the finest attention level (U-Net) or of the DiT
    attention_factor: int  # pixels per attention token at that level


_geometries: dict[str, _Geometry] = {}


def _geometry(model: LoadedModel) -> _Geometry:
    """What sizes the engine's compute buffers, read (once) from the model's file headers."""
    cached = _geometries.get(model.model_id)
    if cached is not None:
        return cached
    vae_channels, heads = 128, 8
    files = getattr(model, "files", {})
    vae_file = files.get("vae") or files.get("model")
    try:
        if vae_file is not None:
            vae_channels = decoder_channels(inspect_file(vae_file)) or vae_channels
        dit = files.get("diffusion_model") or files.get("model")
        if families.get(model.family).dit and dit is not None:
            heads = dit_heads(inspect_file(dit)) or heads
    except QvacError:
        pass  # the file checks at load time passed; a changed file must not block generating
    if model.family == "sd2":
        heads = 5  # 320 channels / 64 per head at the first level
    elif model.family == "sdxl":
        heads = 10  # SDXL has no attention at the first level; 640 / 64 at the second
    factor = {"sd1": 64, "sd2": 64, "sdxl": 256}.get(model.family, 256)
    _geometries[model.model_id] = geometry = _Geometry(vae_channels, heads, factor)
    return geometry


def prompt_tokens(*texts: str) -> int:
    """An upper estimate of the tokens a prompt makes: 3 UTF-8 bytes a token (CJK is about one a character)."""
    return sum(len(text.encode("utf-8", "surrogatepass")) for text in texts) // 3 + 1


def text_encoder_memory(model: LoadedModel, tokens: int) -> int:
    """Bytes the text encoder's attention holds for `tokens` tokens.

    An LLM encoder (FLUX.2's Qwen3) attends over the whole prompt at once: a heads x tokens x
    tokens f32 matrix plus its softmax copy (measured: a 20,000-character prompt took 6.7 GB on
    the test model). CLIP encoders work in 77-token windows, so their memory does not grow that way.
    """
    if not reads_llm(model.family):
        return 0
    return LLM_ATTENTION_HEADS * tokens * tokens * 4 * 2


def estimate_memory(model: LoadedModel, width: int, height: int, *, vae_tiling: bool = False, ref_pixels: int = 0,
                    encode_pixels: int = 0, upscaled_pixels: int = 0, text_tokens: int = 0) -> dict[str, int]:
    """Bytes of the engine's largest compute buffers for one generation (they are used one after another).

    Attention without flash attention holds a heads x tokens x tokens f32 matrix
    (ggml_ext_attention_ext); a VAE pass holds about 50 bytes per pixel per channel of
    its full-resolution width (measured on the test models: 1,600 B/pixel at 32 channels).
    """
    geo = _geometry(model)
    pixels = width * height
    config = getattr(model, "config", {})
    tokens = pixels // geo.attention_factor + ref_pixels // 256 + (512 if geo.attention_factor == 256 else 0)
    if config.get("diffusion_fa") or config.get("flash_attn"):
        attention = geo.heads * tokens * 128 * 4 * 4
    else:
        attention = geo.heads * tokens * tokens * 4
    decode_pixels = min(pixels, 512 * 512) if vae_tiling else pixels
    return {
        "attention": attention,
        "vae_decode": decode_pixels * geo.vae_channels * 50,
        "vae_encode": max(encode_pixels, ref_pixels) * 128 * 50,
        "upscale": upscale_memory(pixels, upscaled_pixels, _tile_size(model)) if upscaled_pixels else 0,
        "text_encoder": text_encoder_memory(model, text_tokens),
    }


def _tile_size(model: LoadedModel) -> int:
    return int((getattr(model, "config", {}).get("upscaler") or {}).get("tile_size", 128))


def upscale_memory(pixels: int, upscaled_pixels: int, tile_size: int = 128) -> int:
    """Bytes an ESRGAN upscale holds: float input and output images, the uint8 and PNG copies, one tile's buffers.

    A tile's feature maps are 64 channels of f32 at up to 4x the tile's side, a few alive at once:
    about 8 KiB per tile pixel (128 MiB at the default tile_size of 128).
    """
    return pixels * 12 + upscaled_pixels * 20 + tile_size * tile_size * 8192


def check_memory(model: LoadedModel, params: Mapping[str, Any], init: np.ndarray | None) -> None:
    """Refuse a generation whose compute buffers cannot fit in free RAM.

    ggml's allocator only fails cleanly when an allocation is larger than RAM and swap
    together; anything between free and total memory is granted by the kernel and the
    process is then OOM-killed (the Jupyter kernel dies) while the buffer fills.
    """
    free = available_memory()
    if free is None:
        return
    width, height = params["width"], params["height"]
    ref_pixels = encode_pixels = 0
    if init is not None:
        if model.family == "flux2":
            ref_pixels = init.shape[0] * init.shape[1]
        else:
            encode_pixels = width * height
    factor = getattr(model, "upscale_factor", 0) ** params.get("upscale_repeats", 0) if params.get(
        "upscale_repeats") else 0
    tokens = prompt_tokens(params.get("prompt", ""), params.get("negative_prompt", ""))
    parts = estimate_memory(model, width, height, vae_tiling=bool(params.get("vae_tiling")), ref_pixels=ref_pixels,
                            encode_pixels=encode_pixels, upscaled_pixels=width * height * factor * factor,
                            text_tokens=tokens)
    part, need = max(parts.items(), key=lambda item: item[1])
    if need + MEMORY_HEADROOM <= free:
        return
    gib = 2**30
    advice = {
        "attention": "a smaller size, or model_config={'diffusion_fa': True} (flash attention) when loading",
        "vae_decode": "a smaller size, or vae_tiling=True",
        "vae_encode": "a smaller init_image" if ref_pixels else "a smaller size",
        "upscale": "fewer upscale repeats, a smaller size or a smaller model_config upscaler tile_size",
        "text_encoder": "a shorter prompt",
    }[part]
    name, size = ("upscale" if part == "upscale" else "width"), f"{width}x{height}"
    if part == "text_encoder":
        name, size = "prompt", f"a prompt of about {tokens} tokens"
    if part == "vae_encode" and ref_pixels and init is not None:
        name, size = "init_image", f"a {init.shape[1]}x{init.shape[0]} reference image"
    raise InvalidParameterError(
        f"{name}: {size} needs about {need / gib:.1f} GiB for the {part.replace('_', ' ')} but only "
        f"{free / gib:.1f} GiB of RAM are free; use {advice}"
    )


def check_diffusion(model: LoadedModel, params: Mapping[str, Any], init: np.ndarray | None) -> None:
    """Generation parameters that pass validation but crash (or silently change) in the engine for this model."""
    family = model.family
    check_size(family, params)
    steps = params["steps"]
    scheduler = params.get("scheduler") or model.default_scheduler
    # GITSScheduler::get_sigmas indexes its noise table with steps - 2.
    if scheduler == "gits" and steps < 2:
        raise InvalidParameterError("steps: the gits scheduler needs at least 2 steps")
    if scheduler == "ays" and family not in AYS_FAMILIES:
        raise UnsupportedOperationError(
            f"scheduler: 'ays' has noise levels for SD 1.x and SDXL only, not for this {family} model"
        )
    clip_skip = params.get("clip_skip", -1)
    if clip_skip >= CLIP_LAYERS and family in ("sd1", "sdxl", "sd3"):
        raise InvalidParameterError(f"clip_skip: must be less than the {CLIP_LAYERS} CLIP layers, got {clip_skip}")
    if init is not None and family == "flux2" and not params.get("auto_resize_ref_image"):
        check_reference_size("init_image", init)
    check_sampler_switches(model, params, init)
    check_memory(model, params, init)


# ---------------------------------------------------------------- sampler switches

# model_config predictions whose denoiser is a flow one (the engine's FLOW_PRED, FLUX_FLOW_PRED, FLUX2_FLOW_PRED),
# and those among them that take the request's flow_shift (FLUX.2's denoiser sets its own from the image size).
FLOW_PREDICTIONS = ("flow", "sd3_flow", "flux_flow", "flux2_flow")
SHIFTED_PREDICTIONS = ("flow", "sd3_flow", "flux_flow")
# The blocks skip_layers counts: SD3's joint blocks, or FLUX's double blocks followed by its single blocks.
_BLOCK = re.compile(r"(?:^|\.)(joint_blocks|double_blocks|single_blocks)\.(\d+)\.")
_block_counts: dict[str, dict[str, int] | None] = {}


def block_counts(model: LoadedModel) -> dict[str, int] | None:
    """{"joint_blocks" | "double_blocks" | "single_blocks": count} of the model's DiT, read (once) from its
    file header the way the engine sizes it (the highest index + 1); None when the file cannot tell."""
    if model.model_id in _block_counts:
        return _block_counts[model.model_id]
    files = getattr(model, "files", {})
    dit = files.get("diffusion_model") or files.get("model")
    counts: dict[str, int] | None = None
    try:
        if dit is not None:
            found: dict[str, int] = {}
            for name in inspect_file(dit).tensors:
                match = _BLOCK.search(name)
                if match:
                    found[match.group(1)] = max(found.get(match.group(1), 0), int(match.group(2)) + 1)
            counts = found or None
    except QvacError:
        pass  # it loaded, so it was sound; a file changed since must not block generating
    _block_counts[model.model_id] = counts
    return counts


def slg_window(steps: int, start: float, end: float) -> tuple[int, int]:
    """(lo, hi): the engine runs skip-layer guidance at steps s (1 to steps) with lo < s < hi.

    It scales the fractions by the schedule's length (steps + 1 noise levels) in float32 and truncates.
    """
    levels = np.float32(steps + 1)
    return int(np.float32(start) * levels), int(np.float32(end) * levels)


def sampled_steps(model: LoadedModel, params: Mapping[str, Any], init: np.ndarray | None) -> int:
    """The steps the engine samples: img2img that re-noises the init image runs only the last `strength` share
    (the engine's float32 count, one short of steps at most)."""
    steps = int(params["steps"])
    strength = float(params.get("strength", 1.0))
    if init is None or strength >= 1.0 or families.for_model(model).img2img != "sdedit":
        return steps
    t_enc = int(np.float32(steps) * np.float32(strength))
    return (t_enc - 1 if t_enc == steps else t_enc) + 1


def _applies(name: str, model: LoadedModel) -> None:
    """Refuse a sampler switch the engine ignores for this model's family (schema.Param.families)."""
    p = schema.param(name)
    if p.families is None or model.family in p.families:
        return
    where = ", ".join(dict.fromkeys(families.get(f).label for f in p.families))
    raise UnsupportedOperationError(f"{name}: the engine reads it for {where} models only, not for this "
                                    f"{families.get(model.family).label} model; leave it out", param=name)


def check_sampler_switches(model: LoadedModel, params: Mapping[str, Any], init: np.ndarray | None) -> None:
    """flow_shift, timestep_shift, skip-layer guidance and sigmas: refuse what the engine would ignore or not do.

    `params` is the job's record: a switch left at its default is not in it.
    """
    label = families.get(model.family).label
    prediction = getattr(model, "prediction", "auto")
    flow = prediction in FLOW_PREDICTIONS if prediction != "auto" else families.get(model.family).dit
    sigmas = params.get("sigmas")
    if sigmas is not None:
        if len(sigmas) != params["steps"] + 1:
            raise InvalidParameterError(
                f"sigmas: {len(sigmas)} noise levels make {len(sigmas) - 1} steps (one from each level to the "
                f"next), but steps is {params['steps']}; pass steps={len(sigmas) - 1}", param="sigmas")
        if flow and max(sigmas) > 1:
            raise InvalidParameterError(
                f"sigmas: this {label} model is a flow model, whose noise levels run from 1 (pure noise) down to 0; "
                f"got {max(sigmas):g}", param="sigmas")
    if params.get("flow_shift") is not None:
        if prediction == "auto":
            _applies("flow_shift", model)
        elif prediction not in SHIFTED_PREDICTIONS:
            raise UnsupportedOperationError(
                f"flow_shift: the engine shifts the schedule of flow models only; this model was loaded with "
                f"prediction {prediction!r}", param="flow_shift")
        if sigmas is not None:
            raise InvalidParameterError("flow_shift: has no effect with sigmas (the shift shapes the scheduler's "
                                        "noise levels, which sigmas replaces); give one or the other",
                                        param="flow_shift")
    if params.get("timestep_shift", 0):
        _applies("timestep_shift", model)
    if params.get("slg_scale", 0.0):
        _applies("slg_scale", model)
        check_skip_layers(model, params, init)


def check_skip_layers(model: LoadedModel, params: Mapping[str, Any], init: np.ndarray | None) -> None:
    """Skip-layer guidance that would do nothing: no layers, layers past the model's depth, or no step to run at."""
    layers = params.get("skip_layers", schema.ENGINE_SKIP_LAYERS)
    if not layers:
        raise InvalidParameterError("skip_layers: give at least one block for skip-layer guidance to leave out "
                                    "(or set slg_scale to 0)", param="skip_layers")
    counts = block_counts(model)
    if counts:
        depth = sum(counts.values())
        beyond = sorted({layer for layer in layers if layer >= depth})
        if beyond:
            kinds = "" if len(counts) == 1 else " (" + ", then ".join(
                f"{n} {kind.split('_')[0]}" for kind, n in sorted(counts.items())) + " blocks)"
            raise InvalidParameterError(
                f"skip_layers: this {families.get(model.family).label} model has {depth} blocks, numbered 0-"
                f"{depth - 1}{kinds}; {', '.join(map(str, beyond))} {'is' if len(beyond) == 1 else 'are'} past "
                "the last", param="skip_layers")
    start = params.get("skip_layer_start", schema.param("skip_layer_start").default)
    end = params.get("skip_layer_end", schema.param("skip_layer_end").default)
    if start >= end:
        raise InvalidParameterError(f"skip_layer_start: must be below skip_layer_end ({end:g}), got {start:g}",
                                    param="skip_layer_start")
    steps = sampled_steps(model, params, init)
    lo, hi = slg_window(steps, start, end)
    if lo + 1 >= hi:
        raise InvalidParameterError(
            f"skip_layer_end: with {steps} sampled steps skip-layer guidance would run at no step (the engine runs "
            f"it at steps s with int(skip_layer_start x {steps + 1}) < s < int(skip_layer_end x {steps + 1}), here "
            f"{lo} < s < {hi}); raise skip_layer_end (up to 1.0), lower skip_layer_start or sample more steps",
            param="skip_layer_end")


def size_multiple(family: str) -> int:
    """The multiple of pixels a model family's images come in: the family table's `size_multiple`."""
    return families.get(family).size_multiple


def reads_llm(family: str) -> bool:
    """Whether the family's text encoder is an LLM, which attends over the whole prompt at once."""
    row = families.get(family)
    return "llm_model_src" in row.text_encoders or "llm_model_src" in row.required_companions


def check_size(family: str, params: Mapping[str, Any], multiple: int | None = None) -> None:
    """Refuse a width or height the model cannot make, naming the nearest sizes it can.

    The engine would silently round it up, and the image would not have the size its record says.
    """
    multiple = multiple or size_multiple(family)  # a variant's own step (Wan 2.2 TI2V: 32) where given
    for name in ("width", "height"):
        value = params[name]
        if value % multiple == 0:
            continue
        down = value - value % multiple
        options = [size for size in (down, down + multiple) if MIN_SIDE <= size <= MAX_SIDE]
        raise InvalidParameterError(
            f"{name}: {value} is not a size this {families.get(family).label} model can make; the model makes "
            f"sizes in multiples of {multiple}; try {' or '.join(str(size) for size in options)}"
        )


def check_upscale(model: LoadedModel, pixels: np.ndarray, repeats: int) -> None:
    """Refuse an upscale whose images cannot fit in free RAM (see check_memory for why)."""
    free = available_memory()
    if free is None:
        return
    height, width = pixels.shape[:2]
    factor = model.upscale_factor**repeats
    need = upscale_memory(width * height, width * height * factor * factor, _tile_size(model))
    if need + MEMORY_HEADROOM > free:
        gib = 2**30
        raise InvalidParameterError(
            f"{'repeats' if repeats > 1 else 'image'}: upscaling {width}x{height} x{factor} needs about "
            f"{need / gib:.1f} GiB but only {free / gib:.1f} GiB of RAM are free; use fewer repeats, a smaller image "
            "or a smaller model_config upscaler tile_size"
        )


# ---------------------------------------------------------------- reference images, hires fix


def check_reference_size(name: str, image: np.ndarray) -> None:
    """A FLUX.2 reference encoded at its own size (auto_resize_ref_image=False) must patchify (see check_diffusion)."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_REF_SIDE or (height // 8) % 2 or (width // 8) % 2:
        fit = "x".join(str(max(MIN_REF_SIDE, side - side % 16)) for side in (width, height))
        raise InvalidParameterError(
            f"{name}: with auto_resize_ref_image=False, FLUX.2 encodes a reference at its own size, which must be at "
            f"least {MIN_REF_SIDE} pixels a side and a multiple of 16 (give or take 7); got {width}x{height}, resize "
            f"it to e.g. {fit} or leave auto_resize_ref_image on"
        )


def reference_pixels(refs: list[np.ndarray], width: int, height: int, auto_resize: bool) -> int:
    """Pixels the engine VAE-encodes for the references: each resized to the output's area (at most 1 MP) or as is."""
    if auto_resize:
        return len(refs) * min(1024 * 1024, width * height)
    return sum(int(r.shape[0]) * int(r.shape[1]) for r in refs)


def check_image_inputs(model: LoadedModel, request: DiffusionRequest, refs: list[np.ndarray]) -> None:
    """What init_images and the hires fix add to a generation: reference sizes, and memory at the larger size."""
    if request.init_images is not None and not request.auto_resize_ref_image:
        for i, image in enumerate(request.init_images):
            check_reference_size(f"init_images[{i}]", image)
    if request.init_images is None and request.hires is None:
        return  # check_diffusion covered everything else
    free = available_memory()
    if free is None:
        return
    from ..schema import hires_target

    width, height = request.width, request.height
    if request.hires is not None:
        width, height = hires_target(request.hires, width, height)
        multiple = size_multiple(model.family)
        if width % multiple or height % multiple:
            # The engine would round it silently, and the image would not have the size asked for.
            raise InvalidParameterError(
                f"hires: the second pass would be {width}x{height}, but this model makes sizes in multiples of "
                f"{multiple}; pick a scale (or width/height) that gives such a size", param="hires")
    ref_pixels = reference_pixels(refs, request.width, request.height, bool(request.auto_resize_ref_image))
    factor = getattr(model, "upscale_factor", 0) ** request.upscale if request.upscale else 0
    parts = estimate_memory(model, width, height, vae_tiling=bool(request.vae_tiling), ref_pixels=ref_pixels,
                            upscaled_pixels=width * height * factor * factor)
    part, need = max(parts.items(), key=lambda item: item[1])
    if need + MEMORY_HEADROOM <= free:
        return
    if request.hires is None or request.init_images is None:
        name = "hires" if request.init_images is None else "init_images"
    else:  # both: the references weigh on encoding, the hires size on the rest
        name = "init_images" if part == "vae_encode" else "hires"
    gib = 2**30
    raise InvalidParameterError(
        f"{name}: {width}x{height} with {len(refs)} reference image(s) needs about {need / gib:.1f} GiB for the "
        f"{part.replace('_', ' ')} but only {free / gib:.1f} GiB of RAM are free; use fewer or smaller reference "
        "images, a smaller hires scale, or vae_tiling=True"
    )
