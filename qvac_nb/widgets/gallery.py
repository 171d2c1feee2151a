"""Gallery: any list of images (PNG bytes or PIL images) as thumbnails, full size on click, PNG download."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import traitlets as t

from ..schema import schema_json
from . import assets
from .base import ImageWidget
from .thumbs import to_png


class Gallery(ImageWidget):
    _esm = assets.esm("gallery")
    _css = assets.css("gallery")

    images = t.List().tag(sync=True)  # entries with thumbnails; full PNGs stay kernel-side
    schema = t.Dict(help="The parameter schema (qvac_nb.schema.schema_json): labels the parameters shown "
                    "with an image.").tag(sync=True)

    def __init__(self, images: Iterable[Any] = ()) -> None:
        super().__init__(schema=schema_json())
        self.add(*images)

    def add(self, *images: Any) -> None:
        """Append images (PNG bytes, PIL images or anything `diffusion`'s init_image accepts)."""
        self.images = list(self.images) + [self._store.add(to_png(image), kind="image") for image in images]

    @property
    def pngs(self) -> list[bytes]:
        return [png for entry in self.images if (png := self._store.get(entry["id"])) is not None]
