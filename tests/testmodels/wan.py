"""Wan video models in the split layout: DiT GGUF + UMT5-XXL GGUF (`t5xxl`) + Wan VAE safetensors.

Tensor names and layout are the published ones: original Wan names in the DiT, as in
city96's `wan2.1-t2v-14b-Q4_0.gguf` / QuantStack's `Wan2.2-TI2V-5B-Q4_0.gguf` (made with
city96's tools: 1-D tensors and the `.modulation` parameters f32, the 5-D
`patch_embedding.weight` (dim, in, 1, 2, 2) added back in f32 after quantization by
`fix_5d_tensors.py`, right after its bias; the engine's own GGUF reader then folds it to
4-D); llama.cpp T5 names in UMT5 (t5.py, as city96's `umt5-xxl-encoder-Q4_0.gguf`);
original Wan VAE names, as ComfyUI's `wan_2.1_vae.safetensors` / `wan2.2_vae.safetensors`;
Hugging Face CLIP names in the vision tower, as ComfyUI's `clip_vision_h.safetensors`
(here a q4_0 GGUF). The engine tells Wan by `blocks.0.cross_attn.norm_k.weight`, and
Wan 2.2 TI2V from Wan 2.1 by the patch embedding's size (48 x 3072, no `img_emb`).

What the engine reads from the tensors, and what it fixes (wan.hpp, t5.hpp, clip.hpp):

- DiT (WanRunner): only the depth (highest `blocks.N`), whether `img_emb` is there (I2V)
  and, through the version, the patch embedding's size. The depth must be 30 or 40 (any
  other aborts); 30 is Wan 2.1 1.3B (dim 1536, FFN 8960, 12 heads, 16 latent channels;
  36 in for I2V) or, when the version is WAN2_2_TI2V, the TI2V 5B (dim 3072, FFN 14336,
  24 heads, 48 in and out); 40 is 14B. Text width 4096, time frequencies 256, patch
  (1, 2, 2) are fixed. So the DiTs are full size: 1.42B / 5.0B parameters.
- UMT5-XXL: every size fixed (t5.py): 5.7B parameters, 3.2 GB in q4_0. Prompts are
  always padded to 512 tokens, so each prompt costs one full 512-token pass.
- Wan 2.1 VAE: fixed (see qwen_image.py), the full 127M-parameter VAE.
- Wan 2.2 VAE: fixed too (WanVAE with wan2_2): encoder width 160, decoder width 256,
  48 latent channels, 2x2 pixel patches (12 channels in and out), residual
  Down/Up blocks with parameter-free average/duplicate shortcuts. Only the RMS gammas'
  shapes are read. Full size: 705M parameters.
- CLIP vision (I2V only, FrozenCLIPVisionEmbedder): OpenCLIP ViT-H/14 fixed (32 layers,
  width 1280, 224 px, 257 tokens; the projection to 1024 must be there though unused).
  Full size: 632M parameters.
- Sizes: width and height are multiples of 16 for Wan 2.1 (VAE 8 x patch 2), of 32 for
  TI2V (VAE 16 x patch 2); the engine rounds other sizes up. Frames are 4k+1 (others are
  rounded down), the latent has (frames - 1) / 4 + 1 of them. Smallest: 16x16 (Wan 2.1),
  32x32 (TI2V), 1 frame.
- Without the `t5xxl` file the engine warns "No text encoders provided" and conditions on
  a zero 256 x 4096 context: the UMT5 pass is the bulk of every generation below.

Cost, measured on 2 cores shared with other work (load 2-4, so times vary up to 2x):

- wan21_t2v: DiT 0.80 GB, UMT5 3.20 GB, VAE 0.25 GB; built in ~17 s (peak RSS 1.2 GB).
  The peer loads it in 3-5 s; a 64x64, 5-frame, 1-step video at cfg_scale 1 takes 60-100 s
  (UMT5 55-85 s, the DiT step 11-14 s, VAE decode 8-10 s), at cfg_scale 2 with a negative
  prompt and 2 steps 140-240 s (two UMT5 passes); peak RSS 4.6 GB. Without UMT5, 16x16
  takes 3 s (1 frame) or 4 s (5 frames), peak RSS 1.2 GB.
- wan22_ti2v: DiT 2.82 GB, VAE 1.41 GB, UMT5 hard-linked from wan21_t2v; built in ~15 s
  more. Load 14-17 s; 64x64, 5 frames, 1 step, cfg 1: 120-130 s (DiT step 18 s, decode
  16 s); cfg 2 + negative, 2 steps: 275-310 s; with an init image: 95-105 s; peak RSS
  7.7 GB. Without UMT5, 32x32 takes 9 s (1 frame) or 14 s (5 frames), 4.3 GB.
- wan21_i2v: DiT 0.89 GB, CLIP vision 0.36 GB, UMT5 and VAE hard-linked; built in ~3 s
  more. Load 6-7 s; 64x64, 5 frames, 1 step, cfg 1 with an init image: 130-140 s (CLIP
  vision 12 s, VAE encode 7 s); peak RSS 5.0 GB.

Outputs are deterministic, not flat (pixel std 55-66, 5-8 % at 0 or 255) and every
frame differs. Random weights condition weakly: another prompt moves pixels by ~5 levels
(std 43), cfg 2 with a negative prompt by ~1-1.5, the I2V init image by ~2; TI2V's init
image replaces the first latent frame and moves them by ~50.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import qwen_image, t5
from .formats import DType, TensorSpec, write_gguf, write_safetensors
from .layers import linear, norm, typed
from .recipe import Recipe

# DiT geometry the engine fixes for every Wan.
LAYERS = 30  # 30 -> 1.3B / TI2V 5B, 40 -> 14B; nothing else loads
TEXT_DIM = t5.WIDTH
FREQ_DIM = 256
PATCH = (1, 2, 2)
CLIP_DIM = 1280  # img_emb's input: the ViT-H/14 vision width


@dataclass(frozen=True)
class DiT:
    dim: int
    ffn: int
    in_dim: int
    out_dim: int
    i2v: bool = False  # image cross-attention keys and `img_emb` (CLIP vision tokens)


T2V_1_3B = DiT(1536, 8960, 16, 16)
I2V_1_3B = DiT(1536, 8960, 36, 16, i2v=True)  # 16 noise + 4 mask + 16 image-latent channels in
TI2V_5B = DiT(3072, 14336, 48, 48)

# The engine makes the modulation parameters f32 (city96's files keep them f32) and the
# patch embedding f16 (the files hold it f32, converted at load).
EXACT_TYPES: dict[str, DType] = {"modulation": "f32", "patch_embedding.weight": "f32"}


def _attention(prefix: str, dim: int, image_keys: bool = False) -> list[TensorSpec]:
    specs: list[TensorSpec] = []
    for proj in ("q", "k", "v", "o"):
        specs += linear(f"{prefix}{proj}.", dim, dim)
    specs += norm(prefix + "norm_q.", dim, bias=False) + norm(prefix + "norm_k.", dim, bias=False)
    if image_keys:
        specs += linear(prefix + "k_img.", dim, dim) + linear(prefix + "v_img.", dim, dim)
        specs += norm(prefix + "norm_k_img.", dim, bias=False)
    return specs


def _block(prefix: str, dit: DiT) -> list[TensorSpec]:
    """A WanAttentionBlock: norm1/norm2 have no affine weights; norm3 (before cross-attention) has."""
    specs = _attention(prefix + "self_attn.", dit.dim)
    specs += norm(prefix + "norm3.", dit.dim)
    specs += _attention(prefix + "cross_attn.", dit.dim, image_keys=dit.i2v)
    specs += linear(prefix + "ffn.0.", dit.ffn, dit.dim) + linear(prefix + "ffn.2.", dit.dim, dit.ffn)
    return specs + [TensorSpec(prefix + "modulation", (1, 6, dit.dim))]


def dit_tensors(dit: DiT) -> list[TensorSpec]:
    specs = [
        TensorSpec("patch_embedding.bias", (dit.dim,), "zeros"),
        TensorSpec("patch_embedding.weight", (dit.dim, dit.in_dim, *PATCH)),  # 5-D, as published
    ]
    specs += linear("text_embedding.0.", dit.dim, TEXT_DIM) + linear("text_embedding.2.", dit.dim, dit.dim)
    specs += linear("time_embedding.0.", dit.dim, FREQ_DIM) + linear("time_embedding.2.", dit.dim, dit.dim)
    specs += linear("time_projection.1.", 6 * dit.dim, dit.dim)
    for i in range(LAYERS):
        specs += _block(f"blocks.{i}.", dit)
    specs += linear("head.head.", dit.out_dim * PATCH[0] * PATCH[1] * PATCH[2], dit.dim)
    specs.append(TensorSpec("head.modulation", (1, 2, dit.dim)))
    if dit.i2v:
        specs += norm("img_emb.proj.0.", CLIP_DIM) + linear("img_emb.proj.1.", CLIP_DIM, CLIP_DIM)
        specs += linear("img_emb.proj.3.", dit.dim, CLIP_DIM) + norm("img_emb.proj.4.", dit.dim)
    return specs


def write_dit(path: Path, dit: DiT) -> None:
    # general.file_type 2 = MOSTLY_Q4_0. No array metadata: the engine reads a file with a
    # 5-D tensor with its own GGUF reader, which cannot skip arrays.
    meta = {"general.architecture": "wan", "general.quantization_version": 2, "general.file_type": 2}
    write_gguf(path, typed(dit_tensors(dit), "q4_0", EXACT_TYPES), meta)


# ---------------------------------------------------------------- Wan 2.2 VAE

VAE22_DIM = 160
VAE22_DEC_DIM = 256
VAE22_Z = 48
VAE22_PIXELS = 12  # 3 colours x a 2x2 patch
VAE_TYPES: dict[str, DType] = {"gamma": "f32"}


def vae22_tensors() -> list[TensorSpec]:
    """The Wan 2.2 VAE: levels of residual blocks with (parameter-free) pooling shortcuts."""
    conv3d, conv2d, residual = qwen_image._conv3d, qwen_image._conv2d, qwen_image._residual
    mults, blocks = qwen_image.VAE_MULT, qwen_image.VAE_RES_BLOCKS
    dims = [VAE22_DIM * m for m in mults]
    specs = conv3d("encoder.conv1.", VAE22_DIM, VAE22_PIXELS, (3, 3, 3))
    c_in = VAE22_DIM
    for level, c_out in enumerate(dims):
        p = f"encoder.downsamples.{level}.downsamples."
        for j in range(blocks):
            specs += residual(f"{p}{j}.", c_in, c_out)
            c_in = c_out
        if level != len(dims) - 1:
            specs += conv2d(f"{p}{blocks}.resample.1.", c_out, c_out, 3)
            if qwen_image.VAE_TEMPORAL_DOWN[level]:
                specs += conv3d(f"{p}{blocks}.time_conv.", c_out, c_out, (3, 1, 1))
    specs += qwen_image._middle("encoder.", c_in) + qwen_image._rms("encoder.head.0.", c_in)
    specs += conv3d("encoder.head.2.", 2 * VAE22_Z, c_in, (3, 3, 3))
    specs += conv3d("conv1.", 2 * VAE22_Z, 2 * VAE22_Z, (1, 1, 1))

    specs += conv3d("conv2.", VAE22_Z, VAE22_Z, (1, 1, 1))
    dims = [VAE22_DEC_DIM * m for m in reversed(mults)]
    c_in = dims[0]
    specs += conv3d("decoder.conv1.", c_in, VAE22_Z, (3, 3, 3)) + qwen_image._middle("decoder.", c_in)
    for level, c_out in enumerate(dims):
        p = f"decoder.upsamples.{level}.upsamples."
        for j in range(blocks + 1):
            specs += residual(f"{p}{j}.", c_in, c_out)
            c_in = c_out
        if level != len(dims) - 1:
            specs += conv2d(f"{p}{blocks + 1}.resample.1.", c_out, c_out, 3)
            if qwen_image.VAE_TEMPORAL_UP[level]:
                specs += conv3d(f"{p}{blocks + 1}.time_conv.", 2 * c_out, c_out, (3, 1, 1))
    specs += qwen_image._rms("decoder.head.0.", c_in)
    # Plain 1/sqrt(fan-in) init: output spread ~0.6, as the Wan 2.1 VAE's "small" head gives.
    return specs + conv3d("decoder.head.2.", VAE22_PIXELS, c_in, (3, 3, 3))


# ---------------------------------------------------------------- CLIP vision (I2V)

CLIP_LAYERS = 32
CLIP_MLP = 5120
CLIP_PATCH = 14
CLIP_POSITIONS = 257  # (224 / 14)^2 + the class token
CLIP_PROJECTION = 1024
CLIP_TYPES: dict[str, DType] = {"position_embedding.weight": "f32", "class_embedding": "f32"}


def clip_vision_h() -> list[TensorSpec]:
    """OpenCLIP ViT-H/14's vision tower, CLIPVisionModelWithProjection names (no patch bias)."""
    v = "vision_model."
    w = CLIP_DIM
    specs = [
        TensorSpec(v + "embeddings.class_embedding", (w,), "small"),
        TensorSpec(v + "embeddings.patch_embedding.weight", (w, 3, CLIP_PATCH, CLIP_PATCH)),
        TensorSpec(v + "embeddings.position_embedding.weight", (CLIP_POSITIONS, w), "small"),
    ]
    specs += norm(v + "pre_layrnorm.", w)  # sic: the Hugging Face name
    for i in range(CLIP_LAYERS):
        layer = f"{v}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            specs += linear(f"{layer}self_attn.{proj}.", w, w)
        specs += norm(layer + "layer_norm1.", w) + norm(layer + "layer_norm2.", w)
        specs += linear(layer + "mlp.fc1.", CLIP_MLP, w) + linear(layer + "mlp.fc2.", w, CLIP_MLP)
    specs += norm(v + "post_layernorm.", w)
    return specs + linear("visual_projection.", CLIP_PROJECTION, w, bias=False)


