"""Ovis-Image in the split layout: DiT GGUF + Qwen3 LLM GGUF (Ovis 2.5's) + FLUX.1 VAE safetensors.

Tensor names are the published ones: BFL names in the DiT, as in leejet's
`ovis_image-Q4_0.gguf` (the engine tells Ovis-Image by `double_blocks.0.img_mlp.gate_proj`);
llama.cpp names in the LLM; ldm names in the VAE, as in FLUX.1's `ae.safetensors`.

What the engine reads from the tensors, and what it fixes:

- DiT (flux.hpp, FluxRunner with VERSION_OVIS_IMAGE): FLUX.1's network with three
  changes the version switches on: an RMSNorm over the text features before `txt_in`
  (`txt_norm.scale`), SiLU-gated MLPs (`gate_proj`/`up_proj`/`down_proj` in the double
  blocks, a doubled MLP part of `linear1` in the single ones) and no pooled-text input
  (`vector_in`). Like FLUX.1 it reads depth from the block indices, width and text width
  from `txt_in`, head size from the QK-norm scales and a distilled-guidance input from
  `guidance_in` (Ovis-Image has none: it runs real cfg). Head size stays 128 (the RoPE
  axes 16/56/56 are fixed), `img_in` takes 64 features (16 latent channels, 2x2 patch).
  So one double and one single block, two heads.
- LLM (llm.hpp, arch QWEN3): see qwen3.py; depth, width, FFN width and vocabulary are
  read, the attention is fixed. Ovis-Image takes the final-norm output, so 2 layers do,
  and the width is the DiT's text width (read from `txt_in`), so it can be narrow. The
  prompt is wrapped in a template and padded to 284 tokens, of which the first 28 are
  dropped: the DiT sees 256 text tokens whatever the prompt.
- VAE: FLUX.1's 16-channel autoencoder (flux1.py): narrow decoder, full-size encoder.

Cost, measured on 2 busy shared cores: 84 MB on disk (the VAE 75 MB), built in ~2 s; the
peer loads it in ~1.4 s and makes a 64x64 1-step image at cfg 5 in 4-7 s (two LLM passes
over 284 tokens, two DiT passes, the VAE decode about a third each), ~3.5 CPU-seconds in
all; peak RSS 0.26 GB.
"""

from __future__ import annotations

from pathlib import Path

from . import flux1, qwen3
from .formats import TensorSpec, write_gguf, write_safetensors
from .layers import linear, typed
from .recipe import Recipe

# DiT geometry fixed by the engine.
PATCH_FEATURES = flux1.PATCH_FEATURES  # 16 latent channels x 2x2 patch
HEAD_DIM = 128
MLP_RATIO = 4

# Test geometry.
HIDDEN = 256  # two heads
DOUBLE = 1
SINGLE = 1
LLM_LAYERS = 2
LLM_HIDDEN = 64  # the DiT's text width
LLM_FFN = 128


def _qk_norm(prefix: str) -> list[TensorSpec]:
    return [TensorSpec(prefix + "query_norm.scale", (HEAD_DIM,), "ones"),
            TensorSpec(prefix + "key_norm.scale", (HEAD_DIM,), "ones")]


def dit_tensors(hidden: int = HIDDEN, double: int = DOUBLE, single: int = SINGLE,
                context: int = LLM_HIDDEN) -> list[TensorSpec]:
    """FLUX.1's DiT with Ovis's text RMSNorm, gated MLPs and no vector_in / guidance_in."""
    mlp = hidden * MLP_RATIO
    specs = linear("img_in.", hidden, PATCH_FEATURES)
    specs.append(TensorSpec("txt_norm.scale", (context,), "ones"))
    specs += linear("txt_in.", hidden, context)
    specs += linear("time_in.in_layer.", hidden, 256) + linear("time_in.out_layer.", hidden, hidden)
    for i in range(double):
        for stream in ("img", "txt"):
            b = f"double_blocks.{i}.{stream}_"
            specs += linear(b + "mod.lin.", 6 * hidden, hidden)
            specs += linear(b + "attn.qkv.", 3 * hidden, hidden) + _qk_norm(b + "attn.norm.")
            specs += linear(b + "attn.proj.", hidden, hidden)
            specs += linear(b + "mlp.gate_proj.", mlp, hidden) + linear(b + "mlp.up_proj.", mlp, hidden)
            specs += linear(b + "mlp.down_proj.", hidden, mlp)
    for i in range(single):
        b = f"single_blocks.{i}."
        # linear1 gives q, k, v and the gate and up halves of the MLP; linear2 reads attention + MLP.
        specs += linear(b + "linear1.", 3 * hidden + 2 * mlp, hidden) + linear(b + "linear2.", hidden, hidden + mlp)
        specs += _qk_norm(b + "norm.") + linear(b + "modulation.lin.", 3 * hidden, hidden)
    specs += linear("final_layer.linear.", PATCH_FEATURES, hidden)
    return specs + linear("final_layer.adaLN_modulation.1.", 2 * hidden, hidden)


# ---------------------------------------------------------------- recipe

DIT_FILE = "ovis_image-test-Q4_0.gguf"
LLM_FILE = "ovis_2.5-qwen3-test-Q4_0.gguf"
VAE_FILE = flux1.VAE_FILE


def build(folder: Path) -> dict[str, str]:
    write_gguf(folder / DIT_FILE, typed(dit_tensors()), {"general.architecture": "flux"})
    qwen3.write(folder / LLM_FILE, LLM_LAYERS, LLM_HIDDEN, LLM_FFN)
    write_safetensors(folder / VAE_FILE, typed(flux1.vae_tensors(), "f16"))
    return {"diffusion_model": DIT_FILE, "llm": LLM_FILE, "vae": VAE_FILE}


RECIPES: list[Recipe] = [Recipe("ovis_image", "ovis_image", build)]
