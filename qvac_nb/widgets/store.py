"""The full-size images a widget shows, kept kernel-side and sent only when the front-end asks.

Synced state carries one small entry per image (thumbnail, size, seed, parameters); the
PNG itself stays here (in memory, or as a file of a history folder, read when asked for)
and travels as a binary buffer of a custom message on request.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..history_folder import is_video_file, read_png, read_saved
from ..png import record_of, replayable_params
from .thumbs import image_size, thumbnail

_ids = itertools.count(1)


class ImageStore:
    """id -> PNG bytes (or the file holding them), plus the synced entry describing each image."""

    def __init__(self) -> None:
        # bytes, a file holding them, or (an MP4's WebP fallback) a function making them when first asked for
        self._pngs: dict[str, bytes | Path | Callable[[], bytes | None]] = {}
        self._lock = threading.Lock()

    def add(self, png: bytes, *, path: Path | None = None, **extra: Any) -> dict[str, Any]:
        """Keep `png` and return its entry; with `path` (the same PNG on disk) only the path is kept."""
        image_id = f"img{next(_ids)}"
        width, height = image_size(png)
        record = record_of(png)
        params = replayable_params(record)
        entry = {"id": image_id, "thumb": thumbnail(png), "width": width, "height": height,
                 "seed": params.get("seed"), "params": params, "bytes": len(png),
                 "img2img": bool(record.get("init_image_used")), **extra}
        if path is not None:
            entry["file"] = path.name
        with self._lock:
            # Plain bytes: a PngImage subclass is sent as {} by serialisers that want exact bytes (marimo's).
            self._pngs[image_id] = bytes(png) if path is None else path
        return entry

    def add_video(self, video: Any, *, path: Path | None = None, **extra: Any) -> dict[str, Any]:
        """Keep a `Video` (qvac_nb.video_files): its entry is its first frame's, plus the id of the file itself,
        which the front-end fetches like a full-size image to play it. With `path` (the same file on disk)
        only the path is kept."""
        return self._add_video(bytes(video) if path is None else path, video.array[0], video.record,
                               mime=video.mime_type, frames=video.frame_count, fps=video.fps, format=video.format,
                               webp_of=video.webp, **extra)

    def _add_video(self, held: bytes | Path, first_frame: Any, record: dict[str, Any], *,
                   webp_of: Callable[[], bytes | None] | None = None, **extra: Any) -> dict[str, Any]:
        """`webp_of` makes the animated WebP a browser that cannot play the MP4 falls back to (made when asked;
        None when it cannot be made, e.g. the file is gone)."""
        from ..png import encode_png  # noqa: PLC0415

        video_id = f"vid{next(_ids)}"
        with self._lock:
            self._pngs[video_id] = held
            if extra.get("format") == "mp4" and webp_of is not None:
                extra["webp"] = webp_id = f"{video_id}-webp"
                self._pngs[webp_id] = webp_of
        if isinstance(held, Path):
            extra["video_file"] = held.name
        entry = self.add(encode_png(first_frame, record), video=video_id, **extra)
        entry["bytes"] = held.stat().st_size if isinstance(held, Path) else len(held)  # the video's, not the frame's
        return entry

    def add_file(self, path: Path, **extra: Any) -> dict[str, Any] | None:
        """The entry of a PNG or video file (a history record); None if it can no longer be read or is refused.

        Only a regular file of a bounded size is read (see `history_folder.read_png` and `read_video`).
        A video's entry is its first frame's; the file is read again when the front-end asks to play it.
        """
        if is_video_file(path):
            return self._add_video_file(path, **extra)
        png = read_png(path)
        if png is None:
            return None
        try:
            return self.add(png, path=path, **extra)
        except Exception:  # noqa: BLE001 - a deleted or damaged file is simply not shown
            return None

    def _add_video_file(self, path: Path, **extra: Any) -> dict[str, Any] | None:
        from ..video_files import probe  # noqa: PLC0415 - PyAV only for a folder with videos

        data = read_saved(path)
        if data is None:
            return None
        try:
            facts = probe(data)
            return self._add_video(path, facts.first_frame, facts.record, mime=facts.mime_type,
                                   frames=facts.frame_count, fps=facts.fps, format=facts.format,
                                   webp_of=lambda: _webp_of_file(path, facts.fps, facts.record), **extra)
        except Exception:  # noqa: BLE001 - a damaged file (FFmpeg, Pillow raise many types) is simply not shown
            return None

    def get(self, image_id: str) -> bytes | None:
        with self._lock:
            held = self._pngs.get(image_id)
        if isinstance(held, Path):
            return read_saved(held)  # None if it was deleted or replaced by something that is not a regular file
        if callable(held):
            made = held()
            if made is not None:
                with self._lock:
                    self._pngs[image_id] = made  # made once
            return made
        return held

    def __len__(self) -> int:
        with self._lock:
            return len(self._pngs)

    def answer(self, content: dict[str, Any], send: Callable[..., None]) -> bool:
        """Reply to {"type": "image", "id": ...} with the PNG as a buffer; False if it is another message."""
        if content.get("type") != "image":
            return False
        image_id = str(content.get("id", ""))
        png = self.get(image_id)
        reply = {"type": "image", "id": image_id, "purpose": content.get("purpose", "view")}
        if png is None:
            send({**reply, "missing": True})
        else:
            send(reply, buffers=[png])
        return True

    def zip_of(self, entries: Iterable[dict[str, Any]]) -> tuple[bytes, int]:
        """A zip of the entries' files (stored, not deflated: PNGs and videos are compressed already) and how many
        it holds. A video's entry brings its video file, not its first frame."""
        out = io.BytesIO()
        count = 0
        names: set[str] = set()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for entry in entries:
                png = self.get(str(entry.get("video") or entry.get("id")))
                if png is None:
                    continue
                archive.writestr(_unique(zip_name(entry), names), png)
                count += 1
        return out.getvalue(), count


def _webp_of_file(path: Path, fps: int, record: dict[str, Any]) -> bytes | None:
    """The animated WebP of a saved MP4 (None once the file is gone or unreadable)."""
    from ..video_files import decode_frames, encode_webp  # noqa: PLC0415

    data = read_saved(path)
    if data is None:
        return None
    try:
        return encode_webp(decode_frames(data), fps, record)
    except Exception:  # noqa: BLE001 - a damaged file: the browser keeps the first frame
        return None


def zip_name(entry: dict[str, Any]) -> str:
    """A file's own name when it came from a history folder, else one built from its seed and id."""
    if entry.get("video"):
        if entry.get("video_file"):
            return str(entry["video_file"])
        seed = entry.get("seed")
        return f"qvac_nb{'' if seed is None else f'-{seed}'}-{entry['video']}.{entry.get('format') or 'mp4'}"
    if entry.get("file"):
        return str(entry["file"])
    seed = entry.get("seed")
    return f"qvac_nb{'' if seed is None else f'-{seed}'}-{entry['id']}.png"


def _unique(name: str, taken: set[str]) -> str:
    stem, suffix = os.path.splitext(name)
    n, candidate = 1, name
    while candidate in taken:
        candidate, n = f"{stem}-{n}{suffix}", n + 1
    taken.add(candidate)
    return candidate
