"""The Studio by keyboard alone, where background-thread updates are dropped, and its FLUX.2 form.

Colab does not render widget updates sent from background threads; the Studio's job progress is
sent from exactly such threads. The kernel here drops every message qvac_nb's threads send (as
Colab would) and the Studio must still show progress and results, because the front-end asks
for the state when it has heard nothing for a while.

Keyboard only: a prompt typed and Ctrl+Enter, a running job cancelled, one tab stop per gallery
card, Enter opens the full-size view with the focus in it, the arrow keys step through images,
Escape closes it and gives the focus back. Then a grid from the Studio's Grid section, a narrow notebook panel (layout
by container query) and a FLUX.2 model's form (guidance instead of CFG, its step count, no strength).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lab_server import (
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

# The first job is cancelled once its progress shows: its step count only has to outlast that wait. At cfg 1
# (one U-Net pass a step, for every generation here) a step takes about half as long, hence twice the old 24.
STEPS = 48

pytestmark = browser_test

LOAD_CELL = LOAD_MODEL_CODE + """\
import threading
studio = qvac_nb.Studio(model_id, prompt="", width=64, height=64, steps=STEPS, cfg_scale=1, seed=3,
                        output_dir=None)
# As in Colab: whatever qvac_nb's background threads send never reaches the page.
dropped = []
_send = studio.comm.send
def _colab_like_send(*args, **kwargs):
    if threading.current_thread().name.startswith("qvac_nb"):
        dropped.append(1)
        return None
    return _send(*args, **kwargs)
studio.comm.send = _colab_like_send
studio""".replace("STEPS", str(STEPS))
DROPPED_CELL = 'print(f"DROPPED {len(dropped)} MESSAGES")'
FLUX2_CELL = """\
flux2_id = qvac_nb.load_model(os.environ["QVAC_NB_BROWSER_FLUX2_MODEL"],
                              model_config=json.loads(os.environ["QVAC_NB_BROWSER_FLUX2_CONFIG"]))
