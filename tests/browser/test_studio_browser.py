"""The Studio in a real browser: JupyterLab from PyPI, Debian's Chromium driven by Playwright.

Runs a notebook that loads the SD1 test model and shows a Studio, then acts as a person
would: types a prompt, sets batch 2, clicks Generate, watches the bar and the latent
preview, sees two images in the gallery, downloads one, cancels a long run, saves the
notebook and reloads the page. It prints timings and the bytes of the widget messages
(counted on the kernel websocket) and saves screenshots (see SCREENSHOTS).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from lab_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    KERNEL_IDLE,
    LOAD_MODEL_CODE,
    LONG_MS,
    SCREENSHOTS,
    browser_test,
    model_env,
    python_env,
    run_cell,
    running_lab,
    write_notebook,
)
from ws_frames import FrameLog

PROMPT = "a lighthouse on a cliff at dusk, oil painting"

pytestmark = browser_test

# cfg 1: one U-Net pass a step (the test checks the bar, previews and images, not guidance).
STUDIO_CELL = LOAD_MODEL_CODE + """\
studio = qvac_nb.Studio(model_id, prompt="a boat", width=64, height=64, steps=4, cfg_scale=1)
studio"""
# The job view only has to show its bar and then its image: 1 step is enough.
JOB_CELL = """\
job = qvac_nb.diffusion(model_id=model_id, prompt="a small red house", width=64, height=64, steps=1, cfg_scale=1,
                        seed=7)
