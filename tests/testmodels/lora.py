"""Random-weight LoRAs for the sd1 and flux2 test models, one file per naming convention.

Each recipe writes the SAME adapter (same low-rank factors, same scale) under the names the
engine's LoRA name conversion accepts (stable-diffusion.cpp name_conversion.cpp /
lora.hpp), so every file must give the same image:

- kohya: `lora_unet_<module with _>.lora_down.weight` / `.lora_up.weight` plus `.alpha`.
  Here alpha = rank / 2 (a 0.5 scale the engine must read); the other files halve `up`
  instead, which is exact in floating point, so the pixels match bit for bit.
- peft (diffusers): `unet.<diffusers module>.lora_A.weight` / `lora_B.weight` for SD 1.x;
  `transformer.<diffusers module>.lora_A/lora_B` for FLUX.2, where the fused `qkv` and
  `linear1` projections are split into to_q/to_k/to_v(/proj_mlp) with a shared down
  projection and the rows of `up` divided between them.
- ldm: the checkpoint's own module names, `diffusion_model.<ldm module>.lora_down.weight` /
  `.lora_up.weight` (ComfyUI's form).
- sd1 also has `diffusers`: the older diffusers form `unet.<module>.lora.down.weight`.

The targets are attention projections of the first two U-Net levels (SD 1.x tiny) and
every projection of the first double and single block (FLUX.2 klein test DiT). `up` has
std 1/sqrt(rank) and `down` std 1/sqrt(in), so the update is as large as the weights it
changes and the image changes visibly.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from . import flux2
from .recipe import Recipe

RANK = 4
ALPHA = RANK / 2  # kohya scale alpha / rank = 0.5

# SD 1.x tiny U-Net: (ldm block, diffusers block, width, context width) of the attention targets.
_SD1_BLOCKS = (("input_blocks.1.1", "down_blocks.0.attentions.0", 320),
               ("input_blocks.4.1", "down_blocks.1.attentions.0", 640))
_SD1_CONTEXT = 768


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


def _factors(target: str, out_dim: int, in_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(down (rank, in), up (out, rank)) in float16, seeded by the target so every convention agrees."""
    rng = _rng(target)
    down = (rng.standard_normal((RANK, in_dim)) / np.sqrt(in_dim)).astype(np.float16)
    up = (rng.standard_normal((out_dim, RANK)) / np.sqrt(RANK)).astype(np.float16)
    return down, up


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """A safetensors file of float16/float32 arrays (kohya writes alpha as a 0-d tensor)."""
    kinds = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset, blobs = 0, []
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": kinds[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ---------------------------------------------------------------- SD 1.x


def _sd1_targets() -> list[tuple[str, str, int, int]]:
    """(ldm module, diffusers module, out, in) of each target."""
    out = []
    for ldm, hf, dim in _SD1_BLOCKS:
        for attn, kv in (("attn1", dim), ("attn2", _SD1_CONTEXT)):
            for proj, in_dim in (("to_q", dim), ("to_k", kv), ("to_v", kv), ("to_out.0", dim)):
                module = f"transformer_blocks.0.{attn}.{proj}"
                out.append((f"{ldm}.{module}", f"{hf}.{module}", dim, in_dim))
    return out


def _build_sd1(folder: Path) -> dict[str, str]:
    files: dict[str, dict[str, np.ndarray]] = {"kohya": {}, "peft": {}, "diffusers": {}, "ldm": {}}
    for ldm, hf, out_dim, in_dim in _sd1_targets():
        down, up = _factors("sd1." + ldm, out_dim, in_dim)
        half = up * np.float16(0.5)
        kohya = "lora_unet_" + hf.replace(".", "_")
        files["kohya"].update({f"{kohya}.lora_down.weight": down, f"{kohya}.lora_up.weight": up,
                               f"{kohya}.alpha": np.array(ALPHA, np.float32)})
        files["peft"].update({f"unet.{hf}.lora_A.weight": down, f"unet.{hf}.lora_B.weight": half})
        files["diffusers"].update({f"unet.{hf}.lora.down.weight": down, f"unet.{hf}.lora.up.weight": half})
        files["ldm"].update({f"diffusion_model.{ldm}.lora_down.weight": down,
                             f"diffusion_model.{ldm}.lora_up.weight": half})
    return _write_all(folder, "sd1", files)


# ---------------------------------------------------------------- FLUX.2 klein


def _flux2_targets() -> list[tuple[str, int, int, list[tuple[str, int]]]]:
    """(BFL module, out, in, [(diffusers module, rows)]) of each target; rows split a fused projection."""
    h, mlp = flux2.DIT_HIDDEN, flux2.DIT_HIDDEN * flux2.MLP_RATIO
    blocks = "transformer_blocks.0.attn."
    single = "single_transformer_blocks.0."
    return [
        ("double_blocks.0.img_attn.qkv", 3 * h, h, [(blocks + p, h) for p in ("to_q", "to_k", "to_v")]),
        ("double_blocks.0.img_attn.proj", h, h, [(blocks + "to_out.0", h)]),
        ("double_blocks.0.txt_attn.qkv", 3 * h, h,
         [(blocks + p, h) for p in ("add_q_proj", "add_k_proj", "add_v_proj")]),
        ("double_blocks.0.txt_attn.proj", h, h, [(blocks + "to_add_out", h)]),
        ("single_blocks.0.linear1", 3 * h + 2 * mlp, h,
         [(single + "attn.to_q", h), (single + "attn.to_k", h), (single + "attn.to_v", h),
          (single + "proj_mlp", 2 * mlp)]),
        ("single_blocks.0.linear2", h, h + mlp, [(single + "proj_out", h)]),
    ]


def _build_flux2(folder: Path) -> dict[str, str]:
    files: dict[str, dict[str, np.ndarray]] = {"kohya": {}, "peft": {}, "ldm": {}}
    for bfl, out_dim, in_dim, parts in _flux2_targets():
        down, up = _factors("flux2." + bfl, out_dim, in_dim)
        half = up * np.float16(0.5)
        kohya = "lora_unet_" + bfl.replace(".", "_")
        files["kohya"].update({f"{kohya}.lora_down.weight": down, f"{kohya}.lora_up.weight": up,
                               f"{kohya}.alpha": np.array(ALPHA, np.float32)})
        files["ldm"].update({f"diffusion_model.{bfl}.lora_A.weight": down,
                             f"diffusion_model.{bfl}.lora_B.weight": half})
        row = 0
        for module, rows in parts:
            files["peft"].update({f"transformer.{module}.lora_A.weight": down,
                                  f"transformer.{module}.lora_B.weight": np.ascontiguousarray(half[row:row + rows])})
            row += rows
        assert row == out_dim, bfl
    return _write_all(folder, "flux2", files)


def _write_all(folder: Path, family: str, files: dict[str, dict[str, np.ndarray]]) -> dict[str, str]:
    roles = {}
    for convention, tensors in files.items():
        name = f"{family}-lora-{convention}.safetensors"
        write_safetensors(folder / name, tensors)
        roles[convention] = name
    return roles


RECIPES: list[Recipe] = [
    Recipe("sd1_lora", "lora", _build_sd1),
    Recipe("flux2_lora", "lora", _build_flux2),
]
