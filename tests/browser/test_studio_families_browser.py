"""The Studio's form per model family in a real browser: FLUX.1 Kontext and SD 1.x side by side.

A notebook shows one Studio with the FLUX.1 Kontext test model and one with the SD 1.x test model,
each with an init image. In JupyterLab (Chromium through Playwright) each shows the fields its family
uses, with its defaults, the init image named by its use and the model bar asking for the companions
the family needs; each makes an image. Screenshots of both go to SCREENSHOTS.
"""

from __future__ import annotations

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

CELL = """\
import json, os
import qvac_nb
from PIL import Image
model_id = qvac_nb.load_model(os.environ["{prefix}_MODEL"], model_config=json.loads(os.environ["{prefix}_CONFIG"]))
studio = qvac_nb.Studio(model_id, prompt="a red boat on a lake", width=64, height=64, steps=1, seed=3,
                        init_image=Image.new("RGB", (64, 64), (40, 90, 200)), output_dir=None)
studio"""


def _shown(studio: Any, param: str) -> bool:
    return studio.locator(f"[data-param={param}]").first.is_visible()


def test_studio_follows_the_family_in_jupyterlab(tmp_path: Path, sd1_model: Any) -> None:
    from playwright.sync_api import expect, sync_playwright
    from testmodels import registry

    kontext = registry.get("flux1_kontext")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    cells = [CELL.format(prefix=prefix) for prefix in ("QVAC_NB_KONTEXT", "QVAC_NB_SD1")]
    write_notebook(tmp_path / "families.ipynb", cells)
    env = {**python_env(), **model_env(kontext, "QVAC_NB_KONTEXT"), **model_env(sd1_model, "QVAC_NB_SD1")}

    with running_lab(tmp_path, env) as lab, sync_playwright() as pw, open_notebook(pw, lab, "families.ipynb",
                                                                                   LONG_MS) as page:
        page.set_viewport_size({"width": 1280, "height": 1400})
        run_cell(page, 0)
        flux = page.locator(".qvac-studio").nth(0)
        expect(flux.locator("button[name=generate]")).to_be_enabled(timeout=LONG_MS)
        # FLUX.1 Kontext: distilled guidance at 2.5; no cfg, negative prompt or strength; the image is edited.
        assert not _shown(flux, "cfg_scale") and not _shown(flux, "negative_prompt") and not _shown(flux, "strength")
        expect(flux.locator("input[name=guidance]")).to_have_value("2.5")
        expect(flux.locator(".qvac-init-label")).to_have_text("Image to edit")
        expect(flux.locator(".qvac-mask-box")).to_be_hidden()
        # The model bar, given the Kontext file, asks for its VAE (required) and one of its text encoders.
        flux.locator("input[name=model_source]").fill(str(kontext.primary))
        flux.locator("input[name=model_source]").press("Tab")
        vae = flux.locator("label.qvac-bar-field", has=page.locator("input[name=vae]"))
        expect(vae).to_contain_text("required", timeout=LONG_MS)
        expect(flux.locator("label.qvac-bar-field", has=page.locator("input[name=clip_l]"))).to_contain_text(
            "required: this or T5-XXL")
        expect(flux.locator("label.qvac-bar-field", has=page.locator("input[name=llm]"))).to_be_hidden()
        flux.locator("button[name=generate]").click()
        expect(flux.locator(".qvac-grid .qvac-card")).to_have_count(1, timeout=LONG_MS)
        expect(flux.locator(".qvac-stage[data-kind=image]")).to_be_visible(timeout=LONG_MS)
        flux.screenshot(path=str(SCREENSHOTS / "studio-flux-kontext.png"))

        run_cell(page, 1)
        sd = page.locator(".qvac-studio").nth(1)
        expect(sd.locator("button[name=generate]")).to_be_enabled(timeout=LONG_MS)
        # SD 1.x: cfg 7 and a negative prompt; no guidance; strength beside the init image; the mask painter.
        assert _shown(sd, "cfg_scale") and _shown(sd, "negative_prompt") and not _shown(sd, "guidance")
        expect(sd.locator("input[name=cfg_scale]")).to_have_value("7")
        expect(sd.locator(".qvac-init [data-param=strength]")).to_be_visible()
        expect(sd.locator(".qvac-init-label")).to_have_text("Init image")
        expect(sd.locator(".qvac-mask-box")).to_be_visible()
        sd.locator("input[name=cfg_scale]").fill("1")  # its default checked: one U-Net pass a step for the image
        sd.locator("button[name=generate]").click()
        expect(sd.locator(".qvac-grid .qvac-card")).to_have_count(1, timeout=LONG_MS)
        expect(sd.locator(".qvac-stage[data-kind=image]")).to_be_visible(timeout=LONG_MS)
        sd.screenshot(path=str(SCREENSHOTS / "studio-sd1.png"))

