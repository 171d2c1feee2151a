"""Jobs returned by `diffusion` and `upscale`: a progress stream, outputs, stats, cancel."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .errors import CancelledError
from .png_image import ImageStats, PngImage
from .progress_stream import ProgressStream


@dataclass(frozen=True)
class Stats:
    model_load_ms: float
    generation_ms: float  # the engine's work: sampling and decoding (plus upscaling for upscale jobs)
    total_generation_ms: float  # engine work plus upscaling and PNG encoding
    total_wall_ms: float  # from the call to the outputs being ready, queueing included
    total_steps: int
    total_generations: int
    total_images: int
    total_pixels: int
    width: int
    height: int
    seed: int
    # Per phase, measured in the worker (0 where a job has no such phase, e.g. an upscale job).
    conditioning_ms: float = 0.0  # text encoding and VAE-encoding input images
    denoising_ms: float = 0.0  # the sampling steps (both passes of a hires fix)
    vae_decode_ms: float = 0.0
    postprocess_ms: float = 0.0  # paired upscaling and PNG encoding
    steps_per_second: float = 0.0  # total_steps / denoising time
    total_frames: int = 0  # video jobs: the frames made (4k + 1)
    fps: int = 0  # video jobs: frames a second of the file
    images: tuple[ImageStats, ...] = ()  # per output image, in output order (empty for video jobs)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Outcome(concurrent.futures.Future):
    """A future that can also be awaited: `outcome.result(timeout)` or `await outcome`.

    Cancelling it (`outcome.cancel()`, or cancelling an asyncio task awaiting it, as
    `asyncio.wait_for` does on a timeout) cancels the job.
    """

    _owner: Job | None = None

    def __await__(self):  # noqa: ANN204 - generator protocol
        return asyncio.wrap_future(self).__await__()

    def result(self, timeout: float | None = None) -> Any:
        try:
            if _wait_hook is not None and not self.done():
                # In a kernel the widgets wait here so their messages (a Cancel click) are still
                # handled (qvac_nb.widgets.pump); the core does not import them.
                start = time.monotonic()
                _wait_hook(self, timeout)
                if timeout is not None:
                    timeout = max(0.0, timeout - (time.monotonic() - start))
            return super().result(timeout)
        except KeyboardInterrupt:
            # Ctrl-C while a cell waits: stop the job rather than leave it running unseen.
            if self._owner is not None:
                self._owner.cancel()
            raise

    def cancel(self) -> bool:
        if self.done():
            return False
        if self._owner is not None:
            self._owner.cancel()
        return super().cancel()


class Job:
    """Shared machinery of DiffusionJob and UpscaleJob."""

    kind = "job"

    def __init__(self, model_id: str, params: dict[str, Any]) -> None:
        self.model_id = model_id
        self.params = params
        self.progress_stream = ProgressStream()
        self.outputs: Outcome = Outcome()
        self.stats: Outcome = Outcome()
        self.outputs._owner = self
        self.stats._owner = self
        self.created = time.perf_counter()
        self._cancel_event = threading.Event()
        self._canceller: Callable[[Job], None] | None = None  # set by the model's runner
        self._listener_error: BaseException | None = None

    def cancel(self) -> None:
        """Stop the job: a queued job never starts; a running one stops within a sampling step.

        Where the engine cannot stop (loading, decoding, upscaling) its worker process is ended
        within about a second and the model reloads on its next use.
        """
        if self._cancel_event.is_set() or self.done():
            return
        self._cancel_event.set()
        if self._canceller is not None:
            self._canceller(self)

    @property
    def cancelled(self) -> bool:
        return self._cancel_event.is_set()

    def done(self) -> bool:
        return self.outputs.done()

    def images(self, timeout: float | None = None) -> list[Any]:
        """The outputs as PIL images (waits for them)."""
        from .images import png_to_pil

        return [png_to_pil(png) for png in self.outputs.result(timeout)]

    # Called by the runner, once.
    def _finish(self, outputs: Sequence[bytes] | None, stats: Stats | None, error: BaseException | None) -> None:
        self._canceller = None  # nothing to stop any more; also breaks the job <-> runner reference
        self.progress_stream.close()
        for future, value in ((self.outputs, outputs), (self.stats, stats)):
            try:
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(value)
            except concurrent.futures.InvalidStateError:  # already cancelled by its owner (e.g. asyncio)
                pass

    def _cancelled_error(self) -> CancelledError:
        return CancelledError(f"{self.kind} job on model '{self.model_id}' was cancelled")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        # The views register how a job shows itself (qvac_nb.widgets.display); the core does not import them.
        if _display_hook is not None:
            return _display_hook(self)
        return {"text/plain": repr(self)}

    def __repr__(self) -> str:
        state = "done" if self.done() else ("cancelling" if self.cancelled else "running")
        return f"<{type(self).__name__} model_id={self.model_id!r} {state}>"


_display_hook: Callable[[Job], Any] | None = None


def set_display_hook(hook: Callable[[Job], Any] | None) -> None:
    """Register how a job renders in a notebook (`_repr_mimebundle_`); None restores plain text."""
    global _display_hook
    _display_hook = hook


# How a blocking wait waits: hook(future, timeout) returns once the future is done, `timeout`
# seconds have passed, or it can't help (result() then waits out the rest itself).
_wait_hook: Callable[[concurrent.futures.Future, float | None], None] | None = None


def set_wait_hook(hook: Callable[[concurrent.futures.Future, float | None], None] | None) -> None:
    """Register how `Outcome.result()` waits (the widgets pump their messages there); None: a plain wait."""
    global _wait_hook
    _wait_hook = hook


class _PngJob(Job):
    """A job whose outputs are PNGs: they come out as `PngImage`s (bytes a notebook shows as images) that
    carry their records, so nothing reads a record back from bytes the kernel made."""

    def _finish(self, outputs: Sequence[bytes] | None, stats: Stats | None, error: BaseException | None) -> None:
        per_image = stats.images if stats is not None else ()
        images = None if outputs is None else [
            PngImage(png, self.image_record(i), per_image[i] if i < len(per_image) else None)
            for i, png in enumerate(outputs)
        ]
        super()._finish(images, stats, error)

    def image_record(self, index: int) -> dict[str, Any] | None:
        """The record the worker wrote into output `index`."""
        raise NotImplementedError


class DiffusionJob(_PngJob):
    kind = "diffusion"

    def image_record(self, index: int) -> dict[str, Any] | None:
        from .records import image_record  # the schema's tables: loaded once a job exists anyway

        return image_record(self.params, index)


class UpscaleJob(_PngJob):
    kind = "upscale"

    def __init__(self, model_id: str, params: dict[str, Any], record: dict[str, Any] | None = None) -> None:
        super().__init__(model_id, params)
        self.record = record  # the source image's record plus "upscaled", or None

    def image_record(self, index: int) -> dict[str, Any] | None:
        return self.record
