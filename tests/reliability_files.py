"""Damaged and crafted model files for the reliability tests and the header fuzzer.

GGUF and safetensors files are rewritten at the layout level (tensor records, offsets)
and written as header + sparse zero data: the Python check reads only the header and
the file size, and the engine loads zero weights as happily as random ones, so even a
variant of the 600 MB SD1 test model costs a few kilobytes of disk.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from qvac_nb.modelfiles.formats import GGML_BLOCKS as GGML_BLOCKS
from qvac_nb.modelfiles.formats import ST_SIZES as ST_SIZES

MAX_SPARSE = 1 << 36


# ---------------------------------------------------------------- GGUF


@dataclass
class GgufTensor:
    name: str
    dims: tuple[int, ...]  # ggml order (fastest axis first)
    type: int
    offset: int = -1  # -1: packed after the previous tensor when written

    def nbytes(self) -> int:
        block, block_bytes = GGML_BLOCKS.get(self.type, (1, 4))
        numel = 1
        for d in self.dims:
            numel *= d
        return numel // block * block_bytes


@dataclass
class GgufLayout:
    version: int
    kv: bytes  # the raw key-value section
    n_kv: int
    tensors: list[GgufTensor]
    alignment: int = 32
    extra_kv: list[bytes] = field(default_factory=list)

    def copy(self) -> GgufLayout:
        return replace(self, tensors=[replace(t) for t in self.tensors], extra_kv=list(self.extra_kv))


def _skip_value(data: bytes, pos: int, vtype: int) -> int:
    scalar = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    if vtype in scalar:
        return pos + scalar[vtype]
    if vtype == 8:
        (n,) = struct.unpack_from("<Q", data, pos)
        return pos + 8 + n
    if vtype == 9:
        item, count = struct.unpack_from("<IQ", data, pos)
        pos += 12
        for _ in range(count):
            pos = _skip_value(data, pos, item)
        return pos
    raise ValueError(f"value type {vtype}")


def read_gguf_layout(path: Path) -> GgufLayout:
    with open(path, "rb") as f:
        data = f.read(16 << 20)
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    pos = 24
    alignment = 32
    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", data, pos)
        key = data[pos + 8:pos + 8 + n].decode()
        pos += 8 + n
        (vtype,) = struct.unpack_from("<I", data, pos)
        if key == "general.alignment":
            (alignment,) = struct.unpack_from("<I", data, pos + 4)
        pos = _skip_value(data, pos + 4, vtype)
    kv = data[24:pos]
    tensors = []
    for _ in range(n_tensors):
        (n,) = struct.unpack_from("<Q", data, pos)
        name = data[pos + 8:pos + 8 + n].decode()
        pos += 8 + n
        (n_dims,) = struct.unpack_from("<I", data, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", data, pos + 4)
        ttype, offset = struct.unpack_from("<IQ", data, pos + 4 + 8 * n_dims)
        pos += 4 + 8 * n_dims + 12
        tensors.append(GgufTensor(name, tuple(dims), ttype, offset))
    return GgufLayout(version, kv, n_kv, tensors, alignment)


def gguf_header(layout: GgufLayout, *, repack: bool = True) -> tuple[bytes, int]:
    """The header bytes (padded to the alignment) and the total data size."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", layout.version, len(layout.tensors),
                                          layout.n_kv + len(layout.extra_kv)))
    out += layout.kv + b"".join(layout.extra_kv)
    offset = 0
    end = 0
    for t in layout.tensors:
        raw = t.name.encode("utf-8", "surrogatepass")
        if repack or t.offset < 0:
            t.offset = offset
        out += struct.pack("<Q", len(raw)) + raw + struct.pack("<I", len(t.dims))
        mask = (1 << 64) - 1
        out += struct.pack(f"<{len(t.dims)}Q", *(d & mask for d in t.dims)) + struct.pack("<IQ", t.type & 0xFFFFFFFF,
                                                                                          t.offset & mask)
        nbytes = t.nbytes()
        offset = t.offset + nbytes + (-nbytes % layout.alignment)
        end = max(end, t.offset + nbytes)
    out += b"\0" * (-len(out) % max(layout.alignment, 1))
    return bytes(out), end


def write_gguf(path: Path, layout: GgufLayout, *, repack: bool = True, extra: int = 0) -> Path:
    """A GGUF file with `layout`'s header and zero (sparse) data, plus `extra` bytes."""
    header, data_size = gguf_header(layout, repack=repack)
    write_sparse(path, header, len(header) + data_size + extra)
    return path


def gguf_kv(key: str, vtype: int, payload: bytes) -> bytes:
    raw = key.encode()
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<I", vtype) + payload


# ---------------------------------------------------------------- safetensors


def read_st_header(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def st_bytes(header: dict) -> bytes:
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def repack_st(header: dict) -> dict:
    """Recompute data_offsets from dtypes and shapes, packed in order."""
    out: dict = {}
    offset = 0
    for name, meta in header.items():
        if name == "__metadata__":
            out[name] = meta
            continue
        numel = 1
        for d in meta["shape"]:
            numel *= d
        nbytes = numel * ST_SIZES[meta["dtype"]]
        out[name] = {**meta, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    return out


def st_data_size(header: dict) -> int:
    ends = [m["data_offsets"][1] for k, m in header.items() if k != "__metadata__" and isinstance(m, dict)
            and isinstance(m.get("data_offsets"), list) and len(m["data_offsets"]) == 2
            and isinstance(m["data_offsets"][1], int)]
    return max(ends, default=0)


def write_st(path: Path, header: dict, *, extra: int = 0) -> Path:
    raw = st_bytes(header)
    write_sparse(path, raw, len(raw) + max(st_data_size(header), 0) + extra)
    return path


def st_tensors(specs: Iterable[tuple[str, tuple[int, ...], str]]) -> dict:
    """A packed safetensors header for (name, shape, dtype) records."""
    return repack_st({name: {"dtype": dtype, "shape": list(shape), "data_offsets": [0, 0]}
                      for name, shape, dtype in specs})


# ---------------------------------------------------------------- torch zip


def read_zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


# ---------------------------------------------------------------- plain bytes


def write_sparse(path: Path, head: bytes, size: int) -> Path:
    """`head` followed by zeros up to `size` bytes (at most 64 GiB), without writing the zeros."""
    size = min(max(size, 0), MAX_SPARSE)
    with open(path, "wb") as f:
        f.write(head[:size])
        f.truncate(size)
    return path


def truncated_copy(src: Path, dst: Path, size: int, *, real_bytes: int = 16 << 20) -> Path:
    """`src` cut to `size` bytes; bytes past `real_bytes` (the header) are left sparse."""
    with open(src, "rb") as f:
        head = f.read(min(size, real_bytes))
    return write_sparse(dst, head, size)


def header_only_copy(src: Path, dst: Path, header_len: int) -> Path:
    """`src`'s first `header_len` bytes and a sparse rest of the same size."""
    with open(src, "rb") as f:
        head = f.read(header_len)
    return write_sparse(dst, head, os.path.getsize(src))
