"""The full-size images a widget shows, kept kernel-side and sent only when the front-end asks.

Synced state carries one small entry per image (thumbnail, size, seed, parameters); the
PNG itself stays here (in memory, or as a file of a history folder, read when asked for)
and travels as a binary buffer of a custom message on request.
"""

from __future__ import annotations

import io
import itertools
import threading
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..history_folder import read_png
from ..png import replayable_params, stored_record
from .thumbs import image_size, thumbnail

_ids = itertools.count(1)


class ImageStore:
    """id -> PNG bytes (or the file holding them), plus the synced entry describing each image."""

    def __init__(self) -> None:
        self._pngs: dict[str, bytes | Path] = {}
        self._lock = threading.Lock()

    def add(self, png: bytes, *, path: Path | None = None, **extra: Any) -> dict[str, Any]:
        """Keep `png` and return its entry; with `path` (the same PNG on disk) only the path is kept."""
        image_id = f"img{next(_ids)}"
        width, height = image_size(png)
        record = stored_record(png)
        params = replayable_params(record)
        entry = {"id": image_id, "thumb": thumbnail(png), "width": width, "height": height,
                 "seed": params.get("seed"), "params": params, "bytes": len(png),
                 "img2img": bool(record.get("init_image_used")), **extra}
        if path is not None:
            entry["file"] = path.name
        with self._lock:
            self._pngs[image_id] = png if path is None else path
        return entry

    def add_video(self, video: Any, **extra: Any) -> dict[str, Any]:
        """Keep a `Video` (qvac_nb.video_files): its entry is its first frame's, plus the id of the file itself,
        which the front-end fetches like a full-size image to play it."""
        from ..png import encode_png  # noqa: PLC0415

        video_id = f"vid{next(_ids)}"
        with self._lock:
            self._pngs[video_id] = bytes(video)
        first = encode_png(video.array[0], video.record) if video.frame_count else b""
        return self.add(first, video=video_id, mime=video.mime_type, frames=video.frame_count, fps=video.fps,
                        format=video.format, **extra)

    def add_file(self, path: Path, **extra: Any) -> dict[str, Any] | None:
        """The entry of a PNG file (a history record); None if it can no longer be read or is refused.

        Only a regular file of a bounded size is read (see `history_folder.read_png`).
        """
        png = read_png(path)
        if png is None:
            return None
        try:
            return self.add(png, path=path, **extra)
        except Exception:  # noqa: BLE001 - a deleted or damaged file is simply not shown
            return None

    def get(self, image_id: str) -> bytes | None:
        with self._lock:
            held = self._pngs.get(image_id)
        if isinstance(held, Path):
            return read_png(held)  # None if it was deleted or replaced by something that is not a PNG file
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
        """A zip of the entries' PNGs (stored, not deflated: PNGs are compressed already) and how many it holds."""
        out = io.BytesIO()
        count = 0
        names: set[str] = set()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for entry in entries:
                png = self.get(str(entry.get("id")))
                if png is None:
                    continue
                archive.writestr(_unique(zip_name(entry), names), png)
                count += 1
        return out.getvalue(), count


def zip_name(entry: dict[str, Any]) -> str:
    """A file's own name when it came from a history folder, else one built from its seed and id."""
    if entry.get("file"):
        return str(entry["file"])
    seed = entry.get("seed")
    return f"qvac_nb{'' if seed is None else f'-{seed}'}-{entry['id']}.png"


def _unique(name: str, taken: set[str]) -> str:
    stem, n, candidate = name.removesuffix(".png"), 1, name
    while candidate in taken:
        candidate, n = f"{stem}-{n}.png", n + 1
    taken.add(candidate)
    return candidate
