"""Anima in the split layout: DiT GGUF + Qwen3-0.6B LLM GGUF + Qwen-Image (Wan 2.1) VAE safetensors.

Tensor names are the published ones: the `net.` names of circlestone-labs'
`anima-preview.safetensors` (a Cosmos-Predict2 DiT plus an LLM adapter; the engine tells
Anima by `llm_adapter.blocks.0.cross_attn.q_proj.weight`); llama.cpp names in the LLM
(qwen3.py); original Wan 2.1 names in the VAE (qwen_image.py).

What the engine reads from the tensors, and what it fixes:

- DiT (anima.hpp, AnimaRunner): only the depth (highest `net.blocks.N`). AnimaNet fixes
  width 2048 (16 heads of 128), MLP 8192, AdaLN-LoRA rank 256, text width 1024, patch 2,
  16 latent channels; the LLM adapter is fixed too: a 32,128-row T5-token table and six
  1024-wide blocks (16 heads of 64) that cross-attend to the LLM's output. So one DiT
  block of the full width (69M parameters) plus the full embedders (19M) and adapter
  (135M): 222M parameters, 125 MB in q4_0.
- LLM (llm.hpp, arch QWEN3): depth, width, FFN width and vocabulary are read, the
  attention is fixed (qwen3.py). The width must be 1024, the adapter's source width.
  Anima takes the final-norm output of the unpadded prompt, so 1 layer does.
- The prompt is also tokenized with the engine's built-in T5 tokenizer: those ids index
  the adapter's table, which is why that table stays full.
- VAE: the Qwen-Image VAE, i.e. Wan 2.1's, which the engine fixes entirely
  (qwen_image.py): the full 127M-parameter network in f16.

Cost, measured on 2 busy shared cores: 473 MB on disk (DiT 126 MB, LLM 94 MB, VAE 254 MB),
built in ~7 s; the peer loads it in ~2 s and makes a 64x64 1-step image at cfg 6 in 8-13 s,
of which the fixed Wan VAE decode is 4-8 s and the two DiT passes 1.5-5 s; ~8.5 CPU-seconds
in all; peak RSS 0.64 GB.
"""

from __future__ import annotations

from pathlib import Path

from . import qwen3, qwen_image
from .formats import DType, TensorSpec, write_gguf, write_safetensors
from .layers import linear, norm, typed
from .recipe import Recipe

# DiT geometry fixed by the engine (AnimaNet).
HIDDEN = 2048
HEADS = 16
HEAD_DIM = 128
MLP = 4 * HIDDEN
ADALN_RANK = 256
TEXT = 1024  # cross-attention context width, the adapter's output
LATENT = 16
PATCH = 2
# The LLM adapter, fixed too.
ADAPTER_DIM = 1024
ADAPTER_LAYERS = 6
ADAPTER_HEAD_DIM = 64
T5_VOCAB = 32_128

# Test geometry.
BLOCKS = 1
LLM_LAYERS = 1
LLM_HIDDEN = ADAPTER_DIM  # the adapter's source width
LLM_FFN = 128

# RMSNorm scales are f32 in the engine; keep them so in the file.
EXACT_TYPES: dict[str, DType] = {"gamma": "f32"}


def _attention(prefix: str, dim: int, context: int, head_dim: int, out: str) -> list[TensorSpec]:
    specs = linear(prefix + "q_proj.", dim, dim, bias=False)
    specs += linear(prefix + "k_proj.", dim, context, bias=False) + linear(prefix + "v_proj.", dim, context, bias=False)
    specs += norm(prefix + "q_norm.", head_dim, bias=False) + norm(prefix + "k_norm.", head_dim, bias=False)
    return specs + linear(f"{prefix}{out}.", dim, dim, bias=False)


