"""Images on disk: a folder of PNGs (each with its parameters inside) and a small index beside them.

The layout of a history folder (the Studio's `output_dir`, `batch`'s `output_dir`)::

    qvac_nb_outputs/
    ├── index.jsonl                 one JSON object a line, appended as images are saved:
    │                                 {"file", "created", "parameters", "key", "extra"}
    ├── 20261127-200301-481-s42.png  time of saving (ms) and seed; the PNG carries its own record
    ├── 20261127-200512-007-s7.mp4   a video (video()): MP4 or animated WebP, its record in its metadata
    └── ...

The PNGs are the truth: the index only saves reading every file. A folder without an index (or
with PNGs the index does not list, e.g. copied in by hand) is read from the PNGs' own records, and
index lines whose file was deleted are skipped. Appends are one `write` of one line, so two
kernels saving into one folder do not interleave their lines.

A save that fails (a full disk) leaves nothing behind: no reserved name, no temporary file, no PNG
without its index line; it raises `SaveError`. A line torn by such a failure loses only itself: the
next append starts on a new line, and reading skips the torn part (or, in an index torn before this
rule, recovers the record a torn line was glued to). Only regular files are read, and PNGs only up to
a size a history image can have (FIFOs, devices and oversized files are skipped).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .errors import InvalidParameterError, InvalidTypeError, SaveError
from .regular_file import OPEN_FLAGS, open_regular

DEFAULT_FOLDER = "qvac_nb_outputs"
INDEX_NAME = "index.jsonl"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_SUFFIX = ".png"
VIDEO_SUFFIXES = (".mp4", ".webp")  # what video() writes (video_files.py)
# The largest video file read back: a 257-frame 1280x720 clip at crf 18 takes well under this.
MAX_VIDEO_BYTES = 1 << 30
_MAX_SALVAGE_TRIES = 64  # objects tried inside one torn index line (a record nests a few)

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

    @property
    def is_video(self) -> bool:
        """True for a video (an .mp4 or .webp file) rather than a PNG image."""
        return is_video_file(self.path)

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
         key: str | None = None, extra: Mapping[str, Any] | None = None, suffix: str = IMAGE_SUFFIX) -> Record:
    """Write `png` into the history folder and add it to the index; returns its record.

    `suffix` is ".png", or ".mp4" / ".webp" for a video's file (its bytes carry its own record).
    Raises SaveError (naming output_dir) when the folder cannot take it, e.g. a full disk; then
    neither the file nor a partial or reserved one is left.
    """
    if suffix not in (IMAGE_SUFFIX, *VIDEO_SUFFIXES):
        raise InvalidParameterError(f"suffix: expected one of {(IMAGE_SUFFIX, *VIDEO_SUFFIXES)}, got {suffix!r}",
                                    param="suffix")
    root = folder_path(folder)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(f"output_dir: cannot create folder {str(root)!r} ({exc.strerror})") from None
    created = datetime.now(timezone.utc)
    seed = parameters.get("seed")
    record_parameters = dict(parameters)
    extra_values = dict(extra or {})
    with _lock:
        written: list[Path] = []  # removed again if the save fails
        try:
            path = _reserve_name(root, created, seed, suffix)
            written.append(path)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
            written.append(tmp)
            _write_new(tmp, png)
            os.replace(tmp, path)  # a reader never sees half a file
            line = json.dumps({"file": path.name, "created": created.isoformat(), "parameters": record_parameters,
                               "key": key, "extra": extra_values}, sort_keys=True, default=str)
            _append_line(root / INDEX_NAME, (line + "\n").encode())
        except BaseException as exc:
            for leftover in written:  # a PNG without its index line would lose its key: batch would redo it
                _remove(leftover)
            if isinstance(exc, OSError):
                raise SaveError(f"output_dir: could not save the image into {str(root)!r} "
                                f"({exc.strerror or exc}); nothing was kept", param="output_dir") from exc
            raise
    return Record(path, record_parameters, created, key, extra_values)


def history(folder: str | os.PathLike[str] | None = None, *, prompt: str | None = None,
            limit: int | None = None) -> list[Record]:
    """The images (and videos) saved in `folder` (default `qvac_nb_outputs/`), newest first.

    Each record has `path`, `parameters` (pass them back to `diffusion`, or to `video` for a
    record whose `is_video` is true, to make it again) and `created`. `prompt` keeps the records
    whose prompt contains it (case-insensitive); `limit` keeps the newest that many. A missing
    folder has no history: []. Files that are not regular files (a FIFO, a link to a device) are
    skipped unread.
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


