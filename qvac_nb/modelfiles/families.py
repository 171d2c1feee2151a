"""Model families: which network a file holds, and whether the tensors the engine sizes it from are sound.

The tensor names tell the family; the tensors the engine reads to size the network (block
counts, widths, head sizes) must all be there and consistent, since the engine divides by
them and indexes with them before it checks anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..errors import CorruptModelError

if TYPE_CHECKING:  # only annotations: formats.FileInfo asks this module for its family
    from .formats import FileInfo

MAX_BLOCKS = 4096  # no real network has more repeated blocks; a larger index is corruption
# Integer tensors in real checkpoints are buffers the engine never computes with
# (position_ids, num_batches_tracked, model_ema.num_updates); weights must be floats.
_WEIGHT_NAME = re.compile(r"\.(weight|bias|scale)$")


def detect_family(names: Iterable[str]) -> str:
    names = list(names)
    joined = "\n".join(names[:20000])
    if "double_stream_modulation" in joined:
        return "flux2"
    if "double_blocks." in joined:
        return "flux"
    if "joint_blocks." in joined:
        return "sd3"
    if "enc.blk.0." in joined or "encoder.block.0." in joined:
        return "text_encoder"  # T5 (llama.cpp or Hugging Face names)
    if "blk.0.attn_q" in joined or "model.layers.0.self_attn" in joined or "\nlayers.0.self_attn" in "\n" + joined:
        return "llm"
    if "conv_first.weight" in joined or "body.0.rdb1" in joined or "model.0.weight" in joined:
        return "esrgan"
    if "diffusion_model.input_blocks" in joined or "input_blocks." in joined:
        if "label_emb" in joined:
            return "sdxl"
        if "cond_stage_model.model.transformer" in joined:
            return "sd2"
        return "sd1"
    if "encoder.conv_in" in joined or "decoder.conv_in" in joined:
        return "vae"
    if "text_model.encoder" in joined or "encoder.block.0" in joined:
        return "text_encoder"
    return "unknown"


# ---------------------------------------------------------------- structure of each family


def _fail(info: FileInfo, role: str, what: str) -> CorruptModelError:
    return CorruptModelError(f"{role}: {info.path.name} is not a complete {what}")


def _strip(info: FileInfo, prefixes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Tensor shapes under their names without the first matching checkpoint prefix."""
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in info.tensors.items():
        for prefix in prefixes:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        out.setdefault(name, shape)
    return out


def _indices(names: Iterable[str], pattern: str) -> set[int]:
    rx = re.compile(pattern)
    return {int(m.group(1)) for n in names if (m := rx.search(n))}


def _require(info: FileInfo, role: str, shapes: Mapping[str, tuple[int, ...]], needed: Iterable[str],
             what: str) -> None:
    missing = [n for n in needed if n not in shapes]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise CorruptModelError(
            f"{role}: {info.path.name} is not a complete {what}: tensor(s) {', '.join(missing[:3])}{more} are missing "
            "(truncated or damaged file?)"
        )


def _block_count(info: FileInfo, role: str, names: Iterable[str], pattern: str, what: str) -> int:
    found = _indices(names, pattern)
    if not found:
        return 0
    if max(found) >= MAX_BLOCKS:
        raise CorruptModelError(f"{role}: {info.path.name} names block {max(found)}, which no {what} has")
    return max(found) + 1


def _check_dtypes(info: FileInfo, role: str) -> None:
    """Integer or undecodable dtypes on weights make the engine's compute kernels abort."""
    for name, dtype in info.dtypes.items():
        undecodable = info.format == "gguf" and dtype in ("Q8_1", "Q8_K", "F64")  # no ggml dequantizer
        if undecodable or (dtype in ("I8", "I16", "I32", "I64", "U8") and _WEIGHT_NAME.search(name)):
            raise CorruptModelError(f"{role}: {info.path.name}: tensor {name} is stored as {dtype}, not a weight type")