qvac_nb.Studio(flux2_id, prompt="a lighthouse at dusk", output_dir=None)"""


def _active(page: Any) -> dict[str, Any]:
    """What has the keyboard focus: its classes, name and whether it sits in a card or the full-size view."""
    return page.evaluate("""() => {
      const el = document.activeElement;
      return {cls: el ? String(el.className) : '', name: el && el.getAttribute('name'),
              card: el && el.closest('.qvac-card') ? el.closest('.qvac-card').dataset.id : null,
              dialog: Boolean(el && el.closest('.qvac-lightbox'))};
    }""")


def _tab_to_card(page: Any, limit: int = 80) -> dict[str, Any]:
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = _active(page)
        if now["card"]:
            return now
    raise AssertionError(f"no gallery card within {limit} Tab presses")


def test_keyboard_only_with_dropped_thread_messages(tmp_path: Path, sd1_model: Any, flux2_model: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    notebook = tmp_path / "keys.ipynb"
    write_notebook(notebook, [LOAD_CELL, DROPPED_CELL, FLUX2_CELL])
    env = {**python_env(), **model_env(sd1_model), **model_env(flux2_model, "QVAC_NB_BROWSER_FLUX2")}

    with (running_lab(tmp_path, env) as lab, sync_playwright() as pw,
          open_notebook(pw, lab, "keys.ipynb", LONG_MS) as page):
        run_cell(page, 0)
        studio = page.locator(".qvac-studio").first
        expect(studio.locator("button[name=generate]")).to_be_enabled(timeout=LONG_MS)
        page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)

        # Keyboard only from here: a field takes the focus as a Tab would give it, then typing.
        prompt = studio.locator("textarea[name=prompt]")
        generate = studio.locator("button[name=generate]")

        def type_and_generate(words: str) -> None:
            prompt.focus()
            page.keyboard.press("Control+End")
            page.keyboard.type(words)
            page.keyboard.press("Control+Enter")

        # Progress shows although every update the job's threads send is dropped: the page polls once it has heard
        # nothing for 1.5 s, and a job of STEPS steps is still sampling then. Once it shows, the job's Cancel button
        # (focus, Enter) stops it, and the page learns that the same way.
        type_and_generate("a red kite over the sea")
        label = studio.locator(".qvac-progress-label")
        expect(label).to_contain_text(f"/{STEPS}", timeout=LONG_MS)
        studio.locator("button[name=cancel]").focus()
        page.keyboard.press("Enter")
        expect(label).to_contain_text("Cancelled", timeout=LONG_MS)
        expect(generate).to_be_enabled(timeout=LONG_MS)

        # Two images, which only have to exist (two cards, two titles): 1 step, typed in. They reach the gallery
        # with the answers to the page's polls too.
        steps = studio.locator("input[name=steps]")
        steps.focus()
        page.keyboard.press("Control+A")
        page.keyboard.type("1")
        expect(steps).to_have_value("1")
        for run, words in enumerate([" at dawn", " at night"]):
            type_and_generate(words)  # two prompts: the full-size view's title tells the images apart
            expect(studio.locator(".qvac-grid .qvac-card")).to_have_count(run + 1, timeout=LONG_MS)
            expect(generate).to_be_enabled(timeout=LONG_MS)
        announced = studio.locator(".qvac-sr-only[aria-live]").first.text_content() or ""
        assert announced.strip(), "the aria-live status announced nothing"

        # One tab stop per card: Tab from the first card's thumbnail lands on the second card's.
        first = _tab_to_card(page)
        assert "qvac-thumb" in first["cls"]
        page.keyboard.press("Tab")
        second = _active(page)
        assert second["card"] and second["card"] != first["card"] and "qvac-thumb" in second["cls"], second
        page.keyboard.press("Shift+Tab")
        assert _active(page)["card"] == first["card"]

        # Enter opens the full-size view, which takes the focus; the arrow keys step; Escape closes.
        page.keyboard.press("Enter")
        dialog = page.locator(".qvac-lightbox[role=dialog]")
        expect(dialog).to_be_visible(timeout=LONG_MS)
        assert _active(page)["dialog"], "the full-size view did not take the focus"
        title_before = dialog.locator(".qvac-lightbox-title").text_content()
        page.keyboard.press("ArrowRight")
        expect(dialog.locator(".qvac-lightbox-title")).not_to_have_text(title_before or "", timeout=LONG_MS)
        assert _active(page)["dialog"]
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0, timeout=LONG_MS)
        assert _active(page)["card"], "the focus did not return to the gallery"

        # A grid from the Studio: seed 1, 2 (no Y axis) makes two cells and the labelled grid image. Its cells
        # take the form's values: 1 step each, as the two images above.
        grid_box = studio.locator("details.qvac-grid-box")
        grid_box.locator("summary").click()
        grid_box.locator("select[name=grid_x]").select_option("seed")
        grid_box.locator("input[name=grid_x_values]").fill("1, 2")
        grid_box.locator("button[name=generate_grid]").click()
        expect(studio.locator(".qvac-grid .qvac-card")).to_have_count(5, timeout=LONG_MS)
        expect(studio.locator("button[name=generate]")).to_be_enabled(timeout=LONG_MS)
        grid_card = studio.locator(".qvac-grid .qvac-card").first
        expect(grid_card.locator("figcaption")).to_contain_text("grid")
        studio.screenshot(path=str(SCREENSHOTS / "studio-grid.png"))
        grid_card.locator(".qvac-thumb").click()
        expect(dialog).to_be_visible(timeout=LONG_MS)
        expect(dialog.locator(".qvac-lightbox-img")).to_have_attribute("src", re.compile("^blob:"), timeout=LONG_MS)
        dialog.screenshot(path=str(SCREENSHOTS / "studio-grid-full-size.png"))
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0, timeout=LONG_MS)

        run_cell(page, 1)
        dropped = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")
        expect(dropped).to_contain_text("DROPPED", timeout=LONG_MS)
        assert int((dropped.text_content() or "").split("DROPPED")[1].split()[0]) > 0, "nothing was dropped"

        # A narrow notebook panel in a wide window: the Studio stacks its columns (container query).
        page.add_style_tag(content=".jp-NotebookPanel-notebook .jp-Cell { max-width: 560px; }")
        expect(studio.locator(".qvac-stage")).to_be_visible()
        box = studio.bounding_box()
        stage = studio.locator(".qvac-stage").bounding_box()
        assert box and stage and stage["x"] + stage["width"] <= box["x"] + box["width"] + 1, "cut off"
        # The whole window: a wide page with the narrow panel, the Studio's top in view.
        studio.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(SCREENSHOTS / "studio-narrow-panel.png"))
        page.add_style_tag(content=".jp-NotebookPanel-notebook .jp-Cell { max-width: none; }")

        # The FLUX.2 form: guidance instead of CFG, klein's 4 steps, no strength.
        page.wait_for_function(KERNEL_IDLE, timeout=LONG_MS)
        run_cell(page, 2)
        flux = page.locator(".qvac-studio").nth(1)
        expect(flux.locator("button[name=generate]")).to_be_enabled(timeout=LONG_MS)
        expect(flux.locator("input[name=steps]")).to_have_value("4", timeout=LONG_MS)
        expect(flux.locator("input[name=guidance]")).to_be_visible()
        expect(flux.locator("input[name=strength]")).to_be_hidden()
        flux.screenshot(path=str(SCREENSHOTS / "studio-flux2-form.png"))
