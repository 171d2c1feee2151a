"""Engine worker processes: no engine fault, hang or leak reaches the process that called qvac_nb.

Each case runs as a script in a fresh Python process (the stand-in for a Jupyter kernel): the
script must live to print its JSON report, and the next generation in it must work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import THREADS

if TYPE_CHECKING:
    from testmodels.registry import TestModel

SCRIPT_TIMEOUT_S = 600

PRELUDE = """
import asyncio, gc, json, os, sys, threading, time, weakref
import qvac_nb
from qvac_nb.errors import CallbackError, CancelledError, EngineCrashedError, QvacError
args = json.loads(sys.argv[1])
SMALL = {"width": 64, "height": 64, "steps": 1, "cfg_scale": 1.0}  # one U-Net pass
report = {}
def load(name, **extra):
    return qvac_nb.load_model(args[name]["src"], model_config={**args[name]["config"], **extra})
def generate(mid, **kw):
    job = qvac_nb.diffusion(model_id=mid, prompt=kw.pop("prompt", "a castle"), **{**SMALL, **kw})
    return job.outputs.result(timeout=300)
def outcome(future, timeout=120):
    try:
        future.result(timeout=timeout)
        return "ok"
    except QvacError as exc:
        return type(exc).__name__ + ": " + str(exc)
def first_tick(job):
    # A job that ends without a tick stops the script with how it ended (the engine's output for a crash).
    for tick in job.progress_stream:
        return tick
    try:
        job.outputs.result(timeout=10)
    except QvacError as exc:
        raise AssertionError(f"the job ended without a tick: {exc!r}\\n{getattr(exc, 'last_output', '')}") from exc
    raise AssertionError("the job ended without a tick, with outputs")
"""


def run_script(body: str, models: dict[str, TestModel], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `body` after PRELUDE in a new interpreter; returns the `report` dict it prints last."""
    args = {
        name: {"src": str(model.primary), "config": {"threads": THREADS, **model.model_config()}}
        for name, model in models.items()
    }
    code = PRELUDE + textwrap.dedent(body) + "\nprint('REPORT ' + json.dumps(report))\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).parent,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, (
        f"the calling process died (exit {proc.returncode})\n"
        f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}"
    )
    return json.loads(lines[-1][len("REPORT "):])


# ---------------------------------------------------------------- crashes and real crashing inputs


def test_a_worker_abort_fails_the_job_names_the_signal_and_the_model_reloads(sd1_model: TestModel) -> None:
    report = run_script(
        """
        os.environ["QVAC_NB_WORKER_FAULT"] = "abort@diffusion"  # read as a worker starts: the first one aborts
        mid = load("sd1")
        try:
            generate(mid)
            report["first"] = "image"
        except EngineCrashedError as exc:
            report["first"] = str(exc)
            report["exit_code"] = exc.exit_code
        del os.environ["QVAC_NB_WORKER_FAULT"]
        report["second"] = len(generate(mid, seed=3))
        report["still_loaded"] = mid in qvac_nb.loaded_models()
        """,
        {"sd1": sd1_model},
    )
    assert "SIGABRT" in report["first"] and "reloads on its next use" in report["first"], report
    assert report["exit_code"] == -6
    assert report["second"] == 1 and report["still_loaded"]


@pytest.mark.parametrize("fault, words", [("segv", "SIGSEGV"), ("exit", "exited with code 3")])
def test_a_worker_crash_at_load_is_an_engine_crashed_error(sd1_model: TestModel, fault: str, words: str) -> None:
    report = run_script(
        """
        try:
            load("sd1")
            report["load"] = "loaded"
        except EngineCrashedError as exc:
            report["load"] = str(exc)
            report["output"] = exc.last_output
        report["loaded"] = qvac_nb.loaded_models()
        """,
        {"sd1": sd1_model},
        env={"QVAC_NB_WORKER_FAULT": f"{fault}@load"},
    )
    assert words in report["load"], report
    assert report["loaded"] == []
    # A signal is tried once more in a new worker (it crashes there too); an exit code is not.
    assert ("crashed the same way in a second worker" in report["load"]) == (fault == "segv"), report
    if fault == "segv":  # Python's crash dump names the crashing thread's frame; the error keeps the dump
        assert "Fatal Python error: Segmentation fault" in report["output"], report
        assert "(its thread was in File " in report["load"] and "string_at" in report["load"], report


