"""Qwen3 LLM text encoder in llama.cpp GGUF tensor names (FLUX.2-klein's, Z-Image's).

The engine reads depth, width, FFN width and vocabulary from the tensors but fixes the
attention geometry for Qwen3 (32 query heads, 8 KV heads, head size 128), so only
those four can shrink. The vocabulary stays full: the built-in Qwen2 tokenizer emits
special ids up to ~151,6xx (<|im_start|> is 151,644) that must index embedding rows.
"""

from __future__ import annotations

from pathlib import Path

from .formats import DType, TensorSpec, quantizable, write_gguf

VOCAB = 151_936
HEAD_DIM = 128
N_HEADS = 32
N_KV_HEADS = 8


def tensors(layers: int, hidden: int, ffn: int) -> list[TensorSpec]:
    """llama.cpp names, PyTorch shape order (out, in). Qwen3 ties the output head."""
    out = [TensorSpec("token_embd.weight", (VOCAB, hidden))]
    q_dim, kv_dim = N_HEADS * HEAD_DIM, N_KV_HEADS * HEAD_DIM
    for i in range(layers):
        b = f"blk.{i}."
        out += [
            TensorSpec(b + "attn_norm.weight", (hidden,), "ones"),
            TensorSpec(b + "attn_q.weight", (q_dim, hidden)),
            TensorSpec(b + "attn_k.weight", (kv_dim, hidden)),
            TensorSpec(b + "attn_v.weight", (kv_dim, hidden)),
            TensorSpec(b + "attn_q_norm.weight", (HEAD_DIM,), "ones"),
            TensorSpec(b + "attn_k_norm.weight", (HEAD_DIM,), "ones"),
            TensorSpec(b + "attn_output.weight", (hidden, q_dim)),
            TensorSpec(b + "ffn_norm.weight", (hidden,), "ones"),
            TensorSpec(b + "ffn_gate.weight", (ffn, hidden)),
            TensorSpec(b + "ffn_up.weight", (ffn, hidden)),
            TensorSpec(b + "ffn_down.weight", (hidden, ffn)),
        ]
    out.append(TensorSpec("output_norm.weight", (hidden,), "ones"))
    return out


def metadata(layers: int, hidden: int, ffn: int) -> dict[str, object]:
    """The llama.cpp header keys a Qwen3 GGUF carries (the engine itself reads none)."""
    return {
        "general.architecture": "qwen3",
        "general.name": "qwen3-test-random",
        "qwen3.block_count": layers,
        "qwen3.context_length": 40960,
        "qwen3.embedding_length": hidden,
        "qwen3.feed_forward_length": ffn,
        "qwen3.attention.head_count": N_HEADS,
        "qwen3.attention.head_count_kv": N_KV_HEADS,
        "qwen3.attention.key_length": HEAD_DIM,
        "qwen3.attention.value_length": HEAD_DIM,
        "qwen3.rope.freq_base": 1_000_000.0,
        "qwen3.attention.layer_norm_rms_epsilon": 1e-6,
    }


def write(path: Path, layers: int, hidden: int, ffn: int, dtype: DType = "q4_0") -> None:
    specs = tensors(layers, hidden, ffn)
    write_gguf(path, [(s, quantizable(s, dtype)) for s in specs], metadata(layers, hidden, ffn))
