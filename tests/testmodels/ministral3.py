"""Ministral 3 (3B), ERNIE-Image's text encoder, as an LLM GGUF in llama.cpp tensor names.

The engine (llm.hpp, LLMRunner with arch MINISTRAL_3_3B) reads depth (highest `blk.N`),
width and vocabulary (`token_embd`) and FFN width (`blk.0.ffn_gate`) from the tensors;
the attention is fixed: 32 query heads and 8 KV heads of 128, no biases, no QK norms,
NeoX RoPE. The vocabulary stays full: the built-in Mistral (Tekken) tokenizer has
131,072 ids and a prompt's byte-level pieces land anywhere in it. The published 3B ties
its output head to the token table, and the engine would not read a head anyway.
"""

from __future__ import annotations

from pathlib import Path

from .formats import DType, TensorSpec, write_gguf
from .layers import linear, norm, typed

VOCAB = 131_072
HEAD_DIM = 128
N_HEADS = 32
N_KV_HEADS = 8


def tensors(layers: int, hidden: int, ffn: int) -> list[TensorSpec]:
    """llama.cpp names, PyTorch shape order (out, in)."""
    out = [TensorSpec("token_embd.weight", (VOCAB, hidden))]
    q_dim, kv_dim = N_HEADS * HEAD_DIM, N_KV_HEADS * HEAD_DIM
    for i in range(layers):
        b = f"blk.{i}."
        out += norm(b + "attn_norm.", hidden, bias=False)
        out += linear(b + "attn_q.", q_dim, hidden, bias=False)
        out += linear(b + "attn_k.", kv_dim, hidden, bias=False)
        out += linear(b + "attn_v.", kv_dim, hidden, bias=False)
        out += linear(b + "attn_output.", hidden, q_dim, bias=False)
        out += norm(b + "ffn_norm.", hidden, bias=False)
        out += linear(b + "ffn_gate.", ffn, hidden, bias=False)
        out += linear(b + "ffn_up.", ffn, hidden, bias=False)
        out += linear(b + "ffn_down.", hidden, ffn, bias=False)
    return out + norm("output_norm.", hidden, bias=False)


def metadata(layers: int, hidden: int, ffn: int) -> dict[str, object]:
    """The llama.cpp header keys of a Ministral 3 GGUF (the engine reads none of them)."""
    return {
        "general.architecture": "mistral3",
        "general.name": "ministral-3-3b-test-random",
        "mistral3.block_count": layers,
        "mistral3.context_length": 262_144,
        "mistral3.embedding_length": hidden,
        "mistral3.feed_forward_length": ffn,
        "mistral3.attention.head_count": N_HEADS,
        "mistral3.attention.head_count_kv": N_KV_HEADS,
        "mistral3.attention.key_length": HEAD_DIM,
        "mistral3.attention.value_length": HEAD_DIM,
        "mistral3.rope.freq_base": 1_000_000.0,
        "mistral3.attention.layer_norm_rms_epsilon": 1e-5,
    }


def write(path: Path, layers: int, hidden: int, ffn: int, dtype: DType = "q4_0") -> None:
    write_gguf(path, typed(tensors(layers, hidden, ffn), dtype), metadata(layers, hidden, ffn))
