"""FLUX.1 and the families built on its DiT: dev, Kontext, Fill and Chroma, in the split layout.

Each is a diffusion-model GGUF (BFL tensor names, as the published conversions carry them)
next to the companions users download: `ae.safetensors` (16-channel KL VAE, ldm names, no
quant convs) and CLIP-L (FLUX.1; a q4_0 GGUF, 70 MB instead of 246 MB in f16).

The engine reads the DiT's depth from the block indices, its width and context width from
`txt_in`, the head size from the QK-norm scales, and whether it has distilled guidance from
`guidance_in`; so the DiT is one double and one single block, two 128-wide heads. What it
fixes stays full size:

- `img_in` takes 64 features (16 latent channels x 2x2 patch); FLUX.1 Fill's takes 384
  (latent, masked latent and the 8x8-folded mask), which is how the engine tells Fill;
- `vector_in` reads the 768-wide pooled CLIP-L output, `txt_in` 4096-wide T5 features;
- Chroma has no time/vector/guidance embedders and no per-block modulation: one
  "distilled guidance" approximator (64 -> 5120, five 5120-wide residual MLPs, -> width)
  makes all 344 modulation vectors, at a size the engine hardcodes (262M parameters,
  about 150 MB in q4_0);
- CLIP-L and T5-XXL have fixed sizes (123M and 4.8B parameters).

There is no T5: the engine pads a FLUX.1 prompt to 256 T5 tokens and a Chroma prompt to 512,
and one encode with the full-size T5 costs tens of seconds on two cores. Without it the engine
feeds zeros in its place (FLUX.1 still reads the prompt through CLIP-L's pooled output; Chroma,
which reads T5 only, gets the same empty condition for every prompt).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import clip
from .formats import TensorSpec, quantizable, write_gguf, write_safetensors
from .kl_vae import kl_vae
from .layers import linear, typed
from .recipe import Recipe

# DiT geometry the engine fixes for FLUX.1.
LATENT = 16
PATCH_FEATURES = LATENT * 4  # a 2x2 patch of the latent
FILL_FEATURES = 384  # latent + masked latent (64) + mask folded 8x8 into 64 channels, each 2x2-patched
HEAD_DIM = 128
MLP_RATIO = 4
POOLED = 768  # CLIP-L pooled output, read by vector_in
CONTEXT = 4096  # T5-XXL width, read by txt_in
CHROMA_INNER = 5120  # the approximator's width and depth are fixed in the engine
CHROMA_LAYERS = 5
CHROMA_IN = 64  # 16 timestep + 16 guidance + 32 modulation-index features

# Test geometry.
HIDDEN = 256  # two heads
DOUBLE = 1
SINGLE = 1
VAE_DECODER_CH = 32  # the smallest GroupNorm(32)-compatible width


def _embedder(prefix: str, in_dim: int, hidden: int) -> list[TensorSpec]:
    """MLPEmbedder: in_layer -> SiLU -> out_layer."""
    return linear(prefix + "in_layer.", hidden, in_dim) + linear(prefix + "out_layer.", hidden, hidden)


def _qk_norm(prefix: str) -> list[TensorSpec]:
    return [TensorSpec(prefix + "query_norm.scale", (HEAD_DIM,), "ones"),
            TensorSpec(prefix + "key_norm.scale", (HEAD_DIM,), "ones")]


def dit_tensors(hidden: int = HIDDEN, double: int = DOUBLE, single: int = SINGLE, *, img_in: int = PATCH_FEATURES,
                guidance: bool = True, chroma: bool = False) -> list[TensorSpec]:
    """A FLUX.1 DiT (biases everywhere, GELU MLPs); `chroma` puts the approximator in place of the embedders and
    every modulation; without `guidance` it is schnell-like (no distilled-guidance input)."""
    mlp = hidden * MLP_RATIO
    specs = linear("img_in.", hidden, img_in) + linear("txt_in.", hidden, CONTEXT)
    if chroma:
        g = "distilled_guidance_layer."
        specs += linear(g + "in_proj.", CHROMA_INNER, CHROMA_IN)
        for i in range(CHROMA_LAYERS):
            specs.append(TensorSpec(f"{g}norms.{i}.scale", (CHROMA_INNER,), "ones"))
            specs += _embedder(f"{g}layers.{i}.", CHROMA_INNER, CHROMA_INNER)
        specs += linear(g + "out_proj.", hidden, CHROMA_INNER)
    else:
        specs += _embedder("time_in.", 256, hidden) + _embedder("vector_in.", POOLED, hidden)
        if guidance:
            specs += _embedder("guidance_in.", 256, hidden)
    for i in range(double):
        for stream in ("img", "txt"):
            b = f"double_blocks.{i}.{stream}_"
            if not chroma:
                specs += linear(b + "mod.lin.", 6 * hidden, hidden)
            specs += linear(b + "attn.qkv.", 3 * hidden, hidden) + _qk_norm(b + "attn.norm.")
            specs += linear(b + "attn.proj.", hidden, hidden)
            specs += linear(b + "mlp.0.", mlp, hidden) + linear(b + "mlp.2.", hidden, mlp)
    for i in range(single):
        b = f"single_blocks.{i}."
        specs += linear(b + "linear1.", 3 * hidden + mlp, hidden) + linear(b + "linear2.", hidden, hidden + mlp)
        specs += _qk_norm(b + "norm.")
        if not chroma:
            specs += linear(b + "modulation.lin.", 3 * hidden, hidden)
    specs += linear("final_layer.linear.", PATCH_FEATURES, hidden)
    if not chroma:
        specs += linear("final_layer.adaLN_modulation.1.", 2 * hidden, hidden)
    return specs


def vae_tensors() -> list[TensorSpec]:
    """`ae.safetensors`: the 16-channel KL autoencoder, ldm names without a prefix or quant convs."""
    return kl_vae("", z_channels=LATENT, quant_convs=False, decoder_ch=VAE_DECODER_CH)


# ---------------------------------------------------------------- files

VAE_FILE = "ae.safetensors"
CLIP_L_FILE = "clip_l-q4_0.gguf"
DEV_FILE = "flux1-dev-test-Q4_0.gguf"
KONTEXT_FILE = "flux1-kontext-dev-test-Q4_0.gguf"  # Kontext is FLUX.1 dev's architecture: told by its name
FILL_FILE = "flux1-fill-dev-test-Q4_0.gguf"
CHROMA_FILE = "chroma-unlocked-test-Q4_0.gguf"


def _write_dit(path: Path, specs: list[TensorSpec]) -> None:
    write_gguf(path, [(s, quantizable(s, "q4_0")) for s in specs], {"general.architecture": "flux"})


def _write_vae(path: Path) -> None:
    write_safetensors(path, [(s, quantizable(s, "f16")) for s in vae_tensors()])


def _write_clip_l(path: Path) -> None:
    write_gguf(path, typed(clip.hf_text_model("", clip.VIT_L), exact=clip.EXACT_TYPES))


def _build_dev(folder: Path) -> dict[str, str]:
    _write_dit(folder / DEV_FILE, dit_tensors())
    _write_vae(folder / VAE_FILE)
    _write_clip_l(folder / CLIP_L_FILE)
    return {"diffusion_model": DEV_FILE, "clip_l": CLIP_L_FILE, "vae": VAE_FILE}


def _companions(folder: Path, roles: tuple[str, ...] = ("vae", "clip_l")) -> dict[str, str]:
    """Hard links to the `flux1` build's companions (its VAE, CLIP-L): one copy on disk for every recipe."""
    from .registry import get  # the registry imports this module

    dev = get("flux1")
    out = {}
    for role in roles:
        out[role] = dev.files[role].name
        os.link(dev.files[role], folder / out[role])
    return out


def _build_kontext(folder: Path) -> dict[str, str]:
    _write_dit(folder / KONTEXT_FILE, dit_tensors())
    return {"diffusion_model": KONTEXT_FILE, **_companions(folder)}


def _build_fill(folder: Path) -> dict[str, str]:
    _write_dit(folder / FILL_FILE, dit_tensors(img_in=FILL_FEATURES))
    return {"diffusion_model": FILL_FILE, **_companions(folder)}


def _build_chroma(folder: Path) -> dict[str, str]:
    _write_dit(folder / CHROMA_FILE, dit_tensors(chroma=True))
    return {"diffusion_model": CHROMA_FILE, **_companions(folder, ("vae",))}


RECIPES: list[Recipe] = [
    Recipe("flux1", "flux", _build_dev),
    Recipe("flux1_kontext", "flux_kontext", _build_kontext),
    Recipe("flux1_fill", "flux_fill", _build_fill),
    Recipe("chroma", "chroma", _build_chroma),
]
