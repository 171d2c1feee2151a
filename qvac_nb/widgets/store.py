"""The full-size images a widget shows, kept kernel-side and sent only when the front-end asks.

Synced state carries one small entry per image (thumbnail, size, seed, parameters); the
PNG itself stays here and travels as a binary buffer of a custom message on request.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from ..png import replayable_params, stored_record
from .thumbs import image_size, thumbnail

_ids = itertools.count(1)


class ImageStore:
    """id -> PNG bytes, plus the synced entry describing each image."""

    def __init__(self) -> None:
        self._pngs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def add(self, png: bytes, **extra: Any) -> dict[str, Any]:
        image_id = f"img{next(_ids)}"
        width, height = image_size(png)
        record = stored_record(png)
        params = replayable_params(record)
        entry = {"id": image_id, "thumb": thumbnail(png), "width": width, "height": height,
                 "seed": params.get("seed"), "params": params, "bytes": len(png),
                 "img2img": bool(record.get("init_image_used")), **extra}
        with self._lock:
            self._pngs[image_id] = png
        return entry

    def get(self, image_id: str) -> bytes | None:
        with self._lock:
            return self._pngs.get(image_id)

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
