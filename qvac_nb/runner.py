"""Each loaded model's job queue, run in order on that model's worker process.

One `ModelRunner` a model: a thread that sends the model's jobs to its worker one at a time and
relays what comes back (ticks, results, errors) to the job. Different models run at the same time.
When the worker dies the running job fails with `EngineCrashedError` and the next job starts a
new worker, which loads the model again. A cancel reaches a queued job at once (it never starts)
and a running one within a sampling step; where the engine cannot stop (loading, decoding,
upscaling) the worker is ended after `CANCEL_GRACE_S` and the model reloads on its next use. A job
waiting for such a reload is stopped by a cancel or an unload within a poll: the loading worker is ended.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .errors import CancelledError, EngineCrashedError
from .jobs import Job, Stats
from .png_image import ImageStats
from .progress_stream import ProgressTick
from .worker import protocol
from .worker.process import WorkerDied, WorkerProcess


class RunModel(Protocol):
    """What a runner reads of its loaded model (models.LoadedModel)."""

    model_id: str
    load_ms: float


# (on_load_progress, stop): a new worker with the model loaded; raises CancelledError once stop is set
Restart = Callable[[Callable[[dict[str, Any]], None], threading.Event], WorkerProcess]
CANCEL_GRACE_S = 1.0  # how long a phase the engine cannot interrupt may run on after a cancel
# A worker silent this long while loading or running a job is asked whether it still answers; no answer
# within PING_TIMEOUT_S ends it. Read at each check (tests shorten them).
SILENCE_PING_S = 30.0
PING_TIMEOUT_S = 15.0
POLL_S = 0.05
# How a cancel message names the phase the engine could not stop in: "... was cancelled while <words>".
PHASE_WORDS = {"queued": "starting", "load": "loading what it needs", "encode": "encoding the prompt",
               "sample": "sampling", "decode": "decoding the image", "upscale": "upscaling"}

_job_ids = itertools.count(1)
_runners: dict[str, ModelRunner] = {}
_runners_lock = threading.Lock()


class Liveness:
    """Tells a worker that stopped (SIGSTOP, a hang holding the GIL) from one that is merely busy.

    The worker's main thread answers a ping whatever its engine thread does (a job, a multi-GB load), so
    a long silence is only a question: after SILENCE_PING_S without a message a ping goes out, and no
    answer within PING_TIMEOUT_S means the process no longer runs.
    """

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.last_message = time.monotonic()
        self.ping_sent: float | None = None

    def heard(self) -> None:
        """A message came from the worker."""
        self.last_message, self.ping_sent = time.monotonic(), None

    def stopped(self) -> bool:
        """Called after a poll that returned nothing: True once a ping went unanswered too long."""
        now = time.monotonic()
        if self.ping_sent is not None:
            return now - self.ping_sent > PING_TIMEOUT_S
        if now - self.last_message > SILENCE_PING_S:
            self.worker.send(protocol.PING)
            self.ping_sent = now
        return False

    def end(self, doing: str, after: str) -> EngineCrashedError:
        """End the stopped worker (SIGKILL, reaped) and return the error that says so."""
        self.worker.kill()
        return EngineCrashedError(
            f"the engine worker for {self.worker.label} stopped responding while {doing} (no answer to a ping "
            f"for {PING_TIMEOUT_S:g} s after {SILENCE_PING_S:g} s of silence); it was ended and {after}",
            exit_code=self.worker.proc.poll(), last_output=list(self.worker.tail),
        )


def cancelled_while(phase: str | None) -> str:
    """The words for where a cancel found a job: "while decoding the image", "during its 'x' phase"."""
    if phase is None:
        return "while starting"
    words = PHASE_WORDS.get(phase)
    return f"while {words}" if words else f"during its '{phase}' phase"


class _Running:
    """The bookkeeping of the job a runner is waiting on."""

    def __init__(self, job: Job, job_id: int) -> None:
        self.job = job
        self.job_id = job_id
        self.cancel_sent_at: float | None = None
        self.phase_at_cancel: str | None = None
        self.worker_ended = False  # the worker was ended to stop a phase the engine cannot interrupt
        self.stop = threading.Event()  # set by a cancel or an unload: a reload for this job stops at once


class ModelRunner:
    def __init__(self, model: RunModel, worker: WorkerProcess, restart: Restart) -> None:
        self.model = model
        self.worker: WorkerProcess | None = worker
        self._restart = restart
        self._queue: collections.deque[tuple[Job, str, protocol.Work]] = collections.deque()
        self._cond = threading.Condition()
        self._running: _Running | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=f"qvac_nb-run-{model.model_id}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ any thread
    def submit(self, job: Job, kind: str, work: protocol.Work) -> None:
        with self._cond:
            if self._closing:
                job._finish(None, None, CancelledError(f"model '{self.model.model_id}' was unloaded"))
                return
            job._canceller = self.cancel
            self._queue.append((job, kind, work))
            self._cond.notify_all()

    def jobs(self) -> list[Job]:
        with self._cond:
            running = [self._running.job] if self._running else []
            return running + [job for job, _, _ in self._queue]

    def cancel(self, job: Job) -> None:
        """Called by Job.cancel(): a queued job is settled now; a running one is told to stop."""
        with self._cond:
            for item in self._queue:
                if item[0] is job:
                    self._queue.remove(item)
                    job._finish(None, None, job._cancelled_error())
                    return
            running = self._running
            if running is None or running.job is not job or running.cancel_sent_at is not None:
                return
            running.cancel_sent_at = time.monotonic()
            running.stop.set()
            worker = self.worker
        if worker is not None:
            try:
                worker.send(protocol.CANCEL, running.job_id)
            except WorkerDied:
                pass
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Unload: end the worker now and settle every job (the caller's thread never waits long)."""
        with self._cond:
            self._closing = True
            queued = [job for job, _, _ in self._queue]
            self._queue.clear()
            worker, running = self.worker, self._running
            if running is not None:
                running.stop.set()
            self._cond.notify_all()
        message = f"model '{self.model.model_id}' was unloaded"
        for job in queued:
            job._finish(None, None, CancelledError(message))
        if worker is not None:
            worker.kill()
        if running is not None and threading.current_thread() is not self._thread:
            self._thread.join(2.0)  # the runner settles the running job as soon as it sees the worker gone

    # ------------------------------------------------------------------ runner thread
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                job, kind, work = self._queue.popleft()
                self._running = _Running(job, next(_job_ids))
            try:
                self._run(self._running, kind, work)
            except BaseException as exc:  # last resort: the job's waiter gets the error, the runner goes on
                job._finish(None, None, exc)
            finally:
                with self._cond:
                    self._running = None
            del job, kind, work  # a finished job must not stay reachable from this thread's frame

    def _ensure_worker(self, running: _Running) -> WorkerProcess:
        worker = self.worker
        if worker is not None and worker.alive():
            return worker
        # The last worker died or was ended: load the model again in a new one.
        def on_load(info: dict[str, Any]) -> None:
            if info.get("phase") == "load":
                running.job.progress_stream.push(
                    ProgressTick(info["step"], info["total_steps"], info["elapsed_ms"], "load")
                )

        worker = self._restart(on_load, running.stop)
        with self._cond:
            if self._closing:
                worker.kill()
                raise CancelledError(f"model '{self.model.model_id}' was unloaded")
            self.worker = worker
        return worker

    def _run(self, running: _Running, kind: str, work: protocol.Work) -> None:
        job = running.job
        if job.cancelled:
            job._finish(None, None, job._cancelled_error())
            return
        # Set before a reload: a listener raising on its load ticks cancels the job like any other.
        job.progress_stream.on_listener_error = lambda exc: self._listener_failed(job, exc)
        try:
            worker = self._ensure_worker(running)
        except BaseException as exc:
            stopped = isinstance(exc, CancelledError) and (job.cancelled or self._closing)
            job._finish(None, None, self._cancel_error(job, running, reloading=True) if stopped else exc)
            return
        try:
            worker.send(kind, running.job_id, work)
            self._pump(worker, running)
        except WorkerDied:
            if job.cancelled or self._closing:
                job._finish(None, None, self._cancel_error(job, running))
            else:
                job._finish(None, None, worker.crash_error(f"running a {kind} job"))
            with self._cond:
                if self.worker is worker:
                    self.worker = None

    def _pump(self, worker: WorkerProcess, running: _Running) -> None:
        job = running.job
        liveness = Liveness(worker)
        while True:
            msg = worker.recv(POLL_S)
            if msg is None:
                if running.cancel_sent_at is not None and running.phase_at_cancel != "sample" \
                        and time.monotonic() - running.cancel_sent_at > CANCEL_GRACE_S:
                    running.worker_ended = True
                    worker.kill()  # the engine cannot stop in this phase: end the worker, reload next time
                    raise WorkerDied()
                if liveness.stopped():
                    raise liveness.end(f"running a {job.kind} job", "the model reloads on its next use")
                continue
            liveness.heard()
            kind = msg[0]
            if kind == protocol.TICK:
                _, _, step, total, elapsed, phase, index, preview = msg
                job.progress_stream.push(ProgressTick(step, total, elapsed, phase, index, preview))
            elif kind == protocol.CANCEL_ACK:
                running.phase_at_cancel = msg[2]
            elif kind == protocol.RESULT:
                _, _, count, stats = msg
                outputs = [worker.recv_bytes() for _ in range(count)]
                job._finish(outputs, self._stats(job, stats), None)
                return
            elif kind == protocol.ERROR:
                error = protocol.decode_error(msg[2])
                job._finish(None, None, self._cancel_error(job, running) if isinstance(error, CancelledError)
                            else error)
                return

    def _stats(self, job: Job, worker_stats: dict[str, Any]) -> Stats:
        per_image = tuple(ImageStats(**image) for image in worker_stats.pop("images", ()))
        return Stats(
            model_load_ms=self.model.load_ms,
            total_wall_ms=(time.perf_counter() - job.created) * 1000,
            images=per_image,
            **worker_stats,
        )

    def _cancel_error(self, job: Job, running: _Running, *, reloading: bool = False) -> BaseException:
        """The error of a job that was cancelled (`reloading`: while its model was loading again)."""
        if job._listener_error is not None:
            return job._listener_error
        if self._closing:
            return CancelledError(f"{job.kind} job on model '{self.model.model_id}': the model was unloaded")
        if reloading:
            return CancelledError(
                f"{job.kind} job on model '{self.model.model_id}' was cancelled while the model loaded again; "
                "that load was stopped and runs again on the next use"
            )
        if running.worker_ended:
            where = cancelled_while(running.phase_at_cancel)
            return CancelledError(
                f"{job.kind} job on model '{self.model.model_id}' was cancelled {where}; the engine cannot stop "
                "there, so its worker was ended and the model reloads on its next use"
            )
        return job._cancelled_error()

    def _listener_failed(self, job: Job, exc: BaseException) -> None:
        from .errors import CallbackError

        if job._listener_error is None:
            error = CallbackError(
                f"a progress listener of the {job.kind} job on model '{self.model.model_id}' raised "
                f"{type(exc).__name__}: {exc}; the job was cancelled"
            )
            error.__cause__ = exc
            job._listener_error = error
        job.cancel()


