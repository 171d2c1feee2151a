"""Cancel while a cell blocks, on kernels that do not serve widgets on a subshell (ipykernel 6.29.5 as
Colab runs, and 7.3.0, whose subshells do not route comm messages).

A cell waits in `job.outputs.result()`; meanwhile the job view's Cancel message (what the JS button
sends) arrives on the shell channel, between two execute requests queued behind the cell. The wait
must handle the comm message at once (the job stops, the cell ends with CancelledError) and keep
the execute requests for after the cell, in order, each with its output under its own request.
Without qvac_nb.widgets.pump the Cancel waits behind the cell and the job runs to its end.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import old_kernel
import pytest
from browser.lab_server import LOAD_MODEL_CODE, model_env
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

STEPS = 100  # far more than the job reaches between the click and its cancel
TIMEOUT_S = 180.0
BLOCKING_CELL = f"""\
job = qvac_nb.diffusion(model_id=model_id, prompt="a small red house", width=64, height=64, steps={STEPS}, seed=7)
view = JobView(job)
sampled = [0]  # the last sampling step the job reached
job.progress_stream.subscribe(lambda tick: sampled.__setitem__(0, tick.step) if tick.phase == "sample" else None)
print("COMM", view.comm.comm_id, view.served_on_subshell, flush=True)
try:
    job.outputs.result()
finally:
    print("WAITED", job.cancelled, sampled[0], flush=True)
"""


@contextmanager
def _kernel(kernels_dir: Path, ipykernel_dir: Path | None, env: dict[str, str]) -> Iterator[Any]:
    name = old_kernel.write_kernelspec(kernels_dir, ipykernel_dir)
    km = KernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))
    km.start_kernel(env={**os.environ, **env})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _run(kc: Any, code: str) -> str:
    """Runs `code`, returns its stdout; fails on an error."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, timeout=TIMEOUT_S, output_hook=hook)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


class _Iopub:
    """The kernel's IOPub messages, read as they come, kept by parent request id."""

    def __init__(self, kc: Any) -> None:
        self.kc = kc
        self.text: dict[str, str] = {}  # parent msg_id -> its stdout
        self.idle: set[str] = set()

    def pump(self, until: Any, timeout: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; output so far: {self.text}"
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            parent = msg["parent_header"].get("msg_id", "")
            if msg["msg_type"] == "stream":
                self.text[parent] = self.text.get(parent, "") + msg["content"]["text"]
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                self.idle.add(parent)


@pytest.mark.parametrize("version", ["6.29.5", "7.3.0", None])
def test_cancel_while_a_cell_blocks(tmp_path: Path, sd1_model: Any, old_ipykernel: Any, version: str | None) -> None:
    """None: the venv's ipykernel (>= 7.4), where a subshell serves the widgets and the wait must not pump."""
    folder = old_ipykernel(version) if version else None
    with _kernel(tmp_path / "kernels", folder, model_env(sd1_model)) as (km, kc):
        got = _run(kc, "import ipykernel; print(ipykernel.__version__)").strip()
        assert got == version if version else tuple(map(int, got.split(".")[:2])) >= (7, 4)
        setup = LOAD_MODEL_CODE + """\
from qvac_nb.widgets import JobView, pump, subshell
print(subshell.routes_widgets(subshell.kernel()), pump._Pump.here() is not None)"""
        # Old kernels: no comm routing, the wait pumps. Newer: the subshell serves the widgets, no pump.
        assert _run(kc, setup).split() == (["False", "True"] if version else ["True", "False"])

        iopub = _Iopub(kc)
        cell = kc.execute(BLOCKING_CELL, stop_on_error=False)
        iopub.pump(lambda: "COMM" in iopub.text.get(cell, ""))
        _, comm_id, on_subshell = iopub.text[cell].split()[:3]
        assert on_subshell == str(not version)
        time.sleep(0.2)  # the cell printed COMM just before job.outputs.result(): it is now inside

        # Queued behind the blocked cell: a cell, the job view's Cancel click, another cell.
        before = kc.execute("print('BEFORE CANCEL RAN')")
        cancel = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"method": "custom",
                                                                          "content": {"type": "cancel"}}})
        kc.shell_channel.send(cancel)
        after = kc.execute("print('AFTER CANCEL RAN')")

        replies: list[tuple[str, dict[str, Any]]] = []
        while len(replies) < 3:
            try:
                msg = kc.get_shell_msg(timeout=TIMEOUT_S)
            except queue.Empty:
                km.interrupt_kernel()  # Ctrl-C cancels the job, so the kernel shuts down quickly
                pytest.fail(f"the blocked cell did not end within {TIMEOUT_S:.0f} s")
            replies.append((msg["parent_header"]["msg_id"], msg["content"]))
        iopub.pump(lambda: {cell, before, after} <= iopub.idle)

    # The cell ended with the job cancelled before its last step (not run to its end, then cancelled).
    assert [r[0] for r in replies] == [cell, before, after]  # and the queued cells ran after it, in order
    assert replies[0][1]["status"] == "error" and replies[0][1]["ename"] == "CancelledError", replies[0][1]
    waited = iopub.text[cell].rstrip().splitlines()[-1].split()
    assert waited[:2] == ["WAITED", "True"] and int(waited[2]) < STEPS, waited
    # Each cell's output under its own request (the comm's handling did not move the blocked cell's).
    assert iopub.text.get(before) == "BEFORE CANCEL RAN\n"
    assert iopub.text.get(after) == "AFTER CANCEL RAN\n"
    assert "CANCEL RAN" not in iopub.text[cell]
    assert all(r[1]["status"] == "ok" for r in replies[1:])


def test_result_keeps_its_timeout_and_ctrl_c_through_the_wait_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from qvac_nb import jobs

    clock = [100.0]  # jobs' monotonic clock, moved by the hook: no real time is measured
    monkeypatch.setattr(jobs, "time", SimpleNamespace(monotonic=lambda: clock[0], perf_counter=time.perf_counter))
    calls: list[float | None] = []
    left: list[float | None] = []

    def hook(_future: Any, timeout: float | None) -> None:
        calls.append(timeout)
        clock[0] += 0.3  # a pump's slices: part of the timeout

    def plain_wait(_future: Any, timeout: float | None = None) -> Any:
        left.append(timeout)
        raise concurrent.futures.TimeoutError

    before = jobs._wait_hook
    jobs.set_wait_hook(hook)
    try:
        with monkeypatch.context() as m:
            m.setattr(concurrent.futures.Future, "result", plain_wait)
            with pytest.raises(concurrent.futures.TimeoutError):
                jobs.Outcome().result(timeout=0.5)
        assert calls == [0.5] and left == [pytest.approx(0.2)]  # the hook's time counts against the timeout
        done = jobs.Outcome()
        done.set_result(3)
        assert done.result() == 3 and calls == [0.5]  # a settled outcome does not wait at all

        def interrupted(_future: Any, _timeout: float | None) -> None:
            raise KeyboardInterrupt

        jobs.set_wait_hook(interrupted)
        job = jobs.Job("m", {})
        with pytest.raises(KeyboardInterrupt):
            job.outputs.result()
        assert job.cancelled  # Ctrl-C during the wait still stops the job
    finally:
        jobs.set_wait_hook(before)


def test_no_pump_outside_a_kernel() -> None:
    from qvac_nb.widgets import pump

    assert pump._Pump.here() is None
    # No timeout and a future that never settles: a pump would wait forever (pytest-timeout would fail the
    # test); outside a kernel the hook returns at once and leaves the waiting to Outcome.result.
    pump.wait(concurrent.futures.Future(), None)
