"""Model file formats: GGUF, safetensors and torch zip headers, parsed as strictly as the engine reads them.

The engine crashes the process on truncated or malformed files, so each header is parsed here
first, within bounds: when ggml's GGUF reader refuses a file the engine retries with a lenient
reader that trusts every offset and type, and a file that is not valid safetensors is handed
to the legacy torch parser; neither must ever see a bad file. Every tensor's bytes must lie
inside the file (safetensors: in non-overlapping ranges), with a dtype the engine can compute
with. A file's format is told from its structure, in the engine's order: GGUF magic, then a
safetensors header that fits the file, then a zip archive.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import pickletools
import struct
import threading
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CorruptModelError, ModelFileError

if TYPE_CHECKING:
    from .detection import Detection

MAX_HEADER_BYTES = 256 * 1024 * 1024
MAX_TENSORS = 1_000_000
MAX_NAME = 128  # GGML_MAX_NAME as the engine builds ggml; longer GGUF names fail its reader
MAX_GGUF_DIMS = 5
CRC_CHECK_LIMIT = 1 << 30  # torch archives up to this size get a full CRC pass
_SNIFF_BYTES = 4096  # enough of a file's start to tell its format

# ggml type id -> (elements per block, bytes per block)
GGML_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36),
}
_GGML_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K",
    12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
    20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
    29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4",
}
# ggml has no dequantizer for these, so the engine cannot load a weight stored in them.
_GGML_NO_TO_FLOAT = {9, 15, 24, 25, 27, 28}
_GGML_INTEGER = {24, 25, 26, 27}
ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
             "F8_E4M3": 1, "F8_E5M2": 1}
# What the engine's safetensors reader converts (U8 tensors it skips).
_ST_ENGINE = {"F64", "F32", "F16", "BF16", "I64", "I32", "F8_E4M3", "F8_E5M2", "U8"}
_ST_INTEGER = {"I64", "I32", "U8"}
_TORCH_STORAGES = {"FloatStorage": ("F32", 4), "DoubleStorage": ("F64", 8), "HalfStorage": ("F16", 2),
                   "BFloat16Storage": ("BF16", 2), "IntStorage": ("I32", 4), "LongStorage": ("I64", 8)}


@dataclass(frozen=True)
class FileInfo:
    path: Path
    format: str  # gguf, safetensors, pth
    tensors: dict[str, tuple[int, ...]]  # name -> shape (PyTorch order)
    dtypes: dict[str, str] = field(default_factory=dict)  # name -> dtype name (F32, Q4_0, ...)

    @property
    def family(self) -> str:
        return self.detection.family

    @cached_property
    def detection(self) -> Detection:
        """Family, engine version and variant, from the tensors and the file name (FLUX.1 Kontext is told by it)."""
        from .detection import detect  # detection builds on this module

        return detect(self.tensors, self.path)


class _Reader:
    """Reads a GGUF header from the start of a file, fetching more bytes only as the parse needs them."""

    def __init__(self, f: Any, size: int, path: Path) -> None:
        self.f, self.limit, self.path = f, min(size, MAX_HEADER_BYTES), path
        self.data, self.pos = b"", 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.limit:
            raise CorruptModelError(f"{self.path}: GGUF header is truncated or malformed (at byte {self.pos})")
        if self.pos + n > len(self.data):
            want = min(self.limit, max(self.pos + n, 2 * len(self.data), 1 << 20))
            self.data += self.f.read(want - len(self.data))
            if self.pos + n > len(self.data):
                raise CorruptModelError(f"{self.path}: GGUF header is truncated (at byte {self.pos})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("Q")
        if n > 1 << 20:
            raise CorruptModelError(f"{self.path}: GGUF string of {n} bytes is not plausible")
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptModelError(f"{self.path}: GGUF string at byte {self.pos - n} is not UTF-8") from None


_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}


def _read_gguf_value(r: _Reader, vtype: int, in_array: bool = False) -> object:
    if vtype in _GGUF_SCALARS:
        return r.unpack(_GGUF_SCALARS[vtype])[0]
    if vtype == 8:
        return r.string()
    if vtype == 9 and not in_array:  # ggml refuses arrays of arrays
        item_type, count = r.unpack("IQ")
        if count > 1 << 26:
            raise CorruptModelError(f"{r.path}: GGUF array of {count} items is not plausible")
        if item_type in _GGUF_SCALARS:
            r.take(struct.calcsize("<" + _GGUF_SCALARS[item_type]) * count)
        elif item_type == 8:
            for _ in range(count):
                r.string()
        else:
            raise CorruptModelError(f"{r.path}: GGUF array of value type {item_type} is not supported")
        return None
    raise CorruptModelError(f"{r.path}: unknown GGUF value type {vtype}")


def _read_prefix(path: Path, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def read_gguf(path: Path, size: int) -> FileInfo:
    """Parse a GGUF header the way ggml's gguf_init_from_file does, refusing whatever it refuses."""
    with open(path, "rb") as f:
        return _read_gguf(_Reader(f, size, path), path, size)


