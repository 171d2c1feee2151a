"""Loading an SDXL U-Net-only file (the split layout: U-Net + clip_l + clip_g + VAE files).

The engine (stable-diffusion.cpp in stable-diffusion-cpp-python 0.4.7) tells SDXL from its
tensor names: a U-Net (`model.diffusion_model.input_blocks.*`) next to a second text encoder
(a name containing `conditioner.embedders.1`, `cond_stage_model.1` or `te.1`). It looks twice:
once at the model files alone, before it opens the text encoders, to choose the name prefix
it files `clip_l`/`clip_g` under (`cond_stage_model[.1].transformer.` for a U-Net model,
`text_encoders.clip_[lg].transformer.` otherwise), and again once everything is read. A
U-Net-only file has no encoder names, so the first look finds no version, the encoders are
filed under the DiT prefixes, the second look finds none either, and the load fails with
"get sd version from file failed".

The fix: pass the engine, as its `model` file, a one-tensor GGUF whose only tensor is
`conditioner.embedders.1.model.logit_scale`. The name is SDXL's second encoder's (so both
looks say SDXL and the encoders get the U-Net prefixes), and the engine lists it among the
tensors it never uses, so it loads nothing from it. SD 1.x/2.x U-Net-only files cannot be
helped this way: the engine tells them apart by the width of the text encoder's token
table, which it reads from the model files, and a marker cannot stand in for that.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

MARKER_TENSOR = "conditioner.embedders.1.model.logit_scale"
_ALIGN = 32


def marker_bytes() -> bytes:
    """A GGUF v3 file with one f32 tensor of one element, named MARKER_TENSOR."""
    name = MARKER_TENSOR.encode()
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, 0)  # version, tensors, metadata entries
    header += struct.pack("<Q", len(name)) + name + struct.pack("<IQIQ", 1, 1, 0, 0)  # dims, shape, F32, offset
    header += b"\0" * (-len(header) % _ALIGN)
    return header + struct.pack("<f", 1.0) + b"\0" * (_ALIGN - 4)


def marker_file() -> Path:
    """The marker GGUF in qvac_nb's cache folder (written once, atomically)."""
    from ..hub.cache import cache_dir

    path = cache_dir() / "engine" / "sdxl-unet-marker.gguf"
    data = marker_bytes()
    if path.is_file() and path.read_bytes() == data:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def needs_marker(family: str, role: str, files: dict[str, str]) -> bool:
    """An SDXL diffusion-model-only load (no full checkpoint given as `model`)."""
    return family == "sdxl" and role == "diffusion_model" and "model" not in files
