"""Loads that cannot hang or pile up: a worker that stops answering while loading is ended, loads of one
model at the same time load it once, and a cancel names the phase it stopped in.

The cases that stop processes run in a fresh Python process each (test_worker.run_script), with the
ping limits shortened there, and end every worker they start.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_worker import run_script

if TYPE_CHECKING:
    from testmodels.registry import TestModel

# Shared by the scripts: short ping limits, the live worker processes, a wait that gives up.
HELPERS = """
import signal, psutil
from qvac_nb import runner
SHORT, LONG = (0.2, 1.0), (runner.SILENCE_PING_S, runner.PING_TIMEOUT_S)  # SHORT: ended ~1.2 s after it stops
def limits(values):
    runner.SILENCE_PING_S, runner.PING_TIMEOUT_S = values
def children():
    return [c for c in psutil.Process().children() if c.status() != psutil.STATUS_ZOMBIE]
stopped = []
def stop_workers():
    for child in children():
        child.send_signal(signal.SIGSTOP)
        stopped.append(child.pid)
def end_stopped():
    # Only when a wait gave up: end what the test stopped, so nothing outlives the script.
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
def in_thread(call, timeout):
    # (result or "error: ..." or "hung") of call() run on a thread, waiting `timeout` s at most.
    box = {}
    def run():
        try:
            box["out"] = call()
        except QvacError as exc:
            box["out"] = "error: " + type(exc).__name__ + ": " + str(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        end_stopped()
        thread.join(60)
        return "hung"
    return box["out"]
"""


def with_helpers(body: str) -> str:
    return HELPERS + textwrap.dedent(body)


# ---------------------------------------------------------------- a worker that stops answering


def test_a_load_whose_worker_stops_answering_fails_and_the_next_load_works(sd1_model: TestModel) -> None:
    report = run_script(
        with_helpers("""
        def stop_at_first_tick(info):
            if info.get("phase") == "load" and not stopped:
                stop_workers()
        limits(SHORT)
        src, config = args["sd1"]["src"], args["sd1"]["config"]
        report["load"] = in_thread(lambda: qvac_nb.load_model(src, model_config=config,
                                                              on_progress=stop_at_first_tick), 90)
        report["stopped"] = len(stopped)
        report["stopped_pid_gone"] = all(not psutil.pid_exists(pid) for pid in stopped)  # killed and reaped
        report["workers_after"] = len(children())
        report["loaded_after"] = qvac_nb.loaded_models()
        limits(LONG)
        report["next"] = len(generate(load("sd1")))
        """),
        {"sd1": sd1_model},
    )
    assert report["stopped"] == 1, report
    assert report["load"].startswith("error: EngineCrashedError:"), report
    assert "stopped responding while loading the model" in report["load"], report
    assert report["stopped_pid_gone"] and report["workers_after"] == 0 and report["loaded_after"] == [], report
    assert report["next"] == 1, report


def test_a_reload_before_a_job_whose_worker_stops_answering_fails_the_job_and_the_next_job_works(
        sd1_model: TestModel) -> None:
    report = run_script(
        with_helpers("""
        mid = load("sd1")
        worker = runner._runners[mid].worker
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(30)  # dead before the job looks at it: the job loads the model again first
        limits(SHORT)
        def stop_at_first_load_tick(tick):
            if tick.phase == "load" and not stopped:
                stop_workers()
        job = qvac_nb.diffusion(model_id=mid, prompt="a castle", **SMALL)
        job.progress_stream.subscribe(stop_at_first_load_tick)
        report["job"] = in_thread(job.outputs.result, 90)
        report["stopped"] = len(stopped)
        report["stopped_pid_gone"] = all(not psutil.pid_exists(pid) for pid in stopped)
        report["workers_after"] = len(children())
        limits(LONG)
        report["next"] = len(generate(mid, seed=2))
        """),
        {"sd1": sd1_model},
    )
    assert report["stopped"] == 1, report
    assert report["job"].startswith("error: EngineCrashedError:"), report
    assert "stopped responding while loading the model" in report["job"], report
    assert report["stopped_pid_gone"] and report["workers_after"] == 0, report
    assert report["next"] == 1, report


def test_a_slow_load_that_still_answers_pings_is_not_ended(sd1_model: TestModel) -> None:
    # The engine thread hangs in the load; the worker's main thread still answers: only a cancel ends it.
    report = run_script(
        with_helpers("""
        from qvac_nb import models
        limits(SHORT)
        pings = []  # each ping after the first was sent once the one before it had been answered
        real_stopped = runner.Liveness.stopped
        def stopped_counting_pings(self):
            sent = self.ping_sent
            out = real_stopped(self)
            if self.ping_sent is not None and self.ping_sent != sent:
                pings.append(self.ping_sent)
            return out
        runner.Liveness.stopped = stopped_counting_pings
        stop = threading.Event()
        src, config = args["sd1"]["src"], args["sd1"]["config"]
        box = {}
        def load_until():
            try:
                box["out"] = models.load_model_until(stop, src, model_config=config)
            except QvacError as exc:
                box["out"] = type(exc).__name__
        thread = threading.Thread(target=load_until, daemon=True)
        thread.start()
        # Many ping rounds, counted rather than a fixed wait: 8 pings are 7 answered ones, and they span
        # over 7 x 0.2 s of silence, more than the 1 s a ping may go unanswered before the load is ended.
        deadline = time.monotonic() + 60
        while thread.is_alive() and len(pings) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        report["loading_after_pings"] = thread.is_alive()
        report["pings"] = min(len(pings), 8)
        stop.set()
        thread.join(60)
        report["after_cancel"] = box.get("out", "hung")
        report["workers_after"] = len(children())
        """),
        {"sd1": sd1_model},
        env={"QVAC_NB_WORKER_FAULT": "hang@load"},
    )
    assert report == {"loading_after_pings": True, "pings": 8, "after_cancel": "CancelledError",
                      "workers_after": 0}, report


# ---------------------------------------------------------------- loads of one model at the same time


def test_loads_of_one_model_at_the_same_time_load_it_once(sd1_model: TestModel) -> None:
    report = run_script(
        with_helpers("""
        src, config = args["sd1"]["src"], args["sd1"]["config"]
        other = {**config, "threads": config["threads"] + 1}  # another config: another model
        configs = [config, config, config, other]
        barrier = threading.Barrier(len(configs))
        def load_at_once(cfg):
            barrier.wait(60)
            return qvac_nb.load_model(src, model_config=cfg)
        outs = [None] * len(configs)
        threads = [threading.Thread(target=lambda i=i: outs.__setitem__(i, in_thread(
            lambda: load_at_once(configs[i]), 240))) for i in range(len(configs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        report["ids"] = outs
        report["workers"] = len(children())
        report["loaded"] = sorted(qvac_nb.loaded_models())
        report["generated"] = len(generate(outs[0]))
        fresh = qvac_nb.load_model(src, model_config=config, reload=True)  # still a fresh copy
        report["fresh_is_new"] = fresh not in outs and outs[0] not in qvac_nb.loaded_models()
        report["workers_after_reload"] = len(children())
        """),
        {"sd1": sd1_model},
    )
    same, other = report["ids"][:3], report["ids"][3]
    assert all(isinstance(mid, str) and "#" in mid for mid in report["ids"]), report
    assert len(set(same)) == 1 and other != same[0], report
    assert report["workers"] == 2 and report["loaded"] == sorted({same[0], other}), report
    assert report["generated"] == 1 and report["fresh_is_new"] and report["workers_after_reload"] == 2, report


def test_when_the_first_of_simultaneous_loads_fails_the_next_caller_loads(sd1_model: TestModel,
                                                                          tmp_path: Path) -> None:
    # The first load's worker exits; the callers that waited for it are not handed its failure.
    report = run_script(
        with_helpers("""
        src, config = args["sd1"]["src"], args["sd1"]["config"]
        barrier = threading.Barrier(3)
        def load_at_once():
            barrier.wait(60)
            return qvac_nb.load_model(src, model_config=config)
        outs = [None] * 3
        threads = [threading.Thread(target=lambda i=i: outs.__setitem__(i, in_thread(load_at_once, 240)))
                   for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        report["outs"] = outs
        report["workers"] = len(children())
        """),
        {"sd1": sd1_model},
        env={"QVAC_NB_WORKER_FAULT": "exit@load", "QVAC_NB_WORKER_FAULT_ONCE": str(tmp_path / "fired")},
    )
    failed = [out for out in report["outs"] if out.startswith("error: ")]
    loaded = [out for out in report["outs"] if not out.startswith("error: ")]
    assert len(failed) == 1 and "EngineCrashedError" in failed[0] and "exited with code 3" in failed[0], report
    assert len(loaded) == 2 and len(set(loaded)) == 1 and report["workers"] == 1, report


# ---------------------------------------------------------------- cancel messages


@pytest.mark.parametrize("phase, words", [
    (None, "while starting"), ("queued", "while starting"), ("load", "while loading what it needs"),
    ("encode", "while encoding the prompt"), ("sample", "while sampling"), ("decode", "while decoding the image"),
    ("upscale", "while upscaling"), ("tiling", "during its 'tiling' phase"),
])
def test_a_cancel_names_its_phase_in_words(phase: str | None, words: str) -> None:
    from qvac_nb import runner

    assert runner.cancelled_while(phase) == words


def test_a_cancel_the_engine_could_not_honour_reads_correctly(sd1_model: TestModel,
                                                              esrgan_model: TestModel) -> None:
    # Also what follows such a cancel (its worker ended, the stats settled, the model working again) and an
    # unload during an upscale: one process walks what were three tests' identical paths.
    report = run_script(
        """
        import numpy as np
        from qvac_nb import runner
        os.environ["QVAC_NB_WORKER_FAULT"] = "hang@diffusion"  # the job never reaches the engine
        mid = load("sd1")
        del os.environ["QVAC_NB_WORKER_FAULT"]
        job = qvac_nb.diffusion(model_id=mid, prompt="x", **SMALL)
        time.sleep(0.5)
        # A shorter grace: the hang outlasts any, and "while starting" needs no cancel ack from the worker.
        grace, runner.CANCEL_GRACE_S = runner.CANCEL_GRACE_S, 0.3
        t0 = time.monotonic()
        job.cancel()
        report["starting"] = outcome(job.outputs, 60)
        report["starting_stats"] = outcome(job.stats, 5)
        report["starting_s"] = time.monotonic() - t0
        runner.CANCEL_GRACE_S = grace  # "while upscaling" needs the worker's cancel ack within the grace
        report["next"] = len(generate(mid, seed=6))
        qvac_nb.unload_model(model_id=mid)
        up = load("esrgan", mode="upscale")
        image = (np.random.default_rng(0).random((512, 512, 3)) * 255).astype("uint8")
        job = qvac_nb.upscale(model_id=up, image=image)
        first_tick(job)  # the engine is upscaling: it cannot stop there
        t0 = time.monotonic()
        job.cancel()
        report["upscale"] = outcome(job.outputs, 60)
        report["upscale_s"] = time.monotonic() - t0
        job = qvac_nb.upscale(model_id=up, image=image)
        first_tick(job)
        t0 = time.monotonic()
        qvac_nb.unload_model(model_id=up)
        report["unload_s"] = time.monotonic() - t0
        report["unloaded_job"] = outcome(job.outputs, 10)
        """,
        {"sd1": sd1_model, "esrgan": esrgan_model},
    )
    assert report["starting"].startswith("CancelledError"), report
    assert "was cancelled while starting; the engine cannot stop there" in report["starting"], report
    assert "worker was ended" in report["starting"], report
    assert report["starting_stats"].startswith("CancelledError") and report["next"] == 1, report
    assert report["upscale"].startswith("CancelledError"), report
    assert "was cancelled while upscaling; the engine cannot stop there" in report["upscale"], report
    assert report["unloaded_job"].startswith("CancelledError") and "unloaded" in report["unloaded_job"], report
    print(f"cancel of a hung start {report['starting_s']:.2f} s, of an upscale {report['upscale_s']:.2f} s, "
          f"unload during an upscale {report['unload_s']:.2f} s")
