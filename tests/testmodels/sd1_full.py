"""Full-size SD 1.x U-Nets for the features the tiny layout cannot carry: inpainting and ControlNet.

The engine picks the U-Net variant from the checkpoint. An input conv with 9 channels
(4 latent + 1 mask + 4 masked-image latent) makes it SD 1.x inpainting, which always uses the
full SD 1.5 layout (channel_mult 1/2/4/4, two ResNets per level, middle block res/attn/res).
A ControlNet is likewise fixed to that layout (cldm `ControlNet`: the U-Net's input half,
a zero conv after every input block, the hint encoder and a zero conv after the middle block),
and its outputs are added to the U-Net's skips, so it needs the full U-Net beside it; the tiny
test U-Net would mismatch every skip. Names are the original checkpoints' (`control_model.` for
a ControlNet, as control_v11p_sd15_*.pth ship).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import clip
from .formats import TensorSpec, write_gguf
from .kl_vae import kl_vae
from .layers import conv, linear, typed
from .recipe import Recipe
from .unet_family import DECODER_CH, MODEL_CHANNELS, TIME_EMBED, UNET, VAE, UNetLayout, _resblock, _transformer, unet

SD1_FULL = UNetLayout((1, 2, 4, 4), 2, (True, True, True, False), (1, 1, 1, 1), ("res", "attn", "res"), 1, 768, False)
INPAINT_IN_CHANNELS = 9
CONTROL = "control_model."
# cldm's hint encoder: (out channels, stride) of its eight 3x3 convs, the last one to model_channels.
HINT_CONVS = ((16, 1), (16, 1), (32, 2), (32, 1), (96, 2), (96, 1), (256, 2), (MODEL_CHANNELS, 1))


def _with_in_channels(specs: list[TensorSpec], in_channels: int) -> list[TensorSpec]:
    name = UNET + "input_blocks.0.0.weight"
    return [replace(s, shape=(s.shape[0], in_channels, *s.shape[2:])) if s.name == name else s for s in specs]


def controlnet(layout: UNetLayout = SD1_FULL, prefix: str = CONTROL) -> list[TensorSpec]:
    """Tensors of an SD 1.x ControlNet (cldm numbering)."""
    mc = MODEL_CHANNELS
    specs = linear(prefix + "time_embed.0.", TIME_EMBED, mc) + linear(prefix + "time_embed.2.", TIME_EMBED, TIME_EMBED)
    specs += conv(prefix + "input_blocks.0.0.", mc, 4, 3) + conv(prefix + "zero_convs.0.0.", mc, mc, 1)
    cin = 3
    for i, (cout, _stride) in enumerate(HINT_CONVS):
        specs += conv(f"{prefix}input_hint_block.{2 * i}.", cout, cin, 3)
        cin = cout
    ch, idx, last = mc, 0, len(layout.channel_mult) - 1
    for level, mult in enumerate(layout.channel_mult):
        for _ in range(layout.num_res_blocks):
            idx += 1
            specs += _resblock(f"{prefix}input_blocks.{idx}.0.", ch, mult * mc)
            ch = mult * mc
            if layout.attention[level]:
                specs += _transformer(f"{prefix}input_blocks.{idx}.1.", ch, layout.depth[level], layout)
            specs += conv(f"{prefix}zero_convs.{idx}.0.", ch, ch, 1)
        if level != last:
            idx += 1
            specs += conv(f"{prefix}input_blocks.{idx}.0.op.", ch, ch, 3)
            specs += conv(f"{prefix}zero_convs.{idx}.0.", ch, ch, 1)
    specs += _resblock(prefix + "middle_block.0.", ch, ch)
    specs += _transformer(prefix + "middle_block.1.", ch, layout.middle_depth, layout)
    specs += _resblock(prefix + "middle_block.2.", ch, ch)
    return specs + conv(prefix + "middle_block_out.0.", ch, ch, 1)


def _checkpoint(unet_specs: list[TensorSpec]) -> list[TensorSpec]:
    specs = unet_specs + clip.hf_text_model("cond_stage_model.transformer.", clip.VIT_L)
    return specs + kl_vae(VAE, decoder_ch=DECODER_CH)


def _build_full(folder: Path) -> dict[str, str]:
    write_gguf(folder / "sd1-full-q4_0.gguf", typed(_checkpoint(unet(SD1_FULL)), exact=clip.EXACT_TYPES))
    write_gguf(folder / "sd1-controlnet-q4_0.gguf", typed(controlnet()))
    return {"model": "sd1-full-q4_0.gguf", "control_net": "sd1-controlnet-q4_0.gguf"}


def _build_inpaint(folder: Path) -> dict[str, str]:
    specs = _checkpoint(_with_in_channels(unet(SD1_FULL), INPAINT_IN_CHANNELS))
    write_gguf(folder / "sd1-inpainting-q4_0.gguf", typed(specs, exact=clip.EXACT_TYPES))
    return {"model": "sd1-inpainting-q4_0.gguf"}


RECIPES: list[Recipe] = [
    Recipe("sd1_full", "sd1", _build_full),  # with its ControlNet (role control_net)
    Recipe("sd1_inpaint", "sd1", _build_inpaint),
]
