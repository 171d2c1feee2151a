"""ERNIE-Image (and -Turbo) in the split layout: DiT GGUF + Ministral 3 LLM GGUF + FLUX.2 VAE safetensors.

Tensor names are the published ones: diffusers-style names in the DiT, as in Comfy-Org's
`ernie-image.safetensors` and unsloth's GGUFs (the engine tells ERNIE-Image by
`layers.0.adaLN_sa_ln.weight`); llama.cpp names in the LLM (ministral3.py); ldm names
in the VAE, as in `flux2-vae.safetensors` (flux2.py).

What the engine reads from the tensors, and what it fixes:

- DiT (ernie_image.hpp, ErnieImageRunner): nearly everything is read. Patch size, latent
  channels and width from `x_embedder.proj` (a conv), text width from `text_proj` (absent
  when the LLM is as wide as the DiT), head size from `layers.0.self_attention.norm_q`,
  FFN width from `layers.0.mlp.gate_proj`, output channels from `final_linear`, depth
  from the layer indices. Fixed: the RoPE axes (32/48/48, 128 dimensions, so heads are
  128 wide) and the 6-way modulation shared by all layers. Latents are FLUX.2's (32 VAE
  channels folded 2x2 into 128, patch 1). So one layer, two heads.
- LLM (llm.hpp, arch MINISTRAL_3_3B): see ministral3.py. ERNIE-Image takes the hidden
  state after layer 25 (of 26); a shallower model has none and gives its final-norm
  output, so 2 layers do. The prompt goes in as it is (no template, no padding).
- VAE: FLUX.2's 32-channel autoencoder (flux2.py): narrow decoder, full-size encoder.

ERNIE-Image-Turbo is the same network distilled to 8 steps at cfg 1: the same tensors,
told only by its name (as published: `ernie-image-turbo*`).

Cost, measured on 2 busy shared cores: 82 MB on disk (the VAE 75 MB), built in ~1.5 s; the
peer loads it in ~2.5 s and makes a 64x64 1-step image at cfg 5 in 1-1.6 s (most of it the
VAE decode), ~2.8 CPU-seconds in all; peak RSS 0.24 GB.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import flux2, ministral3
from .formats import TensorSpec, write_gguf, write_safetensors
from .layers import linear, norm, typed
from .recipe import Recipe

# DiT geometry fixed by the engine.
LATENT = 128  # FLUX.2's 32 VAE channels x 2x2
HEAD_DIM = 128  # the RoPE covers 128 dimensions

# Test geometry.
HIDDEN = 256  # two heads
LAYERS = 1
FFN = 512
LLM_LAYERS = 2
LLM_HIDDEN = 96  # narrower than the DiT, which projects it with text_proj; unlike ovis_image's LLM
LLM_FFN = 128


def dit_tensors(hidden: int = HIDDEN, layers: int = LAYERS, ffn: int = FFN,
                text: int = LLM_HIDDEN) -> list[TensorSpec]:
    """Shared-AdaLN single-stream DiT: image and text tokens through the same layers.

    x_embedder comes first: the engine reads the tensors in file order and divides the width known so
    far by norm_q's head size (before x_embedder that is its default 4096, right only for the real model).
    """
    specs = [TensorSpec("x_embedder.proj.weight", (hidden, LATENT, 1, 1)),
             TensorSpec("x_embedder.proj.bias", (hidden,), "zeros")]
    if text != hidden:
        specs += linear("text_proj.", hidden, text, bias=False)
    specs += linear("time_embedding.linear_1.", hidden, hidden) + linear("time_embedding.linear_2.", hidden, hidden)
    specs += linear("adaLN_modulation.1.", 6 * hidden, hidden)
    for i in range(layers):
        b = f"layers.{i}."
        specs += norm(b + "adaLN_sa_ln.", hidden, bias=False)
        for proj in ("to_q", "to_k", "to_v"):
            specs += linear(f"{b}self_attention.{proj}.", hidden, hidden, bias=False)
        specs += norm(b + "self_attention.norm_q.", HEAD_DIM, bias=False)
        specs += norm(b + "self_attention.norm_k.", HEAD_DIM, bias=False)
        specs += linear(b + "self_attention.to_out.0.", hidden, hidden, bias=False)
        specs += norm(b + "adaLN_mlp_ln.", hidden, bias=False)
        specs += linear(b + "mlp.gate_proj.", ffn, hidden, bias=False)
        specs += linear(b + "mlp.up_proj.", ffn, hidden, bias=False)
        specs += linear(b + "mlp.linear_fc2.", hidden, ffn, bias=False)
    specs += linear("final_norm.linear.", 2 * hidden, hidden)
    return specs + linear("final_linear.", LATENT, hidden)


# ---------------------------------------------------------------- recipes

DIT_FILE = "ernie-image-test-Q4_0.gguf"
TURBO_FILE = "ernie-image-turbo-test-Q4_0.gguf"
LLM_FILE = "ministral-3-3b-test-Q4_0.gguf"
VAE_FILE = flux2.VAE_FILE


def build(folder: Path) -> dict[str, str]:
    write_gguf(folder / DIT_FILE, typed(dit_tensors()), {"general.architecture": "ernie_image"})
    ministral3.write(folder / LLM_FILE, LLM_LAYERS, LLM_HIDDEN, LLM_FFN)
    vae = flux2.vae_tensors(flux2.VAE_ENC_CH, flux2.VAE_DEC_CH, flux2.VAE_Z)
    write_safetensors(folder / VAE_FILE, typed(vae, "f16"))
    return {"diffusion_model": DIT_FILE, "llm": LLM_FILE, "vae": VAE_FILE}


def build_turbo(folder: Path) -> dict[str, str]:
    """The `ernie_image` files, hard-linked, the DiT under Turbo's name (the same tensors)."""
    from .registry import get  # the registry imports this module

    base = get("ernie_image")
    names = {"diffusion_model": TURBO_FILE, "llm": LLM_FILE, "vae": VAE_FILE}
    for role, name in names.items():
        os.link(base.files[role], folder / name)
    return names


RECIPES: list[Recipe] = [
    Recipe("ernie_image", "ernie_image", build),
    Recipe("ernie_image_turbo", "ernie_image", build_turbo),
]
