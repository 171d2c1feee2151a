"""Starting, talking to and ending one engine worker process (the kernel's side).

A worker is `python -m qvac_nb.worker ADDRESS`: a fresh interpreter (never a fork of the kernel),
so it behaves the same on Linux, macOS and Windows and never inherits the kernel's threads or
locks. It connects back to a socket only this process listens on (in a private 0700 folder, removed
once the worker is accepted or given up) and proves itself with a random key passed in its
environment; any other connection is dropped. A worker ends when the kernel does, even while a fork
of the kernel lives on: the fork closes its copies of the worker sockets, and the worker watches
its parent itself.
"""

from __future__ import annotations

import collections
import hmac
import logging
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..errors import EngineCrashedError, EngineError
from . import protocol

# The worker must import this very qvac_nb (with its compiled engine), not a `qvac_nb` folder that happens to
# be in the notebook's working directory (a source checkout, say): `python -m`/`-c` would put that first.
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)
_BOOTSTRAP = "import sys; sys.path[0] = sys.argv.pop(1); from qvac_nb.worker.server import main; main(sys.argv)"
START_TIMEOUT_S = 120.0  # a cold interpreter on a loaded 2-core machine can take a while to import numpy
KILL_WAIT_S = 1.5
TAIL_LINES = 12
DUMP_LINES = 400  # Python's crash dump (faulthandler): every thread's frames
AUTH_WAIT_S = 10.0  # how long a connection may take to send the key before it is dropped
ACCEPT_POLL_S = 0.1
# Where the socket's folder goes when $TMPDIR makes its path too long for AF_UNIX (104-108 bytes).
SHORT_TMPDIRS = ("/tmp", "/var/tmp")
# What says why the engine stopped: its assertion (or C++ exception) first, else a line naming an error.
_ASSERTION = re.compile(r"GGML_ASSERT|GGML_ABORT|what\(\):")
# ggml's GGUF reader refuses tensors of more than 4 dimensions (Wan's patch embedding in the published GGUFs)
# and says so at error level; the engine then reads the file with its own reader, which folds them.
_GGUF_FALLBACK = re.compile(r"gguf_init_from_file_ptr: (tensor '.*' has invalid number of dimensions|failed to read "
                            r"tensor info)")
_ERROR_WORDS = re.compile(r"\b(error|abort|aborted|fatal|terminate called)\b", re.IGNORECASE)

log = logging.getLogger("qvac_nb.worker")
engine_log = logging.getLogger("qvac_nb.engine")
_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)


class WorkerDied(Exception):
    """The worker's connection closed: it exited, crashed or was killed."""


