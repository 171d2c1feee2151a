"""Images on disk: a folder of PNGs (each with its parameters inside) and a small index beside them.

The layout of a history folder (the Studio's `output_dir`, `batch`'s `output_dir`)::

    qvac_nb_outputs/
    ├── index.jsonl                 one JSON object a line, appended as images are saved:
    │                                 {"file", "created", "parameters", "key", "extra"}
    ├── 20261127-200301-481-s42.png  time of saving (ms) and seed; the PNG carries its own record
    └── ...

The PNGs are the truth: the index only saves reading every file. A folder without an index (or
with PNGs the index does not list, e.g. copied in by hand) is read from the PNGs' own records, and
index lines whose file was deleted are skipped. Appends are one `write` of one line, so two
kernels saving into one folder do not interleave their lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InvalidParameterError, InvalidTypeError

DEFAULT_FOLDER = "qvac_nb_outputs"
INDEX_NAME = "index.jsonl"

_lock = threading.Lock()  # one writer at a time in this process; the name counter below relies on it


@dataclass(frozen=True)
class Record:
    """One saved image: where it is, the parameters that make it again, and when it was saved."""

    path: Path
    parameters: dict[str, Any]
    created: datetime
    key: str | None = None
    """The identity of the work that made it (see `item_key`); `batch` uses it to skip done items."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything the saver added: stats, the batch's item index, ..."""

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "parameters": self.parameters, "created": self.created.isoformat(),
                "key": self.key, **self.extra}


def folder_path(folder: str | os.PathLike[str] | None) -> Path:
    """The history folder: `folder`, or `qvac_nb_outputs` in the working directory when None."""
    if folder is None:
        return Path.cwd() / DEFAULT_FOLDER
    if not isinstance(folder, (str, os.PathLike)):
        raise InvalidTypeError(f"output_dir: expected a folder path or None, got {type(folder).__name__}")
    return Path(folder)


def item_key(parameters: Mapping[str, Any]) -> str:
    """A stable identity for a set of parameters (model included): SHA-256 of their canonical JSON."""
    text = json.dumps(dict(parameters), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save(png: bytes, parameters: Mapping[str, Any], folder: str | os.PathLike[str] | None = None, *,
         key: str | None = None, extra: Mapping[str, Any] | None = None) -> Record:
    """Write `png` into the history folder and add it to the index; returns its record."""
    root = folder_path(folder)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(f"output_dir: cannot create folder {str(root)!r} ({exc.strerror})") from None
    created = datetime.now(timezone.utc)
    seed = parameters.get("seed")
    with _lock:
        path = _reserve_name(root, created, seed)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        tmp.write_bytes(png)
        os.replace(tmp, path)  # a reader never sees half a file
        record = Record(path, dict(parameters), created, key, dict(extra or {}))
        line = json.dumps({"file": path.name, "created": created.isoformat(), "parameters": record.parameters,
                           "key": key, "extra": record.extra}, sort_keys=True, default=str)
        with open(root / INDEX_NAME, "a", encoding="utf-8") as index:
            index.write(line + "\n")
    return record


def history(folder: str | os.PathLike[str] | None = None, *, prompt: str | None = None,
            limit: int | None = None) -> list[Record]:
    """The images saved in `folder` (default `qvac_nb_outputs/`), newest first.

    Each record has `path`, `parameters` (pass them back to `diffusion` to make the image again)
    and `created`. `prompt` keeps the records whose prompt contains it (case-insensitive);
    `limit` keeps the newest that many. A missing folder has no history: [].
    """
    root = folder_path(folder)
    if not root.is_dir():
        return []
    records = _indexed(root)
    seen = {r.path.name for r in records}
    records += _unindexed(root, seen)
    records.sort(key=lambda r: (r.created, r.path.name), reverse=True)
    if prompt:
        needle = prompt.casefold()
        records = [r for r in records if needle in str(r.parameters.get("prompt", "")).casefold()]
    return records[:limit] if limit is not None else records


def done_keys(folder: str | os.PathLike[str] | None) -> dict[str, Record]:
    """`{key: record}` for the saved images that carry a key and still exist (newest wins)."""
    out: dict[str, Record] = {}
    for record in reversed(history(folder)):
        if record.key:
            out[record.key] = record
    return out


def _indexed(root: Path) -> list[Record]:
    try:
        lines = (root / INDEX_NAME).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    by_file: dict[str, Record] = {}
    for line in lines:
        record = _parse_line(root, line)
        if record is not None and record.path.is_file():
            by_file[record.path.name] = record
    return list(by_file.values())


def _parse_line(root: Path, line: str) -> Record | None:
    try:
        item = json.loads(line)
        name = item["file"]
        created = datetime.fromisoformat(item["created"])
    except (ValueError, KeyError, TypeError):
        return None  # a torn or hand-edited line: the PNG itself is still found by _unindexed
    if not isinstance(name, str) or Path(name).name != name or not isinstance(item.get("parameters"), dict):
        return None  # names stay inside the folder
    key = item.get("key") if isinstance(item.get("key"), str) else None
    extra = item.get("extra") if isinstance(item.get("extra"), dict) else {}
    return Record(root / name, item["parameters"], created, key, extra)


def _unindexed(root: Path, seen: set[str]) -> list[Record]:
    from .png import stored_record  # PIL and numpy only when a folder has PNGs the index lacks

    out = []
    for path in root.glob("*.png"):
        if path.name in seen:
            continue
        try:
            parameters = stored_record(path.read_bytes())
        except OSError:
            continue
        if not parameters:
            continue  # not one of ours (or half written): not history
        created = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        out.append(Record(path, parameters, created))
    return out


def _reserve_name(root: Path, created: datetime, seed: Any) -> Path:
    """A new file name, created empty with O_EXCL so another process saving at the same moment gets another."""
    stem = created.strftime("%Y%m%d-%H%M%S-") + f"{created.microsecond // 1000:03d}"
    if isinstance(seed, int):
        stem += f"-s{seed}"
    n = 0
    while True:
        path = root / (f"{stem}.png" if n == 0 else f"{stem}-{n}.png")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return path
        except FileExistsError:
            n += 1
