"""`diffusion(lora=...)`: the forms it accepts, resolving each LoRA to a checked local file, and its record.

Accepted values (every source resolves like `model_src`: a catalogue constant, a local path, an
https URL or hf://owner/repo/file):

- a source: one LoRA at weight 1 (the QVAC SDK's form);
- a list of sources, of `(source, weight)` pairs, or of `{"source": ..., "weight": ...}` dicts
  (what the PNG record stores, so `read_parameters` replays; a `sha256` there must match the file);
- a `{source: weight}` mapping.

The validated value is a tuple of entries `{"source", "name", "sha256", "weight", "path"}`; the PNG
record keeps all but the local path. The same file given twice counts once with the weights added,
as the engine's own prompt tags (`<lora:name:w>`) add them.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .checks.values import check_path
from .errors import CorruptModelError, InvalidParameterError, InvalidTypeError

PARAM = "lora"
MAX_LORAS = 16
MAX_WEIGHT = 10.0  # real LoRAs are used between about -2 and 2; far beyond that is a typo
VALUES_DOC = "a source, a list of sources or (source, weight) pairs, or a {source: weight} dict"
# Tensor-name endings of the adapter kinds the engine applies (its LoRA name conversion):
# kohya and LDM (lora_down/lora_up), diffusers (lora.down/lora.up, _lora.down), peft (lora_A/lora_B),
# LyCORIS LoHa/LoKr, and full diffs.
_ADAPTER_MARKERS = (
    ".lora_down.weight", ".lora_up.weight", ".lora.down.weight", ".lora.up.weight", "_lora.down.weight",
    "_lora.up.weight", ".lora_A.weight", ".lora_B.weight", ".lora_A.default.weight", ".lora_B.default.weight",
    ".hada_w1_a", ".hada_w2_a", ".lokr_w1", ".lokr_w2", ".lokr_w1_a", ".lokr_w2_a", ".diff", ".diff_b",
)

_hashes: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def _fail(message: str, kind: type[Exception] = InvalidParameterError) -> Exception:
    return kind(f"{PARAM}: {message}", param=PARAM)  # type: ignore[call-arg]


def _weight(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(f"{where}: the weight must be a number, got {type(value).__name__} {value!r}", InvalidTypeError)
    value = float(value)
    if not math.isfinite(value) or abs(value) > MAX_WEIGHT:
        raise _fail(f"{where}: the weight must be in [-{MAX_WEIGHT}, {MAX_WEIGHT}], got {value}")
    return value


def _is_source(value: Any) -> bool:
    return isinstance(value, (str, bytes, os.PathLike))


def _pairs(value: Any) -> list[tuple[Any, Any, str | None]]:
    """(source, weight, expected sha256) for each entry of any accepted form, in order."""
    if _is_source(value):
        return [(value, 1.0, None)]
    if isinstance(value, Mapping):
        return [(src, weight, None) for src, weight in value.items()]
    if not isinstance(value, Sequence):
        raise _fail(f"expected {VALUES_DOC}, got {type(value).__name__}", InvalidTypeError)
    # A lone (source, weight) pair is one LoRA, not two.
    if len(value) == 2 and _is_source(value[0]) and isinstance(value[1], numbers.Real) \
            and not isinstance(value[1], bool):
        return [(value[0], value[1], None)]
    out: list[tuple[Any, Any, str | None]] = []
    for i, item in enumerate(value):
        if _is_source(item):
            out.append((item, 1.0, None))
        elif isinstance(item, Mapping):
            unknown = sorted(set(map(str, item)) - {"source", "weight", "sha256", "name"})
            if unknown or "source" not in item:
                raise _fail(f"entry {i}: a dict needs 'source' (and may have 'weight', 'sha256', 'name'), "
                            f"got keys {sorted(map(str, item))}", InvalidTypeError)
            sha = item.get("sha256")
            if sha is not None and not isinstance(sha, str):
                raise _fail(f"entry {i}: 'sha256' must be a hex string, got {type(sha).__name__}", InvalidTypeError)
            out.append((item["source"], item.get("weight", 1.0), sha))
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
            out.append((item[0], item[1], None))
        else:
            raise _fail(f"entry {i}: expected a source or a (source, weight) pair, got {item!r}", InvalidTypeError)
    return out


def sha256(path: Path) -> str:
    """The file's SHA-256 (hex), remembered per path, size and modification time."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        known = _hashes.get(key)
    if known is not None:
        return known
    from .hub.transfer import sha256_of as _sha256_of

    digest = _sha256_of(path)
    with _hash_lock:
        _hashes[key] = digest
    return digest


def check_file(path: Path, shown: str) -> None:
    """A regular model file (headers bounds-checked) whose tensors are LoRA adapters.

    Raises ModelFileError naming `lora` for a folder, FIFO or device, before anything opens it.
    """
    from .modelfiles.formats import _parse
    from .modelfiles.reading import check_regular_file

    check_regular_file(path, PARAM)  # opening a FIFO or reading /dev/zero would block diffusion()
    try:
        info = _parse(path, PARAM)
    except CorruptModelError as exc:
        message = str(exc)
        raise CorruptModelError(message if message.startswith(f"{PARAM}:") else f"{PARAM}: {message}",
                                param=PARAM) from None
    if not any(name.endswith(_ADAPTER_MARKERS) for name in info.tensors):
        raise _fail(f"{shown} is not a LoRA: none of its {len(info.tensors)} tensors is named like an adapter "
                    "(lora_down/lora_up, lora_A/lora_B, lora.down/lora.up, LoHa, LoKr or diff)")


def _resolve(src: str) -> Path:
    from .hub.resolve import resolve_for

    path, _ = resolve_for(src, PARAM, None)
    return Path(path)


def check(value: Any) -> tuple[dict[str, Any], ...]:
    """The validated `lora` value: one entry per distinct file, each resolved, checked and hashed."""
    if value is None:
        return ()
    pairs = _pairs(value)
    if len(pairs) > MAX_LORAS:
        raise _fail(f"at most {MAX_LORAS} LoRAs, got {len(pairs)}")
    entries: dict[str, dict[str, Any]] = {}
    for i, (raw_src, raw_weight, expected) in enumerate(pairs):
        src = check_path(PARAM, raw_src)
        if not src:
            raise _fail(f"entry {i}: the source is empty")
        weight = _weight(raw_weight, f"entry {i} ({src!r})")
        path = _resolve(src)
        key = str(path.resolve())
        if key in entries:
            entries[key]["weight"] += weight
            continue
        check_file(path, repr(src))
        digest = sha256(path)
        if expected is not None and expected.lower() != digest:
            raise _fail(f"entry {i}: {path.name} has SHA-256 {digest[:12]}..., not the {expected[:12]}... "
                        "the record names; it is another file than the one the image was made with")
        entries[key] = {"source": src, "name": path.name, "sha256": digest, "weight": weight, "path": str(path)}
    return tuple(entries.values())


def record_form(entries: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """What the PNG record keeps of each LoRA (not the local path of a downloaded file); None without LoRAs."""
    return [{k: e[k] for k in ("source", "name", "sha256", "weight")} for e in entries] if entries else None


def engine_pairs(entries: Sequence[Mapping[str, Any]] | None) -> list[tuple[str, float]]:
    """(path, weight) for the engine; a weight of 0 is the same as no LoRA, so it is not sent."""
    return [(str(e["path"]), float(e["weight"])) for e in entries or () if e["weight"] != 0.0]


def parse_cli(text: str) -> tuple[str, float] | str:
    """`--lora PATH[:WEIGHT]`: a trailing `:number` is the weight (URLs and drive letters stay whole)."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return text