def register(model: RunModel, worker: WorkerProcess, restart: Restart) -> ModelRunner:
    """Run `model`'s jobs on `worker`; `restart(on_progress, stop)` makes a new worker with the model loaded."""
    runner = ModelRunner(model, worker, restart)
    with _runners_lock:
        _runners[model.model_id] = runner
    return runner


def runner_for(model_id: str) -> ModelRunner | None:
    with _runners_lock:
        return _runners.get(model_id)


def unregister(model_id: str) -> ModelRunner | None:
    with _runners_lock:
        return _runners.pop(model_id, None)


def submit(job: Job, kind: str, work: protocol.Work) -> None:
    runner = runner_for(job.model_id)
    if runner is None:
        job._finish(None, None, CancelledError(f"model '{job.model_id}' is not loaded"))
        return
    runner.submit(job, kind, work)


def jobs_for(model_id: str) -> list[Job]:
    runner = runner_for(model_id)
    return runner.jobs() if runner is not None else []


def pending() -> list[Job]:
    with _runners_lock:
        runners = list(_runners.values())
    return [job for runner in runners for job in runner.jobs()]


def close_all() -> None:
    """End every worker (at interpreter exit): running jobs are cancelled, nothing waits long."""
    with _runners_lock:
        runners = list(_runners.values())
        _runners.clear()
    for runner in runners:
        runner.close()