class WorkerProcess:
    """One worker: spawned at construction; `wait_ready()` returns its engine facts."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.facts: dict[str, Any] = {}
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.crash_dump: list[str] = []
        self.engine_reason = ""  # see better_reason
        self.killed_on_purpose = False
        self._owner = os.getpid()  # a forked child holds a copy of this object, but not the worker
        self._send_lock = threading.Lock()
        self._conn: Connection | None = None
        self._key = secrets.token_bytes(32)
        self._remove_folder: Callable[[], Any] = lambda: None
        self._server = self._listen()
        env = {**os.environ, protocol.KEY_ENV: self._key.hex(), protocol.PARENT_ENV: str(self._owner)}
        env.setdefault("GGML_NO_BACKTRACE", "1")  # ggml's abort runs gdb: slow, and it buries the assertion line
        kwargs: dict[str, Any] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # a terminal's Ctrl-C reaches the kernel, which cancels; not the worker
        else:
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        command = [sys.executable, "-c", _BOOTSTRAP, _PACKAGE_PARENT, self._address]
        try:
            self.proc: subprocess.Popen[bytes] = _spawn(lambda: subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                **kwargs))
        except BaseException:
            self._close_server()
            raise
        _live.add(self)
        self._output_reader = threading.Thread(target=self._read_output, name=f"qvac_nb-worker-output-{label}",
                                               daemon=True)
        self._output_reader.start()

    # ------------------------------------------------------------------ start
    def _listen(self) -> socket.socket:
        if not (hasattr(socket, "AF_UNIX") and os.name == "posix"):
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.bind(("127.0.0.1", 0))
            host, port = server.getsockname()[:2]
            self._address = f"{host}:{port}"
            server.listen(8)
            return server
        failure: OSError | None = None
        for parent in dict.fromkeys((tempfile.gettempdir(), *SHORT_TMPDIRS)):
            try:
                folder = tempfile.mkdtemp(prefix="qvac_nb-", dir=parent)  # 0700: only this user can connect
            except OSError as exc:
                failure = exc
                continue
            # Removed once the worker is accepted or given up; at the latest when this object goes or Python exits.
            self._remove_folder = weakref.finalize(self, _remove_folder, folder, self._owner)
            self._address = os.path.join(folder, "w.sock")
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.bind(self._address)
                server.listen(8)  # room for connections that are not the worker's (dropped) ahead of it
                return server
            except OSError as exc:  # "AF_UNIX path too long" under a long $TMPDIR: try a shorter folder
                server.close()
                self._remove_folder()
                failure = exc
        raise EngineError(f"no folder for the engine worker's socket ({failure}); set TMPDIR to a short, "
                          "writable folder")

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Accept the worker's connection and read its HELLO (engine names and library info)."""
        if self._conn is not None:
            return self.facts
        deadline = time.monotonic() + timeout
        try:
            self._conn = self._accept(deadline, timeout)
        finally:
            self._close_server()
        msg = self.recv(max(1.0, deadline - time.monotonic()))
        if msg is None:
            self.kill()
            raise EngineCrashedError(f"the engine worker for {self.label} did not start within {timeout:.0f} s")
        if msg[0] == protocol.ERROR:
            self.kill()
            raise protocol.decode_error(msg[2])
        self.facts = msg[1]
        return self.facts

    def _accept(self, deadline: float, timeout: float) -> Connection:
        """The worker's connection: the first one that sends the key. Any other is closed and the wait goes on."""
        self._server.settimeout(ACCEPT_POLL_S)
        while True:
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                if self.proc.poll() is not None:
                    raise self.crash_error("starting") from None
                if time.monotonic() > deadline:
                    self.kill()
                    raise EngineCrashedError(f"the engine worker for {self.label} did not start within "
                                             f"{timeout:.0f} s") from None
                continue
            if _sent_key(sock, self._key, time.monotonic() + min(AUTH_WAIT_S, max(1.0, deadline - time.monotonic()))):
                sock.settimeout(None)
                return Connection(sock.detach())
            sock.close()
            log.warning("dropped a connection to the socket of %s that did not send its key", self.label)

    # ------------------------------------------------------------------ messages
    def send(self, *message: Any) -> None:
        """Send a message; a worker that is gone raises WorkerDied."""
        if self._conn is None:
            raise WorkerDied()
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, EOFError, ValueError):
            raise WorkerDied() from None

    def recv(self, timeout: float) -> tuple[Any, ...] | None:
        """The next message other than a log line, or None after `timeout` seconds."""
        if self._conn is None:
            raise WorkerDied()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                    return None
                msg = self._conn.recv()
            except (OSError, EOFError, ValueError):
                raise WorkerDied() from None
            if msg[0] == protocol.LOG:
                self._log(msg[1], msg[2])
                continue
            return msg

    def recv_bytes(self) -> bytes:
        if self._conn is None:
            raise WorkerDied()
        try:
            return self._conn.recv_bytes()
        except (OSError, EOFError, ValueError):
            raise WorkerDied() from None

    def _log(self, level: int, text: str) -> None:
        text = text.rstrip()
        if _GGUF_FALLBACK.search(text):
            level = 0  # not an error: the engine reads such a file with its own GGUF reader next
        self.tail.append(text)
        if level >= 3:  # the engine's ERROR lines; its other levels speak of errors it recovers from
            self.engine_reason = self.better_reason(self.engine_reason, text)
        py_level = _LEVELS[min(max(level, 0), 3)]
        if engine_log.isEnabledFor(py_level):
            engine_log.log(py_level, "%s", text)

    def _read_output(self) -> None:
        # What the engine prints itself (GGML_ASSERT, abort messages) comes here, not through its log callback.
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            if self.crash_dump or line.startswith("Fatal Python error"):
                if len(self.crash_dump) < DUMP_LINES:
                    self.crash_dump.append(line)
            else:
                self.tail.append(line)
                self.engine_reason = self.better_reason(self.engine_reason, line)
                log.debug("%s: %s", self.label, line)

    @staticmethod
    def better_reason(current: str, line: str) -> str:
        """Of the reason kept so far and a new output line, the one that better says why the engine stopped:
        its first assertion (a ggml backtrace follows it with dozens of lines), else the latest error line."""
        if _ASSERTION.search(current):
            return current
        return line if _ASSERTION.search(line) or _ERROR_WORDS.search(line) else current

    # ------------------------------------------------------------------ end
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """End the worker now (its memory returns to the system at once)."""
        if os.getpid() != self._owner:  # a forked child (its atexit unload, say) must not end its parent's worker
            return
        self.killed_on_purpose = True
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
        self._close_conn()

    def _close_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._close_server()

    def _close_server(self) -> None:
        try:
            self._server.close()
        except OSError:
            pass
        self._remove_folder()

    def _forget_after_fork(self) -> None:
        # Closes only the child's copies of the descriptors: the parent's connection stays open, and a child
        # holding none can neither keep the worker from seeing its parent's death nor talk on the connection.
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass
        try:
            self._server.close()
        except OSError:
            pass

    def crash_error(self, doing: str, *, reload_note: bool = True) -> EngineCrashedError:
        """The error for a worker that died while `doing` something, naming how it ended."""
        try:
            code = self.proc.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            polled = self.proc.poll()
            code = -_SIGKILL if polled is None else polled  # killed just now, reaped later
        self._output_reader.join(0.5)  # its last lines are often the reason
        self._close_conn()
        cause = describe_exit(code)
        crashed_in = crash_location(self.crash_dump)
        advice = (
            "The model reloads on its next use. If it happens again with the same input, the engine cannot "
            "run it: try a shorter prompt, a smaller size or batch, or tiled VAE decoding."
            if reload_note
            else "Check the model file and model_config."
        )
        reason = self.engine_reason if code != -_SIGKILL else ""  # a kill came from outside the engine
        tail = " | ".join(line for line in list(self.tail)[-6:] if line != reason)
        message = f"the engine worker for {self.label} {cause} while {doing}"
        if crashed_in:
            message += f" (its thread was in {crashed_in})"
        message += f": {reason}. {advice}" if reason else f". {advice}"
        if tail:
            message += f" Last engine output: {tail}"
        return EngineCrashedError(message, exit_code=code, last_output=list(self.tail) + self.crash_dump)


