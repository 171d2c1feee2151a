"""SDXL base at its real size (random weights), for the benchmarks' load-time and memory figures.

The toy models load in under a second, so a constant cost (the worker's start) is a large share of
their load; this one has SDXL 1.0's layout throughout: the 2.6 B-parameter U-Net (transformer depth
0/2/10, ten in the middle block), both text encoders (CLIP ViT-L and OpenCLIP bigG) and the full
autoencoder, in one q4_0 checkpoint of 2.6 GB. No test loads it; `benchmarks/run.py
--load-models sdxl_full` (its default) builds it on first use.
"""

from __future__ import annotations

from pathlib import Path

from . import clip
from .formats import write_gguf
from .layers import typed
from .recipe import Recipe
from .unet_family import UNetLayout, sdxl_checkpoint

SDXL_BASE = UNetLayout((1, 2, 4), 2, (False, True, True), (0, 2, 10), ("res", "attn", "res"), 10, 2048, True, 2816)
FULL_DECODER_CH = 128  # the real autoencoder's width (the toy models use a narrow one)


def _build(folder: Path) -> dict[str, str]:
    specs = sdxl_checkpoint(SDXL_BASE, decoder_ch=FULL_DECODER_CH)
    write_gguf(folder / "sdxl-base-q4_0.gguf", typed(specs, exact=clip.EXACT_TYPES))
    return {"model": "sdxl-base-q4_0.gguf"}


RECIPES: list[Recipe] = [Recipe("sdxl_full", "sdxl", _build)]
