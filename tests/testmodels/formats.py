"""Deterministic random tensors and the file formats the engine reads (GGUF, safetensors).

A model is described as a list of `TensorSpec` (PyTorch shape order, as the published
checkpoints are). Values are drawn from a generator seeded by the tensor's name, so the
same spec always gives the same bytes, whatever order tensors are written in.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Init = Literal["weight", "ones", "zeros", "small"]
DType = Literal["f32", "f16", "q4_0", "q8_0"]

# ggml type ids and block geometry (elements per block, bytes per block).
GGML_TYPES: dict[str, tuple[int, int, int]] = {
    "f32": (0, 1, 4),
    "f16": (1, 1, 2),
    "q4_0": (2, 32, 18),
    "q8_0": (8, 32, 34),
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    init: Init = "weight"
    seed: str = ""  # the name the values are drawn for, when not `name` (one tensor saved under two names)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def fan_in(self) -> int:
        # Linear (out, in) and conv (out, in, kh, kw): everything but the first axis.
        return int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else self.shape[0]

    @property
    def std(self) -> float:
        return 1.0 / float(np.sqrt(max(self.fan_in, 1)))


def _rng(name: str) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def values(spec: TensorSpec) -> np.ndarray:
    """The float32 values of a tensor (PyTorch shape)."""
    if spec.init == "ones":
        return np.ones(spec.shape, np.float32)
    if spec.init == "zeros":
        return np.zeros(spec.shape, np.float32)
    scale = 0.02 if spec.init == "small" else spec.std
    return (_rng(spec.seed or spec.name).standard_normal(spec.numel, np.float32) * scale).reshape(spec.shape)


def _q4_0_blocks(spec: TensorSpec) -> bytes:
    """Random q4_0 blocks written directly: an f16 scale then 16 bytes of nibbles.

    A block decodes to d * (q - 8) with q uniform in 0..15 (std ~4.6 d), so d = std / 4.6
    gives the same spread as the float init without quantizing floats.
    """
    nblocks = spec.numel // 32
    rng = _rng(spec.seed or spec.name)
    out = np.empty((nblocks, 18), np.uint8)
    out[:, :2] = np.frombuffer(np.float16(spec.std / 4.6).tobytes() * nblocks, np.uint8).reshape(nblocks, 2)
    out[:, 2:] = rng.integers(0, 256, size=(nblocks, 16), dtype=np.uint8)
    return out.tobytes()


def _q8_0(arr: np.ndarray) -> bytes:
    blocks = arr.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    d = amax / 127.0
    q = np.round(np.divide(blocks, d, out=np.zeros_like(blocks), where=d > 0)).astype(np.int8)
    out = np.empty((blocks.shape[0], 34), np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def encode(spec: TensorSpec, dtype: DType) -> bytes:
    if dtype == "q4_0" and spec.init == "weight":
        return _q4_0_blocks(spec)
    arr = values(spec)
    if dtype == "f32":
        return arr.astype("<f4").tobytes()
    if dtype == "f16":
        return arr.astype("<f2").tobytes()
    if dtype == "q8_0":
        return _q8_0(arr)
    raise ValueError(f"cannot encode {spec.name} as {dtype}")


def quantizable(spec: TensorSpec, dtype: DType) -> DType:
    """Fall back to f16/f32 where a block type cannot hold the tensor."""
    if dtype in ("q4_0", "q8_0"):
        if len(spec.shape) != 2 or spec.shape[-1] % 32 != 0 or spec.init != "weight":
            return "f32" if len(spec.shape) == 1 else "f16"
    if dtype == "f16" and len(spec.shape) == 1:
        return "f32"
    return dtype


# ---------------------------------------------------------------- GGUF

_GGUF_VALUE_TYPES = {bool: 7, int: 5, float: 6, str: 8}  # bool, int32, float32, string


def _gguf_str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf_kv(key: str, value: object) -> bytes:
    out = _gguf_str(key)
    if isinstance(value, bool):
        return out + struct.pack("<I?", 7, value)
    if isinstance(value, int):
        # ggml reads general.alignment (and llama.cpp its counts) as uint32 only.
        return out + (struct.pack("<II", 4, value) if value >= 0 else struct.pack("<Ii", 5, value))
    if isinstance(value, float):
        return out + struct.pack("<If", 6, value)
    if isinstance(value, str):
        return out + struct.pack("<I", 8) + _gguf_str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        body = b"".join(_gguf_str(v) for v in value)
        return out + struct.pack("<IIQ", 9, 8, len(value)) + body
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        return out + struct.pack("<IIQ", 9, 5, len(value)) + struct.pack(f"<{len(value)}i", *value)
    raise TypeError(f"unsupported GGUF metadata value for {key!r}")


def write_gguf(
    path: Path,
    tensors: Sequence[tuple[TensorSpec, DType]],
    metadata: dict[str, object] | None = None,
    alignment: int = 32,
) -> None:
    """Write a GGUF v3 file, streaming tensor data so memory stays at one tensor."""
    metadata = dict(metadata or {})
    metadata.setdefault("general.alignment", alignment)
    header = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for key, value in metadata.items():
        header += _gguf_kv(key, value)
    offset = 0
    sizes = []
    for spec, dtype in tensors:
        type_id, block, block_bytes = GGML_TYPES[dtype]
        nbytes = spec.numel // block * block_bytes
        dims = tuple(reversed(spec.shape)) or (1,)  # ggml order: fastest axis first
        header += _gguf_str(spec.name) + struct.pack("<I", len(dims))
        header += struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", type_id, offset)
        sizes.append(nbytes)
        offset += nbytes + (-nbytes % alignment)
    header += b"\0" * (-len(header) % alignment)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as f:
        f.write(header)
        for (spec, dtype), nbytes in zip(tensors, sizes, strict=True):
            data = encode(spec, dtype)
            assert len(data) == nbytes, (spec.name, dtype, len(data), nbytes)
            f.write(data + b"\0" * (-nbytes % alignment))
    tmp.replace(path)


# ---------------------------------------------------------------- safetensors

_ST_DTYPES = {"f32": "F32", "f16": "F16"}


def write_safetensors(path: Path, tensors: Iterable[tuple[TensorSpec, DType]]) -> None:
    tensors = list(tensors)
    header: dict[str, object] = {}
    offset = 0
    for spec, dtype in tensors:
        nbytes = spec.numel * GGML_TYPES[dtype][2]
        header[spec.name] = {
            "dtype": _ST_DTYPES[dtype],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for spec, dtype in tensors:
            f.write(encode(spec, dtype))
    tmp.replace(path)
