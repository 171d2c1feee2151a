"""SD3 medium: MMDiT + 16-channel KL VAE, with clip_l, clip_g and t5xxl companions.

Laid out as users run SD3 with the engine: `-m sd3_medium` (MMDiT and VAE under
`model.diffusion_model.` / `first_stage_model.`) plus `--clip_l`, `--clip_g`, `--t5xxl`.

What the engine lets shrink, and what it does not:
- MMDiT depth is read off the highest `joint_blocks.N`, but never below 24, and the width
  follows it (64 * depth): so this is the full SD3-medium MMDiT (2B parameters).
- CLIP-L, CLIP-G and T5-XXL have fixed sizes in the engine: full size.
- The VAE decoder width is inferred: shrunk like the U-Net families'.

Cost: 4.7 GB on disk (T5 alone 2.7 GB) and, on 2 cores, roughly 35-40 s for a 64x64
2-step image at cfg 7, half that at cfg_scale 1 (no unconditioned pass); leaving out the
t5xxl companion (the engine then feeds zeros in its place) halves it again.
"""

from __future__ import annotations

from pathlib import Path

from . import clip, t5
from .formats import DType, TensorSpec, write_gguf, write_safetensors
from .kl_vae import kl_vae
from .layers import conv, linear, typed
from .recipe import Recipe

DEPTH = 24  # the engine's floor
HIDDEN = 64 * DEPTH
PATCH = 2
LATENT = 16
POS_EMBED_MAX = 192  # positions form a 192x192 grid of patches
ADM = 2048  # pooled CLIP-L (768) + CLIP-G (1280)
CONTEXT = 4096  # T5 width; CLIP states are zero-padded to it
DIT = "model.diffusion_model."
DECODER_CH = 32  # narrow VAE decoder, as in unet_family

# The engine builds these in f32 (pos_embed, and Linear layers it forces to f32); f16 in
# the file halves their size and is widened at load, as in published quantized files.
EXACT_TYPES: dict[str, DType] = {
    "pos_embed": "f16",
    "t_embedder.mlp.0.weight": "f16",
    "t_embedder.mlp.2.weight": "f16",
    "y_embedder.mlp.0.weight": "f16",
    "y_embedder.mlp.2.weight": "f16",
    "context_embedder.weight": "f16",
    "final_layer.linear.weight": "f16",
}


def _dismantled_block(prefix: str, pre_only: bool) -> list[TensorSpec]:
    """One stream (image or text) of a joint block; LayerNorms have no affine weights."""
    specs = linear(prefix + "attn.qkv.", 3 * HIDDEN, HIDDEN)
    if not pre_only:
        specs += linear(prefix + "attn.proj.", HIDDEN, HIDDEN)
        specs += linear(prefix + "mlp.fc1.", 4 * HIDDEN, HIDDEN)
        specs += linear(prefix + "mlp.fc2.", HIDDEN, 4 * HIDDEN)
    # shift/scale/gate for attention and MLP; the last text block only needs shift/scale.
    return specs + linear(prefix + "adaLN_modulation.1.", (2 if pre_only else 6) * HIDDEN, HIDDEN)


def mmdit(prefix: str = DIT) -> list[TensorSpec]:
    specs = [TensorSpec(prefix + "pos_embed", (1, POS_EMBED_MAX * POS_EMBED_MAX, HIDDEN), "small")]
    specs += conv(prefix + "x_embedder.proj.", HIDDEN, LATENT, PATCH)
    specs += linear(prefix + "t_embedder.mlp.0.", HIDDEN, 256) + linear(prefix + "t_embedder.mlp.2.", HIDDEN, HIDDEN)
    specs += linear(prefix + "y_embedder.mlp.0.", HIDDEN, ADM) + linear(prefix + "y_embedder.mlp.2.", HIDDEN, HIDDEN)
    specs += linear(prefix + "context_embedder.", HIDDEN, CONTEXT)
    for i in range(DEPTH):
        block = f"{prefix}joint_blocks.{i}."
        specs += _dismantled_block(block + "context_block.", pre_only=i == DEPTH - 1)
        specs += _dismantled_block(block + "x_block.", pre_only=False)
    specs += linear(prefix + "final_layer.linear.", PATCH * PATCH * LATENT, HIDDEN)
    return specs + linear(prefix + "final_layer.adaLN_modulation.1.", 2 * HIDDEN, HIDDEN)


def _build_sd3(folder: Path) -> dict[str, str]:
    specs = mmdit() + kl_vae("first_stage_model.", z_channels=LATENT, quant_convs=False, decoder_ch=DECODER_CH)
    write_gguf(folder / "sd3-medium-q4_0.gguf", typed(specs, exact=EXACT_TYPES))
    # clip_l as the f16 safetensors users download, so one companion takes that path.
    write_safetensors(folder / "clip_l.safetensors", typed(clip.hf_text_model("", clip.VIT_L), "f16", clip.EXACT_TYPES))
    write_gguf(folder / "clip_g-q4_0.gguf", typed(clip.hf_text_model("", clip.BIG_G), exact=clip.EXACT_TYPES))
    write_gguf(folder / "t5xxl-q4_0.gguf", typed(t5.t5_encoder(), exact=t5.EXACT_TYPES))
    return {
        "model": "sd3-medium-q4_0.gguf",
        "clip_l": "clip_l.safetensors",
        "clip_g": "clip_g-q4_0.gguf",
        "t5xxl": "t5xxl-q4_0.gguf",
    }


RECIPES: list[Recipe] = [Recipe("sd3", "sd3", _build_sd3)]
