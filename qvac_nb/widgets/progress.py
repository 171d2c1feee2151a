"""Turns a job's progress ticks into the small status dict the front-ends draw.

Pure bookkeeping, no widgets: it maps the API's phases to the words shown, estimates
it/s from consecutive sampling ticks and an ETA from it, and decides when a change is
worth a message (phase changes always, otherwise at most `min_interval` apart).

The engine counts steps over the whole job (a batch of 4 at 6 steps runs 24); the status
also carries the current image's own step (`image_step` of `image_total`) for the label.
The ETA includes decoding: each image's decode time is measured as it happens and the
images still to decode are counted in; until one decode is measured, `eta_decode` is False
(the ETA is the sampling part only and says so).
"""

from __future__ import annotations

import time
from typing import Any

PHASES = {"load": "loading", "sample": "sampling", "decode": "decoding", "upscale": "upscaling"}
FINAL_PHASES = ("done", "cancelled", "error")
RATE_SMOOTHING = 0.4  # weight of the newest step interval in the it/s average


def idle_status() -> dict[str, Any]:
    return {"phase": "idle", "step": 0, "total": 0, "its": None, "eta": None, "elapsed": 0.0, "percent": 0.0,
            "image_index": 0, "batch": 1, "message": "", "image_step": 0, "image_total": 0, "eta_decode": False,
            "decode_elapsed": None}


class ProgressTracker:
    def __init__(self, batch: int = 1, min_interval: float = 0.1, clock: Any = time.monotonic,
                 first_phase: str = "loading") -> None:
        self.status = {**idle_status(), "phase": first_phase, "batch": batch}
        self._min_interval = min_interval
        self._clock = clock
        self._last_push = float("-inf")
        self._last_sample: tuple[int, float, int] | None = None  # step, elapsed s, image index
        self._decode_started: float | None = None  # elapsed s when the current decode began
        self._decodes: list[float] = []  # measured decode durations, s

    def update(self, step: int, total: int, elapsed_ms: float, phase: str, image_index: int = 0) -> bool:
        """Fold one tick in; True if the front-end should hear about it now."""
        shown = PHASES.get(phase, phase)
        elapsed = elapsed_ms / 1000
        if shown == "sampling":
            self._track_rate(step, elapsed, image_index)
        status = self.status
        changed_phase = shown != status["phase"]
        self._track_decode(shown, elapsed)
        batch = max(int(status.get("batch") or 1), 1)
        per_image = total // batch if total and total % batch == 0 else total
        status.update(phase=shown, step=step, total=total, elapsed=round(elapsed, 2), image_index=image_index,
                      percent=round(100.0 * step / total, 1) if total else 0.0, image_total=per_image,
                      image_step=max(0, min(per_image, step - image_index * per_image)) if per_image else step)
        status["eta"], status["eta_decode"] = self._eta(shown, step, total, elapsed, image_index, batch)
        status["decode_elapsed"] = (round(elapsed - self._decode_started, 1)
                                    if shown == "decoding" and self._decode_started is not None else None)
        now = self._clock()
        if changed_phase or step >= total or now - self._last_push >= self._min_interval:
            self._last_push = now
            return True
        return False

    def _track_decode(self, shown: str, elapsed: float) -> None:
        if shown == "decoding" and self._decode_started is None:
            self._decode_started = elapsed
        elif shown != "decoding" and self._decode_started is not None:
            self._decodes.append(max(0.0, elapsed - self._decode_started))
            self._decode_started = None

    def _eta(self, shown: str, step: int, total: int, elapsed: float, image_index: int,
             batch: int) -> tuple[float | None, bool]:
        """Seconds left (sampling plus the decodes still to come) and whether decoding is in it."""
        if shown not in ("sampling", "decoding"):
            return None, False
        its = self.status["its"]
        sampling = (total - step) / its if its else None
        if sampling is None and shown == "sampling":
            return None, False
        decode = sum(self._decodes) / len(self._decodes) if self._decodes else None
        if decode is None:
            return (round(sampling, 1) if sampling is not None else None), False
        # Images still to decode: this one too unless it is decoding now (then what is left of it).
        left = batch - image_index - (1 if shown == "decoding" else 0)
        current = max(0.0, decode - (elapsed - self._decode_started)) if shown == "decoding" and \
            self._decode_started is not None else 0.0
        return round((sampling or 0.0) + left * decode + current, 1), True

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
        self.status.update(phase=phase, eta=None, message=message, decode_elapsed=None, **extra)
        if phase == "done":
            self.status.update(step=self.status["total"], percent=100.0, image_step=self.status["image_total"])
        return dict(self.status)
