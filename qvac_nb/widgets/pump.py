"""Widget messages handled while a cell blocks, on kernels without subshells: the wait pumps them.

A cell waiting in `job.outputs.result()` holds the kernel's main thread, which is the thread that
reads shell messages; a Cancel click (a `comm_msg`) would sit unread until the cell ends. Where
ipykernel serves the widgets' comms on a subshell (>= 7.4, see subshell.py) nothing is needed.
Elsewhere (ipykernel 6.x, as in Colab, and 7.0-7.3) `Outcome.result()` waits in slices and between
them this module takes the messages waiting for the main thread off its stream:

- comm messages (`comm_open`, `comm_msg`, `comm_close`) are handled at once, as the kernel would,
  under their own parent header; the cell's parent is restored afterwards so its output stays in
  its own cell;
- every other message (a queued `execute_request`, a completion request...) is kept, in order,
  and handed back to the kernel's own receive callback when the wait ends, so it runs after the
  cell exactly as if it had never been read early.

Both ipykernel layouts receive shell messages for the main thread on one ZMQStream with one
receive callback: 6.x `kernel.shell_stream` (the callback queues onto `kernel.msg_queue`), 7.x the
shell-channel thread's inproc pair to the main thread (the callback returns a coroutine that waits
for the main shell's lock). Swapping that callback for the time of a `flush()` reads the pending
messages without touching the kernel's queues. Anything unexpected turns the pump off for the
rest of the wait (a plain wait, logged at debug level); it never raises into the cell.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import subshell

log = logging.getLogger("qvac_nb.widgets")
SLICE_S = 0.05  # how long the future is waited on between two pumps: a click is handled within this
COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})

_active = threading.local()  # set while a pump runs on this thread: a nested wait does not pump again


def _main_stream(k: Any) -> Any:
    """The ZMQStream delivering the main shell's messages, or None if this layout is unknown."""
    manager = getattr(getattr(k, "shell_channel_thread", None), "manager", None)
    if manager is not None:  # ipykernel 7: the shell-channel thread forwards to the main thread
        pair = getattr(manager, "_shell_channel_to_main", None)
        return getattr(pair, "to_stream", None)
    if hasattr(k, "msg_queue"):  # ipykernel 6: the main thread reads the shell socket itself
        return getattr(k, "shell_stream", None)
    return None


def _reply_stream(k: Any) -> Any:
    """The stream a shell handler is given for its replies (comm handlers send none)."""
    manager = getattr(getattr(k, "shell_channel_thread", None), "manager", None)
    getter = getattr(manager, "get_subshell_to_shell_channel_socket", None)
    return getter(None) if getter is not None else k.shell_stream


def _shell_ident(k: Any) -> Any:
    # ipykernel 6 keeps a dict; 7 keeps it as a mapping view over its context variables.
    return k._parent_ident["shell"]


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


