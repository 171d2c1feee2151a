"""Running a batch: scheduling items on workers, retries, resume, progress, the records."""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import engine, history_folder, models
from ..checks.values import check_bool, check_int, check_path, check_writable_folder
from ..errors import CallbackError, InvalidParameterError, InvalidTypeError
from ..video_files import sniff
from . import items as items_mod
from .backend import Backend, NoWorkers, WorkerLost
from .items import Item
from .result import CANCELLED, FAILED, OK, SKIPPED, BatchRecord, BatchResult

MAX_RETRIES = 2  # a lost worker's item runs again at most this many times
POLL_S = 0.2  # how often the scheduler looks at a cancel while every worker is busy
MAX_WORKERS = 256

OnRecord = Callable[[BatchRecord], None]


class BatchHandle:
    """A batch running in the background (`batch(..., wait=False)`).

    `result()` waits for the BatchResult; `cancel()` stops every worker (unfinished items are
    recorded as cancelled); `running()` lists the items in flight and the process making each.
    """

    def __init__(self, todo: list[Item], records: list[BatchRecord], backend: Backend, workers: int,
                 folder: Path, progress: bool, on_record: OnRecord | None, started: float | None = None) -> None:
        self._todo = todo
        self._records = records
        self._backend = backend
        self._workers = workers
        self._folder = folder
        self._on_record = on_record
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._inflight: dict[Any, tuple[Any, Item, float]] = {}
        self._error: BaseException | None = None
        self._replaced = 0
        # From the batch() call on: validation and starting Ray are part of the run's time.
        self._started = time.perf_counter() if started is None else started
        self._elapsed = 0.0
        self._bar = _bar(len(records), len(records) - len(todo)) if progress else None
        self._thread = threading.Thread(target=self._run, name="qvac_nb-batch", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller's side
    def cancel(self) -> None:
        """Stop the batch: every worker ends now; finished images stay saved (a re-run resumes)."""
        self._cancel.set()
        self._backend.stop()

    def done(self) -> bool:
        return self._finished.is_set()

    def result(self, timeout: float | None = None) -> BatchResult:
        """Wait for the batch (at most `timeout` s, else TimeoutError); raises what stopped it, if anything.

        Ctrl-C while waiting cancels the batch.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._finished.wait(0.1):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"the batch is still running after {timeout} s")
        except KeyboardInterrupt:
            self.cancel()
            self._finished.wait(30.0)
            raise
        if self._error is not None:
            raise self._error
        return BatchResult(list(self._records), self._elapsed, self._workers, self._replaced, self._cancel.is_set())

    def running(self) -> list[dict[str, Any]]:
        """The items being made now: {'index', 'worker', 'pid'} (pid: the process that holds the model)."""
        with self._lock:
            inflight = list(self._inflight.values())
        pid_of = getattr(self._backend, "worker_pid", lambda slot: None)
        return [{"index": item.index, "worker": self._backend.describe(slot), "pid": pid_of(slot)}
                for slot, item, _ in inflight]

    def __repr__(self) -> str:
        made = sum(1 for r in self._records if r.status != "pending")
        state = "done" if self.done() else ("cancelling" if self._cancel.is_set() else "running")
        return f"<BatchHandle {made}/{len(self._records)} items {state}>"

    # ------------------------------------------------------------------ scheduler thread
    def _run(self) -> None:
        try:
            if not self._todo:
                return
            slots = self._backend.open(self._workers)
            if not self._cancel.is_set():
                self._schedule(slots)
        except BaseException as exc:  # noqa: BLE001 - handed to result()
            if not self._cancel.is_set():
                self._error = exc
        finally:
            self._backend.stop()
            self._settle_cancelled()
            self._elapsed = time.perf_counter() - self._started
            if self._bar is not None:
                self._bar.close()
            self._finished.set()

    def _schedule(self, slots: list[Any]) -> None:
        queue = collections.deque(self._todo)
        free = collections.deque(slots)
        attempts: collections.Counter[int] = collections.Counter()
        while (queue or self._inflight) and not self._cancel.is_set():
            while free and queue and not self._cancel.is_set():
                slot, item = free.popleft(), queue.popleft()
                attempts[item.index] += 1
                try:
                    task = self._backend.submit(slot, item)
                except Exception as exc:  # noqa: BLE001 - refused on this model: recorded on the item
                    self._finish(item, slot, attempts[item.index], error=exc)
                    free.append(slot)
                    continue
                with self._lock:
                    self._inflight[task] = (slot, item, time.perf_counter())
            if not self._inflight:
                continue
            for task in self._backend.wait(list(self._inflight), POLL_S):
                with self._lock:
                    slot, item, sent = self._inflight.pop(task)
                tries = attempts[item.index]
                try:
                    png, parameters, generation_ms = self._backend.collect(task)
                except WorkerLost as exc:
                    if self._cancel.is_set():
                        break
                    self._replaced += 1
                    slot = self._backend.replace(slot)
                    if tries <= MAX_RETRIES:
                        queue.appendleft(item)  # runs again next, on the first free worker
                    else:
                        self._finish(item, slot, tries, error=f"the worker was lost {tries} times running it: {exc}")
                except Exception as exc:  # noqa: BLE001 - the item's own error: recorded, the batch goes on
                    self._finish(item, slot, tries, error=exc)
                else:
                    self._finish(item, slot, tries, png=png, parameters=parameters, generation_ms=generation_ms,
                                 sent=sent)
                free.append(slot)

    def _finish(self, item: Item, slot: Any, tries: int, *, error: BaseException | str | None = None,
                png: bytes | None = None, parameters: Mapping[str, Any] | None = None,
                generation_ms: float | None = None, sent: float | None = None) -> None:
        if self._cancel.is_set():
            return  # stopped under it: _settle_cancelled records it
        record = self._records[item.index]
        record.attempts, record.worker = tries, self._backend.describe(slot)
        if error is None and png is not None:
            try:
                saved = history_folder.save(png, parameters or {}, self._folder, key=item.key,
                                            extra={"batch_index": item.index, "worker": record.worker,
                                                   "generation_ms": generation_ms}, suffix=_suffix(png))
            except Exception as exc:  # noqa: BLE001 - a full disk fails this item, not the kernel
                error = exc
            else:
                record.status, record.path, record.parameters = OK, saved.path, saved.parameters
                record.generation_ms = generation_ms
                record.wall_ms = (time.perf_counter() - sent) * 1000 if sent is not None else None
        if error is not None:
            record.status = FAILED
            record.error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if self._bar is not None:
            self._bar.update(1)
            failed = sum(1 for r in self._records if r.status == FAILED)
            if failed:
                self._bar.set_postfix(failed=failed, refresh=False)
        if self._on_record is not None:
            try:
                self._on_record(record)
            except Exception as exc:
                error = CallbackError(f"on_record raised {type(exc).__name__}: {exc}; the batch was cancelled")
                error.__cause__ = exc
                self._error = error
                self.cancel()

    def _settle_cancelled(self) -> None:
        for record in self._records:
            if record.status == "pending":
                record.status = CANCELLED
                record.error = "cancelled" if self._error is None else f"not run: {self._error}"


def _suffix(data: bytes) -> str:
    """The history file's suffix: a video's (.mp4, .webp) from its bytes, else .png."""
    kind = sniff(data)
    return f".{kind}" if kind in ("mp4", "webp") else history_folder.IMAGE_SUFFIX


def _bar(total: int, done: int) -> Any:
    from tqdm.auto import tqdm  # a widget in a notebook, text in a terminal

    return tqdm(total=total, initial=done, unit="img", desc="batch", smoothing=0.1)


def batch(items: Any, *, model_src: str | os.PathLike[str], model_config: Mapping[str, Any] | None = None,
          output_dir: str | os.PathLike[str] | None = None, cluster: str | None = None, workers: int | None = None,
          progress: bool = True, wait: bool = True, on_record: OnRecord | None = None,
          ray_options: Mapping[str, Any] | None = None, **defaults: Any) -> BatchResult | BatchHandle:
    """Make many images (or videos): every item of `items`, on N local worker processes or on Ray actors.

    Parameters
    ----------
    items : list of str or dict, a pandas DataFrame, or any iterable of those
        Each item is a prompt or a dict of diffusion() parameters (video() parameters for a video
        model, model_config={'mode': 'video', ...}: one video an item), merged over `defaults`. Every item
        is validated before anything runs; all bad items are reported together (BatchValidationError,
        an InvalidParameterError whose `errors` lists `(position, error)`). An item with
        batch_count=N makes N images (seeds seed..seed+N-1). An item without a seed gets one derived
        from its parameters, so re-running the same call makes the same images.
    model_src, model_config : as for load_model
        Each worker loads its own copy.
    output_dir : folder, default `qvac_nb_outputs/`
        PNGs (videos: MP4 or WebP files), each with its parameters inside, and `index.jsonl`: the
        Studio's history format (`qvac_nb.history(output_dir)` reads it). Items already there (same
        parameters, same model) are skipped, so an interrupted batch continues where it stopped.
    cluster : None, "ray" or a Ray address
        None: worker processes on this machine. "ray": Ray actors, in the Ray session this process
        has, else RAY_ADDRESS's cluster or a new local one; an address ("auto", "ray://head:10001")
        connects there. Needs `pip install 'qvac_nb[ray]'`.
    workers : int
        Local: worker processes (default 1); unless model_config sets threads, N of them share the
        cores (each engine gets cores // N threads instead of all of them). Ray: actors (default one per
        node, or one per GPU when ray_options asks for GPUs). None are started when every item is done.
    progress : bool
        One tqdm bar over the batch (a widget in a notebook) with images/s and ETA.
    wait : bool
        False returns a BatchHandle at once (`.result()`, `.cancel()`, `.running()`).
    on_record : callable
        Called with each item's BatchRecord as it finishes (in the batch's thread).
    ray_options : dict
        Ray actor options, default {'num_cpus': 1}; e.g. {'num_gpus': 1} to put one actor on each GPU.
    **defaults
        diffusion() parameters shared by every item (an item's own values win).

    Returns
    -------
    BatchResult (or a BatchHandle with wait=False)
        `.records`: one BatchRecord per image (status, path, parameters, seed, error, attempts,
        worker, timings); `.to_pandas()`; `.paths`; `.failed`. A failed item does not stop the batch;
        a lost worker is replaced and its item run again (at most twice). Ctrl-C stops all workers.
    """
    started = time.perf_counter()
    model_src = check_path("model_src", model_src)
    config = models.normalize_config(model_config)
    check_bool("progress", progress)
    check_bool("wait", wait)
    if on_record is not None and not callable(on_record):
        raise InvalidTypeError("on_record: expected a callable taking one BatchRecord", param="on_record")
    if cluster is not None and (not isinstance(cluster, str) or not cluster):
        raise InvalidTypeError("cluster: expected None (this machine), 'ray' or a Ray address", param="cluster")
    if ray_options is not None and (cluster is None or not isinstance(ray_options, Mapping)):
        raise InvalidParameterError("ray_options: a dict of Ray actor options, with cluster='ray'", param="ray_options")
    if workers is not None:
        workers = check_int("workers", workers, 1, MAX_WORKERS)
    # Before any work: an unwritable folder would otherwise fail every item after making its image.
    folder = check_writable_folder("output_dir", history_folder.folder_path(output_dir))

    prepared = items_mod.prepare(
        items, defaults, model=items_mod.model_identity(model_src, config), family=items_mod.model_family(model_src),
        names=engine.enum_names(), has_upscaler=bool(config.get("upscaler")), video=config.get("mode") == "video",
    )
    done = history_folder.done_keys(folder)
    records = [_record(item, done.get(item.key)) for item in prepared]
    todo = [item for item in prepared if item.key not in done]

    backend: Backend
    if not todo:  # a re-run of a finished batch: no worker process, no Ray import or cluster start
        backend, count = NoWorkers(), 0
    elif cluster is None:
        from .local import LocalBackend, threads_per_worker

        count = min(workers or 1, len(todo))
        if count > 1 and "threads" not in config:
            # Each engine would otherwise use every core: N workers would fight over them.
            config = {**config, "threads": threads_per_worker(count, engine.resolve_threads(-1))}
        backend = LocalBackend(model_src, config)
    else:
        from .ray_backend import RayBackend

        ray_backend = RayBackend(model_src, config, cluster, ray_options)
        count = workers or ray_backend.default_workers()
        ray_backend.check_fits(count)
        backend = ray_backend
        count = max(1, min(count, len(todo)))
    handle = BatchHandle(todo, records, backend, count, folder, progress, on_record, started)
    if not wait:
        return handle
    return handle.result()


def _record(item: Item, done: history_folder.Record | None) -> BatchRecord:
    record = BatchRecord(item.index, "pending", str(item.params.get("prompt", "")), item.seed, key=item.key)
    if done is not None:
        record.status, record.path, record.parameters = SKIPPED, done.path, done.parameters
    return record


__all__ = ["batch", "BatchHandle"]
