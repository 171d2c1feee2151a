"""Write PyTorch's zip checkpoint format (`torch.save` since 1.6) without torch.

Layout, as torch writes it: `archive/data.pkl` (a protocol-2 pickle of the state dict
whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, backward_hooks)` calls and whose storages are persistent ids
`("storage", torch.FloatStorage, key, "cpu", numel)`), `archive/byteorder`, one raw
little-endian entry per storage under `archive/data/<key>`, and `archive/version`.
Entries are stored uncompressed with data aligned to 64 bytes, as torch does, so
torch could memory-map it too.

The pickle opcodes are written by hand: `pickle.Pickler` would want to import torch to
emit its globals.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .formats import DType, TensorSpec, encode

_STORAGE_CLASS = {"f32": "FloatStorage", "f16": "HalfStorage"}
_ALIGN = 64


class _PickleWriter:
    """Just the protocol-2 opcodes a state dict needs, globals memoized like pickle does."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self._memo: dict[str, int] = {}

    def global_(self, module: str, name: str) -> None:
        key = f"{module}\n{name}\n"
        if key in self._memo:
            self._get(self._memo[key])
            return
        self.out += b"c" + key.encode()  # GLOBAL
        self._memo[key] = len(self._memo)
        self._put(self._memo[key])

    def _put(self, idx: int) -> None:
        self.out += b"q" + bytes([idx]) if idx < 256 else b"r" + struct.pack("<I", idx)  # BINPUT / LONG_BINPUT

    def _get(self, idx: int) -> None:
        self.out += b"h" + bytes([idx]) if idx < 256 else b"j" + struct.pack("<I", idx)  # BINGET / LONG_BINGET

    def str_(self, s: str) -> None:
        raw = s.encode()
        self.out += b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE

    def int_(self, n: int) -> None:
        if 0 <= n < 0x100:
            self.out += b"K" + bytes([n])  # BININT1
        elif 0 <= n < 0x10000:
            self.out += b"M" + struct.pack("<H", n)  # BININT2
        elif -(2**31) <= n < 2**31:
            self.out += b"J" + struct.pack("<i", n)  # BININT
        else:
            self.out += b"\x8a\x08" + struct.pack("<q", n)  # LONG1, 8 bytes

    def int_tuple(self, items: Sequence[int]) -> None:
        if not items:
            self.out += b")"  # EMPTY_TUPLE
            return
        if len(items) > 3:
            self.out += b"("  # MARK
        for n in items:
            self.int_(n)
        self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}.get(len(items), b"t")  # TUPLE1..3 / TUPLE

    def empty_ordered_dict(self) -> None:
        self.global_("collections", "OrderedDict")
        self.out += b")R"  # EMPTY_TUPLE, REDUCE

    def tensor(self, storage_key: str, dtype: DType, shape: tuple[int, ...], numel: int) -> None:
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out += b"(("  # MARK (args), MARK (persistent id)
        self.str_("storage")
        self.global_("torch", _STORAGE_CLASS[dtype])
        self.str_(storage_key)
        self.str_("cpu")
        self.int_(numel)
        self.out += b"tQ"  # TUPLE, BINPERSID
        self.int_(0)  # storage offset
        self.int_tuple(shape)
        strides = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * shape[i + 1]
        self.int_tuple(strides)
        self.out += b"\x89"  # NEWFALSE: requires_grad
        self.empty_ordered_dict()  # backward_hooks
        self.out += b"tR"  # TUPLE, REDUCE


def state_dict_pickle(tensors: Sequence[tuple[TensorSpec, DType]], wrapper: str | None = None) -> bytes:
    """`data.pkl` for an OrderedDict of the tensors (storage keys "0".."N-1"),
    optionally inside a plain dict under `wrapper` (e.g. BasicSR's "params_ema")."""
    w = _PickleWriter()
    if wrapper is not None:
        w.out += b"}"  # EMPTY_DICT
        w.str_(wrapper)
    w.empty_ordered_dict()
    if tensors:
        w.out += b"("  # MARK
        for i, (spec, dtype) in enumerate(tensors):
            w.str_(spec.name)
            w.tensor(str(i), dtype, spec.shape, spec.numel)
        w.out += b"u"  # SETITEMS
    if wrapper is not None:
        w.out += b"s"  # SETITEM
    w.out += b"."  # STOP
    return bytes(w.out)


def _aligned_entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Store `name` with an extra field padding its data to a 64-byte boundary."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    offset = zf.fp.tell() if zf.fp is not None else 0
    pad = -(offset + 30 + len(name.encode()) + 4) % _ALIGN
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    zf.writestr(info, data)


def write_torch_zip(
    path: Path,
    tensors: Sequence[tuple[TensorSpec, DType]],
    wrapper: str | None = None,
    archive: str = "archive",
) -> None:
    """Write `tensors` (dtype f32 or f16) as a `.pth`/`.pt` zip checkpoint."""
    for spec, dtype in tensors:
        if dtype not in _STORAGE_CLASS:
            raise ValueError(f"torch zip writer has no storage for {spec.name} as {dtype}")
    tmp = path.with_suffix(path.suffix + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        _aligned_entry(zf, f"{archive}/data.pkl", state_dict_pickle(tensors, wrapper))
        _aligned_entry(zf, f"{archive}/byteorder", b"little")
        for i, (spec, dtype) in enumerate(tensors):
            _aligned_entry(zf, f"{archive}/data/{i}", encode(spec, dtype))
        _aligned_entry(zf, f"{archive}/version", b"3\n")
    tmp.replace(path)
