"""Gallery: any list of images (PNG bytes or PIL images) as thumbnails, full size on click, PNG download."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import traitlets as t

from .. import history_folder
from ..png import replayable_params
from . import assets
from .base import ImageWidget
from .form_schema import form_schema
from .thumbs import to_png


class Gallery(ImageWidget):
    """Thumbnails of `images` (PNG bytes or PIL images); click one for full size with its parameters.

    `Gallery.from_folder(folder)` shows the images a Studio (or `batch`) saved into a history folder.
    """

    _esm = assets.esm("gallery")
    _css = assets.css("gallery")

    images: t.List[dict[str, Any]] = t.List().tag(sync=True)  # entries with thumbnails; full PNGs stay kernel-side
    schema = t.Dict(help="The parameter schema (qvac_nb.widgets.form_schema): labels the parameters shown "
                    "with an image.").tag(sync=True)

    def __init__(self, images: Iterable[Any] = ()) -> None:
        super().__init__(schema=form_schema())  # labels a video's frames, fps and flow shift too
        self.add(*images)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str] | None = None, *, prompt: str | None = None,
                    limit: int | None = None) -> Gallery:
        """A Gallery of the images (and videos) saved in a history folder (default `qvac_nb_outputs/`), newest first.

        `prompt` keeps the ones whose prompt contains it (case-insensitive); `limit` the newest that many.
        The files stay on disk: a full-size image, or a video to play, is read from its file when asked for.
        """
        gallery = cls()
        entries = []
        for record in history_folder.history(folder, prompt=prompt, limit=limit):
            entry = gallery._store.add_file(record.path, **record_extra(record))
            if entry is not None:
                entries.append(entry)
        gallery.images = entries
        return gallery

    def add(self, *images: Any) -> None:
        """Append images (PNG bytes, PIL images or anything `diffusion`'s init_image accepts)."""
        self.images = list(self.images) + [self._store.add(to_png(image), kind="image") for image in images]

    @property
    def pngs(self) -> list[bytes]:
        return [png for entry in self.images if (png := self._store.get(entry["id"])) is not None]

    def _entries(self) -> list[dict[str, Any]]:
        return list(self.images)

    def _listing_trait(self) -> str:
        return "images"


def record_extra(record: history_folder.Record) -> dict[str, Any]:
    """What a gallery entry carries from a history record besides the PNG's own parameters."""
    extra = record.extra
    out: dict[str, Any] = {"kind": str(extra.get("kind") or "diffusion"), "family": str(extra.get("family") or ""),
                           "model": str(extra.get("model") or ""), "created": record.created.isoformat()}
    if extra.get("grid"):
        out["grid"] = str(extra["grid"])  # a grid image's axes
    # What the Studio saved besides (the index may have been edited: kept only in the shape it writes).
    if isinstance(extra.get("random_seed"), bool):
        out["random_seed"] = extra["random_seed"]  # the form's seed policy, restored by a new Studio
    if isinstance(extra.get("unused"), list):
        out["unused"] = [str(name) for name in extra["unused"]]  # record keys that did not apply
    if isinstance(extra.get("grid_axes"), dict) and isinstance(extra.get("grid_base"), dict):
        out["grid_axes"] = {k: extra["grid_axes"].get(k) for k in ("x", "y")}  # a grid sheet's "All"
        out["grid_base"] = replayable_params(extra["grid_base"])
        out["img2img"] = bool(extra.get("img2img"))
    return out