def _read_gguf(r: _Reader, path: Path, size: int) -> FileInfo:
    magic = r.take(4)
    version, n_tensors, n_kv = r.unpack("IQQ")
    if magic != b"GGUF" or version not in (2, 3):
        raise CorruptModelError(f"{path}: not a GGUF v2/v3 file")
    if n_tensors > MAX_TENSORS or n_kv > MAX_TENSORS:
        raise CorruptModelError(f"{path}: GGUF counts are not plausible ({n_tensors} tensors, {n_kv} keys)")
    alignment = 32
    keys: set[str] = set()
    for _ in range(n_kv):
        key = r.string()
        if key in keys:
            raise CorruptModelError(f"{path}: GGUF key {key!r} appears twice")
        keys.add(key)
        (vtype,) = r.unpack("I")
        value = _read_gguf_value(r, vtype)
        if key == "general.alignment":
            # ggml asserts (aborts) when this key is not a uint32.
            if vtype != 4 or not isinstance(value, int) or value <= 0 or value & (value - 1):
                raise CorruptModelError(f"{path}: general.alignment must be a power-of-two uint32")
            alignment = value
    tensors: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    extents = []
    for _ in range(n_tensors):
        name = r.string()
        if not name or len(name.encode()) >= MAX_NAME:
            raise CorruptModelError(f"{path}: tensor name {name[:80]!r} is empty or longer than {MAX_NAME - 1} bytes")
        if name in tensors:
            raise CorruptModelError(f"{path}: tensor {name} appears twice")
        (n_dims,) = r.unpack("I")
        # ggml holds 4 dimensions; the engine's own GGUF reader folds the extra ones of a 5-D tensor (Wan's
        # patch_embedding in the published GGUFs) into the last, so those files load.
        if not 1 <= n_dims <= MAX_GGUF_DIMS:
            raise CorruptModelError(f"{path}: tensor {name} has {n_dims} dimensions")
        dims = r.unpack(f"{n_dims}Q")
        ggml_type, offset = r.unpack("IQ")
        if ggml_type not in GGML_BLOCKS:
            raise CorruptModelError(f"{path}: tensor {name} has unknown type {ggml_type}")
        block, block_bytes = GGML_BLOCKS[ggml_type]
        numel = 1
        for d in dims:
            if d == 0 or d > 1 << 40:
                raise CorruptModelError(f"{path}: tensor {name} has dimension {d}")
            numel *= d
        if numel >= 1 << 62:
            raise CorruptModelError(f"{path}: tensor {name} has {numel} elements")
        if dims[0] % block:
            raise CorruptModelError(f"{path}: tensor {name} row of {dims[0]} is not whole blocks of {block}")
        tensors[name] = tuple(reversed(dims))
        dtypes[name] = _GGML_NAMES[ggml_type]
        extents.append((name, offset, numel // block * block_bytes))
    data_start = r.pos + (-r.pos % alignment)
    expected = 0
    for name, offset, nbytes in extents:
        # ggml requires the tensors packed in order; it refuses any other layout.
        if offset != expected:
            raise CorruptModelError(f"{path}: tensor {name} data starts at offset {offset}, expected {expected}")
        expected += nbytes + (-nbytes % alignment)
        if data_start + offset + nbytes > size:
            raise CorruptModelError(
                f"{path}: tensor {name} ends at byte {data_start + offset + nbytes} but the file has {size} bytes "
                "(truncated download?)"
            )
    return FileInfo(path, "gguf", tensors, dtypes)


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_safetensors(path: Path, size: int) -> FileInfo:
    head = _read_prefix(path, 8)
    if len(head) < 8:
        raise CorruptModelError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", head)
    # The engine calls a file safetensors only for 2 < header < file size; anything else it
    # hands to the legacy torch parser.
    if n <= 2 or n > min(size - 8, MAX_HEADER_BYTES):
        raise CorruptModelError(
            f"{path}: not a GGUF, safetensors or torch zip model file (as safetensors, its header of {n} bytes "
            "does not fit the file)"
        )
    raw = _read_prefix(path, 8 + n)[8:]
    try:
        # Strict JSON as the engine's parser reads it: no NaN/Infinity, no NUL, valid UTF-8.
        if b"\x00" in raw:
            raise ValueError("NUL byte in the header")
        header = json.loads(raw.decode("utf-8"), parse_constant=_no_constants, object_pairs_hook=_unique_pairs)
        json.dumps(header, ensure_ascii=False).encode("utf-8")  # lone surrogates ("\ud800") fail here
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise CorruptModelError(f"{path}: safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CorruptModelError(f"{path}: safetensors header is not a JSON object")
    tensors: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    spans: list[tuple[int, int, str]] = []
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if not name or len(name.encode()) > 1024:
            raise CorruptModelError(f"{path}: tensor name {name[:80]!r} is empty or too long")
        if not isinstance(meta, dict) or not {"dtype", "shape", "data_offsets"} <= meta.keys():
            raise CorruptModelError(f"{path}: tensor {name} has a malformed entry")
        dtype, shape, span = meta["dtype"], meta["shape"], meta["data_offsets"]
        if not isinstance(dtype, str) or dtype not in ST_SIZES:
            raise CorruptModelError(f"{path}: tensor {name} has unknown dtype {dtype!r}")
        if dtype not in _ST_ENGINE:
            raise CorruptModelError(f"{path}: tensor {name} has dtype {dtype}, which the engine cannot load")
        if not isinstance(shape, list) or len(shape) > 5 or not all(_is_int(d) for d in shape):
            raise CorruptModelError(f"{path}: tensor {name} has a malformed shape {shape!r}")
        if not isinstance(span, list) or len(span) != 2 or not all(_is_int(x) for x in span):
            raise CorruptModelError(f"{path}: tensor {name} has malformed data_offsets {span!r}")
        begin, end = span
        numel = 1
        for d in shape:
            if d <= 0 or d > 1 << 40:
                raise CorruptModelError(f"{path}: tensor {name} has dimension {d}")
            numel *= d
        if numel >= 1 << 62 or begin < 0 or end - begin != numel * ST_SIZES[dtype]:
            raise CorruptModelError(f"{path}: tensor {name} byte range does not match its shape")
        if 8 + n + end > size:
            raise CorruptModelError(f"{path}: tensor {name} lies past the end of the file (truncated download?)")
        spans.append((begin, end, name))
        if dtype == "U8":
            continue  # the engine skips U8 tensors
        tensors[name] = tuple(shape)
        dtypes[name] = dtype
    # The engine reads each tensor from its own range and never checks them against each other:
    # overlapping ranges load, and share bytes, so the weights are not the ones written.
    spans.sort()
    for (_, prev_end, prev_name), (begin, _, name) in zip(spans, spans[1:], strict=False):
        if begin < prev_end:
            raise CorruptModelError(
                f"{path}: tensors {prev_name} and {name} overlap in the file (data_offsets {begin} < {prev_end})"
            )
    return FileInfo(path, "safetensors", tensors, dtypes)


# ---------------------------------------------------------------- torch zip (.pth / .pt / .ckpt)


@dataclass
class _Storage:
    dtype: str
    itemsize: int
    key: str
    numel: int


@dataclass
class _Tensor:
    storage: Any
    offset: Any
    shape: Any
    stride: Any


class _Opaque:
    """Anything a checkpoint pickles besides tensors and dicts: inert, never executed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _OrderedDict(dict[Any, Any]):
    pass


def _rebuild_tensor(storage: Any, offset: Any, shape: Any, stride: Any, *args: Any, **kwargs: Any) -> _Tensor:
    return _Tensor(storage, offset, shape, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """Reads a torch state dict's structure without torch and without running pickled code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return _OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _TORCH_STORAGES:
            return ("storage-type", name)
        return _Opaque

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, kind, key, _location, numel = pid
        if not (isinstance(kind, tuple) and kind[:1] == ("storage-type",)):
            raise pickle.UnpicklingError(f"storage type {kind!r} is not one the engine reads")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise pickle.UnpicklingError("malformed storage record")
        dtype, itemsize = _TORCH_STORAGES[kind[1]]
        return _Storage(dtype, itemsize, key, numel)


def _collect_tensors(value: Any, out: dict[str, _Tensor], depth: int = 0) -> None:
    """Tensors under string keys of (nested) dicts, named by their own key as the engine does."""
    if not isinstance(value, dict) or depth > 8:
        return
    for key, item in value.items():
        if isinstance(key, str) and isinstance(item, _Tensor):
            out[key] = item
        elif isinstance(item, dict):
            _collect_tensors(item, out, depth + 1)


# The opcodes the engine's torch pickle reader (pickle_io.cpp) handles after the PROTO header;
# it refuses a file with any other, and a LONG1 integer of more than 8 bytes.
_ENGINE_OPCODES = frozenset(
    ".}]l()N\x88\x89KMJILFG\x8aCBTX\x8d\x8e\x96U\x8cSVc\x93hjqr\x94\x95012\x8f\x90\x91\x85\x86\x87tQRbusea"
)
_ENGINE_LONG1_BYTES = 8


def _check_pickle_opcodes(path: Path, member: str, pickled: bytes) -> None:
    """Refuse a pickle the engine's reader would reject, before the engine sees it.

    Only the opcode stream is read (pickletools.genops), nothing is built or run.
    """
    try:
        for index, (op, arg, pos) in enumerate(pickletools.genops(pickled)):
            if index == 0 and op.name == "PROTO":
                continue
            if op.code not in _ENGINE_OPCODES:
                raise CorruptModelError(
                    f"{path}: {member} uses the pickle opcode {op.name} (at byte {pos}), which the engine cannot read"
                )
            if op.name == "LONG1" and pos is not None and pickled[pos + 1] > _ENGINE_LONG1_BYTES:
                raise CorruptModelError(
                    f"{path}: {member} holds the integer {arg} (at byte {pos}), wider than the 64 bits the engine "
                    "can read"
                )
            if op.name == "STOP":
                return
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptModelError(f"{path}: {member} is not a well-formed pickle ({exc})") from None


def read_pth(path: Path) -> FileInfo:
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            pickles = [n for n in names if n.endswith("data.pkl")]
            if not pickles:
                raise CorruptModelError(f"{path}: torch zip archive without data.pkl")
            if size <= CRC_CHECK_LIMIT:
                bad = zf.testzip()
                if bad is not None:
                    raise CorruptModelError(f"{path}: member {bad} of the torch archive is corrupt")
            members = {info.filename: info.file_size for info in zf.infolist()}
            pickled = zf.read(pickles[0])
    except zipfile.BadZipFile as exc:
        raise CorruptModelError(
            f"{path}: not a torch zip archive ({exc}); legacy .pth files are not supported"
        ) from None
    except (OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise CorruptModelError(f"{path}: the torch zip archive cannot be read ({exc})") from None
    prefix = pickles[0][: -len("data.pkl")]
    if len(pickled) < 2 or pickled[0] != 0x80 or not 2 <= pickled[1] <= 5:
        raise CorruptModelError(f"{path}: {pickles[0]} is not a protocol 2-5 pickle")
    _check_pickle_opcodes(path, pickles[0], pickled)
    try:
        state = _StateDictUnpickler(io.BytesIO(pickled)).load()
    except RecursionError:
        raise CorruptModelError(f"{path}: {pickles[0]} nests too deeply") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt archive
        raise CorruptModelError(f"{path}: {pickles[0]} is not a readable state dict ({type(exc).__name__})") from None
    found: dict[str, _Tensor] = {}
    _collect_tensors(state, found)
    tensors: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    for name, t in found.items():
        shape, stride, offset, storage = t.shape, t.stride, t.offset, t.storage
        if not isinstance(storage, _Storage):
            raise CorruptModelError(f"{path}: tensor {name} has no storage")
        if not (isinstance(shape, tuple) and isinstance(stride, tuple) and _is_int(offset) and offset >= 0
                and len(shape) <= 4 and len(stride) == len(shape)
                and all(_is_int(d) and 0 < d <= 1 << 40 for d in shape) and all(_is_int(s) for s in stride)):
            raise CorruptModelError(f"{path}: tensor {name} has a malformed shape, stride or offset")
        expected = 1
        for d, s in zip(reversed(shape), reversed(stride), strict=True):
            if s != expected:
                raise CorruptModelError(f"{path}: tensor {name} is not contiguous")
            expected *= d
        numel = math.prod(shape)
        entry = members.get(f"{prefix}data/{storage.key}")
        if entry is None:
            raise CorruptModelError(f"{path}: tensor {name} refers to missing storage {storage.key!r}")
        if (offset + numel) * storage.itemsize > entry or storage.numel * storage.itemsize > entry:
            raise CorruptModelError(f"{path}: tensor {name} lies past the end of its storage (truncated?)")
        tensors[name] = tuple(shape)
        dtypes[name] = storage.dtype
    return FileInfo(path, "pth", tensors, dtypes)


# ---------------------------------------------------------------- inspect


_cache: dict[tuple[str, int, int], FileInfo] = {}
_cache_lock = threading.Lock()


def _parse(path: Path, role: str) -> FileInfo:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    size = stat.st_size
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as exc:  # e.g. /proc/self/mem: a "regular file" that cannot be read
        raise ModelFileError(f"{role}: cannot read {path} ({exc.strerror or exc})") from None
    magic = head[:4]
    # Told apart by structure, in the engine's order (GGUF, safetensors, torch zip): a safetensors
    # header length can begin with the bytes "PK" (19,280 = b"PK\0\0..."), so a 2-byte prefix
    # cannot decide.
    if magic == b"GGUF":
        info = read_gguf(path, size)
    elif looks_like_safetensors(head, size):
        info = read_safetensors(path, size)
    elif magic == b"PK\x03\x04" or zipfile.is_zipfile(path):
        info = read_pth(path)
    elif head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and head[8:9] != b"{":
        # The engine would parse it with its legacy torch reader, which trusts every offset.
        raise CorruptModelError(
            f"{role}: {path} is a legacy (pre-zip) torch file, which is not supported; re-save it with a current "
            "torch.save or convert it to safetensors"
        )
    elif len(magic) == 4 and size >= 8:
        info = read_safetensors(path, size)
    else:
        raise CorruptModelError(f"{role}: {path} is too short to be a model file ({size} bytes)")
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = info
    return info


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """True when a file's first bytes are a safetensors header length that fits the file, then a JSON object.

    `head` is the file's first _SNIFF_BYTES bytes (or all of it when shorter).
    """
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 < n <= size - 8:
        return False
    start = head[8 : 8 + n].lstrip(b" \t\r\n")
    return start[:1] == b"{" or (not start and n > len(head) - 8)
