"""The U-Net variants the engine runs besides the plain SD 1.x/2.x/XL: distilled, inpainting, instruct-pix2pix.

The engine builds each variant's U-Net from its version (unet.hpp), not from the file, so every
tensor it builds must be in the file at the published shape; only the VAE decoder's width and the
weight types are free. What each recipe holds:

- sdxs_512: SDXS-512-DreamShaper. SD 1.x's tiny U-Net (one ResNet per level, no middle block) without
  attention at the first level (no `output_blocks.7.1`), CLIP ViT-L, and a tiny autoencoder (TAESD)
  under `first_stage_model.`, which the engine renames to `tae.` for SDXS and decodes with.
- sdxs_09: SDXS-512-0.9. SD 2.x's tiny U-Net whose first-level self-attention reads 1024-wide keys
  and values (the engine's tell for it), OpenCLIP ViT-H, the same tiny autoencoder.
- ssd1b: Segmind SSD-1B. SDXL without the middle block's attention and second ResNet, with the
  transformer depths the engine gives it (4 instead of 10 at the deepest level, 1 in two of the
  second level's output blocks).
- sd2_inpaint, sdxl_inpaint: the full SD 2.x / SDXL U-Nets (the engine builds no smaller inpainting
  variant) with a 9-channel input conv: latent, mask and masked-image latent.
- sd1_pix2pix, sdxl_pix2pix: instruct-pix2pix, the full SD 1.x / SDXL U-Nets with an 8-channel input
  conv: latent and the condition image's latent.

With random weights, SDXL's deep cross-attention (depth 4-10 at the third level and in the middle
block) drives the latent past what the f16 convolutions hold and the image comes out as one flat
colour; those blocks' value projections are zero here (`_quiet_deep_cross_attention`), so the prompt
reaches the image through the second level's cross-attention only. Vega (depth 2 there) needs no such help.

SD 1.x inpainting is `sd1_inpaint` in sd1_full.py; SD 1.x/2.x tiny U-Nets and Vega are the plain
`sd1`, `sd2` and `sdxl` recipes of unet_family.py.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from . import clip
from .formats import TensorSpec, write_gguf
from .kl_vae import kl_vae
from .layers import conv, typed
from .recipe import Recipe
from .sd1_full import SD1_FULL
from .sdxl_full import SDXL_BASE
from .unet_family import DECODER_CH, SD1_TINY, SD2_TINY, UNET, VAE, UNetLayout, sdxl_checkpoint, unet

SD2_FULL = UNetLayout((1, 2, 4, 4), 2, (True, True, True, False), (1, 1, 1, 1), ("res", "attn", "res"), 1, 1024, True)
# SDXS-512-DreamShaper: attention at the second and third levels only ("here just like SDXL" in unet.hpp).
SDXS_512 = replace(SD1_TINY, attention=(False, True, True))
# SSD-1B: no middle attention; depth 4 at the deepest level (10 in SDXL) except the last output block there.
SSD1B = replace(SDXL_BASE, middle=("res",))
SSD1B_DEPTHS = {"input_blocks.7.1.": 4, "input_blocks.8.1.": 4, "output_blocks.0.1.": 4, "output_blocks.1.1.": 4,
                "output_blocks.4.1.": 1, "output_blocks.5.1.": 1}
# SDXS-512-0.9's first-level transformers (input 1, output 6 and 7 in the tiny numbering): one 320-wide
# head, whose self-attention keys and values the engine projects from 1024 inputs.
SDXS_09_WIDE_KV = re.compile(r"(input_blocks\.1|output_blocks\.[67])\.1\.transformer_blocks\.\d+\.attn1\.to_[kv]\.")
SDXS_09_KV_WIDTH = 1024
TAE_CH = 64  # TAESD's width, fixed in the engine (tae.hpp)
TAE_BLOCKS = 3  # TAEBlocks per resolution


def with_in_channels(specs: list[TensorSpec], in_channels: int) -> list[TensorSpec]:
    """The U-Net's first conv reading `in_channels` (9: inpainting, 8: instruct-pix2pix)."""
    name = UNET + "input_blocks.0.0.weight"
    return [replace(s, shape=(s.shape[0], in_channels, *s.shape[2:])) if s.name == name else s for s in specs]


def _trim_depths(specs: list[TensorSpec], depths: dict[str, int]) -> list[TensorSpec]:
    """Drop the transformer blocks past `depths[block]` in the named U-Net blocks."""
    out = []
    for s in specs:
        for block, depth in depths.items():
            m = re.match(re.escape(UNET + block) + r"transformer_blocks\.(\d+)\.", s.name)
            if m and int(m.group(1)) >= depth:
                break
        else:
            out.append(s)
    return out


# The third level's transformers (input 7 and 8, output 0-2) and the middle block's, in SDXL's numbering.
_DEEP_CROSS_VALUES = re.compile(r"(input_blocks\.[78]|output_blocks\.[012]|middle_block)\.1\.transformer_blocks\.\d+"
                                r"\.attn2\.to_v\.weight$")


def _quiet_deep_cross_attention(specs: list[TensorSpec]) -> list[TensorSpec]:
    """Zero value projections in SDXL's deep cross-attention (see the module docstring)."""
    return [replace(s, init="zeros") if _DEEP_CROSS_VALUES.search(s.name) else s for s in specs]


