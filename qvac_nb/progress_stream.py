"""A job's progress ticks for any number of readers: threads, `async for` loops and listeners.

Ticks are pushed from the engine's callback, and the moment the callback returns the engine's
threads take every core again. A reader that was merely notified would then wait for a time slice
(6-16 ms measured on 2 busy cores), so `push` hands over: it waits, GIL released, until every reader
that was blocked on the stream has taken the tick, for at most `HANDOFF_S`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

HANDOFF_S = 0.005  # the longest a tick holds the engine back for a reader that is slow to wake


@dataclass(frozen=True)
class ProgressTick:
    step: int  # steps done so far over the whole job (all images of a batch)
    total_steps: int
    elapsed_ms: float  # since the job started running
    phase: str  # load, sample, decode, upscale
    image_index: int = 0  # which image of the batch is being made
    preview: bytes | None = None  # small PNG of the latent, when asked for

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Listener = Callable[[ProgressTick], None]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ProgressStream:
    """Every tick of a job, for any number of readers; iteration ends when the job does."""

    def __init__(self) -> None:
        self._ticks: list[ProgressTick] = []
        self._closed = False
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []
        self._blocked = 0  # thread readers waiting for a tick
        self._untaken = 0  # readers woken by the last push that have not taken its tick yet
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        # Set by the job's runner: what to do when a listener raises (cancel the job, keep the error).
        self.on_listener_error: Callable[[BaseException], None] | None = None

    def push(self, tick: ProgressTick) -> None:
        with self._cond:
            self._ticks.append(tick)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(tick)
            except BaseException as exc:  # even KeyboardInterrupt: never raised into the runner's thread
                if self.on_listener_error is None:
                    raise
                self.on_listener_error(exc)
        # Wake readers last, right before waiting: a woken reader then finds the GIL free.
        with self._cond:
            self._untaken = self._blocked + self._wake_async_readers()
            self._cond.notify_all()
            if self._untaken:
                self._cond.wait_for(lambda: self._untaken == 0, HANDOFF_S)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._wake_async_readers()
            self._cond.notify_all()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(tick)` for every later tick, on the thread that relays the model's progress.

        A listener may call any qvac_nb function (load, unload, diffusion, cancel). If it raises,
        the job is cancelled and fails with a `CallbackError` whose `__cause__` is that exception.
        """
        with self._cond:
            self._listeners.append(listener)

    @property
    def ticks(self) -> list[ProgressTick]:
        with self._cond:
            return list(self._ticks)

    def __iter__(self) -> Iterator[ProgressTick]:
        index = 0
        while True:
            with self._cond:
                while index >= len(self._ticks) and not self._closed:
                    self._blocked += 1
                    try:
                        self._cond.wait(0.5)
                    finally:
                        self._blocked -= 1
                    if index < len(self._ticks):
                        self._taken()
                if index >= len(self._ticks):
                    return
                tick = self._ticks[index]
            index += 1
            yield tick

    async def __aiter__(self) -> AsyncIterator[ProgressTick]:
        loop = asyncio.get_running_loop()
        index = 0
        while True:
            with self._cond:
                batch = self._ticks[index:]
                closed = self._closed
                waiter = None
                if not batch and not closed:
                    waiter = loop.create_future()
                    self._async_waiters.append((loop, waiter))
            if waiter is not None:
                try:
                    await waiter
                finally:
                    with self._cond:
                        if (loop, waiter) in self._async_waiters:
                            self._async_waiters.remove((loop, waiter))
                        elif waiter.done() and not waiter.cancelled():
                            self._taken()
                continue
            for tick in batch:
                yield tick
            index += len(batch)
            if closed:
                return

    # Both called with the condition held.
    def _wake_async_readers(self) -> int:
        waiters, self._async_waiters = self._async_waiters, []
        woken = 0
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that reader's event loop is closed
                continue
            woken += 1
        return woken

    def _taken(self) -> None:
        if self._untaken:
            self._untaken -= 1
            if not self._untaken:
                self._cond.notify_all()
