"""Z-Image (Turbo) in the split layout: DiT GGUF + Qwen3-4B LLM GGUF + FLUX.1 VAE safetensors.

Tensor names are the published ones: original (Lumina2-style) names in the DiT, as in
`z_image_turbo-Q4_0.gguf` / ComfyUI's `z_image_turbo_bf16.safetensors`; llama.cpp names
in the LLM; ldm names in the VAE, as in FLUX.1's `ae.safetensors`. The engine tells
Z-Image by `cap_embedder.0.weight`.

What the engine reads from the tensors, and what it fixes:

- DiT: nothing is read. `ZImageParams` (z_image.hpp) hard-codes hidden 3840, 30 layers
  plus 2 noise- and 2 context-refiner blocks, 30 heads of 128, FFN 10240, caption width
  2560, patch 2, 16 latent channels, and the runner builds the model from those alone;
  the loader then rejects any tensor of another shape. So the DiT is the full 6.15B
  geometry: about 3.5 GB in q4_0, the only type small enough to be practical.
- LLM (Qwen3): depth, width, FFN width and vocabulary are read (see qwen3.py). The
  width must be 2560, the DiT's caption width. Z-Image takes the hidden state after
  layer 35 (the second to last of 36); a shallower model has none and gives its
  final-norm output, so 2 layers do.
- VAE: the FLUX.1 autoencoder (16 latent channels, no quant convs). The decoder width is
  read from `decoder.conv_in`, so the decoder is narrow; the encoder is fixed at ch 128.

Cost, measured on 2 shared cores: 3.8 GB on disk (DiT 3.47 GB), built in ~20 s; the peer
loads it in ~7.5 s and makes a 64x64 1-step image (cfg_scale 1) in ~28-33 s, all but
~1 s of it the one DiT pass (64 tokens: text and image are each padded to 32); peak RSS
3.9 GB. Each further step costs another DiT pass.
"""

from __future__ import annotations

from pathlib import Path

from . import qwen3
from .formats import DType, TensorSpec, write_gguf, write_safetensors
from .kl_vae import kl_vae
from .layers import linear, norm, typed
from .recipe import Recipe

# DiT geometry fixed by the engine (ZImageParams).
HIDDEN = 3840
LAYERS = 30
REFINER_LAYERS = 2
HEAD_DIM = 128
HEADS = 30
FFN = 10240  # 256 * ceil(3840 * 8/3 / 256)
CAP_FEAT_DIM = 2560
PATCH = 2
LATENT = 16
ADALN_DIM = 256  # min(hidden, 256)
T_HIDDEN = 1024  # min(hidden, 1024)

# Test geometry of the companions.
LLM_LAYERS = 2
LLM_FFN = 128
VAE_DECODER_CH = 32

# The engine builds these f32 (pad tokens; Linear layers it forces to f32).
EXACT_TYPES: dict[str, DType] = {
    "cap_pad_token": "f32",
    "x_pad_token": "f32",
    "t_embedder.mlp.0.weight": "f16",
    "t_embedder.mlp.2.weight": "f16",
    "final_layer.linear.weight": "f16",
}


def _block(prefix: str, modulation: bool) -> list[TensorSpec]:
    """A JointTransformerBlock: fused QKV, QK RMSNorm, SwiGLU FFN, sandwich RMSNorms."""
    specs = linear(prefix + "attention.qkv.", 3 * HEADS * HEAD_DIM, HIDDEN, bias=False)
    specs += linear(prefix + "attention.out.", HIDDEN, HEADS * HEAD_DIM, bias=False)
    specs += norm(prefix + "attention.q_norm.", HEAD_DIM, bias=False)
    specs += norm(prefix + "attention.k_norm.", HEAD_DIM, bias=False)
    specs += linear(prefix + "feed_forward.w1.", FFN, HIDDEN, bias=False)
    specs += linear(prefix + "feed_forward.w2.", HIDDEN, FFN, bias=False)
    specs += linear(prefix + "feed_forward.w3.", FFN, HIDDEN, bias=False)
    for name in ("attention_norm1", "ffn_norm1", "attention_norm2", "ffn_norm2"):
        specs += norm(f"{prefix}{name}.", HIDDEN, bias=False)
    if modulation:
        specs += linear(prefix + "adaLN_modulation.0.", 4 * HIDDEN, ADALN_DIM)
    return specs


def dit_tensors() -> list[TensorSpec]:
    specs = [
        TensorSpec("cap_pad_token", (1, HIDDEN), "small"),
        TensorSpec("x_pad_token", (1, HIDDEN), "small"),
    ]
    specs += linear("x_embedder.", HIDDEN, PATCH * PATCH * LATENT)
    specs += linear("t_embedder.mlp.0.", T_HIDDEN, 256) + linear("t_embedder.mlp.2.", ADALN_DIM, T_HIDDEN)
    specs += norm("cap_embedder.0.", CAP_FEAT_DIM, bias=False)
    specs += linear("cap_embedder.1.", HIDDEN, CAP_FEAT_DIM)
    for i in range(REFINER_LAYERS):
        specs += _block(f"noise_refiner.{i}.", modulation=True)
    for i in range(REFINER_LAYERS):
        specs += _block(f"context_refiner.{i}.", modulation=False)
    for i in range(LAYERS):
        specs += _block(f"layers.{i}.", modulation=True)
    specs += linear("final_layer.linear.", PATCH * PATCH * LATENT, HIDDEN)
    specs += linear("final_layer.adaLN_modulation.1.", HIDDEN, ADALN_DIM)
    return specs


# ---------------------------------------------------------------- recipe

DIT_FILE = "z_image_turbo-test-Q4_0.gguf"
LLM_FILE = "Qwen3-4B-test-Q4_0.gguf"
VAE_FILE = "ae.safetensors"


def build(folder: Path) -> dict[str, str]:
    write_gguf(folder / DIT_FILE, typed(dit_tensors(), "q4_0", EXACT_TYPES), {"general.architecture": "lumina2"})
    qwen3.write(folder / LLM_FILE, LLM_LAYERS, CAP_FEAT_DIM, LLM_FFN)
    vae = kl_vae("", z_channels=LATENT, quant_convs=False, decoder_ch=VAE_DECODER_CH)
    write_safetensors(folder / VAE_FILE, typed(vae, "f16"))
    return {"diffusion_model": DIT_FILE, "llm": LLM_FILE, "vae": VAE_FILE}


RECIPES: list[Recipe] = [Recipe("zimage", "zimage", build)]
