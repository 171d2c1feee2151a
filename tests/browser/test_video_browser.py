"""A video job in a real JupyterLab and Chromium: the job view's progress, then a player that plays.

The notebook loads the Wan 2.1 test model (mode 'video'), shows a `video()` job as a cell's value and then
the finished `Video` as another's. Both players must reach readyState >= 2 (HAVE_CURRENT_DATA) and their
currentTime must move: the H.264 MP4 qvac_nb writes decodes in Chromium, from a blob URL (the live job view)
and from a data: URL (the Video's own HTML, which a saved notebook keeps).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab_server import (
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

LOAD_CELL = """\
import json, os
import qvac_nb
config = {**json.loads(os.environ["QVAC_NB_BROWSER_CONFIG"]), "mode": "video"}
model_id = qvac_nb.load_model(os.environ["QVAC_NB_BROWSER_MODEL"], model_config=config)
print("LOADED", model_id)"""
JOB_CELL = """\
job = qvac_nb.video(model_id=model_id, prompt="a lovely cat", width=64, height=64, video_frames=5, steps=1,
                    cfg_scale=1.0, seed=3)
job"""
RESULT_CELL = "job.video()"
# readyState, and whether currentTime moved across three samples 150 ms apart (the clip loops).
PLAYING = """async (selector) => {
  const v = document.querySelector(selector);
  if (!v) return null;
  const times = [];
  for (let i = 0; i < 3; i++) { times.push(v.currentTime); await new Promise((r) => setTimeout(r, 150)); }
  return {ready: v.readyState, moved: new Set(times).size > 1, error: v.error && v.error.code, paused: v.paused};
}"""


def _played(page: Any, selector: str) -> dict[str, Any]:
    page.wait_for_function(f"() => {{ const v = document.querySelector({json.dumps(selector)}); "
                           "return Boolean(v && v.readyState >= 2); }", timeout=LONG_MS)
    return page.evaluate(PLAYING, selector)


def test_a_video_job_plays_in_jupyterlab(tmp_path: Path) -> None:
    from conftest import _model
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    write_notebook(tmp_path / "video.ipynb", [LOAD_CELL, JOB_CELL, RESULT_CELL])
    env = {**python_env(), **model_env(_model("wan21_t2v"))}
    with (running_lab(tmp_path, env) as lab, sync_playwright() as pw,
          open_notebook(pw, lab, "video.ipynb", LONG_MS) as page):
        run_cell(page, 0)
        expect(page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-OutputArea")).to_contain_text(
            "LOADED", timeout=LONG_MS)
        run_cell(page, 1)
        jobview = page.locator(".qvac-jobview")
        expect(jobview).to_be_visible(timeout=LONG_MS)
        live = _played(page, ".qvac-jobview video")
        assert live["ready"] >= 2 and live["moved"] and not live["error"], live
        expect(jobview).to_have_attribute("data-phase", "done", timeout=LONG_MS)
        expect(jobview.locator("figcaption")).to_contain_text("5 frames")
        run_cell(page, 2)
        static = _played(page, ".jp-OutputArea video.qvac-nb-video")
        assert static["ready"] >= 2 and static["moved"] and not static["error"], static
        page.locator(".jp-Notebook").screenshot(path=str(SCREENSHOTS / "video-job-and-player.png"))
