"""Qwen2.5-VL-7B, Qwen-Image's text encoder, in llama.cpp GGUF names: text model + mmproj.

Text model (`Qwen2.5-VL-7B-Instruct-*.gguf`, the `llm` role). The engine (llm.hpp,
LLMRunner) reads depth (highest `blk.N`), width and vocabulary (`token_embd`) and FFN
width (`blk.0.ffn_gate`) from the tensors, and fixes the attention for Qwen2.5-VL: 28
query heads and 4 KV heads of 128, biased Q/K/V, multimodal RoPE. The width must still
be 3584: Qwen-Image's DiT fixes its text input at 3584, and the vision tower's output,
which is spliced into the token stream, is fixed at 3584 too. The vocabulary stays full
(the built-in Qwen2 tokenizer emits special ids up to ~151,6xx). Qwen-Image takes the
final-norm output (no intermediate layer), so depth can be 1. The untied output head
(`output.weight`, 545M parameters) is left out: the engine never uses it and would
only log it as an unknown tensor.

Vision tower (`*.mmproj-*.gguf`, the `llm_vision` role, llama.cpp clip names). Every
dimension is fixed in the engine (LLMVisionParams): 32 blocks of width 1280, FFN 3420,
16 heads, patch 14 (two temporal 2D patch convs), 2x2 merger to 3584, window 112 with
full attention in blocks 7, 15, 23, 31. So it is the full 670M-parameter tower.
"""

from __future__ import annotations

from pathlib import Path

from .formats import DType, TensorSpec, write_gguf
from .layers import conv, linear, norm, typed

VOCAB = 152_064
HIDDEN = 3584  # fixed by Qwen-Image's DiT and by the vision merger
HEAD_DIM = 128
N_HEADS = 28
N_KV_HEADS = 4

# Vision tower, all fixed by the engine.
V_LAYERS = 32
V_HIDDEN = 1280
V_FFN = 3420
V_HEADS = 16
V_PATCH = 14
V_MERGE = 2


def text_tensors(layers: int, ffn: int) -> list[TensorSpec]:
    """llama.cpp names, PyTorch shape order (out, in)."""
    out = [TensorSpec("token_embd.weight", (VOCAB, HIDDEN))]
    q_dim, kv_dim = N_HEADS * HEAD_DIM, N_KV_HEADS * HEAD_DIM
    for i in range(layers):
        b = f"blk.{i}."
        out += norm(b + "attn_norm.", HIDDEN, bias=False)
        out += linear(b + "attn_q.", q_dim, HIDDEN)
        out += linear(b + "attn_k.", kv_dim, HIDDEN)
        out += linear(b + "attn_v.", kv_dim, HIDDEN)
        out += linear(b + "attn_output.", HIDDEN, q_dim, bias=False)
        out += norm(b + "ffn_norm.", HIDDEN, bias=False)
        out += linear(b + "ffn_gate.", ffn, HIDDEN, bias=False)
        out += linear(b + "ffn_up.", ffn, HIDDEN, bias=False)
        out += linear(b + "ffn_down.", HIDDEN, ffn, bias=False)
    return out + norm("output_norm.", HIDDEN, bias=False)


def text_metadata(layers: int, ffn: int) -> dict[str, object]:
    """The llama.cpp header keys of a Qwen2.5-VL GGUF (the engine reads none)."""
    return {
        "general.architecture": "qwen2vl",
        "general.name": "qwen2.5-vl-test-random",
        "qwen2vl.block_count": layers,
        "qwen2vl.context_length": 128000,
        "qwen2vl.embedding_length": HIDDEN,
        "qwen2vl.feed_forward_length": ffn,
        "qwen2vl.attention.head_count": N_HEADS,
        "qwen2vl.attention.head_count_kv": N_KV_HEADS,
        "qwen2vl.rope.freq_base": 1_000_000.0,
        "qwen2vl.rope.dimension_sections": [16, 24, 24, 0],
        "qwen2vl.attention.layer_norm_rms_epsilon": 1e-6,
    }


def write_text(path: Path, layers: int, ffn: int, dtype: DType = "q4_0") -> None:
    write_gguf(path, typed(text_tensors(layers, ffn), dtype), text_metadata(layers, ffn))


def vision_tensors() -> list[TensorSpec]:
    """The mmproj file: `v.` tower, `mm.` merger MLP (llama.cpp clip names)."""
    out = conv("v.patch_embd.", V_HIDDEN, 3, V_PATCH, bias=False)
    out.append(TensorSpec("v.patch_embd.weight.1", (V_HIDDEN, 3, V_PATCH, V_PATCH)))
    for i in range(V_LAYERS):
        b = f"v.blk.{i}."
        out += norm(b + "ln1.", V_HIDDEN, bias=False)
        for proj in ("attn_q", "attn_k", "attn_v", "attn_out"):
            out += linear(f"{b}{proj}.", V_HIDDEN, V_HIDDEN)
        out += norm(b + "ln2.", V_HIDDEN, bias=False)
        out += linear(b + "ffn_gate.", V_FFN, V_HIDDEN)
        out += linear(b + "ffn_up.", V_FFN, V_HIDDEN)
        out += linear(b + "ffn_down.", V_HIDDEN, V_FFN)
    merged = V_HIDDEN * V_MERGE * V_MERGE
    out += norm("v.post_ln.", V_HIDDEN, bias=False)
    out += linear("mm.0.", merged, merged)
    return out + linear("mm.2.", HIDDEN, merged)


def vision_metadata() -> dict[str, object]:
    return {
        "general.architecture": "clip",
        "general.name": "qwen2.5-vl-mmproj-test-random",
        "clip.has_vision_encoder": True,
        "clip.projector_type": "qwen2.5vl_merger",
        "clip.vision.block_count": V_LAYERS,
        "clip.vision.embedding_length": V_HIDDEN,
        "clip.vision.feed_forward_length": V_FFN,
        "clip.vision.attention.head_count": V_HEADS,
        "clip.vision.patch_size": V_PATCH,
        "clip.vision.spatial_merge_size": V_MERGE,
        "clip.vision.projection_dim": HIDDEN,
        "clip.vision.n_wa_pattern": 8,
    }


def write_vision(path: Path, dtype: DType = "q4_0") -> None:
    # FFN down (3420 wide) cannot hold 32-wide blocks: typed() leaves it f16.
    write_gguf(path, typed(vision_tensors(), dtype), vision_metadata())