_SIGKILL = getattr(signal, "SIGKILL", 9)


def _sent_key(sock: socket.socket, key: bytes, deadline: float) -> bool:
    """Whether `sock` sends `key` (its raw bytes, first thing) before `deadline`."""
    got = b""
    try:
        while len(got) < len(key):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(len(key) - len(got))
            if not chunk:
                return False
            got += chunk
    except OSError:  # a timeout included
        return False
    return hmac.compare_digest(got, key)


def _remove_folder(folder: str, owner: int) -> None:
    if os.getpid() == owner:  # never from a forked child: its parent may still be waiting for the worker
        shutil.rmtree(folder, ignore_errors=True)


class _Spawner:
    """Starts workers from one daemon thread that lives as long as this process.

    On Linux a worker dies with its parent (PR_SET_PDEATHSIG, set in server.main), but Linux sends that
    signal when the *thread* that started the worker ends: a load from a short-lived thread (a thread
    pool, the Studio's load thread, a runner) would take its worker with it.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="qvac_nb-worker-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            start, result = self._requests.get()
            try:
                result.set_result(start())
            except BaseException as exc:
                result.set_exception(exc)

    def run(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        result: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((start, result))
        try:
            return result.result()
        except BaseException:
            # Interrupted while waiting: nobody will hold the process the spawner may still start.
            result.add_done_callback(lambda done: None if done.exception() else done.result().kill())
            raise


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()
_live: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


def _spawn(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    global _spawner
    if not sys.platform.startswith("linux"):
        return start()  # elsewhere the worker watches its parent's pid, whichever thread started it
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
        spawner = _spawner
    return spawner.run(start)


def _after_fork_in_child() -> None:
    global _spawner, _spawner_lock
    _spawner, _spawner_lock = None, threading.Lock()  # the spawner thread did not survive the fork
    for worker in list(_live):
        worker._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def crash_location(dump: list[str]) -> str:
    """Where the crashing thread was, from Python's crash dump: the innermost frame of its "Current thread",
    or that it was one of the engine's own threads (not a Python one); "" without a dump."""
    if not dump:
        return ""
    lines = [ln.strip() for ln in dump]
    current = next((i for i, ln in enumerate(lines) if ln.startswith("Current thread")), None)
    if current is None:
        return "one of the engine's own threads"
    return next((ln for ln in lines[current + 1:] if ln.startswith("File ")), "")


def describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped responding"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if name == "SIGKILL":
            return "was killed (SIGKILL: often the system's out-of-memory killer)"
        return f"crashed ({name})"
    return f"exited with code {code}"