def _adaln(prefix: str, chunks: int) -> list[TensorSpec]:
    """AdaLN-LoRA: timestep embedding -> rank 256 -> `chunks` x width (the LayerNorm has no weights)."""
    return linear(prefix + "1.", ADALN_RANK, HIDDEN, bias=False) + linear(prefix + "2.", chunks * HIDDEN, ADALN_RANK,
                                                                          bias=False)


def _adapter() -> list[TensorSpec]:
    a = "net.llm_adapter."
    specs = [TensorSpec(a + "embed.weight", (T5_VOCAB, ADAPTER_DIM))]
    for i in range(ADAPTER_LAYERS):
        b = f"{a}blocks.{i}."
        specs += norm(b + "norm_self_attn.", ADAPTER_DIM, bias=False)
        specs += _attention(b + "self_attn.", ADAPTER_DIM, ADAPTER_DIM, ADAPTER_HEAD_DIM, "o_proj")
        specs += norm(b + "norm_cross_attn.", ADAPTER_DIM, bias=False)
        specs += _attention(b + "cross_attn.", ADAPTER_DIM, LLM_HIDDEN, ADAPTER_HEAD_DIM, "o_proj")
        specs += norm(b + "norm_mlp.", ADAPTER_DIM, bias=False)
        specs += linear(b + "mlp.0.", 4 * ADAPTER_DIM, ADAPTER_DIM) + linear(b + "mlp.2.", ADAPTER_DIM, 4 * ADAPTER_DIM)
    specs += linear(a + "out_proj.", ADAPTER_DIM, ADAPTER_DIM)
    return specs + norm(a + "norm.", ADAPTER_DIM, bias=False)


def dit_tensors(blocks: int = BLOCKS) -> list[TensorSpec]:
    n = "net."
    # The latent gets a zero padding-mask channel before the 2x2 patch: 17 x 4 features in.
    specs = linear(n + "x_embedder.proj.1.", HIDDEN, (LATENT + 1) * PATCH * PATCH, bias=False)
    specs += linear(n + "t_embedder.1.linear_1.", HIDDEN, HIDDEN, bias=False)
    specs += linear(n + "t_embedder.1.linear_2.", 3 * HIDDEN, HIDDEN, bias=False)
    specs += norm(n + "t_embedding_norm.", HIDDEN, bias=False)
    for i in range(blocks):
        b = f"{n}blocks.{i}."
        specs += _adaln(b + "adaln_modulation_self_attn.", 3)
        specs += _attention(b + "self_attn.", HIDDEN, HIDDEN, HEAD_DIM, "output_proj")
        specs += _adaln(b + "adaln_modulation_cross_attn.", 3)
        specs += _attention(b + "cross_attn.", HIDDEN, TEXT, HEAD_DIM, "output_proj")
        specs += _adaln(b + "adaln_modulation_mlp.", 3)
        specs += linear(b + "mlp.layer1.", MLP, HIDDEN, bias=False) + linear(b + "mlp.layer2.", HIDDEN, MLP, bias=False)
    specs += _adaln(n + "final_layer.adaln_modulation.", 2)
    specs += linear(n + "final_layer.linear.", PATCH * PATCH * LATENT, HIDDEN, bias=False)
    return specs + _adapter()


# ---------------------------------------------------------------- recipe

DIT_FILE = "anima-test-Q4_0.gguf"
LLM_FILE = "qwen_3_06b_base-test-Q4_0.gguf"
VAE_FILE = qwen_image.VAE_FILE


def build(folder: Path) -> dict[str, str]:
    write_gguf(folder / DIT_FILE, typed(dit_tensors()), {"general.architecture": "anima"})
    qwen3.write(folder / LLM_FILE, LLM_LAYERS, LLM_HIDDEN, LLM_FFN)
    write_safetensors(folder / VAE_FILE, typed(qwen_image.vae_tensors(), "f16", EXACT_TYPES))
    return {"diffusion_model": DIT_FILE, "llm": LLM_FILE, "vae": VAE_FILE}


RECIPES: list[Recipe] = [Recipe("anima", "anima", build)]
