"""JobView: what a job shows in a cell: a compact progress bar, then its images."""

from __future__ import annotations

from typing import Any

import traitlets as t

from .. import models, records
from ..errors import QvacError
from ..jobs import Job
from . import assets
from .base import ImageWidget
from .follow import follow_job


class JobView(ImageWidget):
    """Follows `job`: progress while it runs (with a Cancel button), then its images.

    Synced state holds thumbnails only; the front-end asks for the full-size PNGs by message.
    """

    _esm = assets.esm("jobview")
    _css = assets.css("jobview")

    kind = t.Unicode("diffusion").tag(sync=True)
    status = t.Dict().tag(sync=True)
    images: t.List[Any] = t.List().tag(sync=True)

    def __init__(self, job: Job) -> None:
        super().__init__(kind=job.kind)
        self._job = job
        self._handlers["cancel"] = lambda _c, _b: job.cancel()

        family = _family(job.model_id)

        def done(outputs: list[bytes], _stats: Any) -> None:
            if job.kind == "video":  # one Video: its first frame as the card, the file fetched to play
                self.images = [self._store.add_video(v, kind=job.kind, family=family) for v in outputs]
            else:
                # Plain bytes, not the outputs' PngImage (a bytes subclass): marimo's comm serializes a
                # message's buffers with msgspec, which sends a subclass as {} (the full PNG never arrives).
                self.images = [self._store.add(bytes(png), kind=job.kind, family=family) for png in outputs]

        def finish(final: dict[str, Any]) -> None:
            if final["phase"] == "error":
                self.error = final["message"]

        follow_job(job, self._set_status, done, on_finish=finish, batch=records.image_count(job.params),
                   extra={"kind": job.kind, "seed": job.params.get("seed")})

    def _set_status(self, status: dict[str, Any]) -> None:
        self.status = status

    def _entries(self) -> list[dict[str, Any]]:
        return list(self.images)

    def _listing_trait(self) -> str:
        return "images"

    def _static_title(self) -> str:
        return f"qvac_nb {self._job.kind} job on {self._job.model_id}"

    def _static_note(self) -> str:
        if self.images:
            return "its images (thumbnails; the full PNGs carry their parameters)"
        return "still running when this was saved" if not self._job.done() else "it made no image"

    @property
    def job(self) -> Job:
        return self._job


def _family(model_id: str) -> str:
    try:
        return models.get_model(model_id).family
    except QvacError:  # unloaded already: the family only refines what the front-end lists
        return ""
