"""Batch workers on this machine: N private copies of the model, each in its own worker process.

Each copy is `models.load_copy` (its own engine worker, never handed out by `load_model`), and an item
is a plain `diffusion()` job on it (`video()` for a video model), so a batch image is made exactly as a notebook
cell would make it.
A copy's worker that dies fails its job with EngineCrashedError; the model's runner starts a new worker
(loading the model again) for the next job, which is the retried item.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Mapping
from typing import Any

from .. import models, records
from ..errors import EngineCrashedError
from ..generation import diffusion
from ..jobs import Job
from .backend import WorkerLost
from .items import Item


def threads_per_worker(workers: int, cores: int) -> int:
    """The engine threads each of `workers` local workers gets when the caller set none: a share of `cores`.

    `cores` is what one engine would use by itself (threads=-1: every physical core). Giving each of N
    workers all of them makes N engines fight over the same cores, slower than one worker.
    """
    return max(1, cores // max(1, workers))


class LocalBackend:
    """Slots are model ids of private copies; tasks are their jobs (DiffusionJob, or VideoJob for a video model)."""

    kind = "local"

    def __init__(self, model_src: str, model_config: Mapping[str, Any] | None) -> None:
        self.model_src = model_src
        self.model_config = dict(model_config) if model_config is not None else None
        self.makes_video = (model_config or {}).get("mode") == "video"
        self._ids: list[str] = []
        self._lock = threading.Lock()
        self._stopped = False

    def open(self, count: int) -> list[str]:
        """Load `count` copies at once (the loads overlap); returns their model ids."""
        with concurrent.futures.ThreadPoolExecutor(count, thread_name_prefix="qvac_nb-batch-load") as pool:
            futures = [pool.submit(self._load_one) for _ in range(count)]
            errors = [f.exception() for f in futures]
        if any(errors):
            self.stop()
            raise next(e for e in errors if e is not None)
        return list(self._ids)

    def _load_one(self) -> str:
        model_id = models.load_copy(self.model_src, model_config=self.model_config)
        with self._lock:
            self._ids.append(model_id)
            stopped = self._stopped
        if stopped:  # cancelled while loading
            models.unload_model(model_id=model_id)
        return model_id

    def submit(self, slot: str, item: Item) -> Job:
        # Raises a QvacError at once for what validate_diffusion refuses on this model (recorded on the item).
        if self.makes_video:
            from ..video_generation import video  # noqa: PLC0415

            return video(model_id=slot, **item.params)
        return diffusion(model_id=slot, **item.params)

    def wait(self, tasks: list[Job], timeout: float) -> list[Job]:
        by_future: dict[concurrent.futures.Future[Any], Job] = {task.outputs: task for task in tasks}
        done, _ = concurrent.futures.wait(list(by_future), timeout, concurrent.futures.FIRST_COMPLETED)
        return [by_future[f] for f in done]

    def collect(self, task: Job) -> tuple[bytes, dict[str, Any], float]:
        """(PNG or video file, its parameters, generation ms); raises WorkerLost or the item's own error."""
        try:
            outputs = task.outputs.result(0)
            stats = task.stats.result(0)
        except EngineCrashedError as exc:
            raise WorkerLost(str(exc)) from exc
        if task.kind == "video":
            return bytes(outputs[0]), outputs[0].record, stats.generation_ms
        return outputs[0], records.image_record(task.params, 0), stats.generation_ms

    def replace(self, slot: str) -> str:
        # The copy's runner already starts a new worker (and loads the model) for its next job.
        return slot

    def describe(self, slot: str) -> str:
        return f"local-{self._ids.index(slot) + 1}" if slot in self._ids else "local"

    def worker_pid(self, slot: str) -> int | None:
        """The process id of the engine worker behind `slot` (None between a crash and its restart)."""
        from .. import runner

        model_runner = runner.runner_for(slot)
        worker = model_runner.worker if model_runner is not None else None
        return worker.proc.pid if worker is not None and worker.alive() else None

    def cancel(self, task: Job) -> None:
        task.cancel()

    def stop(self) -> None:
        """Unload every copy: their workers end now and their jobs are cancelled."""
        with self._lock:
            self._stopped = True
            ids, self._ids = list(self._ids), []
        for model_id in ids:
            if model_id in models.loaded_models():
                models.unload_model(model_id=model_id)