class _Pump:
    """One blocked wait's pump: reads the main shell's messages, handles comms, defers the rest."""

    def __init__(self, k: Any, stream: Any) -> None:
        self.k = k
        self.stream = stream
        self.deferred: list[Any] = []  # raw frames of non-comm messages, in arrival order
        self.unread: list[Any] = []  # read off the stream, not yet looked at

    @classmethod
    def here(cls) -> _Pump | None:
        """A pump if this thread may pump: a kernel's main thread running a cell, comms not on a subshell."""
        if getattr(_active, "on", False) or "ipykernel" not in sys.modules:
            return None  # not in a kernel (a script, the CLI): no need to import ipykernel to find out
        k = subshell.kernel()
        if k is None or threading.current_thread() is not threading.main_thread():
            return None
        if subshell.routes_widgets(k):  # ipykernel >= 7.4: the widgets' messages never wait for us
            return None
        stream = _main_stream(k)
        if stream is None or getattr(stream, "socket", None) is None or not hasattr(k, "session"):
            return None
        # Only inside a cell: within another handler (a widget's own message) the parent is that message.
        header = (k.get_parent("shell") or {}).get("header") or {}
        if header.get("msg_type") != "execute_request":
            return None
        return cls(k, stream)

    def pump(self) -> None:
        """Handle the waiting comm messages now; keep the others for after the cell."""
        self.unread.extend(self._read())
        while self.unread:
            msg = self.unread.pop(0)  # popped first: an interrupt inside a handler loses no other message
            if self._msg_type(msg) in COMM_TYPES:
                self._handle(msg)
            else:
                self.deferred.append(msg)

    def release(self) -> None:
        """Give the kept messages (and any that came since) back to the kernel, in their order."""
        waiting = [*self.deferred, *self.unread]
        self.deferred, self.unread = [], []
        try:
            waiting.extend(self._read())
        finally:
            callback = self.stream._recv_callback
            for msg in waiting:
                # As the stream itself would: ipykernel 6 queues it; 7's coroutine becomes a task that
                # waits for the main shell's lock, which the cell holds until it ends.
                self.stream._run_callback(callback, msg)

    def _read(self) -> list[Any]:
        """The messages waiting on the stream, taken off it without running the kernel's callback."""
        import zmq  # present wherever a pump exists (ipykernel needs it); not imported outside kernels

        got: list[Any] = []
        original: Callable[..., Any] | None = self.stream._recv_callback
        if original is None:
            return got
        self.stream._recv_callback = got.append
        try:
            self.stream.flush(zmq.POLLIN)
        finally:
            self.stream._recv_callback = original
        return got

    def _msg_type(self, msg: list[Any]) -> str:
        try:
            # content=False: a peek, so the session does not record the signature as seen.
            _idents, rest = self.k.session.feed_identities(list(msg), copy=False)
            return str(self.k.session.deserialize(rest, content=False, copy=False)["header"]["msg_type"])
        except Exception:  # noqa: BLE001 - not ours to judge: the kernel gets it after the cell
            return ""

    def _handle(self, raw: list[Any]) -> None:
        k = self.k
        try:
            idents, rest = k.session.feed_identities(list(raw), copy=False)
            msg = k.session.deserialize(rest, content=True, copy=False)
        except Exception:  # noqa: BLE001 - the kernel drops an invalid message too
            log.debug("dropping an invalid comm message", exc_info=True)
            return
        cell_ident, cell_parent = _shell_ident(k), k.get_parent("shell")
        _flush_std()  # the cell's pending output leaves under the cell's parent
        try:
            k.set_parent(idents, msg, channel="shell")
            # Status under the comm message's own parent: front-ends (ipywidgets' state syncing) wait for its idle.
            k._publish_status("busy", "shell")
            handler = k.shell_handlers.get(msg["header"]["msg_type"])
            if handler is not None:
                result = handler(_reply_stream(k), idents, msg)
                if inspect.isawaitable(result):
                    _run_now(result)
        except Exception:  # noqa: BLE001 - as the kernel does: a handler's error is logged, not raised
            log.warning("widget message handler failed while a cell waits", exc_info=True)
        finally:
            try:
                _flush_std()  # what the handler printed goes with its message
                k._publish_status("idle", "shell")
            finally:
                k.set_parent(cell_ident, cell_parent, channel="shell")  # the cell's output back to its cell
            k._publish_status("busy", "shell")  # the cell still runs: the kernel is busy again


def _run_now(awaitable: Any) -> None:
    """Run a handler's coroutine that needs no event loop turn (comm handlers); else give up on it."""
    coro = awaitable.__await__()
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("a comm handler waited on the event loop, which the blocked cell holds")


def wait(future: concurrent.futures.Future, timeout: float | None) -> None:
    """Wait until `future` is done or `timeout` s pass, pumping widget messages where that is needed."""
    try:
        pump = _Pump.here()
    except Exception:  # noqa: BLE001 - never in the cell's way: wait plainly
        log.debug("not pumping widget messages", exc_info=True)
        pump = None
    if pump is None:
        return  # Outcome.result waits as it always did
    deadline = None if timeout is None else time.monotonic() + timeout
    _active.on = True
    try:
        while not future.done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            concurrent.futures.wait([future], timeout=SLICE_S if left is None else min(SLICE_S, left))
            if future.done():
                return
            try:
                pump.pump()
            except Exception:  # noqa: BLE001 - stop pumping, keep waiting
                log.debug("pumping widget messages failed; waiting without it", exc_info=True)
                return
    finally:
        _active.on = False
        try:
            pump.release()
        except Exception:  # noqa: BLE001
            log.debug("could not hand deferred shell messages back to the kernel", exc_info=True)
