"""T5 v1.1 XXL encoder (SD3's third text encoder), in llama.cpp GGUF names.

The engine fixes every size (24 blocks, width 4096, gated-GELU FFN 10240, 64 heads,
vocabulary 32128), so this is the full 4.8B-parameter encoder: about 2.7 GB in q4_0.
The names are the ones T5 GGUF conversions use (`enc.blk.N.attn_q.weight`,
`token_embd.weight`...); the engine maps them back to Hugging Face names.
"""

from __future__ import annotations

from .formats import DType, TensorSpec
from .layers import norm

LAYERS = 24
WIDTH = 4096
FFN = 10240
HEADS = 64
VOCAB = 32128
BUCKETS = 32  # relative-position buckets, a table held by the first block only

# The bucket table is tiny and read by row: keep it exact.
EXACT_TYPES: dict[str, DType] = {"attn_rel_b.weight": "f32"}


def t5_encoder() -> list[TensorSpec]:
    specs = [TensorSpec("token_embd.weight", (VOCAB, WIDTH))]
    for i in range(LAYERS):
        blk = f"enc.blk.{i}."
        for proj in ("attn_q", "attn_k", "attn_v", "attn_o"):
            specs.append(TensorSpec(f"{blk}{proj}.weight", (WIDTH, WIDTH)))
        if i == 0:
            specs.append(TensorSpec(blk + "attn_rel_b.weight", (BUCKETS, HEADS), "small"))
        specs += norm(blk + "attn_norm.", WIDTH, bias=False)
        specs.append(TensorSpec(blk + "ffn_gate.weight", (FFN, WIDTH)))
        specs.append(TensorSpec(blk + "ffn_up.weight", (FFN, WIDTH)))
        specs.append(TensorSpec(blk + "ffn_down.weight", (WIDTH, FFN)))
        specs += norm(blk + "ffn_norm.", WIDTH, bias=False)
    return specs + norm("enc.output_norm.", WIDTH, bias=False)
