"""Turns a job's progress ticks into the small status dict the front-ends draw.

Pure bookkeeping, no widgets: it maps the API's phases to the words shown, estimates
it/s from consecutive sampling ticks and an ETA from it, and decides when a change is
worth a message (phase changes always, otherwise at most `min_interval` apart).
"""

from __future__ import annotations

import time
from typing import Any

PHASES = {"load": "loading", "sample": "sampling", "decode": "decoding", "upscale": "upscaling"}
FINAL_PHASES = ("done", "cancelled", "error")
RATE_SMOOTHING = 0.4  # weight of the newest step interval in the it/s average


def idle_status() -> dict[str, Any]:
    return {"phase": "idle", "step": 0, "total": 0, "its": None, "eta": None, "elapsed": 0.0, "percent": 0.0,
            "image_index": 0, "batch": 1, "message": ""}


class ProgressTracker:
    def __init__(self, batch: int = 1, min_interval: float = 0.1, clock: Any = time.monotonic,
                 first_phase: str = "loading") -> None:
        self.status = {**idle_status(), "phase": first_phase, "batch": batch}
        self._min_interval = min_interval
        self._clock = clock
        self._last_push = float("-inf")
        self._last_sample: tuple[int, float, int] | None = None  # step, elapsed s, image index

    def update(self, step: int, total: int, elapsed_ms: float, phase: str, image_index: int = 0) -> bool:
        """Fold one tick in; True if the front-end should hear about it now."""
        shown = PHASES.get(phase, phase)
        elapsed = elapsed_ms / 1000
        if shown == "sampling":
            self._track_rate(step, elapsed, image_index)
        status = self.status
        changed_phase = shown != status["phase"]
        status.update(phase=shown, step=step, total=total, elapsed=round(elapsed, 2), image_index=image_index,
                      percent=round(100.0 * step / total, 1) if total else 0.0)
        its = status["its"]
        status["eta"] = round((total - step) / its, 1) if its and shown == "sampling" else None
        now = self._clock()
        if changed_phase or step >= total or now - self._last_push >= self._min_interval:
            self._last_push = now
            return True
        return False

    def _track_rate(self, step: int, elapsed: float, image_index: int) -> None:
        last = self._last_sample
        self._last_sample = (step, elapsed, image_index)
        # An interval across two images includes the first one's decode: not a sampling speed.
        if last is None or last[2] != image_index or step <= last[0] or elapsed <= last[1]:
            return
        rate = (step - last[0]) / (elapsed - last[1])
        old = self.status["its"]
        self.status["its"] = round(rate if old is None else RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * old, 3)

    def finish(self, phase: str, message: str = "", **extra: Any) -> dict[str, Any]:
        self.status.update(phase=phase, eta=None, message=message, **extra)
        if phase == "done":
            self.status.update(step=self.status["total"], percent=100.0)
        return dict(self.status)
