"""SD 1.x, SD 2.x and SDXL: the ldm `UNetModel` with its text encoders and KL VAE.

The engine fixes the U-Net's widths (model_channels 320, context width per family) and
picks the variant from which blocks exist, so the smallest variant it knows is used for
each family:

- sd1: BK-SDM "tiny" layout (one ResNet per level, three levels, no middle block), which
  the engine detects as SD1 tiny U-Net when there is no `middle_block.1` but there is an
  `output_blocks.7.1`. Text: CLIP ViT-L in Hugging Face names, as in SD 1.x checkpoints.
- sd2: the same tiny layout; the 1024-wide OpenCLIP ViT-H token table makes it SD2.
- sdxl: Segmind Vega layout (transformer depths 1/1/2, middle block = one ResNet), the
  smallest SDXL variant the engine knows: detected when there is a second text encoder,
  no `middle_block.1` and no `output_blocks.3.1.transformer_blocks.1`. CLIP ViT-L and
  OpenCLIP bigG sit in the same file under `conditioner.embedders.0/1`, as in SDXL
  checkpoints (see `_build_sdxl` for why not as companions).

Everything carries the original checkpoint names (`model.diffusion_model.`,
`cond_stage_model.`, `first_stage_model.`), so the engine's name conversion is exercised
the way a user's single-file checkpoint exercises it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import clip
from .formats import TensorSpec, write_gguf
from .kl_vae import kl_vae
from .layers import conv, linear, norm, typed
from .recipe import Recipe

MODEL_CHANNELS = 320
TIME_EMBED = 4 * MODEL_CHANNELS
UNET = "model.diffusion_model."
VAE = "first_stage_model."
# Narrow VAE decoder: the engine infers its width; 32 (GroupNorm needs a multiple of 32)
# saves 93 MB per model and about a quarter of an sd1 64x64 generation.
DECODER_CH = 32


@dataclass(frozen=True)
class UNetLayout:
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention: tuple[bool, ...]  # per level: a SpatialTransformer after each ResNet
    depth: tuple[int, ...]  # transformer blocks per level
    middle: tuple[str, ...]  # "res" / "attn" parts of middle_block, in order
    middle_depth: int
    context_dim: int
    linear_proj: bool  # SD2/SDXL project in/out of the transformers with Linear, SD1 with 1x1 conv
    adm_in_channels: int = 0  # SDXL's pooled-text + size conditioning ("label_emb")
    tiny: bool = False  # BK-SDM: checkpoints keep the full U-Net's block numbering


SD1_TINY = UNetLayout((1, 2, 4), 1, (True, True, True), (1, 1, 1), (), 0, 768, False, tiny=True)
SD2_TINY = UNetLayout((1, 2, 4), 1, (True, True, True), (1, 1, 1), (), 0, 1024, True, tiny=True)
SDXL_VEGA = UNetLayout((1, 2, 4), 2, (False, True, True), (1, 1, 2), ("res",), 0, 2048, True, 2816)


def _resblock(prefix: str, cin: int, cout: int) -> list[TensorSpec]:
    specs = norm(prefix + "in_layers.0.", cin) + conv(prefix + "in_layers.2.", cout, cin, 3)
    specs += linear(prefix + "emb_layers.1.", cout, TIME_EMBED)
    specs += norm(prefix + "out_layers.0.", cout) + conv(prefix + "out_layers.3.", cout, cout, 3)
    if cin != cout:
        specs += conv(prefix + "skip_connection.", cout, cin, 1)
    return specs


def _proj(prefix: str, dim: int, as_linear: bool) -> list[TensorSpec]:
    return linear(prefix, dim, dim) if as_linear else conv(prefix, dim, dim, 1)


def _transformer(prefix: str, dim: int, depth: int, layout: UNetLayout) -> list[TensorSpec]:
    # Head count does not change any shape (heads * head_dim == dim), so it is not modelled.
    specs = norm(prefix + "norm.", dim) + _proj(prefix + "proj_in.", dim, layout.linear_proj)
    for i in range(depth):
        block = f"{prefix}transformer_blocks.{i}."
        for attn, kv_dim in (("attn1", dim), ("attn2", layout.context_dim)):
            specs += linear(f"{block}{attn}.to_q.", dim, dim, bias=False)
            specs += linear(f"{block}{attn}.to_k.", dim, kv_dim, bias=False)
            specs += linear(f"{block}{attn}.to_v.", dim, kv_dim, bias=False)
            specs += linear(f"{block}{attn}.to_out.0.", dim, dim)
        specs += linear(block + "ff.net.0.proj.", 8 * dim, dim)  # GEGLU: value and gate
        specs += linear(block + "ff.net.2.", dim, 4 * dim)
        for n in ("norm1.", "norm2.", "norm3."):
            specs += norm(block + n, dim)
    return specs + _proj(prefix + "proj_out.", dim, layout.linear_proj)


def unet(layout: UNetLayout, prefix: str = UNET) -> list[TensorSpec]:
    """Tensors of the U-Net, walking input, middle and output blocks as ldm numbers them."""
    mc = MODEL_CHANNELS
    specs = linear(prefix + "time_embed.0.", TIME_EMBED, mc) + linear(prefix + "time_embed.2.", TIME_EMBED, TIME_EMBED)
    if layout.adm_in_channels:
        specs += linear(prefix + "label_emb.0.0.", TIME_EMBED, layout.adm_in_channels)
        specs += linear(prefix + "label_emb.0.2.", TIME_EMBED, TIME_EMBED)
    specs += conv(prefix + "input_blocks.0.0.", mc, 4, 3)

    skips = [mc]
    ch = mc
    idx = 0
    last = len(layout.channel_mult) - 1
    for level, mult in enumerate(layout.channel_mult):
        for _ in range(layout.num_res_blocks):
            idx += 1
            specs += _resblock(f"{prefix}input_blocks.{idx}.0.", ch, mult * mc)
            ch = mult * mc
            if layout.attention[level]:
                specs += _transformer(f"{prefix}input_blocks.{idx}.1.", ch, layout.depth[level], layout)
            skips.append(ch)
            if layout.tiny:
                idx += 1  # the removed second ResNet keeps its slot
        if level != last:
            idx += 1
            specs += conv(f"{prefix}input_blocks.{idx}.0.op.", ch, ch, 3)
            skips.append(ch)

    for i, part in enumerate(layout.middle):
        name = f"{prefix}middle_block.{i}."
        specs += _resblock(name, ch, ch) if part == "res" else _transformer(name, ch, layout.middle_depth, layout)

    out = 0
    for level in reversed(range(len(layout.channel_mult))):
        mult = layout.channel_mult[level]
        for j in range(layout.num_res_blocks + 1):
            specs += _resblock(f"{prefix}output_blocks.{out}.0.", ch + skips.pop(), mult * mc)
            ch = mult * mc
            slot = 1
            if layout.attention[level]:
                specs += _transformer(f"{prefix}output_blocks.{out}.1.", ch, layout.depth[level], layout)
                slot = 2
            if level > 0 and j == layout.num_res_blocks:
                if layout.tiny:
                    # BK-SDM's first upsampler sits alone in the slot after the level.
                    out += 1
                    if out == 2:
                        slot = 1
                specs += conv(f"{prefix}output_blocks.{out}.{slot}.conv.", ch, ch, 3)
            out += 1
    assert not skips, "every skip connection is consumed"
    specs += norm(prefix + "out.0.", mc)
    return specs + conv(prefix + "out.2.", 4, mc, 3)


# ---------------------------------------------------------------- recipes


def _build_sd1(folder: Path) -> dict[str, str]:
    specs = unet(SD1_TINY)
    specs += clip.hf_text_model("cond_stage_model.transformer.", clip.VIT_L)
    specs += kl_vae(VAE, decoder_ch=DECODER_CH)
    write_gguf(folder / "sd1-tiny-q4_0.gguf", typed(specs, exact=clip.EXACT_TYPES))
    return {"model": "sd1-tiny-q4_0.gguf"}


def _build_sd2(folder: Path) -> dict[str, str]:
    specs = unet(SD2_TINY)
    specs += clip.open_clip_text_model("cond_stage_model.model.", clip.VIT_H)
    specs += kl_vae(VAE, decoder_ch=DECODER_CH)
    write_gguf(folder / "sd2-tiny-q4_0.gguf", typed(specs, exact=clip.EXACT_TYPES))
    return {"model": "sd2-tiny-q4_0.gguf"}


def sdxl_checkpoint(layout: UNetLayout, decoder_ch: int = DECODER_CH) -> list[TensorSpec]:
    """An SDXL checkpoint's tensors in one file: U-Net, CLIP ViT-L and OpenCLIP bigG, VAE.

    One file, as SDXL checkpoints ship: the engine only recognises an SDXL U-Net when a text
    encoder sits beside it in the model file (its first version check, which picks the prefix
    for --clip_l/--clip_g, sees the model file alone), so a bare U-Net with clip_l/clip_g
    companions fails with "get sd version from file failed".
    """
    specs = unet(layout)
    specs += clip.hf_text_model("conditioner.embedders.0.transformer.", clip.VIT_L)
    specs += clip.open_clip_text_model("conditioner.embedders.1.model.", clip.BIG_G)
    return specs + kl_vae(VAE, decoder_ch=decoder_ch)


def _build_sdxl(folder: Path) -> dict[str, str]:
    write_gguf(folder / "sdxl-vega-q4_0.gguf", typed(sdxl_checkpoint(SDXL_VEGA), exact=clip.EXACT_TYPES))
    return {"model": "sdxl-vega-q4_0.gguf"}


# Where the engine files each part of a split SDXL model (its prefixes for --diffusion-model,
# --clip_l, --clip_g and --vae of a U-Net model).
_SPLIT_PREFIXES = {"diffusion_model": UNET, "clip_l": "cond_stage_model.transformer.",
                   "clip_g": "cond_stage_model.1.transformer.", "vae": VAE}


def _split_part(specs: list[TensorSpec], prefix: str) -> list[TensorSpec]:
    """The tensors under `prefix`, renamed without it, with the values they have under their full name."""
    return [TensorSpec(s.name[len(prefix):], s.shape, s.init, seed=s.name) for s in specs]


def _build_sdxl_split(folder: Path) -> dict[str, str]:
    # The split layout SDXL users download: a U-Net-only GGUF under its bare module names (no
    # `model.diffusion_model.` prefix), the two text encoders in Hugging Face names and the VAE.
    # `checkpoint` holds the same tensors in one file under the names the engine gives the split
    # parts, so loading either must give the same pixels.
    parts = {
        "diffusion_model": unet(SDXL_VEGA),
        "clip_l": clip.hf_text_model(_SPLIT_PREFIXES["clip_l"], clip.VIT_L),
        "clip_g": clip.hf_text_model(_SPLIT_PREFIXES["clip_g"], clip.BIG_G),
        "vae": kl_vae(VAE, decoder_ch=DECODER_CH),
    }
    names = {"diffusion_model": "sdxl-vega-unet-q4_0.gguf", "clip_l": "clip_l-q4_0.gguf",
             "clip_g": "clip_g-q4_0.gguf", "vae": "sdxl-vae-f16.gguf"}
    for role, specs in parts.items():
        weights = "f16" if role == "vae" else "q4_0"
        write_gguf(folder / names[role], typed(_split_part(specs, _SPLIT_PREFIXES[role]), weights, clip.EXACT_TYPES))
    whole = [(s, t) for role, specs in parts.items()
             for s, t in typed(specs, "f16" if role == "vae" else "q4_0", clip.EXACT_TYPES)]
    write_gguf(folder / "sdxl-vega-checkpoint-q4_0.gguf", whole)
    return {**names, "checkpoint": "sdxl-vega-checkpoint-q4_0.gguf"}


RECIPES: list[Recipe] = [
    Recipe("sd1", "sd1", _build_sd1),
    Recipe("sd2", "sd2", _build_sd2, {"prediction": "v"}),
    Recipe("sdxl", "sdxl", _build_sdxl),
    Recipe("sdxl_split", "sdxl", _build_sdxl_split),
]