def read_png(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of a PNG in a history folder, or None when `path` is not a regular file or is too large.

    Too large: more than `max_png_bytes()`. A FIFO, a device or a link to one is never read
    (opening a FIFO blocks; a device may never end).
    """
    return _read_bounded(path, max_png_bytes())


def read_video(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of a video file in a history folder (at most MAX_VIDEO_BYTES; else None, like `read_png`)."""
    return _read_bounded(path, MAX_VIDEO_BYTES)


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """Whether a history file is a video (by its suffix: what `save` gave it)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_saved(path: str | os.PathLike[str]) -> bytes | None:
    """A saved file's bytes, read as a video or a PNG by its suffix."""
    return (read_video if is_video_file(path) else read_png)(path)


def _read_bounded(path: str | os.PathLike[str], limit: int) -> bytes | None:
    try:
        opened = open_regular(path)
        if opened is None:
            return None
        file, info = opened
        with file:
            # What fstat counted, no more: a save replaces a file (a new inode) rather than growing it.
            return file.read(info.st_size) if info.st_size <= limit else None
    except OSError:
        return None


def max_png_bytes() -> int:
    """The largest PNG read from a history folder: the largest image qvac_nb makes, as RGBA stored uncompressed.

    Deflate grows incompressible data by well under 1 %, which the room for the text chunks covers.
    """
    from .generation import MAX_OUTPUT_SIDE  # an upscale's side limit
    from .png import MAX_RECORD_CHARS

    return 4 * MAX_OUTPUT_SIDE**2 + _max_head_bytes(MAX_RECORD_CHARS)


def _max_head_bytes(max_record_chars: int) -> int:
    # The chunks before the pixels: the qvac_nb record and its A1111 text (UTF-8: up to 4 bytes a character).
    return 8 * max_record_chars


def _indexed(root: Path) -> list[Record]:
    try:
        opened = open_regular(root / INDEX_NAME)
        if opened is None:
            return []
        file, info = opened
        with file:
            data = file.read(info.st_size)  # a line appended meanwhile is read next time
    except OSError:
        return []
    by_file: dict[str, Record] = {}
    for line in data.decode("utf-8", errors="replace").split("\n"):
        record = _parse_line(root, line) if line.strip() else None
        if record is not None and record.path.is_file():
            by_file[record.path.name] = record
    return list(by_file.values())


def _parse_line(root: Path, line: str) -> Record | None:
    for item in _line_objects(line):
        record = _record_of(root, item)
        if record is not None:
            return record
    return None  # a torn or hand-edited line: the PNG itself is still found by _unindexed


def _record_of(root: Path, item: Any) -> Record | None:
    try:
        name = item["file"]
        created = datetime.fromisoformat(item["created"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(name, str) or Path(name).name != name or not isinstance(item.get("parameters"), dict):
        return None  # names stay inside the folder
    key = item.get("key") if isinstance(item.get("key"), str) else None
    extra = item.get("extra") if isinstance(item.get("extra"), dict) else {}
    return Record(root / name, item["parameters"], created, key, extra)


def _line_objects(line: str) -> Iterator[Any]:
    """The JSON value of an index line; for a line that is not JSON, the JSON objects that end it.

    Before appends started a new line after a torn one, a torn line had the next record glued to it:
    that record is the object ending the line that starts at one of its `{"`.
    """
    try:
        yield json.loads(line)
        return
    except ValueError:
        pass
    start = line.find('{"', 1)
    for _ in range(_MAX_SALVAGE_TRIES):  # bounded: each try parses the rest of the line
        if start < 0:
            return
        try:
            item = json.loads(line[start:])
        except ValueError:
            item = None
        if item is not None:
            yield item
        start = line.find('{"', start + 1)


def _unindexed(root: Path, seen: set[str]) -> list[Record]:
    from .png import MAX_RECORD_CHARS, stored_record  # PIL and numpy only when a folder has PNGs the index lacks

    head_limit = _max_head_bytes(MAX_RECORD_CHARS)
    out = []
    for path in root.iterdir():
        suffix = path.suffix.lower()
        if path.name in seen or suffix not in (IMAGE_SUFFIX, *VIDEO_SUFFIXES):
            continue
        try:
            opened = open_regular(path)
            if opened is None:
                continue  # a FIFO, a device, a folder: not an image
            file, info = opened
            with file:
                if suffix == IMAGE_SUFFIX:
                    head = _png_head(file, head_limit)
                    parameters = stored_record(head) if head is not None else {}
                else:
                    parameters = _video_record(file, info.st_size)
        except OSError:
            continue
        if not parameters:
            continue  # not one of ours (or half written): not history
        out.append(Record(path, parameters, datetime.fromtimestamp(info.st_mtime, timezone.utc)))
    return out


def _video_record(file: IO[bytes], size: int) -> dict[str, Any]:
    """The record inside a video file qvac_nb wrote ({} for another file, a damaged one or one too large)."""
    from .video_files import parse_record, read_record  # PyAV only when a folder has videos the index lacks

    if size > MAX_VIDEO_BYTES:
        return {}
    try:
        return parse_record(read_record(file.read(size)))
    except Exception:  # noqa: BLE001 - FFmpeg and Pillow raise many types for a damaged file
        return {}


def _png_head(file: IO[bytes], limit: int) -> bytes | None:
    """A PNG's bytes up to its first pixel chunk's header: all PIL needs for the text chunks before the pixels.

    None when it is not a PNG or its chunks before the pixels take more than `limit` bytes.
    """
    head = bytearray(file.read(len(PNG_SIGNATURE)))
    if head != PNG_SIGNATURE:
        return None
    while True:
        header = file.read(8)
        if len(header) < 8:
            return None
        head += header
        length, kind = struct.unpack(">I4s", header)
        if kind in (b"IDAT", b"IEND"):
            return bytes(head)
        if len(head) + length + 4 > limit:
            return None
        body = file.read(length + 4)  # data and CRC
        if len(body) < length + 4:
            return None
        head += body


def _write_new(path: Path, data: bytes) -> None:
    """Write `data` into a new file at `path`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _append_line(index: Path, line: bytes) -> None:
    """Append one line to the index in one write, on a line of its own even after a torn last line."""
    fd = os.open(index, os.O_RDWR | os.O_APPEND | os.O_CREAT | OPEN_FLAGS, 0o644)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"{INDEX_NAME} is not a regular file")
        if info.st_size:
            os.lseek(fd, -1, os.SEEK_END)  # reads follow the offset; O_APPEND writes still go to the end
            if os.read(fd, 1) != b"\n":
                line = b"\n" + line  # a failed write tore the last line: end it, so it loses only itself
        _write_all(fd, line)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        count = os.write(fd, view)
        if count <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[count:]  # a short write: a full disk raises on the rest


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):  # best effort: the save's own error is the one to report
        path.unlink()


def _reserve_name(root: Path, created: datetime, seed: Any, suffix: str = IMAGE_SUFFIX) -> Path:
    """A new file name, created empty with O_EXCL so another process saving at the same moment gets another."""
    stem = created.strftime("%Y%m%d-%H%M%S-") + f"{created.microsecond // 1000:03d}"
    if isinstance(seed, int):
        stem += f"-s{seed}"
    n = 0
    while True:
        path = root / (f"{stem}{suffix}" if n == 0 else f"{stem}-{n}{suffix}")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return path
        except FileExistsError:
            n += 1
