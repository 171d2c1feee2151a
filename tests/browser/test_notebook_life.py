"""The widgets across a notebook's life, in a real JupyterLab and Chromium.

Cancel while a cell blocks: a cell waits in `job.outputs.result()` (the tour's pattern) and
the JobView's Cancel, then the Studio's, still stops the job, because the widgets' messages are
served on a kernel subshell rather than queued behind the running cell (ipykernel >= 7.4), or,
on a kernel without that (ipykernel 6.x, as Colab runs), handled by the blocked wait itself.

Restart and re-run: after a kernel restart the Studio says so and offers no dead buttons; running
its cell again shows the images saved before the restart (the history folder).
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import old_kernel
import pytest
from lab_server import (
    KERNEL_IDLE,
    LOAD_MODEL_CODE,
    LONG_MS,
    SCREENSHOTS,
    Lab,
    browser_test,
    model_env,
    open_notebook,
    python_env,
    run_cell,
    running_lab,
    write_notebook,
)

STEPS = 100  # cancelled after their first step; cfg 1 (one U-Net pass a step) for every generation here

pytestmark = browser_test

LOAD_CELL = LOAD_MODEL_CODE + """\
studio = qvac_nb.Studio(model_id, prompt="a boat", width=64, height=64, steps=STEPS, cfg_scale=1,
                        output_dir="outs")
studio""".replace("STEPS", str(STEPS))
# The tour's pattern: show the job, then block the cell on its outputs.
BLOCKING_JOB_CELL = """\
job = qvac_nb.diffusion(model_id=model_id, prompt="a small red house", width=64, height=64, steps=STEPS,
                        cfg_scale=1, seed=7)
display(job)
try:
    job.outputs.result()
    print("JOB RAN TO THE END")
except qvac_nb.CancelledError:
    print("JOB CANCELLED WHILE THE CELL WAITED")""".replace("STEPS", str(STEPS))
BLOCKING_STUDIO_CELL = """\
try:
    studio.job.outputs.result()
    print("STUDIO JOB RAN TO THE END")
