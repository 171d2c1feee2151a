"""Video files: MP4 (H.264 through PyAV, whose wheels carry FFmpeg) and animated WebP (Pillow), with the
generation parameters inside, and `Video`, what a video job gives back.

The record travels as JSON: in an MP4 as its `comment` tag (FFmpeg's mov muxer writes it in the `udta`
box, where players show it as the comment), in a WebP as its XMP packet. Neither holds a local path:
the model is recorded by its file name.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import InvalidParameterError

MP4_RECORD_TAG = "comment"
XMP_PREFIX = b"qvac_nb:"  # the WebP's XMP packet is this prefix and the record's JSON
# H.264 at constant quality 18: visually lossless for generated frames (a decoded frame stays within a
# few levels of the engine's pixels); yuv420p, the one pixel format every browser plays.
MP4_CRF = "18"
MAX_INLINE_BYTES = 64 * 2**20  # larger videos are not embedded in the notebook (see Video._repr_html_)


def _even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: a trailing odd row or column is repeated (Wan sides are multiples of 16)."""
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frames


def encode_mp4(frames: np.ndarray, fps: int, record: dict[str, Any] | None = None) -> bytes:
    """`frames` (T, H, W, 3) uint8 as an H.264 MP4 at `fps`, with `record` in its comment tag."""
    import av  # noqa: PLC0415 - FFmpeg loads only when a video is written

    out = io.BytesIO()
    frames = _even(np.ascontiguousarray(frames, dtype=np.uint8))
    with av.open(out, mode="w", format="mp4") as container:
        if record is not None:
            container.metadata[MP4_RECORD_TAG] = json.dumps(record, sort_keys=True)
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # One thread: the worker's engine already uses the cores, and a fixed encoder makes the same bytes.
        stream.options = {"crf": MP4_CRF, "preset": "medium", "threads": "1"}
        stream.codec_context.thread_count = 1
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return out.getvalue()


def encode_webp(frames: np.ndarray, fps: int, record: dict[str, Any] | None = None) -> bytes:
    """`frames` as a lossless animated WebP at `fps` (looping), with `record` as its XMP packet."""
    images = [Image.fromarray(np.ascontiguousarray(f, dtype=np.uint8)) for f in frames]
    out = io.BytesIO()
    extra: dict[str, Any] = {}
    if record is not None:
        extra["xmp"] = XMP_PREFIX + json.dumps(record, sort_keys=True).encode()
    images[0].save(out, format="WEBP", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0, lossless=True, quality=100, method=0, **extra)
    return out.getvalue()


def encode(frames: np.ndarray, fps: int, output_format: str, record: dict[str, Any] | None = None) -> bytes:
    return (encode_mp4 if output_format == "mp4" else encode_webp)(frames, fps, record)


def sniff(data: bytes) -> str | None:
    """'mp4', 'webp', 'png' or None, from the first bytes."""
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return None


def read_record(data: bytes) -> str | None:
    """The record text a video qvac_nb wrote carries (None when it has none)."""
    kind = sniff(data)
    if kind == "mp4":
        import av  # noqa: PLC0415

        with av.open(io.BytesIO(data)) as container:
            return container.metadata.get(MP4_RECORD_TAG)
    if kind == "webp":
        with Image.open(io.BytesIO(data)) as img:
            xmp = img.info.get("xmp")
        if isinstance(xmp, bytes) and xmp.startswith(XMP_PREFIX):
            return xmp[len(XMP_PREFIX):].decode("utf-8", "replace")
    return None


def decode_frames(data: bytes) -> np.ndarray:
    """The frames of an MP4 or WebP as a (T, H, W, 3) uint8 array."""
    kind = sniff(data)
    if kind == "mp4":
        import av  # noqa: PLC0415

        with av.open(io.BytesIO(data), mode="r") as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    if kind == "webp":
        with Image.open(io.BytesIO(data)) as img:
            out = []
            for i in range(getattr(img, "n_frames", 1)):
                img.seek(i)
                out.append(np.asarray(img.convert("RGB")))
            return np.stack(out)
    raise InvalidParameterError("video: not an MP4 or WebP file", param="video")


@dataclass(frozen=True)
class VideoFacts:
    """What a gallery shows of a video file without decoding it all: its first frame and its counts."""

    first_frame: np.ndarray  # (H, W, 3) uint8
    frame_count: int
    fps: int
    format: str  # "mp4" or "webp"
    record: dict[str, Any]  # the parameters inside ({} for a file qvac_nb did not write)

    @property
    def mime_type(self) -> str:
        return "video/mp4" if self.format == "mp4" else "image/webp"


