"""T5 v1.1 XXL encoder (SD3's third text encoder) and UMT5-XXL (Wan's), in llama.cpp GGUF names.

The engine fixes every size (24 blocks, width 4096, gated-GELU FFN 10240, 64 heads,
vocabulary 32128), so this is the full 4.8B-parameter encoder: about 2.7 GB in q4_0.
The names are the ones T5 GGUF conversions use (`enc.blk.N.attn_q.weight`,
`token_embd.weight`...); the engine maps them back to Hugging Face names.

UMT5-XXL (`umt5_encoder`, as in city96's `umt5-xxl-encoder-Q4_0.gguf`) is the same
encoder with the engine's other two fixed values (t5.hpp, T5Runner with is_umt5): a
256384-token vocabulary and a relative-position bucket table in every block, not only
the first. That makes it 5.7B parameters, about 3.2 GB in q4_0.
"""

from __future__ import annotations

from .formats import DType, TensorSpec
from .layers import norm

LAYERS = 24
WIDTH = 4096
FFN = 10240
HEADS = 64
VOCAB = 32128
UMT5_VOCAB = 256384
BUCKETS = 32  # relative-position buckets, a table held by the first block only (by every block in UMT5)

# The bucket table is tiny and read by row: keep it exact.
EXACT_TYPES: dict[str, DType] = {"attn_rel_b.weight": "f32"}


def t5_encoder(vocab: int = VOCAB, bias_in_every_block: bool = False) -> list[TensorSpec]:
    specs = [TensorSpec("token_embd.weight", (vocab, WIDTH))]
    for i in range(LAYERS):
        blk = f"enc.blk.{i}."
        for proj in ("attn_q", "attn_k", "attn_v", "attn_o"):
            specs.append(TensorSpec(f"{blk}{proj}.weight", (WIDTH, WIDTH)))
        if i == 0 or bias_in_every_block:
            specs.append(TensorSpec(blk + "attn_rel_b.weight", (BUCKETS, HEADS), "small"))
        specs += norm(blk + "attn_norm.", WIDTH, bias=False)
        specs.append(TensorSpec(blk + "ffn_gate.weight", (FFN, WIDTH)))
        specs.append(TensorSpec(blk + "ffn_up.weight", (FFN, WIDTH)))
        specs.append(TensorSpec(blk + "ffn_down.weight", (WIDTH, FFN)))
        specs += norm(blk + "ffn_norm.", WIDTH, bias=False)
    return specs + norm("enc.output_norm.", WIDTH, bias=False)


def umt5_encoder() -> list[TensorSpec]:
    """UMT5-XXL, Wan's text encoder (the engine's `t5xxl` role for Wan)."""
    return t5_encoder(UMT5_VOCAB, bias_in_every_block=True)