# ---------------------------------------------------------------- recipes

T2V_FILE = "wan2.1-t2v-1.3b-test-Q4_0.gguf"
I2V_FILE = "wan2.1-i2v-1.3b-test-Q4_0.gguf"
TI2V_FILE = "Wan2.2-TI2V-5B-test-Q4_0.gguf"
UMT5_FILE = "umt5-xxl-encoder-test-Q4_0.gguf"
VAE21_FILE = "wan_2.1_vae.safetensors"
VAE22_FILE = "wan2.2_vae.safetensors"
CLIP_VISION_FILE = "clip_vision_h-test-Q4_0.gguf"


def build_t2v(folder: Path) -> dict[str, str]:
    write_dit(folder / T2V_FILE, T2V_1_3B)
    umt5 = typed(t5.umt5_encoder(), exact=t5.EXACT_TYPES)
    write_gguf(folder / UMT5_FILE, umt5, {"general.architecture": "t5encoder"})
    write_safetensors(folder / VAE21_FILE, typed(qwen_image.vae_tensors(), "f16", VAE_TYPES))
    return {"diffusion_model": T2V_FILE, "t5xxl": UMT5_FILE, "vae": VAE21_FILE}


def _companions(folder: Path, roles: tuple[str, ...]) -> dict[str, str]:
    """Hard links to the `wan21_t2v` build's companions: one UMT5 (3.2 GB) on disk for every recipe."""
    from .registry import get  # the registry imports this module

    base = get("wan21_t2v")
    out = {}
    for role in roles:
        out[role] = base.files[role].name
        os.link(base.files[role], folder / out[role])
    return out


def build_ti2v(folder: Path) -> dict[str, str]:
    write_dit(folder / TI2V_FILE, TI2V_5B)
    write_safetensors(folder / VAE22_FILE, typed(vae22_tensors(), "f16", VAE_TYPES))
    return {"diffusion_model": TI2V_FILE, "vae": VAE22_FILE, **_companions(folder, ("t5xxl",))}


def build_i2v(folder: Path) -> dict[str, str]:
    write_dit(folder / I2V_FILE, I2V_1_3B)
    write_gguf(folder / CLIP_VISION_FILE, typed(clip_vision_h(), "q4_0", CLIP_TYPES))
    return {"diffusion_model": I2V_FILE, "clip_vision": CLIP_VISION_FILE, **_companions(folder, ("t5xxl", "vae"))}


RECIPES: list[Recipe] = [
    Recipe("wan21_t2v", "wan", build_t2v),
    Recipe("wan22_ti2v", "wan", build_ti2v),
    Recipe("wan21_i2v", "wan", build_i2v),
]
