"""Real-ESRGAN upscalers (BasicSR RRDBNet) as users download them, and as safetensors.

Keys are BasicSR's (`conv_first`, `body.N.rdbK.convM`, `conv_body`, `conv_up1/2`,
`conv_hr`, `conv_last`); the published `.pth` files nest them under "params_ema". The
engine counts the blocks and detects the x4 scale from `conv_up2`, but fixes the widths
(num_feat 64, grow 32), so these are the real sizes: x4plus has 23 RRDB blocks
(16.7M parameters), anime_6B 6.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from .formats import DType, Init, TensorSpec, quantizable, write_safetensors
from .recipe import Recipe
from .torch_zip import write_torch_zip

NUM_FEAT = 64
NUM_GROW = 32


def _conv(name: str, c_out: int, c_in: int, init: Init = "weight") -> list[TensorSpec]:
    # Small biases: zero ones would leave the leaky ReLUs' shift untested.
    return [TensorSpec(f"{name}.weight", (c_out, c_in, 3, 3), init), TensorSpec(f"{name}.bias", (c_out,), "small")]


def rrdbnet_tensors(num_block: int, first_init: Init = "weight") -> list[TensorSpec]:
    """RRDBNet x4 (two nearest-upsample convs), in the published key order.

    Untrained, the net saturates the [0, 1] output clamp: each RRDB returns ~1.2x its
    input, so features grow 1.2^num_block. A small last conv, and for deep nets a small
    first one (`first_init="small"`), keep most pixels off the clamp so the output
    still follows the input.
    """
    out = _conv("conv_first", NUM_FEAT, 3, first_init)
    for i in range(num_block):
        for r in (1, 2, 3):
            b = f"body.{i}.rdb{r}."
            for k in range(1, 5):
                out += _conv(f"{b}conv{k}", NUM_GROW, NUM_FEAT + (k - 1) * NUM_GROW)
            out += _conv(f"{b}conv5", NUM_FEAT, NUM_FEAT + 4 * NUM_GROW)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        out += _conv(name, NUM_FEAT, NUM_FEAT)
    return out + _conv("conv_last", 3, NUM_FEAT, "small")


def _specs(num_block: int) -> list[TensorSpec]:
    # 1.2^23 (66x) needs the small first conv; 1.2^6 (3x) would turn too dim with it.
    return rrdbnet_tensors(num_block, "small" if num_block > 12 else "weight")


def _build_pth(filename: str, num_block: int, dtype: DType, folder: Path) -> dict[str, str]:
    # A `.half()` checkpoint has every tensor in f16, biases included.
    write_torch_zip(folder / filename, [(s, dtype) for s in _specs(num_block)], wrapper="params_ema")
    return {"upscaler": filename}


def _build_st(filename: str, num_block: int, folder: Path) -> dict[str, str]:
    write_safetensors(folder / filename, [(s, quantizable(s, "f16")) for s in _specs(num_block)])
    return {"upscaler": filename}


X4PLUS_BLOCKS = 23
ANIME6B_BLOCKS = 6

RECIPES: list[Recipe] = [
    # x4plus in f16 (half the published 67 MB fp32); anime_6B in fp32 like the published
    # file, so both torch storage types the engine reads are covered.
    Recipe("esrgan_x4plus", "esrgan", partial(_build_pth, "RealESRGAN_x4plus.pth", X4PLUS_BLOCKS, "f16")),
    Recipe("esrgan_x4plus_st", "esrgan", partial(_build_st, "RealESRGAN_x4plus.safetensors", X4PLUS_BLOCKS)),
    Recipe(
        "esrgan_anime6b",
        "esrgan",
        partial(_build_pth, "RealESRGAN_x4plus_anime_6B.pth", ANIME6B_BLOCKS, "f32"),
    ),
    Recipe(
        "esrgan_anime6b_st",
        "esrgan",
        partial(_build_st, "RealESRGAN_x4plus_anime_6B.safetensors", ANIME6B_BLOCKS),
    ),
]
