"""Bad inputs, long sessions, interrupts and concurrency, each run in a child process.

A native crash in the engine would kill pytest itself, so every case runs in
reliability_worker.py; the worker reports one JSON record per case, and a case that
kills it shows up here as a failed (crashed) case while the rest still run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import restore_sigint
from reliability_worker import CASES, SCENARIOS, child_env, run_items

WORKER = Path(__file__).with_name("reliability_worker.py")


def _env() -> dict[str, str]:
    # Workers inherit this process's environment, so they import the same qvac_nb as the tests
    # (the installed package in CI; the source tree never has the compiled engine there).
    return {}


def _describe(record: dict[str, Any]) -> str:
    if record.get("crashed"):
        return f"the process died (exit {record.get('exit')}) running this case:\n{record.get('stderr', '')[-1500:]}"
    return json.dumps(record, indent=1)[:3000]


@pytest.fixture(scope="module")
def case_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run_items(list(CASES), tmp_path_factory.mktemp("bad-inputs"), env=_env())


@pytest.fixture(scope="module")
def scenario_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run_items(list(SCENARIOS), tmp_path_factory.mktemp("scenarios"), env=_env())


def test_the_suite_has_forty_cases_across_the_api() -> None:
    apis = {case.api for case in CASES.values()}
    assert len(CASES) >= 40
    assert {"load_model", "diffusion", "upscale", "unload_model", "cancel"} <= apis


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(case_results: dict[str, dict[str, Any]], name: str) -> None:
    """The documented QvacError subclass, naming the parameter; the process lives; after a case that reached a
    worker (and after the last case) SD1 still generates, after the others every model's worker still runs."""
    record = case_results[name]
    case = CASES[name]
    assert not record.get("crashed"), _describe(record)
    assert record["raised"] == case.expect, _describe(record)
    assert record["qvac"], _describe(record)
    assert case.param in record["message"], _describe(record)
    assert record["alive"], _describe(record)


def test_a_refusal_in_the_kernel_is_told_from_one_that_reached_a_worker(
        case_results: dict[str, dict[str, Any]]) -> None:
    # What decides whether a case is followed by a generation (reliability_worker._run_case).
    assert not case_results["diffusion_param_typo"]["reached_a_worker"]
    assert case_results["load_esrgan_as_diffusion"]["reached_a_worker"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(scenario_results: dict[str, dict[str, Any]], name: str) -> None:
    record = scenario_results[name]
    assert not record.get("crashed"), _describe(record)
    assert record["ok"], _describe(record)


def test_ctrl_c_while_waiting_cancels_the_job(tmp_path: Path) -> None:
    """A real SIGINT (what Jupyter's interrupt sends) while a cell waits on result()."""
    proc = subprocess.Popen([sys.executable, str(WORKER), "--sigint-child"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env(_env()), preexec_fn=restore_sigint)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "WAITING", line + proc.stderr.read()[-2000:] if proc.stderr else line
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    assert result == {**result, "interrupted": True, "outcome": "cancelled", "model_usable": True}, result
    assert result["steps_run"] < 60
