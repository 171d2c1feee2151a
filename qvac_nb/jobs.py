"""Jobs returned by `diffusion` and `upscale`: a progress stream, outputs, stats, cancel."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .errors import CancelledError
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Outcome(concurrent.futures.Future):
    """A future that can also be awaited: `outcome.result(timeout)` or `await outcome`."""

    def __await__(self):  # noqa: ANN204 - generator protocol
        return asyncio.wrap_future(self).__await__()

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        except KeyboardInterrupt:
            # Ctrl-C while a cell waits: stop the job rather than leave it running unseen.
            owner = getattr(self, "_owner", None)
            if owner is not None:
                owner.cancel()
            raise


class Job:
    """Shared machinery of DiffusionJob and UpscaleJob."""

    kind = "job"

    def __init__(self, model_id: str, params: dict[str, Any]) -> None:
        self.model_id = model_id
        self.params = params
        self.progress_stream = ProgressStream()
        self.outputs: Outcome = Outcome()
        self.stats: Outcome = Outcome()
        self.outputs._owner = self  # type: ignore[attr-defined]
        self.stats._owner = self  # type: ignore[attr-defined]
        self.created = time.perf_counter()
        self._cancel_event = threading.Event()
        self._engine_job: Any = None  # the _engine.Job while running
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Stop the job: a queued job never starts; a running one stops within a step."""
        with self._lock:
            self._cancel_event.set()
            if self._engine_job is not None:
                self._engine_job.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel_event.is_set()

    def done(self) -> bool:
        return self.outputs.done()

    def images(self, timeout: float | None = None) -> list[Any]:
        """The outputs as PIL images (waits for them)."""
        from .images import png_to_pil

        return [png_to_pil(png) for png in self.outputs.result(timeout)]

    # Set by the runner.
    def _attach(self, engine_job: Any) -> None:
        with self._lock:
            self._engine_job = engine_job
            if self._cancel_event.is_set():
                engine_job.cancel()

    def _finish(self, outputs: list[bytes] | None, stats: Stats | None, error: BaseException | None) -> None:
        with self._lock:
            self._engine_job = None
        self.progress_stream.close()
        if error is not None:
            self.outputs.set_exception(error)
            self.stats.set_exception(error)
        else:
            self.outputs.set_result(outputs)
            self.stats.set_result(stats)

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


class DiffusionJob(Job):
    kind = "diffusion"


class UpscaleJob(Job):
    kind = "upscale"
