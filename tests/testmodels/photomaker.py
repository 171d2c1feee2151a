"""PhotoMaker v1 (SDXL ID encoder + U-Net LoRA) with random weights, for the `sdxl` test model.

One file, as the engine's docs ask for (docs/photo_maker.md links bssrdf/PhotoMaker's
`photomaker-v1.safetensors`: the official `.bin` does not load). The engine reads it twice
(stable-diffusion.cpp, `photo_maker_path`): under the prefix `pmid.` for the ID encoder
(pmid.hpp `PhotoMakerIDEncoderBlock`), skipping `pmid.unet.*`, and as a LoRA whose
`unet.*` tensors it merges into the U-Net on the first generation with ID images. Tensor
names are the published file's:

- ID encoder: Hugging Face `CLIPVisionModelWithProjection` names (`vision_model.embeddings.*`,
  `vision_model.encoder.layers.N.self_attn.q_proj.*`, ..., `visual_projection.weight`) with the
  pre-norm as `vision_model.pre_layernorm` (the engine maps HF's `pre_layrnorm` spelling only
  for text-encoder prefixes, so the published file has it renamed), plus
  `visual_projection_2.weight` and `fuse_module.{mlp1,mlp2}.{fc1,fc2,layernorm}.*`,
  `fuse_module.layer_norm.*`.
- LoRA: diffusers attention-processor names, `unet.<diffusers block>.attnN.processor.
  to_{q,k,v,out}_lora.{down,up}.weight` (the engine drops `.processor`, turns `_lora.down` into
  `.lora_down` and maps the diffusers SDXL blocks and `to_out` onto the ldm U-Net).

What the engine reads from the tensors, and what it fixes:

- ID encoder: nothing is read. The vision tower is CLIP ViT-L/14 (`OPENAI_CLIP_VIT_L_14`:
  width 1024, 24 layers, 16 heads, MLP 4096, 224 px images in 14 px patches, projection 768)
  and the fuse module works at 2048 (SDXL's context width), so this is the full 0.33 B
  geometry; any other shape is refused at load.
- LoRA: rank and targets are read. The published LoRA covers every attention layer of SDXL
  base; here it covers those of the Vega layout the `sdxl` test model has (the same diffusers
  names, a subset), at rank 8, so every LoRA tensor is applied.

The file is GGUF with the linear weights in q4_0 (tensor names unchanged; the engine reads
the PhotoMaker file through the same loader for either format), the patch embedding f16,
embeddings f32 and the LoRA f16: 191 MB instead of the ~0.65 GB an f16 safetensors would take.
It saves disk only: the engine builds the ID encoder before it has read the file's types, so
it converts every ID-encoder weight to f32 at load (1.24 GB of RAM whatever the file holds).
The path must not contain "v2": the engine picks PhotoMaker v2 by that substring.

With the `sdxl` test model it needs model_config type 'f16' (the peer's wtype 'f16'): the
engine merges the LoRA into the U-Net's attention weights, and for q4_0 weights that merge
aborts the process (lora.hpp's cast to f32 is a matrix product ggml refuses for block types).

Cost, measured on 2 shared cores (load average ~3.5): 191 MB on disk, built in ~0.5 s. The
peer loads it with the `sdxl` test model in 5-11 s (the conversions to f16 and f32) and makes a
64x64 1-step image with two ID images in 17-30 s: the text encoders run twice (the prompt with
the trigger word, then without), 3-9 s each, the vision tower ~2.4 s per ID image, and the first
generation merges the LoRA (~0.9 s). qvac_nb takes the same.
"""

from __future__ import annotations

from pathlib import Path

from .formats import DType, TensorSpec, write_gguf
from .layers import conv, linear, norm, typed
from .recipe import Recipe

