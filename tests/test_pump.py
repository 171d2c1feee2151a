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
from typing import Any

import old_kernel
import pytest
from browser.lab_server import LOAD_MODEL_CODE, model_env
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

STEPS = 100  # at 64x64 the test model takes far longer than the test waits after Cancel
TIMEOUT_S = 180.0
CANCEL_WITHIN_S = 30.0  # the blocked cell ends this soon after the click, or Cancel was not handled
BLOCKING_CELL = f"""\
import time
job = qvac_nb.diffusion(model_id=model_id, prompt="a small red house", width=64, height=64, steps={STEPS}, seed=7)
view = JobView(job)
print("COMM", view.comm.comm_id, view.served_on_subshell, flush=True)
started = time.monotonic()
try:
    job.outputs.result()
finally:
    print("WAITED", round(time.monotonic() - started, 1), job.cancelled, flush=True)
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
        time.sleep(1.0)  # the cell is now inside job.outputs.result()

        # Queued behind the blocked cell: a cell, the job view's Cancel click, another cell.
        before = kc.execute("print('BEFORE CANCEL RAN')")
        cancel_sent = time.monotonic()
        cancel = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"method": "custom",
                                                                          "content": {"type": "cancel"}}})
        kc.shell_channel.send(cancel)
        after = kc.execute("print('AFTER CANCEL RAN')")

        replies: list[tuple[str, dict[str, Any], float]] = []
        while len(replies) < 3:
            try:
                msg = kc.get_shell_msg(timeout=CANCEL_WITHIN_S if not replies else TIMEOUT_S)
            except queue.Empty:
                km.interrupt_kernel()  # Ctrl-C cancels the job, so the kernel shuts down quickly
                pytest.fail(f"the blocked cell did not end within {CANCEL_WITHIN_S:.0f} s of Cancel")
            replies.append((msg["parent_header"]["msg_id"], msg["content"], time.monotonic() - cancel_sent))
        iopub.pump(lambda: {cell, before, after} <= iopub.idle)

    # The cell ended with the job cancelled, soon after the click, not after its 100 steps.
    assert [r[0] for r in replies] == [cell, before, after]  # and the queued cells ran after it, in order
    assert replies[0][1]["status"] == "error" and replies[0][1]["ename"] == "CancelledError", replies[0][1]
    assert replies[0][2] < CANCEL_WITHIN_S
    assert "WAITED" in iopub.text[cell] and iopub.text[cell].rstrip().endswith("True")
    # Each cell's output under its own request (the comm's handling did not move the blocked cell's).
    assert iopub.text.get(before) == "BEFORE CANCEL RAN\n"
    assert iopub.text.get(after) == "AFTER CANCEL RAN\n"
    assert "CANCEL RAN" not in iopub.text[cell]
    assert all(r[1]["status"] == "ok" for r in replies[1:])


def test_result_keeps_its_timeout_and_ctrl_c_through_the_wait_hook() -> None:
    from qvac_nb import jobs

    calls: list[float | None] = []

    def hook(_future: Any, timeout: float | None) -> None:
        calls.append(timeout)
        time.sleep(0.2)  # a pump's slices: part of the time

    before = jobs._wait_hook
    jobs.set_wait_hook(hook)
    try:
        started = time.monotonic()
        with pytest.raises(concurrent.futures.TimeoutError):
            jobs.Outcome().result(timeout=0.5)
        assert 0.45 < time.monotonic() - started < 1.0 and calls == [0.5]  # the hook's time counts
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

    started = time.monotonic()
    pump.wait(concurrent.futures.Future(), 5.0)  # returns at once: Outcome.result waits plainly
    assert time.monotonic() - started < 0.5
