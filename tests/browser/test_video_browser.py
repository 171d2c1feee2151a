"""Video in a real JupyterLab and Chromium: the Studio's video mode, the job view's live player, the Video's
own player, and the clip in a Gallery of the history folder after a kernel restart.

The notebook loads the Wan 2.1 test model (mode 'video') and shows a Studio on it: its form is in video mode,
and clicking "Generate video" starts one video (each costs a full pass of the test model's UMT5-XXL encoder,
so this one video serves every player). While it is made, a cell shows the Studio's job: a job view with
progress, then its player. Every player must reach readyState >= 2 (HAVE_CURRENT_DATA) and its currentTime
must move: the H.264 MP4 qvac_nb writes decodes in Chromium from a blob URL (the job view, the Studio's stage,
the gallery's lightbox) and from a data: URL (the Video's own HTML, which a saved notebook keeps). After a
kernel restart, `Gallery.from_folder` lists the clip and its lightbox plays the file read from disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab_server import (
    KERNEL_IDLE,
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
# Waits on the video itself: one costs a full UMT5-XXL pass (55-85 s on a quiet 2-core machine, several times that
# when the machine is shared), more than LONG_MS allows for a page's other waits.
VIDEO_MS = 900_000

LOAD_CELL = """\
import json, os
import qvac_nb
config = {**json.loads(os.environ["QVAC_NB_BROWSER_CONFIG"]), "mode": "video"}
model_id = qvac_nb.load_model(os.environ["QVAC_NB_BROWSER_MODEL"], model_config=config)
print("LOADED", model_id)"""
STUDIO_CELL = """\
studio = qvac_nb.Studio(model_id, output_dir="clips", prompt="a lovely cat", width=64, height=64, video_frames=5,
                        steps=1, cfg_scale=1.0, seed=3)
studio"""
JOB_CELL = """\
job = studio.job  # the video the Studio's button started
job"""
RESULT_CELL = "job.video()"
GALLERY_CELL = """\
import qvac_nb
qvac_nb.Gallery.from_folder("clips")"""
# readyState, and whether currentTime moved across three samples 150 ms apart (the clip loops).
# The player is scrolled into view first: Chromium pauses a muted autoplaying video while it is off screen.
PLAYING = """async (selector) => {
  const v = document.querySelector(selector);
  if (!v) return null;
  v.scrollIntoView({block: "center"});
  if (v.paused) await new Promise((r) => { v.addEventListener("playing", r, {once: true}); setTimeout(r, 5000); });
  const times = [];
  for (let i = 0; i < 3; i++) { times.push(v.currentTime); await new Promise((r) => setTimeout(r, 150)); }
  return {ready: v.readyState, moved: new Set(times).size > 1, error: v.error && v.error.code, paused: v.paused};
}"""


def _played(page: Any, selector: str, timeout_ms: float = LONG_MS) -> dict[str, Any]:
    page.wait_for_function(f"() => {{ const v = document.querySelector({json.dumps(selector)}); "
                           "return Boolean(v && v.readyState >= 2); }", timeout=timeout_ms)
    return page.evaluate(PLAYING, selector)


def test_studio_video_mode_job_view_and_gallery_play_in_jupyterlab(tmp_path: Path) -> None:
    from conftest import _model
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    write_notebook(tmp_path / "video.ipynb", [LOAD_CELL, STUDIO_CELL, JOB_CELL, RESULT_CELL, GALLERY_CELL])
    env = {**python_env(), **model_env(_model("wan21_t2v"))}
    with (running_lab(tmp_path, env) as lab, sync_playwright() as pw,
          open_notebook(pw, lab, "video.ipynb", LONG_MS) as page):
        run_cell(page, 0)
        expect(page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-OutputArea")).to_contain_text(
            "LOADED", timeout=LONG_MS)

        # The Studio in video mode: its form has the video's fields, its button makes a video.
        run_cell(page, 1)
        studio = page.locator(".qvac-studio")
        generate = studio.locator("button[name=generate]")
        expect(generate).to_have_text("Generate video", timeout=LONG_MS)
        expect(studio.locator("[data-param=video_frames]")).to_be_visible()
        expect(studio.locator("[data-param=batch_count]")).to_be_hidden()
        page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)
        generate.click()
        expect(studio.locator(".qvac-progress")).not_to_have_attribute("data-phase", "idle", timeout=LONG_MS)

        # The job it started, as a cell's value: progress, then a player that plays.
        run_cell(page, 2)
        jobview = page.locator(".qvac-jobview")
        expect(jobview).to_be_visible(timeout=LONG_MS)
        live = _played(page, ".qvac-jobview video", VIDEO_MS)  # the player appears once the video is made
        assert live["ready"] >= 2 and live["moved"] and not live["error"], live
        expect(jobview).to_have_attribute("data-phase", "done", timeout=VIDEO_MS)
        expect(jobview.locator("figcaption")).to_contain_text("5 frames")

        # The same clip on the Studio's stage and in its gallery, and saved into its folder.
        expect(studio.locator('.qvac-card[data-video="mp4"]')).to_have_count(1, timeout=LONG_MS)
        staged = _played(page, ".qvac-stage video")
        assert staged["ready"] >= 2 and staged["moved"] and not staged["error"], staged
        assert list((tmp_path / "clips").glob("*.mp4")), "the Studio saved no MP4 into its folder"
        studio.screenshot(path=str(SCREENSHOTS / "studio-video-mode.png"))

        # The Video's own HTML (data: URL), which a saved notebook keeps.
        run_cell(page, 3)
        static = _played(page, ".jp-OutputArea video.qvac-nb-video")
        assert static["ready"] >= 2 and static["moved"] and not static["error"], static
        page.locator(".jp-Notebook").screenshot(path=str(SCREENSHOTS / "video-job-and-player.png"))

        # After a kernel restart, a Gallery of the folder lists the clip and its lightbox plays the file.
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
        expect(studio.locator(".qvac-dead")).to_be_visible(timeout=LONG_MS)
        page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)
        run_cell(page, 4)
        card = page.locator('.qvac-gallery .qvac-card[data-video="mp4"]')
        expect(card).to_have_count(1, timeout=LONG_MS)
        expect(card.locator("figcaption")).to_contain_text("5 frames")
        card.locator(".qvac-thumb").click()
        boxed = _played(page, ".qvac-lightbox video")
        assert boxed["ready"] >= 2 and boxed["moved"] and not boxed["error"], boxed
        page.locator(".qvac-lightbox").screenshot(path=str(SCREENSHOTS / "gallery-video-after-restart.png"))
