"""Following a job from a widget-side thread, so the kernel stays free for widget messages (e.g. Cancel)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .. import runner
from ..errors import CancelledError
from ..jobs import Job
from ..progress_stream import ProgressTick
from .progress import ProgressTracker

StatusSink = Callable[[dict[str, Any]], None]
QUEUE_POLL_S = 0.25


def follow_job(
    job: Job,
    on_status: StatusSink,
    on_done: Callable[[list[bytes], Any], None],
    *,
    on_preview: Callable[[ProgressTick], None] | None = None,
    on_finish: Callable[[dict[str, Any]], None] | None = None,
    batch: int = 1,
    min_interval: float = 0.1,
    extra: dict[str, Any] | None = None,
) -> threading.Thread:
    """Start a daemon thread that reports the job's progress, then its outputs or its error.

    `on_status(status)` gets throttled status dicts; `on_done(pngs, stats)` runs before the
    final status so the images are there when the front-end hears "done"; `on_finish(status)`
    gets that final status (done, cancelled or error) whatever happened. `extra` is merged
    into every status (e.g. the job's kind and seed).
    """
    # An upscale job may report no ticks at all (one tile): show its phase from the start.
    first = "upscaling" if job.kind == "upscale" else "loading"
    tracker = ProgressTracker(batch=batch, min_interval=min_interval, first_phase=first)
    tracker.status.update(extra or {})

    def run() -> None:
        _wait_in_queue(job, tracker, on_status)
        on_status(dict(tracker.status))
        for tick in job.progress_stream:
            if tracker.update(tick.step, tick.total_steps, tick.elapsed_ms, tick.phase, tick.image_index):
                on_status(dict(tracker.status))
            if tick.preview and on_preview is not None:
                on_preview(tick)
        final = _outcome(job, tracker, on_done)
        on_status(final)
        if on_finish is not None:
            on_finish(final)

    thread = threading.Thread(target=run, name=f"qvac_nb-follow-{job.kind}", daemon=True)
    thread.start()
    return thread


def jobs_ahead(job: Job) -> int:
    """How many jobs of the same model run or wait before `job` (0 once it runs, or when it is unknown)."""
    jobs = runner.jobs_for(job.model_id)
    return jobs.index(job) if job in jobs else 0


def _wait_in_queue(job: Job, tracker: ProgressTracker, on_status: StatusSink) -> None:
    """While other jobs of the model come first, say "queued (N ahead)" rather than "loading"."""
    shown = 0
    while not job.done() and (ahead := jobs_ahead(job)) > 0:
        if ahead != shown:
            shown = ahead
            on_status({**tracker.status, "phase": "queued", "ahead": ahead, "message": f"{ahead} ahead"})
        time.sleep(QUEUE_POLL_S)


def _outcome(job: Job, tracker: ProgressTracker, on_done: Callable[[list[bytes], Any], None]) -> dict[str, Any]:
    try:
        pngs = job.outputs.result()
        stats = job.stats.result()
    except CancelledError as exc:
        return tracker.finish("cancelled", str(exc))
    except Exception as exc:  # noqa: BLE001 - every failure is shown in the widget
        return tracker.finish("error", _describe(exc))
    try:
        on_done(pngs, stats)
    except Exception as exc:  # noqa: BLE001 - e.g. a thumbnail that failed; still show it
        return tracker.finish("error", _describe(exc))
    return tracker.finish("done", "", elapsed=round(stats.total_wall_ms / 1000, 2), seed=stats.seed)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
