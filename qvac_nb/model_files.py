"""Reading model-file headers in Python before the engine opens them.

The engine crashes the process on truncated or malformed files, so every file is
checked here first: the header parses within bounds, each tensor's bytes lie inside
the file, and the tensor names tell which model family it is.
"""

from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CorruptModelError, ModelFileError

MAX_HEADER_BYTES = 256 * 1024 * 1024
MAX_TENSORS = 1_000_000

# ggml type id -> (elements per block, bytes per block)
_GGML_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36),
}
_ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
             "F8_E4M3": 1, "F8_E5M2": 1}


@dataclass(frozen=True)
class FileInfo:
    path: Path
    format: str  # gguf, safetensors, pth
    tensors: dict[str, tuple[int, ...]]  # name -> shape (PyTorch order)

    @property
    def family(self) -> str:
        return detect_family(self.tensors.keys())


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CorruptModelError(f"{self.path}: GGUF header is truncated or malformed (at byte {self.pos})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("Q")
        if n > 1 << 20:
            raise CorruptModelError(f"{self.path}: GGUF string of {n} bytes is not plausible")
        return self.take(n).decode("utf-8", "replace")


_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def _skip_gguf_value(r: _Reader, vtype: int) -> object:
    if vtype in _GGUF_SCALARS:
        return r.unpack(_GGUF_SCALARS[vtype])[0]
    if vtype == 8:
        return r.string()
    if vtype == 9:
        item_type, count = r.unpack("IQ")
        if count > 1 << 26:
            raise CorruptModelError(f"{r.path}: GGUF array of {count} items is not plausible")
        if item_type in _GGUF_SCALARS:
            r.take(struct.calcsize("<" + _GGUF_SCALARS[item_type]) * count)
        else:
            for _ in range(count):
                _skip_gguf_value(r, item_type)
        return None
    raise CorruptModelError(f"{r.path}: unknown GGUF value type {vtype}")


def _read_prefix(path: Path, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def read_gguf(path: Path, size: int) -> FileInfo:
    r = _Reader(_read_prefix(path, min(size, MAX_HEADER_BYTES)), path)
    magic = r.take(4)
    version, n_tensors, n_kv = r.unpack("IQQ")
    if magic != b"GGUF" or version not in (2, 3):
        raise CorruptModelError(f"{path}: not a GGUF v2/v3 file")
    if n_tensors > MAX_TENSORS or n_kv > MAX_TENSORS:
        raise CorruptModelError(f"{path}: GGUF counts are not plausible ({n_tensors} tensors, {n_kv} keys)")
    alignment = 32
    for _ in range(n_kv):
        key = r.string()
        (vtype,) = r.unpack("I")
        value = _skip_gguf_value(r, vtype)
        if key == "general.alignment":
            if vtype != 4 or not isinstance(value, int) or value <= 0 or value & (value - 1):
                raise CorruptModelError(f"{path}: general.alignment must be a power-of-two uint32")
            alignment = value
    tensors: dict[str, tuple[int, ...]] = {}
    extents = []
    for _ in range(n_tensors):
        name = r.string()
        (n_dims,) = r.unpack("I")
        if not 1 <= n_dims <= 4:
            raise CorruptModelError(f"{path}: tensor {name} has {n_dims} dimensions")
        dims = r.unpack(f"{n_dims}Q")
        ggml_type, offset = r.unpack("IQ")
        if ggml_type not in _GGML_BLOCKS:
            raise CorruptModelError(f"{path}: tensor {name} has unknown type {ggml_type}")
        block, block_bytes = _GGML_BLOCKS[ggml_type]
        numel = 1
        for d in dims:
            if d == 0 or d > 1 << 40:
                raise CorruptModelError(f"{path}: tensor {name} has dimension {d}")
            numel *= d
        if dims[0] % block:
            raise CorruptModelError(f"{path}: tensor {name} row of {dims[0]} is not whole blocks of {block}")
        tensors[name] = tuple(reversed(dims))
        extents.append((name, offset, numel // block * block_bytes))
    data_start = r.pos + (-r.pos % alignment)
    for name, offset, nbytes in extents:
        if data_start + offset + nbytes > size:
            raise CorruptModelError(
                f"{path}: tensor {name} ends at byte {data_start + offset + nbytes} but the file has {size} bytes "
                "(truncated download?)"
            )
    return FileInfo(path, "gguf", tensors)


def read_safetensors(path: Path, size: int) -> FileInfo:
    head = _read_prefix(path, 8)
    if len(head) < 8:
        raise CorruptModelError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", head)
    if n > min(size - 8, MAX_HEADER_BYTES):
        raise CorruptModelError(f"{path}: safetensors header of {n} bytes does not fit the file")
    try:
        header = json.loads(_read_prefix(path, 8 + n)[8:])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(f"{path}: safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CorruptModelError(f"{path}: safetensors header is not a JSON object")
    tensors: dict[str, tuple[int, ...]] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = meta["dtype"], tuple(int(d) for d in meta["shape"]), meta["data_offsets"]
            itemsize = _ST_SIZES[dtype]
        except (KeyError, TypeError, ValueError):
            raise CorruptModelError(f"{path}: tensor {name} has a malformed entry") from None
        numel = 1
        for d in shape:
            if d < 0:
                raise CorruptModelError(f"{path}: tensor {name} has a negative dimension")
            numel *= d
        if not (isinstance(begin, int) and isinstance(end, int)) or end - begin != numel * itemsize or begin < 0:
            raise CorruptModelError(f"{path}: tensor {name} byte range does not match its shape")
        if 8 + n + end > size:
            raise CorruptModelError(f"{path}: tensor {name} lies past the end of the file (truncated download?)")
        tensors[name] = shape
    return FileInfo(path, "safetensors", tensors)


def read_pth(path: Path) -> FileInfo:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            pickles = [n for n in names if n.endswith("data.pkl")]
            if not pickles:
                raise CorruptModelError(f"{path}: torch zip archive without data.pkl")
            bad = zf.testzip()
            if bad is not None:
                raise CorruptModelError(f"{path}: member {bad} of the torch archive is corrupt")
            pickled = zf.read(pickles[0])
    except zipfile.BadZipFile as exc:
        raise CorruptModelError(f"{path}: not a torch zip archive ({exc}); legacy .pth files are not supported") from None
    # Tensor names are the pickle's short strings; a cheap scan is enough to tell the family.
    names_found = _pickle_strings(pickled)
    return FileInfo(path, "pth", {n: () for n in names_found if "." in n and " " not in n})


def _pickle_strings(data: bytes) -> list[str]:
    out = []
    i = 0
    while i < len(data):
        op = data[i]
        if op == 0x58 and i + 5 <= len(data):  # BINUNICODE
            (n,) = struct.unpack("<I", data[i + 1:i + 5])
            out.append(data[i + 5:i + 5 + n].decode("utf-8", "replace"))
            i += 5 + n
        elif op == 0x8C and i + 2 <= len(data):  # SHORT_BINUNICODE
            n = data[i + 1]
            out.append(data[i + 2:i + 2 + n].decode("utf-8", "replace"))
            i += 2 + n
        else:
            i += 1
    return out


def inspect_file(path: str | Path, role: str = "model") -> FileInfo:
    """Parse and bounds-check a model file's header; raises before the engine would crash."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{role}: no file at {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        info = read_gguf(path, size)
    elif magic[:2] == b"PK":
        info = read_pth(path)
    elif len(magic) == 4 and size >= 8:
        info = read_safetensors(path, size)
    else:
        raise CorruptModelError(f"{role}: {path} is too short to be a model file ({size} bytes)")
    if not info.tensors:
        raise CorruptModelError(f"{role}: {path} holds no tensors")
    return info


def detect_family(names) -> str:  # noqa: ANN001 - any iterable of str
    names = list(names)
    joined = "\n".join(names[:20000])
    if "double_stream_modulation" in joined:
        return "flux2"
    if "double_blocks." in joined:
        return "flux"
    if "joint_blocks." in joined:
        return "sd3"
    if "blk.0.attn_q" in joined or "model.layers.0.self_attn" in joined:
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