def probe(data: bytes) -> VideoFacts:
    """The first frame, frame count, frame rate and record of an MP4 or animated WebP.

    Raises InvalidParameterError for anything else (a still WebP is an image, not a video).
    """
    kind = sniff(data)
    if kind == "mp4":
        import av  # noqa: PLC0415

        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            count, rate = int(stream.frames or 0), stream.average_rate or stream.base_rate or 1
            first = next(container.decode(video=0)).to_ndarray(format="rgb24")
            text = container.metadata.get(MP4_RECORD_TAG)
        return VideoFacts(first, count, max(1, round(float(rate))), kind, parse_record(text))
    if kind == "webp":
        with Image.open(io.BytesIO(data)) as img:
            count = int(getattr(img, "n_frames", 1))
            if count < 2:
                raise InvalidParameterError("video: a still WebP is an image, not a video", param="video")
            first = np.asarray(img.convert("RGB"))  # loads frame 0, which sets its duration
            duration = float(img.info.get("duration") or 0) or 1000.0
        return VideoFacts(first, count, max(1, round(1000 / duration)), kind, parse_record(read_record(data)))
    raise InvalidParameterError("video: not an MP4 or WebP file", param="video")


def parse_record(text: str | None) -> dict[str, Any]:
    """The record JSON `read_record` found, as a dict ({} for none, bad JSON or not an object)."""
    try:
        record = json.loads(text) if text else {}
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


class Video(bytes):
    """A generated video: the file's bytes (MP4 or animated WebP), so code that wants bytes gets them.

    It also keeps the engine's frames exactly as made (`array`, `frames`), its `fps`, `format` and the
    `record` of parameters inside the file; `save(path)` writes it; in a notebook it plays inline.
    """

    array: np.ndarray
    fps: int
    format: str
    record: dict[str, Any]

    def __new__(cls, data: bytes, array: np.ndarray, fps: int, output_format: str,
                record: dict[str, Any]) -> Video:
        self = super().__new__(cls, data)
        self.array, self.fps, self.format, self.record = array, fps, output_format, record
        return self

    def __reduce__(self) -> Any:  # pickles (a batch across processes) as the same object
        return (Video, (bytes(self), self.array, self.fps, self.format, self.record))

    @property
    def frames(self) -> list[Image.Image]:
        """The frames as PIL images."""
        return [Image.fromarray(f) for f in self.array]

    @property
    def frame_count(self) -> int:
        return int(self.array.shape[0])

    @property
    def mime_type(self) -> str:
        return "video/mp4" if self.format == "mp4" else "image/webp"

    def save(self, path: str | Path) -> Path:
        """Write the file to `path` (its suffix is up to you; .mp4 or .webp is what players expect)."""
        target = Path(path)
        target.write_bytes(bytes(self))
        return target

    def webp(self) -> bytes:
        """The same frames as an animated WebP (for front-ends that cannot play MP4)."""
        return bytes(self) if self.format == "webp" else encode_webp(self.array, self.fps, self.record)

    def __repr__(self) -> str:
        h, w = self.array.shape[1:3]
        return (f"<Video {self.format} {w}x{h}, {self.frame_count} frames at {self.fps} fps, "
                f"{len(self):,} bytes>")

    def _repr_html_(self) -> str:
        return player_html(self)


def player_html(video: Video, *, strip: int = 6) -> str:
    """An inline player: a looping <video> of the MP4 (an <img> of the WebP otherwise), a download link
    and a strip of frames. Self-contained (data: URLs): it plays in a saved or exported notebook too."""
    if len(video) > MAX_INLINE_BYTES:
        return f"<pre>{html.escape(repr(video))} (too large to embed; save() it)</pre>"
    data = base64.b64encode(bytes(video)).decode("ascii")
    url = f"data:{video.mime_type};base64,{data}"
    h, w = video.array.shape[1:3]
    name = f"qvac_nb_video.{video.format}"
    if video.format == "mp4":
        fallback = base64.b64encode(video.webp()).decode("ascii")
        media = (f'<video class="qvac-nb-video" width="{w}" height="{h}" controls loop autoplay muted playsinline '
                 f'src="{url}"><img src="data:image/webp;base64,{fallback}" alt="video frames"></video>')
    else:
        media = f'<img class="qvac-nb-video" width="{w}" height="{h}" src="{url}" alt="animated WebP">'
    thumbs = "".join(f'<img src="data:image/png;base64,{_thumb(video.array[i])}" title="frame {i + 1}" '
                     f'style="height:48px;margin-right:2px">' for i in _strip_indices(video.frame_count, strip))
    caption = html.escape(str(video.record.get("prompt", "")))[:200]
    return (f'<div class="qvac-nb-player">{media}<div>{thumbs}</div>'
            f'<div><a download="{name}" href="{url}">Download {video.format.upper()}</a> '
            f'<small>{w}x{h}, {video.frame_count} frames, {video.fps} fps. {caption}</small></div></div>')


def _strip_indices(count: int, wanted: int) -> Sequence[int]:
    if count <= wanted:
        return range(count)
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _thumb(frame: np.ndarray) -> str:
    img = Image.fromarray(frame)
    img.thumbnail((96, 96))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")