def test_a_crash_while_loading_or_reloading_is_tried_once_more_in_a_new_worker(sd1_model: TestModel,
                                                                               tmp_path: Path) -> None:
    report = run_script(
        f"""
        import logging, signal
        warnings = []
        class Keep(logging.Handler):
            def emit(self, record):
                warnings.append(record.getMessage())
        logging.getLogger("qvac_nb.worker").addHandler(Keep(logging.WARNING))
        mid = load("sd1")  # its first worker crashes while loading (the fault fires once)
        report["first_marker"] = os.path.exists({str(tmp_path / "first")!r})
        report["first"] = len(generate(mid, seed=1))
        # The worker dies between jobs; the next job's reload crashes once, then runs in the replacement.
        os.environ["QVAC_NB_WORKER_FAULT_ONCE"] = {str(tmp_path / "second")!r}
        from qvac_nb import runner
        worker = runner._runners[mid].worker
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(30)  # dead before the job looks at it
        job = qvac_nb.diffusion(model_id=mid, prompt="a castle", **SMALL, seed=1)
        report["second"] = outcome(job.outputs, 300)
        report["phases"] = sorted({{tick.phase for tick in job.progress_stream.ticks}})
        report["second_marker"] = os.path.exists({str(tmp_path / "second")!r})
        report["warnings"] = warnings
        """,
        {"sd1": sd1_model},
        env={"QVAC_NB_WORKER_FAULT": "segv@load", "QVAC_NB_WORKER_FAULT_ONCE": str(tmp_path / "first")},
    )
    assert report["first_marker"] and report["first"] == 1, report
    assert report["second_marker"] and report["second"] == "ok" and "load" in report["phases"], report
    assert len(report["warnings"]) == 2, report
    for warning in report["warnings"]:
        assert warning.startswith("loading once more in a new worker:") and "SIGSEGV" in warning, warning
        assert "(its thread was in File " in warning, warning


def test_a_prompt_that_overflowed_the_engine_stack_gives_an_image_and_the_next_job_works(sd1_model: TestModel) -> None:
    # 25-30 KB of plain words crashed the kernel (SIGSEGV) inside the engine's prompt parser, whose
    # std::regex recurses once per character of a run without brackets, colons or a capital B: workers run the
    # engine on a deeper stack. 30,000 characters crash an 8 MB thread stack (the default under `ulimit -s 8192`;
    # 26,000 did not). The words are each one CLIP token: the text encoder gets 16 chunks of 77 tokens instead of
    # the ~100 that as many characters of short words make (those took 20 s here), for the same parse.
    report = run_script(
        """
        mid = load("sd1")
        words = ("a castle on a hill, " + "blackandwhitephotography " * 1200)[:30000]
        report["words"] = outcome(qvac_nb.diffusion(model_id=mid, prompt=words, width=64, height=64,
                                                    steps=1, cfg_scale=1.0).outputs, 900)
        report["next"] = len(generate(mid, seed=5))
        """,
        {"sd1": sd1_model},
    )
    assert report == {"words": "ok", "next": 1}, report


# ---------------------------------------------------------------- cancel reaches every phase


# Cancels in phases the engine cannot interrupt (a hung start, after which the model works again; an ESRGAN
# upscale) and an unload during an upscale: in one process, in
# test_load_liveness.py::test_a_cancel_the_engine_could_not_honour_reads_correctly.


def test_cancel_and_unload_stop_a_job_whose_model_is_loading_again(sd1_model: TestModel) -> None:
    report = run_script(
        """
        import signal, psutil
        from qvac_nb import runner
        def children():
            return [c for c in psutil.Process().children() if c.status() != psutil.STATUS_ZOMBIE]
        mid = load("sd1")
        os.environ["QVAC_NB_WORKER_FAULT"] = "hang@load"  # every new worker hangs in its load
        for how in ("cancel", "unload"):
            worker = runner._runners[mid].worker
            if worker is not None and worker.alive():  # after the cancelled reload there is none to end
                os.kill(worker.proc.pid, signal.SIGKILL)
                worker.proc.wait(30)  # dead before the job looks at it
            job = qvac_nb.diffusion(model_id=mid, prompt="a castle", **SMALL)
            deadline = time.monotonic() + 60  # the job's new worker starts, then hangs in its load
            while not children() and time.monotonic() < deadline:
                time.sleep(0.05)
            report[how + "_workers_while_loading"] = len(children())
            t0 = time.monotonic()
            if how == "cancel":
                job.cancel()
            else:
                qvac_nb.unload_model(model_id=mid)
            report[how] = outcome(job.outputs, 30)
            report[how + "_s"] = time.monotonic() - t0
            report[how + "_workers_after"] = len(children())
        del os.environ["QVAC_NB_WORKER_FAULT"]
        report["next"] = len(generate(load("sd1"), seed=2))
        """,
        {"sd1": sd1_model},
    )
    assert report["cancel"].startswith("CancelledError") and "while the model loaded again" in report["cancel"], report
    assert report["unload"].startswith("CancelledError") and "unloaded" in report["unload"], report
    # The hung loading worker is ended, not left behind.
    assert report["cancel_workers_while_loading"] == 1 and report["cancel_workers_after"] == 0, report
    assert report["unload_workers_while_loading"] == 1 and report["unload_workers_after"] == 0, report
    assert report["next"] == 1
    print(f"cancel during a reload settled in {report['cancel_s']:.2f} s, unload in {report['unload_s']:.2f} s")


