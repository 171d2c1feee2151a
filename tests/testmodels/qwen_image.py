"""Qwen-Image in the split layout: DiT GGUF + Qwen2.5-VL LLM GGUF + Qwen-Image VAE safetensors.

Tensor names are the published ones: diffusers names in the DiT, as in QuantStack's
`Qwen_Image-Q4_0.gguf` / ComfyUI's `qwen_image_fp8_e4m3fn.safetensors` (the engine tells
Qwen-Image by `transformer_blocks.0.img_mod.1.weight`); llama.cpp names in the LLM and
its mmproj (qwen25vl.py); original Wan 2.1 names in the VAE, as in ComfyUI's
`qwen_image_vae.safetensors`.

What the engine reads from the tensors, and what it fixes:

- DiT (qwen_image.hpp, QwenImageRunner): only the depth (highest `transformer_blocks.N`)
  and the Edit-2511 switch (a `__index_timestep_zero__` tensor) are read. Width (24 heads
  of 128 = 3072), MLP (4x), text input width (3584), patch 2 and 16 latent channels are
  fixed in QwenImageParams. So one block of the full width: 380M parameters.
- LLM: see qwen25vl.py; width fixed at 3584 by the DiT's `txt_in`, depth and FFN shrink.
- VAE (wan.hpp, WanVAE): nothing is read but the shape of the RMSNorm gammas; dims 96,
  mults (1, 2, 4, 4), 2 residual blocks per level, 16 latent channels are fixed, for the
  encoder and the decoder alike. So it is the full 127M-parameter Wan 2.1 VAE (f16).
- Qwen-Image-Edit uses the same three files plus the vision tower (`llm_vision`, full
  size, qwen25vl.py), which encodes the reference images into the prompt. The engine
  resizes every reference to at least 384x384 for it (784 patches through 32 blocks),
  which takes 40-65 s on 2 cores: too slow for tests, so `build_edit` is not a recipe.
  Without the tower the engine warns "no vision weights detected, vision disabled" and
  edits from the reference latents alone, so the `qwen_image` files take `ref_images`.

Cost, measured on 2 shared cores: 0.8 GB on disk, built in ~7 s; the peer loads it in
~2 s and makes a 64x64 1-step image in ~5 s (4 s of it the VAE decode); peak RSS 0.95 GB.
"""

from __future__ import annotations

from pathlib import Path

from . import qwen25vl
from .formats import DType, TensorSpec, write_gguf, write_safetensors
from .layers import linear, norm, typed
from .recipe import Recipe

# DiT geometry fixed by the engine (QwenImageParams).
HEADS = 24
HEAD_DIM = 128
HIDDEN = HEADS * HEAD_DIM
MLP = 4 * HIDDEN
CONTEXT = qwen25vl.HIDDEN
PATCH = 2
LATENT = 16

# VAE geometry fixed by the engine (WanVAE, Wan 2.1).
VAE_DIM = 96
VAE_Z = 16
VAE_MULT = (1, 2, 4, 4)
VAE_RES_BLOCKS = 2
VAE_TEMPORAL_DOWN = (False, True, True)
VAE_TEMPORAL_UP = (True, True, False)

# Test geometry.
DIT_LAYERS = 1
LLM_LAYERS = 1
LLM_FFN = 128

# The engine builds these f32 (Linear layers it forces to f32, the VAE's norm gammas).
EXACT_TYPES: dict[str, DType] = {
    "timestep_embedder.linear_1.weight": "f16",
    "timestep_embedder.linear_2.weight": "f16",
    "gamma": "f32",
}


def _block(prefix: str) -> list[TensorSpec]:
    specs: list[TensorSpec] = []
    for stream in ("img", "txt"):
        specs += linear(f"{prefix}{stream}_mod.1.", 6 * HIDDEN, HIDDEN)
        specs += linear(f"{prefix}{stream}_mlp.net.0.proj.", MLP, HIDDEN)
        specs += linear(f"{prefix}{stream}_mlp.net.2.", HIDDEN, MLP)
    attn = prefix + "attn."
    for proj in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out"):
        specs += linear(f"{attn}{proj}.", HIDDEN, HIDDEN)
    for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
        specs += norm(f"{attn}{n}.", HEAD_DIM, bias=False)
    return specs


def dit_tensors(layers: int) -> list[TensorSpec]:
    specs = linear("time_text_embed.timestep_embedder.linear_1.", HIDDEN, 256)
    specs += linear("time_text_embed.timestep_embedder.linear_2.", HIDDEN, HIDDEN)
    specs += norm("txt_norm.", CONTEXT, bias=False)
    specs += linear("img_in.", HIDDEN, PATCH * PATCH * LATENT)
    specs += linear("txt_in.", HIDDEN, CONTEXT)
    for i in range(layers):
        specs += _block(f"transformer_blocks.{i}.")
    specs += linear("norm_out.linear.", 2 * HIDDEN, HIDDEN)
    return specs + linear("proj_out.", PATCH * PATCH * LATENT, HIDDEN)


# ---------------------------------------------------------------- Wan 2.1 VAE


def _conv3d(prefix: str, c_out: int, c_in: int, k: tuple[int, int, int], init: str = "weight") -> list[TensorSpec]:
    return [TensorSpec(prefix + "weight", (c_out, c_in, *k), init), TensorSpec(prefix + "bias", (c_out,), "zeros")]