_DIT_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def _check_flux(info: FileInfo, role: str, flux2: bool) -> None:
    """The engine sizes FLUX from txt_in and the QK-norm scales and divides by the head size."""
    what = "FLUX.2 diffusion model" if flux2 else "FLUX diffusion model"
    t = _strip(info, _DIT_PREFIXES)
    depth = _block_count(info, role, t, r"^double_blocks\.(\d+)\.", what)
    single = _block_count(info, role, t, r"^single_blocks\.(\d+)\.", what)
    if depth + single == 0:
        raise _fail(info, role, what + " (no double or single blocks)")
    needed = ["img_in.weight", "txt_in.weight", "time_in.in_layer.weight", "time_in.out_layer.weight",
              "final_layer.linear.weight", "final_layer.adaLN_modulation.1.weight"]
    if flux2:
        needed += ["double_stream_modulation_img.lin.weight", "double_stream_modulation_txt.lin.weight",
                   "single_stream_modulation.lin.weight"]
    for i in range(depth):
        for stream in ("img", "txt"):
            b = f"double_blocks.{i}.{stream}_"
            needed += [b + "attn.qkv.weight", b + "attn.norm.query_norm.scale", b + "attn.norm.key_norm.scale",
                       b + "attn.proj.weight", b + "mlp.0.weight", b + "mlp.2.weight"]
    for i in range(single):
        b = f"single_blocks.{i}."
        needed += [b + "linear1.weight", b + "linear2.weight", b + "norm.query_norm.scale", b + "norm.key_norm.scale"]
    _require(info, role, t, needed, what)
    txt_in = t["txt_in.weight"]
    key_norm = t.get("single_blocks.0.norm.key_norm.scale") or t.get("double_blocks.0.txt_attn.norm.key_norm.scale")
    if len(txt_in) != 2 or not key_norm or len(key_norm) != 1:
        raise _fail(info, role, what + " (txt_in / key_norm shapes)")
    hidden, head_dim = txt_in[0], key_norm[0]
    # RoPE covers 128 dimensions per head in every FLUX; the engine divides hidden by head_dim.
    if head_dim != 128 or hidden % head_dim:
        raise CorruptModelError(
            f"{role}: {info.path.name} has head size {head_dim} and width {hidden}; {what}s have 128-wide heads "
            "and a width that is a multiple of 128"
        )
    for name, shape in t.items():
        if name.endswith(("norm.key_norm.scale", "norm.query_norm.scale")) and shape != (head_dim,):
            raise CorruptModelError(f"{role}: {info.path.name}: {name} has shape {shape}, expected ({head_dim},)")


def _check_sd3(info: FileInfo, role: str) -> None:
    what = "SD3 diffusion model"
    t = _strip(info, _DIT_PREFIXES)
    depth = _block_count(info, role, t, r"^joint_blocks\.(\d+)\.", what)
    needed = ["x_embedder.proj.weight", "context_embedder.weight", "final_layer.linear.weight"]
    needed += [f"joint_blocks.{i}.x_block.attn.qkv.weight" for i in range(depth)]
    _require(info, role, t, needed, what)


_UNET = ("model.diffusion_model.", "unet.")
_VAE_PREFIXES = ("first_stage_model.", "vae.")


def _check_unet(info: FileInfo, role: str, family: str) -> None:
    what = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}[family] + " model"
    names = info.tensors
    if any(n.startswith("model.diffusion_model.") for n in names):
        unet = [f"model.diffusion_model.{n}" for n in ("input_blocks.0.0.weight", "time_embed.0.weight",
                                                        "out.2.weight")]
        _require(info, role, names, unet, what)
        shape = names["model.diffusion_model.input_blocks.0.0.weight"]
        if len(shape) != 4 or shape[1] not in (4, 8, 9):
            raise CorruptModelError(f"{role}: {info.path.name}: the U-Net input conv has shape {shape}")
    if any(n.startswith("first_stage_model.") for n in names):
        _check_vae(info, role, what)


def _vae_shapes(info: FileInfo) -> dict[str, tuple[int, ...]]:
    return _strip(info, _VAE_PREFIXES)


def _check_vae(info: FileInfo, role: str, what: str = "VAE") -> None:
    """The engine sizes the decoder from decoder.conv_in; its GroupNorms need a multiple of 32 channels."""
    t = _vae_shapes(info)
    _require(info, role, t, ["decoder.conv_in.weight", "decoder.conv_out.weight"], what)
    conv_in = t["decoder.conv_in.weight"]
    if len(conv_in) != 4 or conv_in[0] % 128 or conv_in[1] not in (4, 16, 32):
        raise CorruptModelError(
            f"{role}: {info.path.name}: the VAE decoder's conv_in has shape {conv_in}; expected (4*ch, z, 3, 3) "
            "with ch a multiple of 32 and z 4, 16 or 32"
        )


def vae_latent_channels(info: FileInfo) -> int | None:
    shape = _vae_shapes(info).get("decoder.conv_in.weight")
    return shape[1] if shape and len(shape) == 4 else None


