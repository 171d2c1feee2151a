"""Engine worker lifecycle: a worker never outlives its kernel (even one that forked), its socket folder
never outlives the start, and an engine abort says what went wrong.

Each case that forks, signals or kills runs in a process of its own (run_script, or a script this file
starts and ends), and every process a test starts is ended by it, even when it fails.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from conftest import THREADS
from test_worker import PRELUDE, run_script

if TYPE_CHECKING:
    from testmodels.registry import TestModel

GONE_WAIT_S = 30.0  # a bounded wait for a process to end, not a speed check
CHILD_SLEEP_S = 120  # the forked child's own bound; the test kills it sooner


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still alive after up to `timeout` seconds (a zombie counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in procs if not _gone(p)]
        if not alive:
            return []
        time.sleep(0.2)
    return [p for p in procs if not _gone(p)]


def _end(pids: list[int]) -> None:
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass


def _sd1_args(model: TestModel) -> str:
    return json.dumps({"sd1": {"src": str(model.primary), "config": {"threads": THREADS, **model.model_config()}}})


# ---------------------------------------------------------------- a kernel that forked (item 3)


def test_a_sigkilled_kernel_that_forked_leaves_no_worker(sd1_model: TestModel, tmp_path: Path) -> None:
    # The forked child inherits the kernel's socket to the worker, so the worker saw no EOF while the child lived.
    code = PRELUDE + textwrap.dedent(
        f"""
        from qvac_nb import runner
        mid = load("sd1")
        worker = runner._runners[mid].worker.proc.pid
        child = os.fork()
        if child == 0:
            time.sleep({CHILD_SLEEP_S})
            os._exit(0)
        print("PIDS", json.dumps({{"worker": worker, "child": child}}), flush=True)
        time.sleep({CHILD_SLEEP_S})
        """
    )
    script = subprocess.Popen([sys.executable, "-c", code, _sd1_args(sd1_model)], stdout=subprocess.PIPE,
                              stderr=(tmp_path / "stderr.txt").open("w"), text=True, cwd=Path(__file__).parent)
    pids: dict[str, int] = {}
    try:
        assert script.stdout is not None
        for line in script.stdout:  # ends at EOF if the script dies first
            if line.startswith("PIDS "):
                pids = json.loads(line[5:])
                break
        assert pids, f"the script printed no pids: {(tmp_path / 'stderr.txt').read_text()[-3000:]}"
        worker = psutil.Process(pids["worker"])
        script.send_signal(signal.SIGKILL)
        script.wait(GONE_WAIT_S)
        alive = _wait_gone([worker], GONE_WAIT_S)
        assert not alive, f"the worker outlived its SIGKILLed kernel by {GONE_WAIT_S:.0f} s while a fork lived"
        assert not _gone(psutil.Process(pids["child"])), "the forked child should still be sleeping"
    finally:
        script.kill()
        script.wait(GONE_WAIT_S)
        _end(list(pids.values()))


def test_a_forked_child_can_neither_talk_to_nor_end_the_parents_worker(sd1_model: TestModel) -> None:
    report = run_script(
        """
        from qvac_nb import runner
        from qvac_nb.worker import protocol
        from qvac_nb.worker.process import WorkerDied
        mid = load("sd1")
        worker = runner._runners[mid].worker
        pid = worker.proc.pid
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                worker.send(protocol.PING)  # on the parent's connection: its PONG would reach the parent
                said = "sent"
            except WorkerDied:
                said = "refused"
            os.write(write, said.encode())
            sys.exit(0)  # a normal exit: atexit unloads every model the child knows of
        os.close(write)
        report["child_said"] = os.read(read, 100).decode()
        report["child_exit"] = os.waitpid(child, 0)[1]
        report["same_worker"] = runner._runners[mid].worker is worker and worker.alive() and worker.proc.pid == pid
        report["images"] = len(generate(mid, seed=4))
        """,
        {"sd1": sd1_model},
    )
    assert report == {"child_said": "refused", "child_exit": 0, "same_worker": True, "images": 1}, report


# ---------------------------------------------------------------- an engine abort names its assertion (item 7)


def test_an_engine_assertion_is_named_in_the_crash_error(sd1_model: TestModel) -> None:
    # A real GGML_ASSERT in the engine: converting weights to q8_K on load (ggml has no quantizer for it:
    # `GGML_ASSERT(result == nrows * row_size)` in ggml_quantize_chunk). load_model refuses that type
    # (guards.check_load_config), so the script sends the worker the LOAD request itself, as the kernel would.
    report = run_script(
        """
        from qvac_nb.worker import protocol
        from qvac_nb.worker.process import WorkerDied, WorkerProcess
        worker = WorkerProcess("the q8_K load")
        try:
            names = worker.wait_ready()["names"]
            context = {"weight_type": names["type"].index("q8_K")}
            worker.send(protocol.LOAD, None, {"mode": "diffusion", "family": "sd1", "role": "model",
                                             "files": {"model": args["sd1"]["src"]},
                                             "config": args["sd1"]["config"], "context": context})
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                msg = worker.recv(1.0)
                if msg is not None and msg[0] != protocol.LOAD_TICK:
                    report["message"] = repr(msg)
                    break
        except WorkerDied:
            exc = worker.crash_error("loading the model", reload_note=False)
            report["message"] = str(exc)
            report["exit_code"] = exc.exit_code
        finally:
            worker.kill()
        """,
        {"sd1": sd1_model},
    )
    # ggml aborts on the failed assertion; another of its quantizing threads can fault first (seen once in a full
    # run: SIGSEGV), so the signal varies. The assertion named in the error is what this checks.
    assert report.get("exit_code") in (-signal.SIGABRT, -signal.SIGSEGV), report
    assert "GGML_ASSERT(result == nrows * row_size) failed" in report["message"], report


def test_the_assertion_line_is_kept_after_a_long_backtrace() -> None:
    from qvac_nb.worker.process import TAIL_LINES, WorkerProcess

    lines = ["clip_tokenizer.cpp:65   - vocab size: 49408",
             "/src/ggml/src/ggml.c:7700: GGML_ASSERT(result == nrows * row_size) failed",
             *[f"#{i} 0x00007f95 in frame_{i} () at file.c:{i}" for i in range(3 * TAIL_LINES)],
             "ptrace: No such process.", "No stack.", "[Inferior 1 (process 9030) detached]"]
    reason = ""
    for line in lines:
        reason = WorkerProcess.better_reason(reason, line)
    assert reason == lines[1]
    # Without an assertion, the last line that speaks of an error is kept.
    reason = ""
    for line in ("loading tensors", "error: out of memory allocating 8 GiB", "done"):
        reason = WorkerProcess.better_reason(reason, line)
    assert reason == "error: out of memory allocating 8 GiB"


# ---------------------------------------------------------------- the socket folder (items 8 and 9)


def test_a_long_tmpdir_still_loads_over_a_private_socket_folder(sd1_model: TestModel, tmp_path: Path) -> None:
    long_dir = tmp_path / ("d" * max(1, 100 - len(str(tmp_path)) - 1))
    long_dir.mkdir()
    assert len(str(long_dir)) >= 95
    report = run_script(
        """
        from qvac_nb.worker.process import WorkerProcess
        worker = WorkerProcess("the probe")
        folder = os.path.dirname(worker._address)
        report["mode"] = oct(os.stat(folder).st_mode & 0o777)
        worker.wait_ready()
        report["folder_removed"] = not os.path.exists(folder)
        worker.kill()
        report["images"] = len(generate(load("sd1")))
        """,
        {"sd1": sd1_model},
        env={"TMPDIR": str(long_dir)},
    )
    assert report == {"mode": "0o700", "folder_removed": True, "images": 1}, report
    assert not list(long_dir.glob("qvac_nb-*"))


def test_failed_and_abandoned_loads_leave_no_socket_folder(sd1_model: TestModel, tmp_path: Path) -> None:
    private = tmp_path / "tmp"
    private.mkdir()
    report = run_script(
        """
        import tempfile
        from qvac_nb.worker.process import WorkerProcess
        failed = []
        for n in range(3):  # files that do not exist: the load's worker was started but never accepted
            try:
                qvac_nb.load_model(os.path.join(tempfile.gettempdir(), f"missing-{n}.gguf"))
            except QvacError as exc:
                failed.append(type(exc).__name__)
        try:
            load("sd1", thraeds=2)  # a config typo, found while the worker starts
        except QvacError as exc:
            failed.append(type(exc).__name__)
        os.environ["QVAC_NB_WORKER_FAULT"] = "exit@load"  # a worker that is accepted, then dies loading
        try:
            load("sd1")
        except EngineCrashedError as exc:
            failed.append(type(exc).__name__)
        del os.environ["QVAC_NB_WORKER_FAULT"]
        report["failed"] = failed
        report["left_before_exit"] = sorted(os.listdir(tempfile.gettempdir()))
        abandoned = WorkerProcess("never accepted")  # the interpreter exits with it still waiting
        report["abandoned"] = abandoned.proc.pid
        """,
        {"sd1": sd1_model},
        env={"TMPDIR": str(private)},
    )
    try:
        alive = _wait_gone([psutil.Process(report["abandoned"])], GONE_WAIT_S)
    except psutil.NoSuchProcess:
        alive = []
    _end([p.pid for p in alive])
    assert report["failed"] == ["ModelFileError"] * 3 + ["UnknownParameterError", "EngineCrashedError"], report
    assert report["left_before_exit"] == [], report
    assert not list(private.glob("qvac_nb-*")), list(private.iterdir())
    assert not alive, "the worker never accepted outlived its kernel"


def test_an_impostor_connection_is_dropped_and_the_real_worker_accepted(sd1_model: TestModel) -> None:
    # Same-user processes that connect to the kernel's socket first: one sends a frame longer than any key,
    # one a wrong key of the right length, one a partial frame and stops.
    report = run_script(
        """
        import socket, subprocess
        from qvac_nb.worker import process
        process.AUTH_WAIT_S = 0.5  # the partial frame is dropped after this wait: 0.5 s proves it as well as 10
        real_popen = subprocess.Popen
        impostors = []
        def popen(cmd, **kw):  # the impostors connect before the worker even exists
            for payload in (b"x" * 100, b"y" * 32, b"z"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(10)  # a full listen backlog blocks an AF_UNIX connect: this thread must go on
                try:
                    sock.connect(cmd[-1])
                except OSError:
                    continue
                sock.sendall(len(payload).to_bytes(4, "big") + payload)
                impostors.append(sock)
            return real_popen(cmd, **kw)
        subprocess.Popen = popen
        try:
            mid = load("sd1")
        finally:
            subprocess.Popen = real_popen
        def dropped(sock):
            sock.settimeout(30)
            try:
                return sock.recv(1) == b""
            except ConnectionResetError:  # closed with its unread bytes
                return True
        report["dropped"] = [dropped(sock) for sock in impostors]
        report["images"] = len(generate(mid))
        """,
        {"sd1": sd1_model},
    )
    assert report == {"dropped": [True, True, True], "images": 1}, report  # all three connected, and were dropped


def test_workers_started_from_short_lived_threads_outlive_those_threads(sd1_model: TestModel) -> None:
    # Linux sends the parent-death signal when the thread that started a process ends, not the process.
    report = run_script(
        """
        import subprocess
        from concurrent.futures import ThreadPoolExecutor
        from qvac_nb import runner
        with ThreadPoolExecutor(1) as pool:
            mid = pool.submit(load, "sd1").result()
        worker = runner._runners[mid].worker  # the pool's thread, which started it, has ended
        try:
            # A signal that should not come; it would have been sent as the pool's thread ended, before this.
            report["ended_with"] = worker.proc.wait(1)
        except subprocess.TimeoutExpired:
            report["ended_with"] = None
        report["images"] = len(generate(mid))
        report["same_worker"] = runner._runners[mid].worker is worker
        """,
        {"sd1": sd1_model},
    )
    assert report == {"ended_with": None, "images": 1, "same_worker": True}, report