def test_asyncio_timeouts_and_task_cancels_cancel_the_job_and_stats_settle(sd1_model: TestModel) -> None:
    report = run_script(
        """
        mid = load("sd1")
        async def main():
            job = qvac_nb.diffusion(model_id=mid, prompt="x", width=64, height=64, steps=150)
            try:
                await asyncio.wait_for(job.outputs, 0.2)  # the 150-step job is far from done
            except (asyncio.TimeoutError, TimeoutError):
                pass
            report["wait_for_cancelled"] = job.cancelled
            report["wait_for_stats"] = outcome(job.stats, 60)
            job = qvac_nb.diffusion(model_id=mid, prompt="x", width=64, height=64, steps=150)
            task = asyncio.ensure_future(job.outputs)
            await asyncio.sleep(0.2)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            report["task_cancelled"] = job.cancelled
            report["task_stats"] = outcome(job.stats, 60)
        asyncio.run(main())
        report["next"] = len(generate(mid, seed=7))
        """,
        {"sd1": sd1_model},
    )
    assert report["wait_for_cancelled"] and report["task_cancelled"], report
    assert report["wait_for_stats"].startswith("CancelledError") and report["task_stats"].startswith("CancelledError")
    assert report["next"] == 1


# ---------------------------------------------------------------- listeners and lifecycle


def test_listeners_may_unload_load_generate_and_cancel_without_deadlock(sd1_model: TestModel) -> None:
    report = run_script(
        """
        mid = load("sd1")
        made = {}
        def listener(tick):
            if "id" not in made:
                made["id"] = load("sd1", threads=args["sd1"]["config"]["threads"] + 1)  # from a listener: a 2nd model
                made["job"] = qvac_nb.diffusion(model_id=made["id"], prompt="y", **SMALL)
                qvac_nb.cancel(model_id=mid)
                qvac_nb.unload_model(model_id=mid)  # unload the model whose job is calling us
        job = qvac_nb.diffusion(model_id=mid, prompt="x", width=64, height=64, steps=20)
        job.progress_stream.subscribe(listener)
        report["first"] = outcome(job.outputs, 120)
        report["second"] = outcome(made["job"].outputs, 120)
        report["loaded"] = qvac_nb.loaded_models() == [made["id"]]
        """,
        {"sd1": sd1_model},
    )
    assert report["first"].startswith("CancelledError"), report
    assert report["second"] == "ok" and report["loaded"], report


RAISED = ["ValueError('bad')", "KeyboardInterrupt()", "SystemExit(2)"]


def test_a_raising_listener_cancels_its_job_with_a_callback_error(sd1_model: TestModel) -> None:
    # Each kind of exception in turn, in one process: after each, that process's next job works.
    report = run_script(
        f"""
        mid = load("sd1")
        for raised in {RAISED!r}:
            def listener(tick, raised=raised):
                raise eval(raised)
            # 20 steps: still running when the listener raises; cfg 1: one U-Net pass a step until then
            job = qvac_nb.diffusion(model_id=mid, prompt="x", width=64, height=64, steps=20, cfg_scale=1.0)
            job.progress_stream.subscribe(listener)
            try:
                job.outputs.result(timeout=120)
                report[raised] = {{"error": None}}
            except CallbackError as exc:
                report[raised] = {{"error": type(exc).__name__, "cause": type(exc.__cause__).__name__}}
            report[raised]["next"] = len(generate(mid, seed=8))
        """,
        {"sd1": sd1_model},
    )
    for raised in RAISED:
        assert report[raised] == {"error": "CallbackError", "cause": raised.split("(")[0], "next": 1}, report


def test_finished_jobs_are_garbage_collected(sd1_model: TestModel) -> None:
    report = run_script(
        """
        mid = load("sd1")
        refs = []
        for seed in range(3):
            job = qvac_nb.diffusion(model_id=mid, prompt="x", seed=seed, preview=True, **SMALL)
            job.progress_stream.subscribe(lambda tick, job=job: None)  # a listener that refers to its job
            job.outputs.result(timeout=120)
            refs.append(weakref.ref(job))
        del job
        gc.collect()
        report["alive"] = sum(ref() is not None for ref in refs)
        """,
        {"sd1": sd1_model},
    )
    assert report["alive"] == 0, report


