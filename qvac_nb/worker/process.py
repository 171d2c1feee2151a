"""Starting, talking to and ending one engine worker process (the kernel's side).

A worker is `python -m qvac_nb.worker ADDRESS`: a fresh interpreter (never a fork of the kernel),
so it behaves the same on Linux, macOS and Windows and never inherits the kernel's threads or
locks. It connects back to a socket only this process listens on and proves itself with a random
key passed in its environment.
"""

from __future__ import annotations

import collections
import hmac
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..errors import EngineCrashedError
from . import protocol

# The worker must import this very qvac_nb (with its compiled engine), not a `qvac_nb` folder that happens to
# be in the notebook's working directory (a source checkout, say): `python -m`/`-c` would put that first.
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)
_BOOTSTRAP = "import sys; sys.path[0] = sys.argv.pop(1); from qvac_nb.worker.server import main; main(sys.argv)"
START_TIMEOUT_S = 120.0  # a cold interpreter on a loaded 2-core machine can take a while to import numpy
KILL_WAIT_S = 1.5
TAIL_LINES = 12
DUMP_LINES = 400  # Python's crash dump (faulthandler): every thread's frames

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
        self.killed_on_purpose = False
        self._send_lock = threading.Lock()
        self._conn: Connection | None = None
        self._key = secrets.token_bytes(32)
        self._tmpdir: str | None = None
        self._server = self._listen()
        env = {**os.environ, protocol.KEY_ENV: self._key.hex()}
        kwargs: dict[str, Any] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # a terminal's Ctrl-C reaches the kernel, which cancels; not the worker
        else:
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, _PACKAGE_PARENT, self._address],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            **kwargs,
        )
        self._output_reader = threading.Thread(target=self._read_output, name=f"qvac_nb-worker-output-{label}",
                                               daemon=True)
        self._output_reader.start()

    # ------------------------------------------------------------------ start
    def _listen(self) -> socket.socket:
        if hasattr(socket, "AF_UNIX") and os.name == "posix":
            self._tmpdir = tempfile.mkdtemp(prefix="qvac_nb-")
            self._address = os.path.join(self._tmpdir, "w.sock")
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(self._address)
        else:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.bind(("127.0.0.1", 0))
            host, port = server.getsockname()[:2]
            self._address = f"{host}:{port}"
        server.listen(1)
        return server

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Accept the worker's connection and read its HELLO (engine names and library info)."""
        if self._conn is not None:
            return self.facts
        deadline = time.monotonic() + timeout
        self._server.settimeout(0.1)
        try:
            while True:
                try:
                    sock, _ = self._server.accept()
                    break
                except TimeoutError:
                    if self.proc.poll() is not None:
                        raise self.crash_error("starting") from None
                    if time.monotonic() > deadline:
                        self.kill()
                        raise EngineCrashedError(f"the engine worker for {self.label} did not start within "
                                                 f"{timeout:.0f} s") from None
        finally:
            self._server.close()
            if self._tmpdir:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
        sock.settimeout(None)
        conn = Connection(sock.detach())
        if not conn.poll(max(1.0, deadline - time.monotonic())) or not hmac.compare_digest(conn.recv_bytes(64),
                                                                                            self._key):
            conn.close()
            self.kill()
            raise EngineCrashedError(f"the engine worker for {self.label} did not authenticate")
        self._conn = conn
        msg = self.recv(max(1.0, deadline - time.monotonic()))
        if msg is None:
            self.kill()
            raise EngineCrashedError(f"the engine worker for {self.label} did not start within {timeout:.0f} s")
        if msg[0] == protocol.ERROR:
            self.kill()
            raise protocol.decode_error(msg[2])
        self.facts = msg[1]
        return self.facts

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
        self.tail.append(text)
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
                log.debug("%s: %s", self.label, line)

    # ------------------------------------------------------------------ end
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """End the worker now (its memory returns to the system at once)."""
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
            code = self.proc.poll()
        self._output_reader.join(0.5)  # its last lines are often the reason
        self._close_conn()
        cause = describe_exit(code)
        crashed_in = crash_location(self.crash_dump)
        tail = " | ".join(list(self.tail)[-6:])
        advice = (
            "The model reloads on its next use. If it happens again with the same input, the engine cannot "
            "run it: try a shorter prompt, a smaller size or batch, or tiled VAE decoding."
            if reload_note
            else "Check the model file and model_config."
        )
        message = f"the engine worker for {self.label} {cause} while {doing}"
        message += f" (its thread was in {crashed_in}). {advice}" if crashed_in else f". {advice}"
        if tail:
            message += f" Last engine output: {tail}"
        return EngineCrashedError(message, exit_code=code, last_output=list(self.tail) + self.crash_dump)


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

