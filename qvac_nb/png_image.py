"""`PngImage`: what a job's outputs are: a PNG's bytes that a notebook shows as the image, with its record and
what making it cost (`ImageStats`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ImageStats:
    """What one output image of a job cost (`png.stats`, and `job.stats.result().images` in output order).

    The engine encodes the prompt once for a whole batch, so conditioning stays on the job's `Stats`;
    sampling, decoding and post-processing are measured image by image. 0.0 where the image had no such
    phase (an upscale has no sampling).
    """

    index: int  # position in the job's outputs
    seed: int  # the seed that made it (-1 for an upscale of an image without a record)
    width: int
    height: int
    steps: int  # sampling steps it took (both passes of a hires fix)
    denoising_ms: float  # its sampling steps
    vae_decode_ms: float  # decoding its latent into pixels
    postprocess_ms: float  # its paired upscaling and PNG encoding


class PngImage(bytes):
    """A PNG qvac_nb made. It is `bytes` (save it, hash it, pass it on), a cell shows it as the image, and
    its repr is one short line instead of the PNG's bytes.

    `record` is the generation record the PNG carries (the same dict its `qvac_nb` text chunk holds, as the
    job made it: nothing reads it back from the bytes); `seed` is its seed. Both are None for a PNG
    without one (an upscale of an image that had none). `stats` is what making this image cost
    (`ImageStats`: its seed, size, steps, sampling, decoding and post-processing times), None for a PNG
    that did not come out of a job.
    """

    record: dict[str, Any] | None
    stats: ImageStats | None

    def __new__(cls, data: bytes, record: dict[str, Any] | None = None,
                stats: ImageStats | None = None) -> PngImage:
        image = super().__new__(cls, data)
        image.record = record
        image.stats = stats
        return image

    @property
    def seed(self) -> int | None:
        """The seed that made this image (its record's), or None."""
        seed = (self.record or {}).get("seed")
        return seed if isinstance(seed, int) else None

    def _repr_png_(self) -> bytes:
        return bytes(self)

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) from the PNG's header; None for bytes that are not a PNG."""
        if len(self) < 24 or not self.startswith(_SIGNATURE) or self[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", self[16:24])
        return width, height

    def __repr__(self) -> str:
        size = self.size
        shape = f"{size[0]}x{size[1]}, " if size else ""
        return f"<PngImage {shape}{len(self):,} bytes>"

    def __reduce__(self) -> Any:  # pickles (a batch across processes, Ray) as the same type, record and stats kept
        return (PngImage, (bytes(self), self.record, self.stats))
