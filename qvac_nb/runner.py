"""One worker thread runs every job in submission order.

The engine's callbacks are process-global, so only one engine call can run at a time;
a single worker keeps jobs in order, leaves the caller's thread (and the Jupyter
kernel) free, and lets a cancel reach a job that is queued or running.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from .jobs import Job

_queue: queue.Queue[tuple[Job, Callable[[], None]]] = queue.Queue()
_jobs: list[Job] = []  # queued and running
_jobs_lock = threading.Lock()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def _work() -> None:
    while True:
        job, run = _queue.get()
        try:
            run()
        except BaseException as exc:  # the job's own code reports errors; this is a last resort
            if not job.done():
                job._finish(None, None, exc)
        finally:
            with _jobs_lock:
                if job in _jobs:
                    _jobs.remove(job)


def submit(job: Job, run: Callable[[], None]) -> None:
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="qvac_nb-engine", daemon=True)
            _worker.start()
    with _jobs_lock:
        _jobs.append(job)
    _queue.put((job, run))


def jobs_for(model_id: str) -> list[Job]:
    with _jobs_lock:
        return [j for j in _jobs if j.model_id == model_id]


def on_worker_thread() -> bool:
    return threading.current_thread() is _worker


def pending() -> list[Any]:
    with _jobs_lock:
        return list(_jobs)
