"""FLUX.2-klein in the split layout: DiT GGUF + Qwen3 LLM GGUF + FLUX.2 VAE safetensors.

Tensor names are the published ones (BFL names in the DiT, llama.cpp names in the LLM,
ldm names in the VAE as in `flux2-vae.safetensors`). The engine infers everything it
can from shapes, so the model is shrunk only where it looks:

- DiT: depth from the block indices, width from `txt_in`, head size from the QK-norm
  scales. It is told FLUX.2 by `double_stream_modulation_img` and klein (not dev) by
  the absence of `single_blocks.47`. Head size stays 128: the RoPE axes (4 x 32) are
  fixed to it.
- LLM: 2 layers. Klein concatenates the hidden states after layers 9, 18 and 27; a
  shallower model has none of them and gives its final-norm output instead, so the
  DiT's context width is the LLM width, not 3x.
- VAE: the decoder width is read from `decoder.conv_in`, so the decoder is narrow
  (ch 32). The encoder width is fixed at 128 in the engine and has to stay full size;
  it is loaded whenever the context is not decode-only (and img2img needs it).
"""

from __future__ import annotations

from pathlib import Path

from . import qwen3
from .formats import TensorSpec, quantizable, write_gguf, write_safetensors
from .recipe import Recipe

# DiT geometry fixed by the engine for FLUX.2.
LATENT_CH = 128  # 32 VAE channels x 2x2 patch
HEAD_DIM = 128
MLP_RATIO = 3

# Test geometry.
DIT_HIDDEN = 256  # two heads
DIT_DOUBLE = 1
DIT_SINGLE = 1
LLM_LAYERS = 2
LLM_HIDDEN = 64
LLM_FFN = 128
VAE_Z = 32
VAE_ENC_CH = 128  # engine-fixed
VAE_DEC_CH = 32  # smallest GroupNorm(32)-compatible width
VAE_CH_MULT = (1, 2, 4, 4)
VAE_RES_BLOCKS = 2


def dit_tensors(hidden: int, double: int, single: int, context_dim: int) -> list[TensorSpec]:
    """FLUX.2 DiT: no biases, shared modulation, gated-SiLU MLPs, patch size 1."""
    mlp = hidden * MLP_RATIO
    out = [
        TensorSpec("img_in.weight", (hidden, LATENT_CH)),
        TensorSpec("time_in.in_layer.weight", (hidden, 256)),
        TensorSpec("time_in.out_layer.weight", (hidden, hidden)),
        TensorSpec("txt_in.weight", (hidden, context_dim)),
        TensorSpec("double_stream_modulation_img.lin.weight", (6 * hidden, hidden)),
        TensorSpec("double_stream_modulation_txt.lin.weight", (6 * hidden, hidden)),
        TensorSpec("single_stream_modulation.lin.weight", (3 * hidden, hidden)),
    ]
    for i in range(double):
        for stream in ("img", "txt"):
            b = f"double_blocks.{i}.{stream}_"
            out += [
                TensorSpec(b + "attn.qkv.weight", (3 * hidden, hidden)),
                TensorSpec(b + "attn.norm.query_norm.scale", (HEAD_DIM,), "ones"),
                TensorSpec(b + "attn.norm.key_norm.scale", (HEAD_DIM,), "ones"),
                TensorSpec(b + "attn.proj.weight", (hidden, hidden)),
                TensorSpec(b + "mlp.0.weight", (2 * mlp, hidden)),
                TensorSpec(b + "mlp.2.weight", (hidden, mlp)),
            ]
    for i in range(single):
        b = f"single_blocks.{i}."
        out += [
            TensorSpec(b + "linear1.weight", (3 * hidden + 2 * mlp, hidden)),
            TensorSpec(b + "linear2.weight", (hidden, hidden + mlp)),
            TensorSpec(b + "norm.query_norm.scale", (HEAD_DIM,), "ones"),
            TensorSpec(b + "norm.key_norm.scale", (HEAD_DIM,), "ones"),
        ]
    out += [
        TensorSpec("final_layer.adaLN_modulation.1.weight", (2 * hidden, hidden)),
        TensorSpec("final_layer.linear.weight", (LATENT_CH, hidden)),
    ]
    return out


# ---------------------------------------------------------------- VAE (ldm names)


def _conv(name: str, c_out: int, c_in: int, k: int) -> list[TensorSpec]:
    return [TensorSpec(f"{name}.weight", (c_out, c_in, k, k)), TensorSpec(f"{name}.bias", (c_out,), "small")]