def _conv2d(prefix: str, c_out: int, c_in: int, k: int) -> list[TensorSpec]:
    return [TensorSpec(prefix + "weight", (c_out, c_in, k, k)), TensorSpec(prefix + "bias", (c_out,), "zeros")]


def _rms(prefix: str, c: int, images: bool = False) -> list[TensorSpec]:
    # Wan's RMS_norm gamma broadcasts over (t, h, w), or (h, w) in the attention block.
    return [TensorSpec(prefix + "gamma", (c, 1, 1) if images else (c, 1, 1, 1), "ones")]


def _residual(prefix: str, c_in: int, c_out: int) -> list[TensorSpec]:
    specs = _rms(prefix + "residual.0.", c_in) + _conv3d(prefix + "residual.2.", c_out, c_in, (3, 3, 3))
    specs += _rms(prefix + "residual.3.", c_out) + _conv3d(prefix + "residual.6.", c_out, c_out, (3, 3, 3))
    if c_in != c_out:
        specs += _conv3d(prefix + "shortcut.", c_out, c_in, (1, 1, 1))
    return specs


def _middle(prefix: str, c: int) -> list[TensorSpec]:
    specs = _residual(prefix + "middle.0.", c, c)
    specs += _rms(prefix + "middle.1.norm.", c, images=True)
    specs += _conv2d(prefix + "middle.1.to_qkv.", 3 * c, c, 1) + _conv2d(prefix + "middle.1.proj.", c, c, 1)
    return specs + _residual(prefix + "middle.2.", c, c)


def vae_tensors() -> list[TensorSpec]:
    dims = [VAE_DIM * m for m in VAE_MULT]
    # Encoder: to 2 x z (mean, log-variance), then conv1 on that.
    specs = _conv3d("encoder.conv1.", VAE_DIM, 3, (3, 3, 3))
    index, c_in = 0, VAE_DIM
    for level, c_out in enumerate(dims):
        for _ in range(VAE_RES_BLOCKS):
            specs += _residual(f"encoder.downsamples.{index}.", c_in, c_out)
            index, c_in = index + 1, c_out
        if level != len(dims) - 1:
            p = f"encoder.downsamples.{index}."
            specs += _conv2d(p + "resample.1.", c_out, c_out, 3)
            if VAE_TEMPORAL_DOWN[level]:
                specs += _conv3d(p + "time_conv.", c_out, c_out, (3, 1, 1))
            index += 1
    specs += _middle("encoder.", c_in) + _rms("encoder.head.0.", c_in)
    specs += _conv3d("encoder.head.2.", 2 * VAE_Z, c_in, (3, 3, 3))
    specs += _conv3d("conv1.", 2 * VAE_Z, 2 * VAE_Z, (1, 1, 1))

    # Decoder: each 2D upsampling conv halves the channels, which the next level takes in.
    specs += _conv3d("conv2.", VAE_Z, VAE_Z, (1, 1, 1))
    c_in = dims[-1]
    specs += _conv3d("decoder.conv1.", c_in, VAE_Z, (3, 3, 3)) + _middle("decoder.", c_in)
    index = 0
    for level, c_out in enumerate(reversed(dims)):
        if level > 0:
            c_in //= 2
        for _ in range(VAE_RES_BLOCKS + 1):
            specs += _residual(f"decoder.upsamples.{index}.", c_in, c_out)
            index, c_in = index + 1, c_out
        if level != len(dims) - 1:
            p = f"decoder.upsamples.{index}."
            specs += _conv2d(p + "resample.1.", c_out // 2, c_out, 3)
            if VAE_TEMPORAL_UP[level]:
                specs += _conv3d(p + "time_conv.", 2 * c_out, c_out, (3, 1, 1))
            index += 1
    specs += _rms("decoder.head.0.", c_in)
    # A small output conv keeps most pixels off the [-1, 1] clamp, so changes stay visible.
    return specs + _conv3d("decoder.head.2.", 3, c_in, (3, 3, 3), "small")


# ---------------------------------------------------------------- recipes

DIT_FILE = "qwen-image-test-Q4_0.gguf"
LLM_FILE = "Qwen2.5-VL-7B-Instruct-test-Q4_0.gguf"
VISION_FILE = "Qwen2.5-VL-7B-Instruct.mmproj-test-Q4_0.gguf"
VAE_FILE = "qwen_image_vae.safetensors"


def build(folder: Path) -> dict[str, str]:
    dit = typed(dit_tensors(DIT_LAYERS), "q4_0", EXACT_TYPES)
    write_gguf(folder / DIT_FILE, dit, {"general.architecture": "qwen_image"})
    qwen25vl.write_text(folder / LLM_FILE, LLM_LAYERS, LLM_FFN)
    write_safetensors(folder / VAE_FILE, typed(vae_tensors(), "f16", EXACT_TYPES))
    return {"diffusion_model": DIT_FILE, "llm": LLM_FILE, "vae": VAE_FILE}


def build_edit(folder: Path) -> dict[str, str]:
    """`build` plus the vision tower (586 MB, ~4 s more), for Qwen-Image-Edit with `llm_vision`."""
    roles = build(folder)
    qwen25vl.write_vision(folder / VISION_FILE)
    return {**roles, "llm_vision": VISION_FILE}


RECIPES: list[Recipe] = [Recipe("qwen_image", "qwen_image", build)]
