"""The notebook as a document, in a real JupyterLab (default settings: widget state is not saved) and Chromium.

A job cell and a Studio make their images; each also left a saved copy beside its widget (an ordinary HTML
output, widgets/static_copies.py), hidden while the widget runs. The notebook is saved, its kernel shut down
and the notebook opened again: the widgets cannot come back ("model not found"), and the copies show the
images instead. The same file through `jupyter nbconvert --to html`, opened with the network cut off, shows
them too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from lab_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    KERNEL_IDLE,
    LOAD_MODEL_CODE,
    LONG_MS,
    SCREENSHOTS,
    browser_test,
    model_env,
    open_notebook,
    python_env,
    run_cell,
    running_lab,
    write_notebook,
)

pytestmark = browser_test

LOAD_CELL = LOAD_MODEL_CODE + 'print("LOADED")'
# 1 step at cfg 1 (one U-Net pass): the images only have to exist.
JOB_CELL = """\
job = qvac_nb.diffusion(model_id=model_id, prompt="a red boat", width=64, height=64, steps=1, cfg_scale=1, seed=5)
job"""
STUDIO_CELL = """\
studio = qvac_nb.Studio(model_id, output_dir="outs", prompt="a green kite", width=64, height=64, steps=1,
                        cfg_scale=1, seed=9)
studio"""
COPY = ".qvac-static-output"
# Images of a selector that the browser drew (loaded and not hidden).
SHOWN_IMAGES = """(selector) => [...document.querySelectorAll(selector + ' img')]
  .filter((img) => img.complete && img.naturalWidth > 0 && img.getClientRects().length > 0).length"""


def _cell(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def _saved_copies(notebook: Path) -> list[str]:
    """The saved copies' HTML in the notebook file."""
    cells = json.loads(notebook.read_text())["cells"]
    html = ["".join(out.get("data", {}).get("text/html", "")) for cell in cells for out in cell.get("outputs", [])]
    return [text for text in html if "qvac-static-output" in text]


def test_a_saved_notebook_reopened_and_exported_shows_its_images(tmp_path: Path, sd1_model: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    notebook = tmp_path / "document.ipynb"
    write_notebook(notebook, [LOAD_CELL, JOB_CELL, STUDIO_CELL])
    env = {**python_env(), **model_env(sd1_model)}
    with running_lab(tmp_path, env) as lab, sync_playwright() as pw:
        with open_notebook(pw, lab, notebook.name, LONG_MS) as page:
            run_cell(page, 0)
            expect(_cell(page, 0).locator(".jp-OutputArea")).to_contain_text("LOADED", timeout=LONG_MS)
            run_cell(page, 1)
            jobview = _cell(page, 1).locator(".qvac-jobview")
            expect(jobview).to_have_attribute("data-phase", "done", timeout=LONG_MS)
            run_cell(page, 2)
            studio = _cell(page, 2).locator(".qvac-studio")
            expect(studio.locator("button[name=generate]")).to_be_enabled(timeout=LONG_MS)
            page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)
            studio.locator("button[name=generate]").click()
            expect(studio.locator(".qvac-grid .qvac-card")).to_have_count(1, timeout=LONG_MS)
            # While the widgets run, their copies are in the cells (updated with the images) but not shown.
            for index in (1, 2):
                copy = _cell(page, index).locator(COPY)
                expect(copy).to_have_count(1, timeout=LONG_MS)
                expect(copy.locator("img")).to_have_count(1, timeout=LONG_MS)
                expect(copy).to_be_hidden()
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
                                   timeout=LONG_MS)
            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.shutdown()")
        saved = _saved_copies(notebook)
        assert len(saved) == 2 and all("data:image/jpeg;base64," in html for html in saved), saved
        assert "a red boat" in saved[0] and "a green kite" in saved[1]

        # The saved file exported to HTML (checked below) while the notebook is reopened: the export runs on a
        # copy, so the reopening cannot change what is exported.
        to_export = tmp_path / "export" / notebook.name
        to_export.parent.mkdir()
        shutil.copyfile(notebook, to_export)
        out = tmp_path / "html"
        convert_log = tmp_path / "nbconvert.log"
        with open(convert_log, "wb") as log:
            convert = subprocess.Popen([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(to_export),
                                        "--output-dir", str(out)], stdout=log, stderr=subprocess.STDOUT)
        try:
            # Reopened with a new kernel: the widgets' models are gone; their saved copies show the images.
            with open_notebook(pw, lab, notebook.name, LONG_MS) as page:
                for index in (1, 2):
                    expect(_cell(page, index).locator(COPY)).to_be_visible(timeout=LONG_MS)
                page.wait_for_function(f"() => ({SHOWN_IMAGES})({json.dumps(COPY)}) === 2", timeout=LONG_MS)
                assert page.locator(".qvac-jobview, .qvac-studio").count() == 0  # no live widget came back
                page.locator(".jp-Notebook").screenshot(path=str(SCREENSHOTS / "reopened-notebook.png"))
            convert.wait(300)
        finally:
            if convert.poll() is None:
                convert.kill()
                convert.wait(5)

        # Exported to HTML and opened offline (only the file itself loads): the images show.
        assert convert.returncode == 0, convert_log.read_text()[-2000:]
        exported = out / "document.html"
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                       else route.abort())
            page.goto(exported.as_uri())
            page.wait_for_function(f"() => ({SHOWN_IMAGES})({json.dumps(COPY)}) === 2", timeout=LONG_MS)
            page.screenshot(path=str(SCREENSHOTS / "exported-notebook.png"), full_page=True)
        finally:
            browser.close()
