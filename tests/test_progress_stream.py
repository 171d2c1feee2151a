"""ProgressStream on its own: every reader gets every tick, and a blocked reader gets it before push returns."""

from __future__ import annotations

import asyncio
import threading
import time

from qvac_nb.progress_stream import HANDOFF_S, ProgressStream, ProgressTick

PUSHES = 40


def tick(step: int) -> ProgressTick:
    return ProgressTick(step, PUSHES, float(step), "sample")


def wait_until(predicate, timeout: float = 5.0) -> None:  # noqa: ANN001 - a test helper
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


def push_all(stream: ProgressStream, ready) -> list[float]:  # noqa: ANN001
    """Push PUSHES ticks, each once the readers are blocked again; the time each push returned."""
    returned = []
    for step in range(1, PUSHES + 1):
        wait_until(ready)
        stream.push(tick(step))
        returned.append(time.perf_counter())
    stream.close()
    return returned


def test_a_blocked_thread_reader_takes_each_tick_before_push_returns() -> None:
    stream = ProgressStream()
    taken: dict[int, float] = {}

    def read() -> None:
        for t in stream:
            taken[t.step] = time.perf_counter()

    reader = threading.Thread(target=read)
    reader.start()
    returned = push_all(stream, lambda: stream._blocked == 1)
    reader.join(5)
    assert sorted(taken) == list(range(1, PUSHES + 1))
    # Without the hand-over the pusher runs on while the reader is still waking, nearly every time.
    first = sum(taken[step] <= returned[step - 1] for step in taken)
    assert first >= PUSHES * 0.9, f"reader had the tick before push returned for only {first}/{PUSHES}"


def test_an_async_reader_is_woken_by_push_not_by_polling() -> None:
    stream = ProgressStream()
    taken: dict[int, float] = {}
    loop = asyncio.new_event_loop()

    async def read() -> None:
        async for t in stream:
            taken[t.step] = time.perf_counter()

    reader = threading.Thread(target=loop.run_until_complete, args=(read(),))
    reader.start()
    returned = push_all(stream, lambda: len(stream._async_waiters) == 1)
    reader.join(5)
    loop.close()
    assert sorted(taken) == list(range(1, PUSHES + 1))
    first = sum(taken[step] <= returned[step - 1] for step in taken)
    assert first >= PUSHES * 0.9, f"reader had the tick before push returned for only {first}/{PUSHES}"


def test_a_reader_that_cannot_wake_holds_push_back_at_most_the_handoff_time() -> None:
    stream = ProgressStream()
    loop = asyncio.new_event_loop()
    got: list[int] = []
    blocked_loop = threading.Event()

    async def read() -> None:
        async for t in stream:
            got.append(t.step)
            if t.step == 1:
                blocked_loop.set()
                time.sleep(1.0)  # a loop busy with something else: it cannot take tick 2 for a second

    reader = threading.Thread(target=loop.run_until_complete, args=(read(),))
    reader.start()
    wait_until(lambda: len(stream._async_waiters) == 1)
    stream.push(tick(1))
    blocked_loop.wait(5)
    start = time.perf_counter()
    stream.push(tick(2))
    stream.push(tick(3))
    held = time.perf_counter() - start
    stream.close()
    reader.join(5)
    loop.close()
    assert held < 0.5, f"two pushes waited {held:.3f} s for a reader that was not waiting"
    assert got == [1, 2, 3]


def test_every_reader_kind_sees_every_tick_and_ends_on_close() -> None:
    stream = ProgressStream()
    seen: dict[str, list[int]] = {"thread": [], "async": [], "listener": []}
    stream.subscribe(lambda t: seen["listener"].append(t.step))
    loop = asyncio.new_event_loop()

    async def read_async() -> None:
        async for t in stream:
            seen["async"].append(t.step)

    def read_thread() -> None:
        for t in stream:
            seen["thread"].append(t.step)
            time.sleep(0.002)  # a slow reader still gets every tick, late

    readers = [threading.Thread(target=read_thread),
               threading.Thread(target=loop.run_until_complete, args=(read_async(),))]
    for r in readers:
        r.start()
    start = time.perf_counter()
    for step in range(1, PUSHES + 1):
        stream.push(tick(step))
    pushing = time.perf_counter() - start
    stream.close()
    for r in readers:
        r.join(5)
        assert not r.is_alive()
    loop.close()
    assert all(steps == list(range(1, PUSHES + 1)) for steps in seen.values()), seen
    assert pushing < PUSHES * (HANDOFF_S + 0.02)
    # A late reader replays the whole job.
    assert [t.step for t in stream] == list(range(1, PUSHES + 1))