job"""
GALLERY_CELL = "qvac_nb.Gallery(studio.images)"

# Records what the progress bar shows, with timestamps, from inside the page.
WATCH_PROGRESS = """() => {
  window.__qvac = [];
  const root = document.querySelector('.qvac-studio');
  const bar = root.querySelector('.qvac-progress');
  const record = () => window.__qvac.push({
    t: performance.now(), phase: bar.dataset.phase, stage: root.querySelector('.qvac-stage').dataset.kind,
    value: Number(bar.querySelector('[role=progressbar]').getAttribute('aria-valuenow')),
    label: bar.querySelector('.qvac-progress-label').textContent,
  });
  new MutationObserver(record).observe(root, {subtree: true, attributes: true, childList: true, characterData: true});
}"""
STEPPED_40 = "() => /step [1-9]\\d*\\/40/.test(document.querySelector('.qvac-studio .qvac-progress-label').textContent)"
def _steps(label: str) -> int | None:
    match = re.search(r"step (\d+)/(\d+)", label)
    return int(match.group(1)) if match else None


def test_studio_in_jupyterlab(tmp_path: Path, sd1_model: Any, capsys: pytest.CaptureFixture) -> None:
    from playwright.sync_api import expect, sync_playwright

    from qvac_nb import read_parameters

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    notebook = tmp_path / "studio.ipynb"
    write_notebook(notebook, [STUDIO_CELL, JOB_CELL, GALLERY_CELL])
    env = {**python_env(), **model_env(sd1_model)}
    timings: dict[str, float] = {}
    log = FrameLog()
    t_start = time.monotonic()

    with running_lab(tmp_path, env) as lab, sync_playwright() as pw:
        timings["server start"] = time.monotonic() - t_start
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
            page.on("websocket", log.attach)
            t0 = time.monotonic()
            page.goto(lab.url("lab/tree/studio.ipynb"))
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=LONG_MS)
            page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)
            timings["lab open + kernel idle"] = time.monotonic() - t0

            # Run the cell: the Studio appears once the model is loaded.
            t0 = time.monotonic()
            log.mark("cell")
            run_cell(page, 0)
            studio = page.locator(".qvac-studio")
            expect(studio).to_be_visible(timeout=LONG_MS)
            expect(studio.locator("button[name=generate]")).to_be_enabled(timeout=LONG_MS)
            timings["run cell -> Studio shown"] = time.monotonic() - t0
            log.mark("shown")

            # Type a prompt, batch 2, Generate: the bar advances, a preview shows, then two images.
            studio.locator("textarea[name=prompt]").fill(PROMPT)
            studio.locator("input[name=batch_count]").fill("2")
            page.evaluate(WATCH_PROGRESS)
            log.mark("generate")
            t0 = time.monotonic()
            studio.locator("button[name=generate]").click()
            expect(studio.locator(".qvac-stage[data-kind=preview]")).to_be_visible(timeout=LONG_MS)
            timings["Generate -> first preview"] = time.monotonic() - t0
            studio.screenshot(path=str(SCREENSHOTS / "studio-progress.png"))
            expect(studio.locator(".qvac-grid .qvac-card")).to_have_count(2, timeout=LONG_MS)
            expect(studio.locator(".qvac-progress[data-phase=done]")).to_be_visible(timeout=LONG_MS)
            expect(studio.locator(".qvac-stage[data-kind=image]")).to_be_visible(timeout=LONG_MS)
            timings["Generate -> 2 images (batch 2, 4 steps, cfg 1, 64x64)"] = time.monotonic() - t0
            log.mark("generated")
            seen = page.evaluate("() => window.__qvac")
            values = sorted({r["value"] for r in seen if r["phase"] == "sampling"})
            assert len([v for v in values if 0 < v < 100]) >= 2, f"the bar did not advance: {values}"
            assert {"sampling", "decoding", "done"} <= {r["phase"] for r in seen}
            assert any(r["stage"] == "preview" for r in seen)
            studio.screenshot(path=str(SCREENSHOTS / "studio.png"))

            # Full size in a lightbox, then the PNG download with its parameters.
            studio.locator(".qvac-thumb").first.click()
            big = studio.locator(".qvac-lightbox-img")
            page.wait_for_function("(img) => img.naturalWidth === 64", arg=big.element_handle(), timeout=LONG_MS)
            page.screenshot(path=str(SCREENSHOTS / "studio-lightbox.png"))
            # In a 500 px wide window the image stacks above its parameter table, never drawn over it.
            page.set_viewport_size({"width": 500, "height": 900})
            _assert_stacked(page)
            page.screenshot(path=str(SCREENSHOTS / "studio-lightbox-500.png"))
            page.set_viewport_size({"width": 1280, "height": 1000})
            page.keyboard.press("Escape")
            expect(studio.locator(".qvac-lightbox")).to_have_count(0)
            with page.expect_download(timeout=LONG_MS) as download:
                studio.locator(".qvac-card").first.locator("button[data-action=download]").click()
            png = Path(download.value.path()).read_bytes()
            assert png.startswith(b"\x89PNG") and read_parameters(png)["prompt"] == PROMPT

            # A long run, cancelled: it stops within a step.
            studio.locator("input[name=steps]").fill("40")
            studio.locator("input[name=batch_count]").fill("1")
            page.evaluate("() => { window.__qvac.length = 0; }")
            log.mark("long")
            studio.locator("button[name=generate]").click()
            page.wait_for_function(STEPPED_40, timeout=LONG_MS)
            step_at_cancel = _steps(studio.locator(".qvac-progress-label").text_content() or "")
            t0 = time.monotonic()
            studio.locator("button[name=cancel]").click()
            expect(studio.locator(".qvac-progress[data-phase=cancelled]")).to_be_visible(timeout=LONG_MS)
            timings["Cancel -> stopped"] = time.monotonic() - t0
            log.mark("cancelled")
            last_step = max(s for r in page.evaluate("() => window.__qvac") if (s := _steps(r["label"])) is not None)
            assert step_at_cancel is not None and last_step <= step_at_cancel + 2 < 40
            expect(studio.locator(".qvac-grid .qvac-card")).to_have_count(2)

            # A job shows itself as a compact bar and then its image; a Gallery shows any images.
            t0 = time.monotonic()
            run_cell(page, 1)
            jobview = page.locator(".qvac-jobview")
            expect(jobview.locator(".qvac-job-img.qvac-full")).to_have_count(1, timeout=LONG_MS)
            timings["job cell -> image shown"] = time.monotonic() - t0
            jobview.screenshot(path=str(SCREENSHOTS / "jobview.png"))
            run_cell(page, 2)
            expect(page.locator(".qvac-gallery .qvac-card")).to_have_count(2, timeout=LONG_MS)
            page.locator(".qvac-gallery").screenshot(path=str(SCREENSHOTS / "gallery.png"))
            log.mark("extras")

            # Save (widget state included), reload: the Studio and its gallery come back.
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            _wait_for_saved_state(notebook)
            saved = notebook.read_text()
            assert "iVBORw0KGgo" not in saved, "a PNG (full-size image) was saved into the notebook"
            log.mark("reload")
            t0 = time.monotonic()
            page.reload()
            studio = page.locator(".qvac-studio")
            expect(studio.locator(".qvac-grid .qvac-card")).to_have_count(2, timeout=LONG_MS)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.qvac-studio .qvac-thumb')].every((i) => i.naturalWidth > 0)",
                timeout=LONG_MS,
            )
            timings["reload -> gallery restored"] = time.monotonic() - t0
            log.mark("restored")
            expect(studio.locator("textarea[name=prompt]")).to_have_value(PROMPT)
            studio.screenshot(path=str(SCREENSHOTS / "studio-restored.png"))
        finally:
            browser.close()

    timings["total"] = time.monotonic() - t_start
    report = _report(timings, log, notebook)
    with capsys.disabled():
        print("\n" + report)


def _assert_stacked(page: Any) -> None:
    """The open lightbox's image lies above its parameter table (no overlap), both inside the window's width."""
    width = page.viewport_size["width"]
    image = page.locator(".qvac-lightbox-img").bounding_box()
    table = page.locator(".qvac-lightbox .qvac-params").bounding_box()
    assert image and table, "the lightbox's image or parameter table is not laid out"
    assert image["y"] + image["height"] <= table["y"] + 0.5, f"the image overlaps the table: {image} {table}"
    for box in (image, table):
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, f"wider than the {width} px window: {box}"


def _wait_for_saved_state(notebook: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "application/vnd.jupyter.widget-state+json" in notebook.read_text():
            return
        time.sleep(0.2)
    raise TimeoutError("the notebook was not saved with its widget state")


def _report(timings: dict[str, float], log: FrameLog, notebook: Path) -> str:
    lines = ["Studio browser test: timings"]
    lines += [f"    {name:<48} {seconds:7.2f} s" for name, seconds in timings.items()]
    state = json.loads(notebook.read_text())["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
    lines.append(f"saved notebook: {notebook.stat().st_size} bytes, widget state {len(json.dumps(state))} bytes")
    for title, start, end in (
        ("run cell (Studio created)", "cell", "shown"),
        ("generate batch 2", "generate", "generated"),
        ("long run + cancel", "long", "cancelled"),
        ("job view + gallery cells", "cancelled", "extras"),
        ("reload (state restored)", "reload", "restored"),
    ):
        lines.append(FrameLog.format(title, log.between(start, end)))
    return "\n".join(lines)
