"""The full-size images a widget shows, kept kernel-side and sent only when the front-end asks.

Synced state carries one small entry per image (thumbnail, size, seed, parameters); the
PNG itself stays here and travels as a binary buffer of a custom message on request.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

from PIL import Image

from ..errors import QvacError
from ..png import JSON_KEY, read_parameters
from .thumbs import image_size, thumbnail

_ids = itertools.count(1)


def stored_record(png: bytes) -> dict[str, Any]:
    """The full record qvac_nb stored in a PNG (parameters plus model, seed…), or {}."""
    try:
        with Image.open(io.BytesIO(png)) as img:
            text = img.info.get(JSON_KEY)
        return json.loads(text) if isinstance(text, str) else {}
    except Exception:  # noqa: BLE001 - an image without a readable record simply has none
        return {}


def replayable(png: bytes) -> dict[str, Any]:
    try:
        return read_parameters(png)
    except QvacError:
        return {}


class ImageStore:
    """id -> PNG bytes, plus the synced entry describing each image."""

    def __init__(self) -> None:
        self._pngs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def add(self, png: bytes, **extra: Any) -> dict[str, Any]:
        image_id = f"img{next(_ids)}"
        width, height = image_size(png)
        params = replayable(png)
        entry = {"id": image_id, "thumb": thumbnail(png), "width": width, "height": height,
                 "seed": params.get("seed"), "params": params, "bytes": len(png),
                 "img2img": bool(stored_record(png).get("init_image_used")), **extra}
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
