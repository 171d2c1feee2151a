"""Family detection: which network a file holds, and whether the tensors the engine sizes it from are sound.

A diffusion file's version is decided the way the engine's loader decides it (model.cpp
`get_sd_version`: tensor names, and the shapes of the U-Net's first conv, FLUX's img_in, the
text encoder's token table and Wan's patch embedding), taking the file as qvac_nb hands it to
the engine; qvac_nb's family follows from the version, and within FLUX from what the engine
reads elsewhere (Chroma's approximator, the guidance input) and, for FLUX.1 Kontext and
Qwen-Image-Edit, from the file name (or Edit 2511's marker tensor). Files the engine would not
take as a model alone (VAEs, text encoders, upscalers) are told by their names. The tensors
the engine reads to size the network (block counts, widths, head sizes) must all be there and
consistent, since the engine divides by them and indexes with them before it checks anything.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .. import families as family_table
from ..errors import CorruptModelError

MAX_BLOCKS = 4096  # no real network has more repeated blocks; a larger index is corruption
# Integer tensors in real checkpoints are buffers the engine never computes with
# (position_ids, num_batches_tracked, model_ema.num_updates); weights must be floats.
_WEIGHT_NAME = re.compile(r"\.(weight|bias|scale)$")


# ---------------------------------------------------------------- what the engine takes a file for

# The engine's model versions (its SDVersion enum without "VERSION_"), each with the name its log
# gives it, qvac_nb's family for it and the variant of that family.
_VERSIONS: dict[str, tuple[str, str, str]] = {
    "SD1": ("SD 1.x", "sd1", ""),
    "SD1_INPAINT": ("SD 1.x Inpaint", "sd1", "inpaint"),
    "SD1_PIX2PIX": ("Instruct-Pix2Pix", "sd1", "pix2pix"),
    "SD1_TINY_UNET": ("SD 1.x Tiny UNet", "sd1", "tiny_unet"),
    "SD2": ("SD 2.x", "sd2", ""),
    "SD2_INPAINT": ("SD 2.x Inpaint", "sd2", "inpaint"),
    "SD2_TINY_UNET": ("SD 2.x Tiny UNet", "sd2", "tiny_unet"),
    "SDXS_512_DS": ("SDXS (512-DS)", "sd1", "sdxs"),
    "SDXS_09": ("SDXS (09)", "sd2", "sdxs"),
    "SDXL": ("SDXL", "sdxl", ""),
    "SDXL_INPAINT": ("SDXL Inpaint", "sdxl", "inpaint"),
    "SDXL_PIX2PIX": ("SDXL Instruct-Pix2Pix", "sdxl", "pix2pix"),
    "SDXL_VEGA": ("SDXL (Vega)", "sdxl", "vega"),
    "SDXL_SSD1B": ("SDXL (SSD1B)", "sdxl", "ssd1b"),
    "SVD": ("SVD", "svd", ""),
    "SD3": ("SD3.x", "sd3", ""),
    "FLUX": ("Flux", "flux", ""),
    "FLUX_FILL": ("Flux Fill", "flux_fill", ""),
    "FLUX_CONTROLS": ("Flux Control", "flux_controls", ""),
    "FLEX_2": ("Flex.2", "flex2", ""),
    "CHROMA_RADIANCE": ("Chroma Radiance", "chroma_radiance", ""),
    "WAN2": ("Wan 2.x", "wan", ""),
    "WAN2_2_I2V": ("Wan 2.2 I2V", "wan", "i2v"),
    "WAN2_2_TI2V": ("Wan 2.2 TI2V", "wan", "ti2v"),
    "QWEN_IMAGE": ("Qwen Image", "qwen_image", ""),
    "ANIMA": ("Anima", "anima", ""),
    "FLUX2": ("Flux.2", "flux2", "dev"),
    "FLUX2_KLEIN": ("Flux.2 klein", "flux2", "klein"),
    "Z_IMAGE": ("Z-Image", "zimage", ""),
    "OVIS_IMAGE": ("Ovis Image", "ovis_image", ""),
    "ERNIE_IMAGE": ("Ernie Image", "ernie_image", ""),
}
ENGINE_VERSIONS = tuple(_VERSIONS)
# Versions the engine builds on its FLUX DiT (flux.hpp), whose structure _check_flux checks.
FLUX_ARCHITECTURE = ("FLUX", "FLUX_FILL", "FLUX_CONTROLS", "FLEX_2", "CHROMA_RADIANCE", "OVIS_IMAGE", "FLUX2",
                     "FLUX2_KLEIN")

_DIT = "model.diffusion_model."
# A file holding tensors under these is an all-in-one checkpoint and goes to the engine as `model`; any
# other diffusion file as `diffusion_model`, which the engine prefixes with "model.diffusion_model."
# (the rule qvac_nb's loader follows, models._is_split).
_CHECKPOINT_PREFIXES = (_DIT, "first_stage_model.")
# The engine's renaming of top-level prefixes on load (name_conversion.cpp), where it matters here.
_PREFIX_MAP = (("diffusion_model.", _DIT), ("unet.", _DIT), ("transformer.", _DIT), ("vae.", "first_stage_model."))
# The text encoders' token tables whose width tells SD 1.x (768) from SD 2.x (1024), before and after renaming.
_TOKEN_TABLES = frozenset({
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    "cond_stage_model.model.token_embedding.weight",
    "text_model.embeddings.token_embedding.weight",
    "te.text_model.embeddings.token_embedding.weight",
    "conditioner.embedders.0.model.token_embedding.weight",
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
})
_INPUT_LAYERS = frozenset({_DIT + "input_blocks.0.0.weight", _DIT + "img_in.weight", "unet.conv_in.weight"})
# Tensor-name markers that settle the version at once: (substring, version). The engine checks them
# tensor by tensor in file order, so the first tensor carrying one decides.
_AT_ONCE = (
    (_DIT + "nerf_final_layer_conv.", "CHROMA_RADIANCE"),
    (_DIT + "joint_blocks.", "SD3"),
    (_DIT + "transformer_blocks.0.img_mod.1.weight", "QWEN_IMAGE"),
    ("llm_adapter.blocks.0.cross_attn.q_proj.weight", "ANIMA"),
    (_DIT + "double_blocks.0.img_mlp.gate_proj.weight", "OVIS_IMAGE"),
    (_DIT + "cap_embedder.0.weight", "Z_IMAGE"),
    (_DIT + "layers.0.adaLN_sa_ln.weight", "ERNIE_IMAGE"),
    (_DIT + "input_blocks.8.0.time_mixer.mix_factor", "SVD"),
)
_WAN_I2V_PATCH = 5120 * 36  # Wan 2.2 I2V 14B: 36 input channels (latent + mask + image) into 5120
_WAN_TI2V_PATCH = 3072 * 48  # Wan 2.2 TI2V 5B: 48 latent channels into 3072


@dataclass(frozen=True)
class Detection:
    """What a model file is: qvac_nb's family, the engine's version of it and the variant within the family.

    `version` is the engine's SDVersion name without "VERSION_" ("SD1_INPAINT", "FLUX_FILL", ...), or
    None for a file the engine would not take as a model on its own (a VAE, a text encoder, an upscaler,
    a U-Net without its text encoder). `variant` is "" for a family's base model, else e.g. "inpaint",
    "pix2pix", "tiny_unet", "vega", "klein", "schnell".
    """

    family: str
    version: str | None = None
    variant: str = ""

    @property
    def engine_label(self) -> str | None:
        """The engine's own name for the version (what its log prints after "Version:")."""
        return _VERSIONS[self.version][0] if self.version else None