def decoder_channels(info: FileInfo) -> int | None:
    """The VAE decoder's width at full resolution (the engine reads it from decoder.conv_in)."""
    shape = _vae_shapes(info).get("decoder.conv_in.weight")
    return shape[0] // 4 if shape and len(shape) == 4 else None


def dit_heads(info: FileInfo) -> int | None:
    """Attention heads of a FLUX/SD3 DiT (128-wide heads)."""
    shapes = _strip(info, _DIT_PREFIXES)
    txt_in = shapes.get("txt_in.weight")
    if txt_in:
        return max(txt_in[0] // 128, 1)
    depth = len(_indices(shapes, r"^joint_blocks\.(\d+)\."))
    return depth or None  # SD3: one 64-wide head per block


_LLM_LAYER_GGUF = ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "attn_norm.weight",
                   "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")
_LLM_LAYER_HF = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                 "self_attn.o_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight",
                 "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")


def llm_geometry(info: FileInfo) -> tuple[int, int] | None:
    """(layers, hidden width) of an LLM text encoder, or None when it is not one."""
    t = info.tensors
    if "token_embd.weight" in t:
        layers = _indices(t, r"^blk\.(\d+)\.")
        return (max(layers) + 1 if layers else 0), t["token_embd.weight"][-1]
    t = _strip(info, ("model.",))
    if "embed_tokens.weight" in t:
        layers = _indices(t, r"^layers\.(\d+)\.")
        return (max(layers) + 1 if layers else 0), t["embed_tokens.weight"][-1]
    return None


def _check_llm(info: FileInfo, role: str) -> None:
    """The engine sizes the LLM from its token table and layer indices."""
    what = "LLM text encoder"
    if "token_embd.weight" in info.tensors:
        t, layer = dict(info.tensors), "blk.{}."
        needed = ["token_embd.weight", "output_norm.weight"]
        parts = _LLM_LAYER_GGUF
        pattern = r"^blk\.(\d+)\."
    else:
        t, layer = _strip(info, ("model.",)), "layers.{}."
        needed = ["embed_tokens.weight", "norm.weight"]
        parts = _LLM_LAYER_HF
        pattern = r"^layers\.(\d+)\."
    layers = _block_count(info, role, t, pattern, what)
    if layers == 0:
        raise _fail(info, role, what + " (no layers)")
    for i in range(layers):
        needed += [layer.format(i) + p for p in parts]
    _require(info, role, t, needed, what)


def _check_esrgan(info: FileInfo, role: str) -> None:
    """The engine builds one RRDB per block index it sees and maps every conv by name."""
    what = "ESRGAN upscaler"
    t = info.tensors
    if "model.0.weight" in t:  # original ESRGAN naming
        blocks = _block_count(info, role, t, r"^model\.1\.sub\.(\d+)\.RDB", what)
        needed = ["model.0.weight", "model.0.bias", f"model.1.sub.{blocks}.weight"]
        body = "model.1.sub.{i}.RDB{j}.conv{k}.0.{p}"
    else:  # Real-ESRGAN naming
        blocks = _block_count(info, role, t, r"^body\.(\d+)\.", what)
        needed = ["conv_first.weight", "conv_first.bias", "conv_body.weight", "conv_hr.weight", "conv_last.weight"]
        body = "body.{i}.rdb{j}.conv{k}.{p}"
    if blocks == 0:
        raise _fail(info, role, what + " (no RRDB blocks)")
    needed += [body.format(i=i, j=j, k=k, p=p) for i in range(blocks) for j in (1, 2, 3) for k in range(1, 6)
               for p in ("weight", "bias")]
    _require(info, role, t, needed, what)
    first = t.get("conv_first.weight") or t.get("model.0.weight")
    if first is None or len(first) != 4 or first[1] != 3:
        raise CorruptModelError(f"{role}: {info.path.name}: the first conv has shape {first}; expected (64, 3, 3, 3)")


def check_structure(info: FileInfo, role: str = "model") -> None:
    """Raise CorruptModelError when the tensors the engine sizes the network from are missing or inconsistent."""
    _check_dtypes(info, role)
    family = info.family
    if family in ("flux", "flux2"):
        _check_flux(info, role, family == "flux2")
    elif family == "sd3":
        _check_sd3(info, role)
    elif family in ("sd1", "sd2", "sdxl"):
        _check_unet(info, role, family)
    elif family == "vae":
        _check_vae(info, role)
    elif family == "llm":
        _check_llm(info, role)
    elif family == "esrgan":
        _check_esrgan(info, role)


