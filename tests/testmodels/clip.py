"""CLIP text encoders: OpenAI ViT-L/14 (SD 1.x, SDXL, SD3), OpenCLIP ViT-H/14 (SD 2.x), OpenCLIP bigG/14.

The engine fixes width and depth per kind (it infers nothing from the file), so these are
the full published sizes. Two naming schemes exist in the wild and both are produced:
Hugging Face `CLIPTextModel` names (`text_model.encoder.layers.N.self_attn.q_proj...`,
used by SD 1.x checkpoints and the standalone clip_l / clip_g files) and OpenCLIP names
(`transformer.resblocks.N.attn.in_proj_weight...`, used inside SD 2.x / SDXL checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass

from .formats import DType, TensorSpec
from .layers import linear, norm

VOCAB = 49408
POSITIONS = 77


@dataclass(frozen=True)
class ClipKind:
    width: int
    layers: int
    projection: bool  # bigG is CLIPTextModelWithProjection: the pooled output is projected

    @property
    def mlp(self) -> int:
        return 4 * self.width


VIT_L = ClipKind(768, 12, False)
VIT_H = ClipKind(1024, 24, False)
BIG_G = ClipKind(1280, 32, True)

# The engine creates the position table in f32 and the projection in f32; a q4_0 copy
# would be converted at load, so store them in a float type.
EXACT_TYPES: dict[str, DType] = {
    "position_embedding.weight": "f32",
    "positional_embedding": "f32",
    "text_projection.weight": "f16",
    "text_projection": "f16",
}


def hf_text_model(prefix: str, kind: ClipKind) -> list[TensorSpec]:
    """Hugging Face layout; `prefix` is what precedes `text_model.` (e.g. "" for a standalone file)."""
    w = kind.width
    t = prefix + "text_model."
    specs = [
        TensorSpec(t + "embeddings.token_embedding.weight", (VOCAB, w)),
        TensorSpec(t + "embeddings.position_embedding.weight", (POSITIONS, w), "small"),
    ]
    for i in range(kind.layers):
        layer = f"{t}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            specs += linear(f"{layer}self_attn.{proj}.", w, w)
        specs += norm(layer + "layer_norm1.", w)
        specs += norm(layer + "layer_norm2.", w)
        specs += linear(layer + "mlp.fc1.", kind.mlp, w)
        specs += linear(layer + "mlp.fc2.", w, kind.mlp)
    specs += norm(t + "final_layer_norm.", w)
    if kind.projection:
        specs += linear(prefix + "text_projection.", w, w, bias=False)
    return specs


def open_clip_text_model(prefix: str, kind: ClipKind) -> list[TensorSpec]:
    """OpenCLIP layout; `prefix` is what precedes `token_embedding` (e.g. "cond_stage_model.model.")."""
    w = kind.width
    specs = [
        TensorSpec(prefix + "token_embedding.weight", (VOCAB, w)),
        TensorSpec(prefix + "positional_embedding", (POSITIONS, w), "small"),
    ]
    for i in range(kind.layers):
        block = f"{prefix}transformer.resblocks.{i}."
        # q, k and v stacked in one projection, as nn.MultiheadAttention stores them.
        specs.append(TensorSpec(block + "attn.in_proj_weight", (3 * w, w)))
        specs.append(TensorSpec(block + "attn.in_proj_bias", (3 * w,), "zeros"))
        specs += linear(block + "attn.out_proj.", w, w)
        specs += norm(block + "ln_1.", w)
        specs += norm(block + "ln_2.", w)
        specs += linear(block + "mlp.c_fc.", kind.mlp, w)
        specs += linear(block + "mlp.c_proj.", w, kind.mlp)
    specs += norm(prefix + "ln_final.", w)
    if kind.projection:
        # OpenCLIP keeps the projection as a bare (width, projection) matrix: x @ P.
        specs.append(TensorSpec(prefix + "text_projection", (w, w)))
    return specs
