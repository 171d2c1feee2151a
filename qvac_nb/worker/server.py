"""The worker's side: one model, one engine thread, messages from the kernel on the main thread.

The main thread only reads messages (so a cancel or a ping is answered while the engine works)
and forwards the engine's log lines; the engine thread loads the model and runs jobs in the order
they arrive. When the kernel goes away the worker exits at once: its connection closes, and (should a
fork of the kernel still hold the socket) the worker also watches its parent process itself.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from importlib import import_module
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from . import protocol

if TYPE_CHECKING:
    from .opening import OpenModel

# The engine's prompt parser recurses once per character (std::regex): on an 8 MB thread stack a
# 25-30 KB prompt overflows it. Stack pages are only committed when touched, so this costs nothing.
ENGINE_STACK_BYTES = 512 * 2**20
POLL_S = 0.1  # how often the main thread forwards queued engine log lines
OOM_SCORE_ADJ = "500"  # the worker, not the kernel, is what the out-of-memory killer picks
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0  # where there is no parent-death signal: how often the worker looks for its parent


class Server:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.work: queue.Queue[tuple[str, Any, Any]] = queue.Queue()
        self.model: OpenModel | None = None
        self.cancelled: set[int] = set()
        self.running: int | None = None
        self.engine_job: Any = None
        self.job_lock = threading.Lock()

    def send(self, *message: Any) -> None:
        with self.send_lock:
            self.conn.send(message)

    # ------------------------------------------------------------------ main thread
    def serve(self) -> None:
        # The generation side's imports (numpy, PIL, the schema) load on another thread while the engine
        # library opens and the kernel prepares the load request: a worker is ready sooner.
        threading.Thread(target=_warm_imports, name="qvac_nb-warm-imports", daemon=True).start()
        from .. import _engine, engine

        try:
            engine.ensure_loaded()
        except BaseException as exc:  # reported to the kernel, which raises it as a QvacError
            self.send(protocol.ERROR, None, protocol.encode_error(exc))
            return
        _engine.set_log_handler(self._forward_log)
        self.send(protocol.HELLO, {"names": engine.enum_names(), "info": engine.info(), "pid": os.getpid(),
                                   "gpu_backend": _has_gpu_backend()})
        threading.stack_size(ENGINE_STACK_BYTES)
        threading.Thread(target=self._engine_loop, name="qvac_nb-engine", daemon=True).start()
        threading.stack_size(0)
        while True:
            try:
                ready = self.conn.poll(POLL_S)
                message = self.conn.recv() if ready else None
            except (EOFError, OSError):
                os._exit(0)  # the kernel is gone: nothing to report to, end now whatever the engine does
            _engine.flush_logs()
            if message is None:
                continue
            kind = message[0]
            if kind == protocol.CANCEL:
                self._cancel(message[1])
            elif kind == protocol.PING:
                self.send(protocol.PONG)
            elif kind == protocol.CLOSE:
                os._exit(0)
            else:
                self.work.put((kind, message[1] if len(message) > 2 else None, message[-1]))

    def _forward_log(self, level: int, text: bytes) -> None:
        try:
            self.send(protocol.LOG, level, text.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass

    def _cancel(self, job_id: int) -> None:
        with self.job_lock:
            self.cancelled.add(job_id)
            phase = "queued"
            if self.running == job_id and self.engine_job is not None:
                self.engine_job.cancel()
                phase = self.engine_job.phase
        self.send(protocol.CANCEL_ACK, job_id, phase)

    # ------------------------------------------------------------------ engine thread
    def _engine_loop(self) -> None:
        while True:
            kind, job_id, request = self.work.get()
            if kind == protocol.LOAD:
                self._load(request)
            elif kind in (protocol.DIFFUSION, protocol.UPSCALE, protocol.VIDEO):
                self._run(kind, job_id, request)

    def _load(self, spec: dict[str, Any]) -> None:
        # Not engine_calls: the load starts now, while numpy and PIL still import on the warm-up thread.
        from . import opening

        start = time.perf_counter()
        try:
            _maybe_fault("load")
            self.model = opening.open_model(
                spec, lambda role, step, total, ms: self.send(protocol.LOAD_TICK, role, step, total, ms)
            )
        except BaseException as exc:
            self.send(protocol.ERROR, None, protocol.encode_error(exc))
            return
        self.send(protocol.LOADED, opening.loaded_facts(self.model, (time.perf_counter() - start) * 1000))

    def _attach(self, job_id: int, engine_job: Any) -> None:
        with self.job_lock:
            self.engine_job = engine_job
            if job_id in self.cancelled:
                engine_job.cancel()

    def _run(self, kind: str, job_id: int, request: dict[str, Any]) -> None:
        from . import engine_calls

        with self.job_lock:
            if job_id in self.cancelled:
                self.send(protocol.ERROR, job_id, {"kind": "CancelledError", "message": "cancelled", "param": None})
                return
            self.running = job_id

        def send_tick(step: int, total: int, elapsed_ms: float, phase: str, index: int, preview: bytes | None) -> None:
            self.send(protocol.TICK, job_id, step, total, elapsed_ms, phase, index, preview)

        try:
            _maybe_fault(kind)
            run: Callable[..., tuple[list[bytes], dict[str, Any]]]
            if kind == protocol.VIDEO:
                from .video_calls import run_video as run
            else:
                run = engine_calls.run_diffusion if kind == protocol.DIFFUSION else engine_calls.run_upscale
            outputs, stats = run(self.model, request, lambda ej: self._attach(job_id, ej), send_tick)
        except BaseException as exc:
            self._done()
            self.send(protocol.ERROR, job_id, protocol.encode_error(exc))
            return
        self._done()
        with self.send_lock:
            self.conn.send((protocol.RESULT, job_id, len(outputs), stats))
            for png in outputs:
                self.conn.send_bytes(png)

    def _done(self) -> None:
        with self.job_lock:
            self.running = None
            self.engine_job = None


def _warm_imports() -> None:
    # Imported for their side effect: ready when needed. opening first: the LOAD request needs it first.
    import_module(".opening", __package__)
    if sys.platform.startswith("linux"):
        # The model's load runs now: these imports take only the CPU it leaves (on Linux, nice is per thread).
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass
    import_module(".engine_calls", __package__)


def _has_gpu_backend() -> bool:
    from .. import engine

    try:
        lib = ctypes.CDLL(str(engine.find_library()))
    except OSError:
        return False
    symbols = ("ggml_backend_cuda_init", "ggml_backend_metal_init", "ggml_backend_vk_init", "ggml_backend_sycl_init")
    return any(hasattr(lib, sym) for sym in symbols)


def _maybe_fault(where: str) -> None:
    """Test-only faults ($QVAC_NB_WORKER_FAULT=what@where) that a real engine bug would cause."""
    spec = os.environ.get(protocol.FAULT_ENV, "")
    what, _, at = spec.partition("@")
    if not spec or at != where:
        return
    once = os.environ.get(protocol.FAULT_ONCE_ENV)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # an earlier worker had the fault
    sys.stdout.flush()
    if what == "abort":
        os.abort()
    elif what == "segv":
        ctypes.string_at(0)
    elif what == "exit":
        os._exit(3)
    elif what == "hang":
        time.sleep(3600)  # the engine thread never returns: only ending the worker stops it
    elif what == "hang_gil":
        ctypes.PyDLL(None).sleep(3600)  # holds the GIL: the worker cannot even answer a ping


def _connect(address: str, key: bytes) -> Connection:
    if ":" in address and not address.startswith("/"):
        host, port = address.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
    sock.sendall(key)  # raw, first: the kernel reads exactly this many bytes, with a timeout, from each caller
    return Connection(sock.detach())


def _parent_gone(parent: int) -> bool:
    if os.getppid() == parent:
        return False
    try:
        os.kill(parent, 0)  # not our parent any more, or never was (a launcher in between): is it alive?
    except ProcessLookupError:
        return True
    except OSError:
        pass
    return False


def _watch_parent(parent: int) -> None:
    while not _parent_gone(parent):
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _die_with_parent() -> None:
    """End this worker when the kernel that started it dies, however it dies.

    The closed connection is not enough: a child the kernel forked (an mp.Pool) inherits the socket, and
    the worker would wait for it. Linux kills the worker itself (PR_SET_PDEATHSIG); elsewhere a thread
    watches the parent. Windows has no fork, so there the connection's end suffices.
    """
    parent = int(os.environ.pop(protocol.PARENT_ENV, "") or os.getppid())
    if sys.platform.startswith("linux"):
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
            prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
            if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                if _parent_gone(parent):  # it died before the signal was asked for: nobody would send it
                    os._exit(0)
                return
        except (OSError, AttributeError):
            pass
    if os.name == "posix":
        threading.Thread(target=_watch_parent, args=(parent,), name="qvac_nb-parent-watch", daemon=True).start()


def _detach_from_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel cancels jobs on Ctrl-C; the worker must not die
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(OOM_SCORE_ADJ)
    except OSError:
        pass


def main(argv: list[str]) -> None:
    _die_with_parent()  # first: the kernel may die at any moment from now on
    key = bytes.fromhex(os.environ.pop(protocol.KEY_ENV, ""))
    _detach_from_terminal()
    os.dup2(2, 1)  # nothing the engine prints can mix with anything else
    # A crash in the engine then names the threads' Python frames in the output the kernel keeps.
    faulthandler.enable()
    Server(_connect(argv[1], key)).serve()