# CLIP ViT-L/14 vision tower, fixed by the engine (clip.hpp CLIPVisionModel).
WIDTH = 1024
LAYERS = 24
MLP = 4096
PATCH = 14
IMAGE = 224
POSITIONS = (IMAGE // PATCH) ** 2 + 1  # the class token and 16x16 patches
PROJECTION = 768
PROJECTION_2 = 1280  # visual_projection_2: the rest of the 2048-wide ID embedding
FUSE = 2048  # SDXL's cross-attention width

# LoRA targets: the `sdxl` test model's (Vega) transformers as diffusers numbers them, with widths.
LORA_RANK = 8
CONTEXT = 2048
_VEGA_TRANSFORMERS = (
    *((f"down_blocks.1.attentions.{j}", 640, 1) for j in range(2)),
    *((f"down_blocks.2.attentions.{j}", 1280, 2) for j in range(2)),
    *((f"up_blocks.0.attentions.{j}", 1280, 2) for j in range(3)),
    *((f"up_blocks.1.attentions.{j}", 640, 1) for j in range(3)),
)

# Embeddings f32 (the engine's own type for them: a quantized copy would be converted); LoRA factors f16 as published.
EXACT_TYPES: dict[str, DType] = {
    "position_embedding.weight": "f32",
    "class_embedding": "f32",
    "_lora.down.weight": "f16",
    "_lora.up.weight": "f16",
}


def vision_tower(prefix: str = "vision_model.") -> list[TensorSpec]:
    """CLIP ViT-L/14's vision transformer in Hugging Face names (pre-norm spelled as the engine reads it)."""
    specs = [
        TensorSpec(prefix + "embeddings.class_embedding", (WIDTH,), "small"),
        *conv(prefix + "embeddings.patch_embedding.", WIDTH, 3, PATCH, bias=False),
        TensorSpec(prefix + "embeddings.position_embedding.weight", (POSITIONS, WIDTH), "small"),
    ]
    specs += norm(prefix + "pre_layernorm.", WIDTH)
    for i in range(LAYERS):
        layer = f"{prefix}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            specs += linear(f"{layer}self_attn.{proj}.", WIDTH, WIDTH)
        specs += norm(layer + "layer_norm1.", WIDTH) + norm(layer + "layer_norm2.", WIDTH)
        specs += linear(layer + "mlp.fc1.", MLP, WIDTH) + linear(layer + "mlp.fc2.", WIDTH, MLP)
    return specs + norm(prefix + "post_layernorm.", WIDTH)


def _fuse_block(prefix: str, in_dim: int) -> list[TensorSpec]:
    return linear(prefix + "fc1.", FUSE, in_dim) + linear(prefix + "fc2.", FUSE, FUSE) + norm(prefix + "layernorm.",
                                                                                               in_dim)


def id_encoder() -> list[TensorSpec]:
    """PhotoMakerIDEncoder (v1): the vision tower, both projections and the fuse module."""
    specs = vision_tower()
    specs += linear("visual_projection.", PROJECTION, WIDTH, bias=False)
    specs += linear("visual_projection_2.", PROJECTION_2, WIDTH, bias=False)
    specs += _fuse_block("fuse_module.mlp1.", 2 * FUSE) + _fuse_block("fuse_module.mlp2.", FUSE)
    return specs + norm("fuse_module.layer_norm.", FUSE)


def lora() -> list[TensorSpec]:
    """The U-Net LoRA: every attention projection of the test U-Net's transformer blocks."""
    specs: list[TensorSpec] = []
    for block, dim, depth in _VEGA_TRANSFORMERS:
        for t in range(depth):
            for attn, kv in (("attn1", dim), ("attn2", CONTEXT)):
                base = f"unet.{block}.transformer_blocks.{t}.{attn}.processor."
                for proj, in_dim in (("to_q", dim), ("to_k", kv), ("to_v", kv), ("to_out", dim)):
                    specs.append(TensorSpec(f"{base}{proj}_lora.down.weight", (LORA_RANK, in_dim)))
                    # up std 1/sqrt(rank): the update is as large as the weights it changes.
                    specs.append(TensorSpec(f"{base}{proj}_lora.up.weight", (dim, LORA_RANK)))
    return specs


FILE = "photomaker-v1-test-q4_0.gguf"


def build(folder: Path) -> dict[str, str]:
    write_gguf(folder / FILE, typed([*id_encoder(), *lora()], "q4_0", EXACT_TYPES))
    return {"photo_maker": FILE}


RECIPES: list[Recipe] = [Recipe("photomaker_v1", "photomaker", build)]