def _norm(name: str, c: int) -> list[TensorSpec]:
    return [TensorSpec(f"{name}.weight", (c,), "ones"), TensorSpec(f"{name}.bias", (c,), "zeros")]


def _resnet(name: str, c_in: int, c_out: int) -> list[TensorSpec]:
    out = _norm(f"{name}.norm1", c_in) + _conv(f"{name}.conv1", c_out, c_in, 3)
    out += _norm(f"{name}.norm2", c_out) + _conv(f"{name}.conv2", c_out, c_out, 3)
    if c_in != c_out:
        out += _conv(f"{name}.nin_shortcut", c_out, c_in, 1)
    return out


def _mid(prefix: str, c: int) -> list[TensorSpec]:
    out = _resnet(f"{prefix}.mid.block_1", c, c) + _norm(f"{prefix}.mid.attn_1.norm", c)
    for proj in ("q", "k", "v", "proj_out"):
        out += _conv(f"{prefix}.mid.attn_1.{proj}", c, c, 1)
    return out + _resnet(f"{prefix}.mid.block_2", c, c)


def vae_tensors(enc_ch: int, dec_ch: int, z: int) -> list[TensorSpec]:
    """AutoencoderKL with FLUX.2's 32-channel latent, quant convs nested as BFL ships them."""
    out = _conv("encoder.conv_in", enc_ch, 3, 3)
    c_in = enc_ch
    for i, mult in enumerate(VAE_CH_MULT):
        c_out = enc_ch * mult
        for j in range(VAE_RES_BLOCKS):
            out += _resnet(f"encoder.down.{i}.block.{j}", c_in, c_out)
            c_in = c_out
        if i != len(VAE_CH_MULT) - 1:
            out += _conv(f"encoder.down.{i}.downsample.conv", c_in, c_in, 3)
    out += _mid("encoder", c_in) + _norm("encoder.norm_out", c_in)
    out += _conv("encoder.conv_out", 2 * z, c_in, 3)
    out += _conv("encoder.quant_conv", 2 * z, 2 * z, 1)

    out += _conv("decoder.post_quant_conv", z, z, 1)
    c_in = dec_ch * VAE_CH_MULT[-1]
    out += _conv("decoder.conv_in", c_in, z, 3) + _mid("decoder", c_in)
    for i in reversed(range(len(VAE_CH_MULT))):
        c_out = dec_ch * VAE_CH_MULT[i]
        for j in range(VAE_RES_BLOCKS + 1):
            out += _resnet(f"decoder.up.{i}.block.{j}", c_in, c_out)
            c_in = c_out
        if i != 0:
            out += _conv(f"decoder.up.{i}.upsample.conv", c_in, c_in, 3)
    out += _norm("decoder.norm_out", c_in)
    # A small output conv keeps most pixels off the [-1, 1] clamp, so changes stay visible.
    out += [
        TensorSpec("decoder.conv_out.weight", (3, c_in, 3, 3), "small"),
        TensorSpec("decoder.conv_out.bias", (3,), "zeros"),
    ]
    # Latent BatchNorm statistics, as in the published file: the engine hardcodes them and
    # skips these, but other tools (ComfyUI) tell the FLUX.2 VAE by them.
    out += [TensorSpec("bn.running_mean", (4 * z,), "zeros"), TensorSpec("bn.running_var", (4 * z,), "ones")]
    return out


# ---------------------------------------------------------------- recipes

DIT_FILE = "flux-2-klein-test-Q4_0.gguf"
LLM_FILE = "qwen3-test-Q4_0.gguf"
VAE_FILE = "flux2-vae.safetensors"


def build(folder: Path) -> dict[str, str]:
    dit = dit_tensors(DIT_HIDDEN, DIT_DOUBLE, DIT_SINGLE, context_dim=LLM_HIDDEN)
    write_gguf(folder / DIT_FILE, [(s, quantizable(s, "q4_0")) for s in dit], {"general.architecture": "flux"})
    qwen3.write(folder / LLM_FILE, LLM_LAYERS, LLM_HIDDEN, LLM_FFN)
    vae = vae_tensors(VAE_ENC_CH, VAE_DEC_CH, VAE_Z)
    write_safetensors(folder / VAE_FILE, [(s, quantizable(s, "f16")) for s in vae])
    return {"diffusion_model": DIT_FILE, "llm": LLM_FILE, "vae": VAE_FILE}


RECIPES: list[Recipe] = [
    Recipe("flux2", "flux2", build),
    # Same files; FLUX.2's in-context img2img wants its own flow prediction named.
    Recipe("flux2_edit", "flux2", build, {"prediction": "flux2_flow"}),
]