def test_the_interpreter_exits_promptly_with_jobs_running_and_leaves_no_worker(sd1_model: TestModel) -> None:
    import psutil

    code = PRELUDE + textwrap.dedent(
        """
        mid = load("sd1")
        jobs = [qvac_nb.diffusion(model_id=mid, prompt="x", width=64, height=64, steps=150) for _ in range(3)]
        first_tick(jobs[0])
        print("PIDS", json.dumps([c.pid for c in __import__("psutil").Process().children(recursive=True)]), flush=True)
        """
    )
    args = {"sd1": {"src": str(sd1_model.primary), "config": {"threads": THREADS, **sd1_model.model_config()}}}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                          timeout=SCRIPT_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pids = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("PIDS "))[5:])
    assert pids, "the model should have had a worker process"
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass  # already gone
    _, alive = psutil.wait_procs(procs, timeout=10)  # a bounded wait, not a speed check
    for proc in alive:
        proc.kill()  # never leave one behind, even when the test fails
    assert not alive, f"workers outlived the interpreter: {[p.pid for p in alive]}"


# ---------------------------------------------------------------- memory and concurrency


def test_unloading_returns_the_kernel_to_its_memory_before_the_load(sd1_model: TestModel) -> None:
    report = run_script(
        """
        import psutil
        me = psutil.Process()
        generate(load("sd1"))  # warm up imports and the first worker once
        for mid in qvac_nb.loaded_models():
            qvac_nb.unload_model(model_id=mid)
        gc.collect()
        before = me.memory_info().rss
        mid = load("sd1")
        generate(mid)
        report["worker_rss_mb"] = sum(c.memory_info().rss for c in me.children()) / 2**20
        qvac_nb.unload_model(model_id=mid)
        gc.collect()
        report["delta_mb"] = (me.memory_info().rss - before) / 2**20
        report["children"] = len(me.children())
        """,
        {"sd1": sd1_model},
    )
    assert report["children"] == 0, report
    assert report["delta_mb"] < 50, report
    assert report["worker_rss_mb"] > 50, "the model's memory should have been in the worker"


def test_two_models_run_at_the_same_time_and_one_models_jobs_keep_their_order(sd1_model: TestModel) -> None:
    report = run_script(
        """
        a, b = load("sd1"), load("sd1", threads=args["sd1"]["config"]["threads"] + 1)  # 2 configs: 2 models
        order = []
        lock = threading.Lock()
        def note(name):
            def listener(tick):
                with lock:
                    order.append(name)
            return listener
        jobs = []
        for name, mid in (("a1", a), ("a2", a), ("b1", b)):
            # 4 steps at cfg 1 (one U-Net pass a step): a1 is still sampling when b1 starts.
            job = qvac_nb.diffusion(model_id=mid, prompt=name, width=64, height=64, steps=4, cfg_scale=1.0)
            job.progress_stream.subscribe(note(name))
            jobs.append(job)
        for job in jobs:
            job.outputs.result(timeout=300)
        report["order"] = order
        """,
        {"sd1": sd1_model},
    )
    order = report["order"]
    a1_end = max(i for i, n in enumerate(order) if n == "a1")
    assert min(i for i, n in enumerate(order) if n == "a2") > a1_end, "model a's jobs ran out of order"
    assert min(i for i, n in enumerate(order) if n == "b1") < a1_end, "model b waited for model a's job"


# ---------------------------------------------------------------- the memory guard


def test_the_memory_guard_counts_the_prompt_length_of_an_llm_encoder(flux2_id: str, sd1_id: str) -> None:
    import qvac_nb

    long_prompt = "a castle on a hill " * 10_000  # ~63k tokens: a Qwen3 encoder would need terabytes
    with pytest.raises(qvac_nb.InvalidParameterError, match="prompt: a prompt of about .* tokens"):
        qvac_nb.diffusion(model_id=flux2_id, prompt=long_prompt, width=64, height=64, steps=1)
    # CLIP encodes in 77-token windows: the same prompt is no memory risk for SD 1.x, so the guard lets
    # the job start. (Encoding ~820 windows takes minutes on a busy 2-core machine: cancel it then.)
    job = qvac_nb.diffusion(model_id=sd1_id, prompt=long_prompt, width=64, height=64, steps=1)
    job.cancel()
    with pytest.raises(qvac_nb.CancelledError):
        job.outputs.result(timeout=120)


def test_the_memory_guard_counts_the_upscaler_tile_size(esrgan_model: TestModel,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    import qvac_nb
    from qvac_nb.checks import guards

    monkeypatch.setattr(guards, "available_memory", lambda: 16 * 2**30)  # the same answer on any machine
    mid = qvac_nb.load_model(str(esrgan_model.primary),
                             model_config={"mode": "upscale", "threads": THREADS, "upscaler": {"tile_size": 2048}})
    try:
        with pytest.raises(qvac_nb.InvalidParameterError, match="tile_size"):
            qvac_nb.upscale(model_id=mid, image=np.zeros((64, 64, 3), np.uint8))
    finally:
        qvac_nb.unload_model(model_id=mid)