def _ggml_dims(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A tensor's dimensions as the engine indexes them (ne[0] fastest), padded to four."""
    if len(shape) == 5:  # the engine folds a 5-D safetensors shape's first two axes into one
        shape = (shape[0] * shape[1], *shape[2:])
    dims = tuple(reversed(shape))
    return dims + (1,) * (4 - len(dims))


def _engine_view(tensors: Mapping[str, tuple[int, ...]]) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name as loaded, name after the engine's prefix renaming, ggml dims) for each tensor, in file order.

    The engine checks some names before its renaming (diffusers U-Nets, "te." encoders) and some after.
    """
    whole = any(n.startswith(_CHECKPOINT_PREFIXES) for n in tensors)
    out = []
    for raw, shape in tensors.items():
        loaded = raw if whole or raw.startswith(_DIT) else _DIT + raw
        name = loaded
        for old, new in _PREFIX_MAP:
            if name.startswith(old):
                name = new + name[len(old):]
                break
        out.append((loaded, name, _ggml_dims(shape)))
    return out


def detect_version(tensors: Mapping[str, tuple[int, ...]]) -> str | None:
    """The engine's version for a diffusion file, decided the way its loader decides (model.cpp get_sd_version).

    `tensors` maps names to shapes (PyTorch order, as ModelFile.tensors holds them); the file is taken as
    qvac_nb hands it to the engine: a checkpoint as `model`, anything else as `diffusion_model`.
    """
    is_unet = is_xl = is_flux = is_flux2 = is_wan = False
    multiple_encoders = has_block_47 = has_img_emb = False
    has_middle_1 = has_output_311 = has_output_71 = has_attn_1024 = False
    wan_patch = 0
    token_width: int | None = None
    input_dims: tuple[int, ...] = (1, 1, 1, 1)
    for raw, name, dims in _engine_view(tensors):
        for marker, version in _AT_ONCE:
            if marker in name:
                return version
        is_flux = is_flux or _DIT + "double_blocks." in name
        is_flux2 = is_flux2 or _DIT + "double_stream_modulation_img.lin.weight" in name
        has_block_47 = has_block_47 or "single_blocks.47.linear1.weight" in name
        is_wan = is_wan or _DIT + "blocks.0.cross_attn.norm_k.weight" in name
        has_img_emb = has_img_emb or _DIT + "img_emb" in name
        if _DIT + "patch_embedding.weight" in name:
            wan_patch = dims[3]
        if _DIT + "input_blocks." in name or "unet.down_blocks." in raw:
            is_unet = True
        if any(m in name or m in raw for m in ("conditioner.embedders.1", "cond_stage_model.1", "te.1")):
            multiple_encoders = True
        has_middle_1 = has_middle_1 or _DIT + "middle_block.1." in name or "unet.mid_block.resnets.1." in raw
        if _DIT + "output_blocks.3.1.transformer_blocks.1" in name \
                or "unet.up_blocks.1.attentions.0.transformer_blocks.1" in raw:
            has_output_311 = True
        if _DIT + "output_blocks.7.1" in name or "unet.up_blocks.2.attentions.1" in raw:
            has_output_71 = True
            if _DIT + "output_blocks.7.1.transformer_blocks.0.attn1.to_k.weight" in name and dims[0] == 1024:
                has_attn_1024 = True
        if raw in _TOKEN_TABLES or name in _TOKEN_TABLES:
            token_width = dims[0]
        if name in _INPUT_LAYERS or raw in _INPUT_LAYERS:
            input_dims = dims
    is_xl = is_unet and multiple_encoders
    if is_wan:
        if wan_patch == _WAN_I2V_PATCH and not has_img_emb:
            return "WAN2_2_I2V"
        if wan_patch == _WAN_TI2V_PATCH and not has_img_emb:
            return "WAN2_2_TI2V"
        return "WAN2"
    inpaint, pix2pix = input_dims[2] == 9, input_dims[2] == 8  # the U-Net's first conv: in-channels
    if is_xl:
        if inpaint:
            return "SDXL_INPAINT"
        if pix2pix:
            return "SDXL_PIX2PIX"
        if not has_middle_1:
            return "SDXL_SSD1B" if has_output_311 else "SDXL_VEGA"
        return "SDXL"
    if is_flux and not is_flux2:
        # img_in's input features: 64 latent, plus what Fill, the Controls and Flex.2 concatenate to it.
        return {384: "FLUX_FILL", 128: "FLUX_CONTROLS", 196: "FLEX_2"}.get(input_dims[0], "FLUX")
    if is_flux2:
        return "FLUX2" if has_block_47 else "FLUX2_KLEIN"
    if token_width == 768:
        if inpaint:
            return "SD1_INPAINT"
        if pix2pix:
            return "SD1_PIX2PIX"
        if not has_middle_1:
            return "SD1_TINY_UNET" if has_output_71 else "SDXS_512_DS"
        return "SD1"
    if token_width == 1024:
        if inpaint:
            return "SD2_INPAINT"
        if not has_middle_1:
            return "SDXS_09" if has_attn_1024 else "SD2_TINY_UNET"
        return "SD2"
    return None


# FLUX.1 Kontext has FLUX.1 dev's tensors exactly; only its name tells it (as published: flux1-kontext-*).
KONTEXT_MARKER = "kontext"
# Qwen-Image-Edit has Qwen-Image's tensors; its files are published as qwen*image*edit* (2509: "-2509"). Edit
# 2511 also carries this marker tensor, from which the engine switches on its zero_cond_t (qwen_image.hpp).
QWEN_EDIT_MARKER = "edit"
QWEN_2511_TENSOR = "__index_timestep_zero__"


def detect(tensors: Mapping[str, tuple[int, ...]] | Iterable[str], path: str | Path | None = None) -> Detection:
    """Family, engine version and variant of a file from its tensors (names -> shapes) and its file name.

    Plain names (no shapes) are accepted too; then the variants told by shapes (inpainting, FLUX.1 Fill,
    Wan 2.2) fall back to their base version.
    """
    if not isinstance(tensors, Mapping):
        # A dict's key view still reaches its dict (ModelFile.tensors.keys()); plain names get no shapes.
        mapping = getattr(tensors, "mapping", None)
        tensors = mapping if isinstance(mapping, Mapping) else dict.fromkeys(tensors, ())
    version = detect_version(tensors)
    if version is None:
        return Detection(_component_family(tensors))
    _label, family, variant = _VERSIONS[version]
    if version == "FLUX":
        joined = "\n".join(tensors)
        if "distilled_guidance_layer.in_proj.weight" in joined:
            family = "chroma"  # the engine's FLUX with Chroma's pruned modulation (flux.hpp: is_chroma)
        elif "guidance_in.in_layer.weight" not in joined:
            variant = "schnell"  # no distilled-guidance input: step-distilled like FLUX.1 schnell
        elif path is not None and KONTEXT_MARKER in Path(path).name.lower():
            family = "flux_kontext"
    elif version == "QWEN_IMAGE":
        name = Path(path).name.lower() if path is not None else ""
        zero_cond_t = any(QWEN_2511_TENSOR in n for n in tensors)
        if zero_cond_t or QWEN_EDIT_MARKER in name:
            family = "qwen_image_edit"
            variant = "2511" if zero_cond_t or "2511" in name else "2509" if "2509" in name else ""
    return Detection(family, version, variant)


def detect_family(names: Mapping[str, tuple[int, ...]] | Iterable[str], path: str | Path | None = None) -> str:
    """qvac_nb's family name for a file (see `detect`)."""
    return detect(names, path).family


# SDXS models decode with the tiny autoencoder (TAESD) in their file: the engine files the checkpoint's
# first_stage_model. tensors under tae. for them (name_conversion.cpp) and builds no KL autoencoder.
TAE_VERSIONS = ("SDXS_512_DS", "SDXS_09")


class ModelFile(Protocol):
    """What these checks read of a parsed file header (formats.ModelFile, which asks `detect` for its family)."""

    @property
    def path(self) -> Path: ...
    @property
    def format(self) -> str: ...
    @property
    def tensors(self) -> dict[str, tuple[int, ...]]: ...
    @property
    def dtypes(self) -> dict[str, str]: ...
    @property
    def family(self) -> str: ...
    @property
    def detection(self) -> Detection: ...


def loaded_version(info: ModelFile, role: str) -> str | None:
    """The engine version of a model loaded from `info` as `role` ("model" or "diffusion_model").

    An SDXL U-Net-only file goes to the engine beside a marker tensor naming SDXL's second text
    encoder (worker/split_unet.py), so the engine tells its variant (inpainting, pix2pix, ...) from the
    U-Net's tensors; `detect` alone, seeing no text encoder, gives no version for it.
    """
    version = info.detection.version
    if version is None and role == "diffusion_model" and info.family == "sdxl":
        from ..worker.split_unet import MARKER_TENSOR  # a plain module: no engine behind it

        version = detect_version({**info.tensors, MARKER_TENSOR: (1,)})
    return version


def _component_family(tensors: Mapping[str, tuple[int, ...]]) -> str:
    """A file the engine would not take as a model alone: a companion, an upscaler or a bare U-Net."""
    joined = "\n".join(list(tensors)[:20000])
    if "enc.blk.0." in joined or "encoder.block.0." in joined:
        return "text_encoder"  # T5 (llama.cpp or Hugging Face names)
    llm = "blk.0.attn_q" in joined or "model.layers.0.self_attn" in joined or "\nlayers.0.self_attn" in "\n" + joined
    if ("\nv.blk.0." in "\n" + joined or "visual.blocks.0." in joined) and "\nblk.0." not in "\n" + joined \
            and "layers.0.self_attn" not in joined:
        # An LLM's vision tower alone (llm_vision_model_src: a llama.cpp mmproj or Hugging Face `visual.`
        # names); a whole Qwen2.5-VL file has the text layers too and is an LLM.
        return "vision_encoder"
    if llm:
        return "llm"
    if "conv_first.weight" in joined or "body.0.rdb1" in joined or "model.0.weight" in joined:
        return "esrgan"
    if "diffusion_model.input_blocks" in joined or "input_blocks." in joined:
        # A U-Net without its text encoder: the engine cannot tell it alone (qvac_nb pairs an SDXL one).
        if "label_emb" in joined:
            return "sdxl"
        if "cond_stage_model.model.transformer" in joined:
            return "sd2"
        return "sd1"
    if "encoder.conv_in" in joined or "decoder.conv_in" in joined:
        return "vae"
    if is_wan_vae(tensors):
        return "vae"
    if "text_model.encoder" in joined or "encoder.block.0" in joined:
        return "text_encoder"
    return "unknown"


# ---------------------------------------------------------------- structure of each family


def _fail(info: ModelFile, role: str, what: str) -> CorruptModelError:
    return CorruptModelError(f"{role}: {info.path.name} is not a complete {what}")


def _strip(info: ModelFile, prefixes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Tensor shapes under their names without the first matching checkpoint prefix."""
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in info.tensors.items():
        for prefix in prefixes:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        out.setdefault(name, shape)
    return out


def _indices(names: Iterable[str], pattern: str) -> set[int]:
    rx = re.compile(pattern)
    return {int(m.group(1)) for n in names if (m := rx.search(n))}


def _require(info: ModelFile, role: str, shapes: Mapping[str, tuple[int, ...]], needed: Iterable[str],
             what: str) -> None:
    missing = [n for n in needed if n not in shapes]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise CorruptModelError(
            f"{role}: {info.path.name} is not a complete {what}: tensor(s) {', '.join(missing[:3])}{more} are missing "
            "(truncated or damaged file?)"
        )


def _block_count(info: ModelFile, role: str, names: Iterable[str], pattern: str, what: str) -> int:
    found = _indices(names, pattern)
    if not found:
        return 0
    if max(found) >= MAX_BLOCKS:
        raise CorruptModelError(f"{role}: {info.path.name} names block {max(found)}, which no {what} has")
    return max(found) + 1


def _check_dtypes(info: ModelFile, role: str) -> None:
    """Integer or undecodable dtypes on weights make the engine's compute kernels abort."""
    for name, dtype in info.dtypes.items():
        undecodable = info.format == "gguf" and dtype in ("Q8_1", "Q8_K", "F64")  # no ggml dequantizer
        if undecodable or (dtype in ("I8", "I16", "I32", "I64", "U8") and _WEIGHT_NAME.search(name)):
            raise CorruptModelError(f"{role}: {info.path.name}: tensor {name} is stored as {dtype}, not a weight type")


_DIT_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


_CHROMA_APPROXIMATOR_LAYERS = 5  # fixed in the engine (flux.hpp ChromaApproximator)


def _check_flux(info: ModelFile, role: str, version: str) -> None:
    """The engine sizes every FLUX-architecture DiT from txt_in and the QK-norm scales and divides by the head size.

    Which other tensors must be there follows the version: Chroma replaces the time/vector/guidance
    embedders and every modulation with one approximator, Chroma Radiance patches pixels (img_in_patch)
    and decodes with NeRF blocks, Ovis Image has gated MLPs, FLUX.2 shares its modulations.
    """
    flux2 = version in ("FLUX2", "FLUX2_KLEIN")
    what = "FLUX.2 diffusion model" if flux2 else "FLUX diffusion model"
    t = _strip(info, _DIT_PREFIXES)
    chroma = "distilled_guidance_layer.in_proj.weight" in t
    radiance = version == "CHROMA_RADIANCE"
    if radiance or version == "OVIS_IMAGE":
        what = f"{_VERSIONS[version][0]} diffusion model"
    elif chroma:
        what = "Chroma diffusion model"
    depth = _block_count(info, role, t, r"^double_blocks\.(\d+)\.", what)
    single = _block_count(info, role, t, r"^single_blocks\.(\d+)\.", what)
    if depth + single == 0:
        raise _fail(info, role, what + " (no double or single blocks)")
    needed = ["img_in_patch.weight" if radiance else "img_in.weight", "txt_in.weight"]
    if chroma:
        g = "distilled_guidance_layer."
        needed += [g + "in_proj.weight", g + "out_proj.weight"]
        for i in range(_CHROMA_APPROXIMATOR_LAYERS):
            needed += [f"{g}norms.{i}.scale", f"{g}layers.{i}.in_layer.weight", f"{g}layers.{i}.out_layer.weight"]
    else:
        needed += ["time_in.in_layer.weight", "time_in.out_layer.weight"]
    if not radiance:
        needed.append("final_layer.linear.weight")
        if not chroma:
            needed.append("final_layer.adaLN_modulation.1.weight")
    if flux2:
        needed += ["double_stream_modulation_img.lin.weight", "double_stream_modulation_txt.lin.weight",
                   "single_stream_modulation.lin.weight"]
    mlp = ("mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight") if version == "OVIS_IMAGE" \
        else ("mlp.0.weight", "mlp.2.weight")
    for i in range(depth):
        for stream in ("img", "txt"):
            b = f"double_blocks.{i}.{stream}_"
            needed += [b + "attn.qkv.weight", b + "attn.norm.query_norm.scale", b + "attn.norm.key_norm.scale",
                       b + "attn.proj.weight", *(b + part for part in mlp)]
    for i in range(single):
        b = f"single_blocks.{i}."
        needed += [b + "linear1.weight", b + "linear2.weight", b + "norm.query_norm.scale", b + "norm.key_norm.scale"]
    _require(info, role, t, needed, what)
    txt_in = t["txt_in.weight"]
    key_norm = t.get("single_blocks.0.norm.key_norm.scale") or t.get("double_blocks.0.txt_attn.norm.key_norm.scale")
    if len(txt_in) != 2 or not key_norm or len(key_norm) != 1:
        raise _fail(info, role, what + " (txt_in / key_norm shapes)")
    hidden, head_dim = txt_in[0], key_norm[0]
    # RoPE covers 128 dimensions per head in every FLUX; the engine divides hidden by head_dim.
    if head_dim != 128 or hidden % head_dim:
        raise CorruptModelError(
            f"{role}: {info.path.name} has head size {head_dim} and width {hidden}; {what}s have 128-wide heads "
            "and a width that is a multiple of 128"
        )
    for name, shape in t.items():
        if name.endswith(("norm.key_norm.scale", "norm.query_norm.scale")) and shape != (head_dim,):
            raise CorruptModelError(f"{role}: {info.path.name}: {name} has shape {shape}, expected ({head_dim},)")


ERNIE_ROPE_DIMS = 128  # the engine's RoPE axes for ERNIE-Image (32 + 48 + 48), fixed


def _check_ernie(info: ModelFile, role: str) -> None:
    """ERNIE-Image: the engine sizes the DiT from x_embedder, norm_q, the FFN and the layer indices.

    It divides the width by the head size read from norm_q, and rotates 128 dimensions of every head
    (a narrower head aborts in the RoPE at the first step).
    """
    what = "ERNIE-Image diffusion model"
    t = _strip(info, _DIT_PREFIXES)
    layers = _block_count(info, role, t, r"^layers\.(\d+)\.", what)
    if layers == 0:
        raise _fail(info, role, what + " (no layers)")
    needed = ["x_embedder.proj.weight", "time_embedding.linear_1.weight", "time_embedding.linear_2.weight",
              "adaLN_modulation.1.weight", "final_norm.linear.weight", "final_linear.weight"]
    parts = ("adaLN_sa_ln.weight", "self_attention.to_q.weight", "self_attention.to_k.weight",
             "self_attention.to_v.weight", "self_attention.norm_q.weight", "self_attention.norm_k.weight",
             "self_attention.to_out.0.weight", "adaLN_mlp_ln.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
             "mlp.linear_fc2.weight")
    needed += [f"layers.{i}.{part}" for i in range(layers) for part in parts]
    _require(info, role, t, needed, what)
    x_embedder, norm_q = t["x_embedder.proj.weight"], t["layers.0.self_attention.norm_q.weight"]
    if len(x_embedder) != 4 or len(norm_q) != 1:
        raise _fail(info, role, what + " (x_embedder / norm_q shapes)")
    hidden, head_dim = x_embedder[0], norm_q[0]
    if head_dim != ERNIE_ROPE_DIMS or hidden % head_dim:
        raise CorruptModelError(
            f"{role}: {info.path.name} has head size {head_dim} and width {hidden}; {what}s have "
            f"{ERNIE_ROPE_DIMS}-wide heads and a width that is a multiple of {ERNIE_ROPE_DIMS}"
        )


def _check_sd3(info: ModelFile, role: str) -> None:
    what = "SD3 diffusion model"
    t = _strip(info, _DIT_PREFIXES)
    depth = _block_count(info, role, t, r"^joint_blocks\.(\d+)\.", what)
    needed = ["x_embedder.proj.weight", "context_embedder.weight", "final_layer.linear.weight"]
    needed += [f"joint_blocks.{i}.x_block.attn.qkv.weight" for i in range(depth)]
    _require(info, role, t, needed, what)


_UNET = ("model.diffusion_model.", "unet.")
_VAE_PREFIXES = ("first_stage_model.", "vae.")


def _check_unet(info: ModelFile, role: str, family: str) -> None:
    what = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}[family] + " model"
    names = info.tensors
    if any(n.startswith("model.diffusion_model.") for n in names):
        unet = [f"model.diffusion_model.{n}" for n in ("input_blocks.0.0.weight", "time_embed.0.weight",
                                                        "out.2.weight")]
        _require(info, role, names, unet, what)
        shape = names["model.diffusion_model.input_blocks.0.0.weight"]
        if len(shape) != 4 or shape[1] not in (4, 8, 9):
            raise CorruptModelError(f"{role}: {info.path.name}: the U-Net input conv has shape {shape}")
    if info.detection.version in TAE_VERSIONS:
        return  # a tiny autoencoder, which the engine sizes from nothing in the file
    if any(n.startswith("first_stage_model.") for n in names):
        _check_vae(info, role, what)


def _vae_shapes(info: ModelFile) -> dict[str, tuple[int, ...]]:
    return _strip(info, _VAE_PREFIXES)


def is_wan_vae(names: Iterable[str]) -> bool:
    """The Wan 2.x VAE (Qwen-Image's) in its original names: causal 3-D convs in `downsamples`/`upsamples`.

    The engine builds it for Wan and Qwen-Image instead of the SD/FLUX autoencoder, whose decoder
    starts with `decoder.conv_in`; a file of one kind cannot stand in for the other.
    """
    return any("decoder.upsamples." in name for name in names)


def _check_wan_vae(info: ModelFile, role: str) -> None:
    """The engine fixes the Wan VAE's widths; the latent width is conv1's input (16 for Wan 2.1, 48 for 2.2)."""
    what = "Wan VAE"
    t = _vae_shapes(info)
    _require(info, role, t, ["decoder.conv1.weight", "decoder.head.2.weight", "conv2.weight"], what)
    conv1 = t["decoder.conv1.weight"]
    if len(conv1) != 5 or conv1[1] not in (16, 48):
        raise CorruptModelError(
            f"{role}: {info.path.name}: the Wan VAE decoder's conv1 has shape {conv1}; expected (c, z, 3, 3, 3) "
            "with z 16 or 48"
        )


def _check_vae(info: ModelFile, role: str, what: str = "VAE") -> None:
    """The engine sizes the decoder from decoder.conv_in; its GroupNorms need a multiple of 32 channels."""
    t = _vae_shapes(info)
    if is_wan_vae(t):
        _check_wan_vae(info, role)
        return
    _require(info, role, t, ["decoder.conv_in.weight", "decoder.conv_out.weight"], what)
    conv_in = t["decoder.conv_in.weight"]
    if len(conv_in) != 4 or conv_in[0] % 128 or conv_in[1] not in (4, 16, 32):
        raise CorruptModelError(
            f"{role}: {info.path.name}: the VAE decoder's conv_in has shape {conv_in}; expected (4*ch, z, 3, 3) "
            "with ch a multiple of 32 and z 4, 16 or 32"
        )


def vae_latent_channels(info: ModelFile) -> int | None:
    t = _vae_shapes(info)
    wan = t.get("decoder.conv1.weight") if is_wan_vae(t) else None
    if wan:
        return wan[1] if len(wan) == 5 else None
    shape = t.get("decoder.conv_in.weight")
    return shape[1] if shape and len(shape) == 4 else None


def decoder_channels(info: ModelFile) -> int | None:
    """The VAE decoder's width at full resolution (the engine reads it from decoder.conv_in)."""
    t = _vae_shapes(info)
    if is_wan_vae(t):  # its last norm is as wide as the full-resolution blocks
        gamma = t.get("decoder.head.0.gamma")
        return gamma[0] if gamma else None
    shape = t.get("decoder.conv_in.weight")
    return shape[0] // 4 if shape and len(shape) == 4 else None


ANIMA_HEADS = 16  # fixed in the engine (anima.hpp AnimaNet: 2048 wide, 128 per head)


def dit_heads(info: ModelFile) -> int | None:
    """Attention heads of a FLUX, SD3, ERNIE-Image or Anima DiT."""
    shapes = _strip(info, _DIT_PREFIXES)
    txt_in = shapes.get("txt_in.weight")
    if txt_in:
        return max(txt_in[0] // 128, 1)
    # ERNIE-Image: the engine divides its width (x_embedder's output) by the head size (norm_q's).
    x_embedder, norm_q = shapes.get("x_embedder.proj.weight"), shapes.get("layers.0.self_attention.norm_q.weight")
    if x_embedder and norm_q and norm_q[0]:
        return max(x_embedder[0] // norm_q[0], 1)
    if any("llm_adapter." in name for name in shapes):
        return ANIMA_HEADS
    depth = len(_indices(shapes, r"^joint_blocks\.(\d+)\."))
    return depth or None  # SD3: one 64-wide head per block


_LLM_LAYER_GGUF = ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "attn_norm.weight",
                   "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")
_LLM_LAYER_HF = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                 "self_attn.o_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight",
                 "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")


def llm_geometry(info: ModelFile) -> tuple[int, int] | None:
    """(layers, hidden width) of an LLM text encoder, or None when it is not one."""
    t = info.tensors
    if "token_embd.weight" in t:
        layers = _indices(t, r"^blk\.(\d+)\.")
        return (max(layers) + 1 if layers else 0), t["token_embd.weight"][-1]
    t = _strip(info, ("model.",))
    if "embed_tokens.weight" in t:
        layers = _indices(t, r"^layers\.(\d+)\.")
        return (max(layers) + 1 if layers else 0), t["embed_tokens.weight"][-1]
    return None


def _check_llm(info: ModelFile, role: str) -> None:
    """The engine sizes the LLM from its token table and layer indices."""
    what = "LLM text encoder"
    if "token_embd.weight" in info.tensors:
        t, layer = dict(info.tensors), "blk.{}."
        needed = ["token_embd.weight", "output_norm.weight"]
        parts = _LLM_LAYER_GGUF
        pattern = r"^blk\.(\d+)\."
    else:
        t, layer = _strip(info, ("model.",)), "layers.{}."
        needed = ["embed_tokens.weight", "norm.weight"]
        parts = _LLM_LAYER_HF
        pattern = r"^layers\.(\d+)\."
    layers = _block_count(info, role, t, pattern, what)
    if layers == 0:
        raise _fail(info, role, what + " (no layers)")
    for i in range(layers):
        needed += [layer.format(i) + p for p in parts]
    _require(info, role, t, needed, what)


def _check_esrgan(info: ModelFile, role: str) -> None:
    """The engine builds one RRDB per block index it sees and maps every conv by name."""
    what = "ESRGAN upscaler"
    t = info.tensors
    if "model.0.weight" in t:  # original ESRGAN naming
        blocks = _block_count(info, role, t, r"^model\.1\.sub\.(\d+)\.RDB", what)
        needed = ["model.0.weight", "model.0.bias", f"model.1.sub.{blocks}.weight"]
        body = "model.1.sub.{i}.RDB{j}.conv{k}.0.{p}"
    else:  # Real-ESRGAN naming
        blocks = _block_count(info, role, t, r"^body\.(\d+)\.", what)
        needed = ["conv_first.weight", "conv_first.bias", "conv_body.weight", "conv_hr.weight", "conv_last.weight"]
        body = "body.{i}.rdb{j}.conv{k}.{p}"
    if blocks == 0:
        raise _fail(info, role, what + " (no RRDB blocks)")
    needed += [body.format(i=i, j=j, k=k, p=p) for i in range(blocks) for j in (1, 2, 3) for k in range(1, 6)
               for p in ("weight", "bias")]
    _require(info, role, t, needed, what)
    first = t.get("conv_first.weight") or t.get("model.0.weight")
    if first is None or len(first) != 4 or first[1] != 3:
        raise CorruptModelError(f"{role}: {info.path.name}: the first conv has shape {first}; expected (64, 3, 3, 3)")


def check_structure(info: ModelFile, role: str = "model") -> None:
    """Raise CorruptModelError when the tensors the engine sizes the network from are missing or inconsistent.

    A model the engine runs but qvac_nb has no family settings for loads all the same: for the
    model being loaded (role "model_src") a RuntimeWarning names its version and says it runs on
    neutral defaults.
    """
    _check_dtypes(info, role)
    detection = info.detection
    family = detection.family
    if detection.version in FLUX_ARCHITECTURE:
        _check_flux(info, role, detection.version)
    elif family == "sd3":
        _check_sd3(info, role)
    elif detection.version == "ERNIE_IMAGE":
        _check_ernie(info, role)
    elif family in ("sd1", "sd2", "sdxl"):
        _check_unet(info, role, family)
    elif family == "vae":
        _check_vae(info, role)
    elif family == "llm":
        _check_llm(info, role)
    elif family == "esrgan":
        _check_esrgan(info, role)
    if role == "model_src":
        _warn_if_new(info, detection)


def _warn_if_new(info: ModelFile, detection: Detection) -> None:
    if detection.version is None or detection.family in family_table.FAMILIES \
            or detection.family in family_table.VIDEO_FAMILIES:
        return
    warnings.warn(
        f"model_src: {info.path.name} is a {detection.engine_label} model (the engine's VERSION_{detection.version}), "
        f"which the engine runs but qvac_nb has no settings for yet; it loads with neutral defaults (the schema's "
        "steps, cfg_scale, guidance, sampler and scheduler, every parameter shown): set them for this model yourself",
        RuntimeWarning,
        stacklevel=2,
    )