except qvac_nb.CancelledError:
    print("STUDIO JOB CANCELLED WHILE THE CELL WAITED")"""


def _step(label: str) -> int | None:
    match = re.search(r"step (\d+)/(\d+)", label or "")
    return int(match.group(1)) if match else None


def _stepping(selector: str) -> str:
    return f"() => /step [1-9]\\d*\\/{STEPS}/.test((document.querySelector('{selector}') || {{}}).textContent || '')"


def _cancel_while_cells_block(page: Any) -> Any:
    """Runs the load cell, then Cancel from the job view and from the Studio while a cell blocks; the Studio."""
    from playwright.sync_api import expect

    run_cell(page, 0)
    studio = page.locator(".qvac-studio")
    expect(studio.locator("button[name=generate]")).to_be_enabled(timeout=LONG_MS)

    # 1. The job view's Cancel while its cell waits in job.outputs.result().
    run_cell(page, 1)
    jobview = page.locator(".qvac-jobview")
    page.wait_for_function(_stepping(".qvac-jobview .qvac-progress-label"), timeout=LONG_MS)
    at_cancel = _step(jobview.locator(".qvac-progress-label").text_content())
    jobview.locator("button[name=cancel]").click()
    expect(jobview).to_have_attribute("data-phase", "cancelled", timeout=LONG_MS)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
    expect(cell.locator(".jp-OutputArea")).to_contain_text("JOB CANCELLED WHILE THE CELL WAITED", timeout=LONG_MS)
    last = _step(jobview.locator(".qvac-progress-label").text_content())
    assert at_cancel is not None and (last is None or last < STEPS)

    # 2. The Studio's Cancel while a cell waits on the Studio's job.
    page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)
    studio.locator("button[name=generate]").click()
    page.wait_for_function(_stepping(".qvac-studio .qvac-progress-label"), timeout=LONG_MS)
    run_cell(page, 2)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(2)
    # The cell is running (busy prompt "[*]") when Cancel is clicked.
    expect(cell.locator(".jp-InputPrompt")).to_contain_text("*", timeout=LONG_MS)
    studio.locator("button[name=cancel]").click()
    expect(studio.locator(".qvac-progress[data-phase=cancelled]")).to_be_visible(timeout=LONG_MS)
    expect(cell.locator(".jp-OutputArea")).to_contain_text("STUDIO JOB CANCELLED WHILE THE CELL WAITED",
                                                            timeout=LONG_MS)
    expect(studio.locator(".qvac-stage")).not_to_have_attribute("data-kind", "preview")  # not a result
    return studio


@pytest.fixture(scope="module")
def module_lab(tmp_path_factory: pytest.TempPathFactory, sd1_model: Any, old_ipykernel: Any) -> Iterator[Lab]:
    """One JupyterLab for this file's tests (one server start less), seeing ipykernel 6.29.5's kernel spec too."""
    root = tmp_path_factory.mktemp("life")
    jupyter_path = root / "jupyter"  # a kernel spec only this lab sees
    old_kernel.write_kernelspec(jupyter_path / "kernels", old_ipykernel("6.29.5"))
    env = {**python_env(), **model_env(sd1_model), "JUPYTER_PATH": str(jupyter_path)}
    with running_lab(root, env) as lab:
        yield lab


@pytest.fixture
def lab(module_lab: Lab, request: pytest.FixtureRequest) -> Iterator[tuple[Lab, Path]]:
    """The module's lab and a folder of its own in it (notebooks, "outs"); after the test its kernels are shut down
    and the saved workspace dropped (the next test's page would reopen this test's notebook)."""
    folder = module_lab.root / request.node.name
    folder.mkdir()
    yield module_lab, folder
    with urllib.request.urlopen(module_lab.url("api/sessions"), timeout=30) as resp:
        sessions = json.load(resp)
    for session in sessions:
        if session["path"].startswith(f"{folder.name}/"):
            req = urllib.request.Request(module_lab.url(f"api/sessions/{session['id']}"), method="DELETE")
            urllib.request.urlopen(req, timeout=60).close()
    shutil.rmtree(module_lab.root / ".lab" / "workspaces", ignore_errors=True)


def test_cancel_while_a_cell_blocks(lab: tuple[Lab, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    server, folder = lab
    notebook = folder / "life.ipynb"
    write_notebook(notebook, [LOAD_CELL, BLOCKING_JOB_CELL, BLOCKING_STUDIO_CELL])

    with sync_playwright() as pw, open_notebook(pw, server, f"{folder.name}/life.ipynb", LONG_MS) as page:
        studio = _cancel_while_cells_block(page)

        # 3. One image (1 step: it only has to exist), then a kernel restart: the Studio says so and its buttons
        # are off.
        page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)
        studio.locator("input[name=steps]").fill("1")
        studio.locator("button[name=generate]").click()
        expect(studio.locator(".qvac-grid .qvac-card")).to_have_count(1, timeout=LONG_MS)
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
        expect(studio.locator(".qvac-dead")).to_be_visible(timeout=LONG_MS)
        expect(studio.locator(".qvac-dead")).to_contain_text("Kernel restarted")
        expect(studio.locator("button[name=generate]")).to_be_disabled()
        expect(studio.locator(".qvac-card button[data-action=reuse_seed]")).to_be_disabled()

        # 4. Re-run the cell: the new Studio lists the image saved before the restart.
        page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)
        run_cell(page, 0)
        studio = page.locator(".qvac-studio")
        expect(studio.locator(".qvac-dead")).to_be_hidden(timeout=LONG_MS)
        expect(studio.locator(".qvac-grid .qvac-card")).to_have_count(1, timeout=LONG_MS)
        expect(studio.locator("button[name=generate]")).to_be_enabled(timeout=LONG_MS)
        studio.screenshot(path=str(SCREENSHOTS / "studio-history-after-restart.png"))


def test_cancel_while_a_cell_blocks_on_ipykernel6(lab: tuple[Lab, Path], old_ipykernel: Any) -> None:
    """The same Cancels on ipykernel 6.29.5 (no subshells, as in Colab): the blocked wait pumps the clicks."""
    from playwright.sync_api import sync_playwright

    server, folder = lab
    # The spec module_lab wrote for the lab (write_kernelspec only names it here: same folder, same name).
    kernel = old_kernel.write_kernelspec(server.root / "jupyter" / "kernels", old_ipykernel("6.29.5"))
    notebook = folder / "life6.ipynb"
    check = "import ipykernel; from qvac_nb.widgets import subshell\n"
    check += "print('IPYKERNEL', ipykernel.__version__, 'ROUTED', subshell.routes_widgets(subshell.kernel()))"
    write_notebook(notebook, [LOAD_CELL, BLOCKING_JOB_CELL, BLOCKING_STUDIO_CELL, check], kernel=kernel)

    with sync_playwright() as pw, open_notebook(pw, server, f"{folder.name}/life6.ipynb", LONG_MS) as page:
        _cancel_while_cells_block(page)
        page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)
        run_cell(page, 3)
        output = page.locator(".jp-Notebook .jp-Cell").nth(3).locator(".jp-OutputArea")
        output.get_by_text("IPYKERNEL 6.29.5 ROUTED False").wait_for(timeout=LONG_MS)