def _tae_block(prefix: str) -> list[TensorSpec]:
    return [t for i in (0, 2, 4) for t in conv(f"{prefix}conv.{i}.", TAE_CH, TAE_CH, 3)]


def tiny_autoencoder(prefix: str, z_channels: int = 4) -> list[TensorSpec]:
    """TAESD as taesd.py numbers its Sequential layers (ReLUs and upsamplers hold no tensors)."""
    enc, dec = prefix + "encoder.layers.", prefix + "decoder.layers."
    specs = conv(enc + "0.", TAE_CH, 3, 3) + _tae_block(enc + "1.")
    index = 2
    for _ in range(3):  # three stride-2 convs, each followed by TAE_BLOCKS blocks
        specs += conv(f"{enc}{index}.", TAE_CH, TAE_CH, 3, bias=False)
        for i in range(TAE_BLOCKS):
            specs += _tae_block(f"{enc}{index + 1 + i}.")
        index += 1 + TAE_BLOCKS
    specs += conv(f"{enc}{index}.", z_channels, TAE_CH, 3)
    specs += conv(dec + "0.", TAE_CH, z_channels, 3)  # 1 is a ReLU
    index = 2
    for _ in range(3):  # TAE_BLOCKS blocks, an upsampler (no tensors) and a conv without bias
        for i in range(TAE_BLOCKS):
            specs += _tae_block(f"{dec}{index + i}.")
        specs += conv(f"{dec}{index + TAE_BLOCKS + 1}.", TAE_CH, TAE_CH, 3, bias=False)
        index += TAE_BLOCKS + 2
    specs += _tae_block(f"{dec}{index}.")
    return specs + conv(f"{dec}{index + 1}.", 3, TAE_CH, 3)


def _sdxs_09_unet() -> list[TensorSpec]:
    out = []
    for s in unet(SD2_TINY):
        if SDXS_09_WIDE_KV.search(s.name):
            s = replace(s, shape=(s.shape[0], SDXS_09_KV_WIDTH))
        out.append(s)
    return out


def _write(folder: Path, name: str, specs: list[TensorSpec]) -> dict[str, str]:
    write_gguf(folder / name, typed(specs, exact=clip.EXACT_TYPES))
    return {"model": name}


def _build_sdxs_512(folder: Path) -> dict[str, str]:
    specs = unet(SDXS_512) + clip.hf_text_model("cond_stage_model.transformer.", clip.VIT_L)
    return _write(folder, "sdxs-512-dreamshaper-q4_0.gguf", specs + tiny_autoencoder(VAE))


def _build_sdxs_09(folder: Path) -> dict[str, str]:
    specs = _sdxs_09_unet() + clip.open_clip_text_model("cond_stage_model.model.", clip.VIT_H)
    return _write(folder, "sdxs-09-q4_0.gguf", specs + tiny_autoencoder(VAE))


def _build_ssd1b(folder: Path) -> dict[str, str]:
    specs = _trim_depths(sdxl_checkpoint(SSD1B), SSD1B_DEPTHS)
    return _write(folder, "ssd-1b-q4_0.gguf", _quiet_deep_cross_attention(specs))


def _sd_checkpoint(unet_specs: list[TensorSpec], sd2: bool) -> list[TensorSpec]:
    text = clip.open_clip_text_model("cond_stage_model.model.", clip.VIT_H) if sd2 \
        else clip.hf_text_model("cond_stage_model.transformer.", clip.VIT_L)
    return unet_specs + text + kl_vae(VAE, decoder_ch=DECODER_CH)


def _build_sd2_inpaint(folder: Path) -> dict[str, str]:
    specs = _sd_checkpoint(with_in_channels(unet(SD2_FULL), 9), sd2=True)
    return _write(folder, "sd2-inpainting-q4_0.gguf", specs)


def _build_sd1_pix2pix(folder: Path) -> dict[str, str]:
    specs = _sd_checkpoint(with_in_channels(unet(SD1_FULL), 8), sd2=False)
    return _write(folder, "instruct-pix2pix-q4_0.gguf", specs)


def _sdxl_base(in_channels: int) -> list[TensorSpec]:
    return _quiet_deep_cross_attention(with_in_channels(sdxl_checkpoint(SDXL_BASE), in_channels))


def _build_sdxl_inpaint(folder: Path) -> dict[str, str]:
    return _write(folder, "sdxl-inpainting-q4_0.gguf", _sdxl_base(9))


def _build_sdxl_pix2pix(folder: Path) -> dict[str, str]:
    return _write(folder, "sdxl-instructpix2pix-q4_0.gguf", _sdxl_base(8))


RECIPES: list[Recipe] = [
    Recipe("sdxs_512", "sd1", _build_sdxs_512),
    Recipe("sdxs_09", "sd2", _build_sdxs_09),
    Recipe("ssd1b", "sdxl", _build_ssd1b),
    # A set prediction spares both loads (ours and the peer's) the engine's v-prediction probe, a U-Net pass.
    Recipe("sd2_inpaint", "sd2", _build_sd2_inpaint, {"prediction": "eps"}),
    Recipe("sd1_pix2pix", "sd1", _build_sd1_pix2pix),
    Recipe("sdxl_inpaint", "sdxl", _build_sdxl_inpaint),
    Recipe("sdxl_pix2pix", "sdxl", _build_sdxl_pix2pix),
]
