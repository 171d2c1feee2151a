"""The KL autoencoder of Stable Diffusion (ldm `AutoencoderKL`), original checkpoint names.

Encoder: ch 128, mults (1, 2, 4, 4), two ResNet blocks per level, a mid block with one
attention. The engine fixes all of that, except the decoder width, which it reads off
`decoder.conv_in.weight` (channels = ch * 4): `decoder_ch` below shrinks the decoder,
the slowest part of a small generation. The encoder stays full size (img2img needs it).
"""

from __future__ import annotations

from .formats import TensorSpec
from .layers import conv, norm

CH_MULT = (1, 2, 4, 4)
NUM_RES_BLOCKS = 2


def _resnet(prefix: str, cin: int, cout: int) -> list[TensorSpec]:
    specs = norm(prefix + "norm1.", cin) + conv(prefix + "conv1.", cout, cin, 3)
    specs += norm(prefix + "norm2.", cout) + conv(prefix + "conv2.", cout, cout, 3)
    if cin != cout:
        specs += conv(prefix + "nin_shortcut.", cout, cin, 1)
    return specs


def _mid(prefix: str, ch: int) -> list[TensorSpec]:
    specs = _resnet(prefix + "block_1.", ch, ch)
    attn = prefix + "attn_1."
    specs += norm(attn + "norm.", ch)
    for name in ("q", "k", "v", "proj_out"):
        specs += conv(f"{attn}{name}.", ch, ch, 1)  # 1x1 convs in the original checkpoints
    return specs + _resnet(prefix + "block_2.", ch, ch)


def encoder(prefix: str, z_channels: int, ch: int = 128) -> list[TensorSpec]:
    specs = conv(prefix + "conv_in.", ch, 3, 3)
    block_in = ch
    for level, mult in enumerate(CH_MULT):
        block_out = ch * mult
        for j in range(NUM_RES_BLOCKS):
            specs += _resnet(f"{prefix}down.{level}.block.{j}.", block_in, block_out)
            block_in = block_out
        if level != len(CH_MULT) - 1:
            specs += conv(f"{prefix}down.{level}.downsample.conv.", block_in, block_in, 3)
    specs += _mid(prefix + "mid.", block_in)
    specs += norm(prefix + "norm_out.", block_in)
    return specs + conv(prefix + "conv_out.", 2 * z_channels, block_in, 3)


def decoder(prefix: str, z_channels: int, ch: int = 128) -> list[TensorSpec]:
    block_in = ch * CH_MULT[-1]
    specs = conv(prefix + "conv_in.", block_in, z_channels, 3)
    specs += _mid(prefix + "mid.", block_in)
    for level in reversed(range(len(CH_MULT))):
        block_out = ch * CH_MULT[level]
        for j in range(NUM_RES_BLOCKS + 1):
            specs += _resnet(f"{prefix}up.{level}.block.{j}.", block_in, block_out)
            block_in = block_out
        if level != 0:
            specs += conv(f"{prefix}up.{level}.upsample.conv.", block_in, block_in, 3)
    specs += norm(prefix + "norm_out.", block_in)
    return specs + conv(prefix + "conv_out.", 3, block_in, 3)


def kl_vae(prefix: str, z_channels: int = 4, quant_convs: bool = True, decoder_ch: int = 128) -> list[TensorSpec]:
    """The whole autoencoder under `prefix` (e.g. "first_stage_model.").

    SD 1.x/2.x/XL latents have 4 channels and 1x1 quant convs around them; SD3's have 16
    and no quant convs.
    """
    specs = encoder(prefix + "encoder.", z_channels) + decoder(prefix + "decoder.", z_channels, decoder_ch)
    if quant_convs:
        specs += conv(prefix + "quant_conv.", 2 * z_channels, 2 * z_channels, 1)
        specs += conv(prefix + "post_quant_conv.", z_channels, z_channels, 1)
    return specs
