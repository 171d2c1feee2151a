"""The Studio, JobView and Gallery widgets driven as the front-end drives them, on the real engine.

Messages go through the same handler anywidget's `msg:custom` path calls
(`widget._on_msg(widget, content, buffers)`), and `widget.send` is replaced to capture
what the kernel sends back (previews and full-size images as binary buffers).
"""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from helpers import assert_real_image
from local_http import serving
from PIL import Image
from widget_driver import JOB_TIMEOUT_S, Recorder, msg, wait_for, wait_idle, work_in_tmp  # noqa: F401 - work_in_tmp: autouse

import qvac_nb
from qvac_nb import models
from qvac_nb.errors import CancelledError
from qvac_nb.widgets import Gallery, JobView, Studio, form_schema
from qvac_nb.widgets import display as job_display
from qvac_nb.widgets import live as live_module
from qvac_nb.widgets.params import diffusion_kwargs, initial_form, merge_form, params_from_json, params_to_json
from qvac_nb.widgets.progress import ProgressTracker

# One step at cfg 1 (one U-Net pass): what a test runs unless its point is the steps or cfg (those set them).
SMALL = {"prompt": "a red boat on a lake", "width": 64, "height": 64, "steps": 1, "cfg_scale": 1.0}
def png_of(color: tuple[int, int, int], size: int = 32) -> bytes:
    img = Image.new("RGB", (size, size), color)
    for x in range(size):
        img.putpixel((x, x), (255 - color[0], 255 - color[1], 255 - color[2]))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def buffers_in_state(widget: Any) -> list[bytes]:
    from ipywidgets.widgets.widget import _remove_buffers

    _state, _paths, buffers = _remove_buffers(widget.get_state())
    return [bytes(b) for b in buffers]


# -- generating -------------------------------------------------------------------------------


def test_generate_progress_preview_and_gallery(sd1_id: str) -> None:
    studio = Studio(sd1_id, **{**SMALL, "steps": 2})  # two steps: the status and the preview count them
    # The front-end finds the view by the comm id: no trait may shadow ipywidgets' model_id.
    assert studio.model_id == studio.comm.comm_id
    assert studio._repr_mimebundle_()[0]["application/vnd.jupyter.widget-view+json"]["model_id"] == studio.comm.comm_id
    rec = Recorder(studio)
    started = time.monotonic()
    msg(studio, {"type": "generate", "params": {**studio.params, "seed": "1234", "random_seed": False}})
    # The handler returns at once: the kernel keeps reading widget messages while the job runs.
    assert time.monotonic() - started < 1.0
    assert studio.busy
    wait_idle(studio)

    assert studio.error == ""
    phases = rec.phases()
    assert phases[0] == "loading" and phases[-1] == "done"
    assert phases.index("sampling") < phases.index("decoding") < phases.index("done")
    sampling = [s for s in rec.statuses if s["phase"] == "sampling"]
    assert sampling[-1]["total"] == 2 and sampling[-1]["step"] >= 1
    assert studio.status["seed"] == 1234 and studio.status["percent"] == 100.0

    previews = rec.of_type("preview")
    assert previews, "no latent preview reached the front-end"
    content, buffers = previews[0]
    assert buffers[0].startswith(b"\x89PNG") and content["total"] == 2

    assert len(studio.gallery) == 1
    entry = studio.gallery[0]
    assert (entry["width"], entry["height"], entry["seed"]) == (64, 64, 1234)
    assert entry["params"]["prompt"] == SMALL["prompt"]
    assert entry["thumb"].startswith(b"\xff\xd8")  # a JPEG thumbnail, not the PNG
    assert_real_image(studio.images[0], 64, 64)


def test_state_holds_thumbnails_only(sd1_id: str) -> None:
    studio = Studio(sd1_id, **SMALL, seed=5)
    studio.generate(batch_count=2)
    wait_idle(studio)
    assert studio.status["phase"] == "done", studio.error
    assert [e["seed"] for e in studio.gallery] == [5, 6]
    pngs = studio.images
    state_buffers = buffers_in_state(studio)
    assert len(state_buffers) == 2
    for buffer in state_buffers:
        assert buffer.startswith(b"\xff\xd8") and buffer not in pngs
        assert len(buffer) < 8000
    # Newest first: a second run lands in front.
    studio.generate(batch_count=1, seed=9)
    wait_idle(studio)
    assert [e["seed"] for e in studio.gallery] == [9, 5, 6]


def test_cancel_stops_within_a_step(sd1_id: str) -> None:
    # cfg 7 (two U-Net passes a step): steps long enough that the status the cancel reads keeps up with them.
    studio = Studio(sd1_id, **{**SMALL, "steps": 40, "cfg_scale": 7.0})
    rec = Recorder(studio)
    msg(studio, {"type": "generate"})
    wait_for(lambda: studio.status.get("phase") == "sampling" and studio.status.get("step", 0) >= 1)
    step_at_cancel = studio.status["step"]
    msg(studio, {"type": "cancel"})
    wait_idle(studio)
    assert studio.status["phase"] == "cancelled"
    assert studio.error == ""  # a cancel is not an error
    assert studio.gallery == []
    done_steps = max(s["step"] for s in rec.statuses)
    assert done_steps <= step_at_cancel + 2 < 40
    # The Studio is usable again right away.
    studio.generate(steps=1, cfg_scale=1.0)
    wait_idle(studio)
    assert studio.status["phase"] == "done" and len(studio.gallery) == 1


def test_queued_behind_another_job(sd1_id: str) -> None:
    blocker = qvac_nb.diffusion(model_id=sd1_id, **{**SMALL, "steps": 40})
    studio = Studio(sd1_id, **SMALL, output_dir=None)
    rec = Recorder(studio)
    studio.generate()
    wait_for(lambda: "queued" in rec.phases())
    queued = [s for s in rec.statuses if s["phase"] == "queued"]
    assert queued[0]["ahead"] == 1 and queued[0]["message"] == "1 ahead"
    blocker.cancel()
    wait_idle(studio)
    assert studio.status["phase"] == "done", studio.error
    assert rec.phases().index("queued") < rec.phases().index("sampling")


def test_errors_show_in_the_widget(sd1_id: str) -> None:
    studio = Studio(sd1_id, **SMALL)
    msg(studio, {"type": "generate", "params": {"width": 65}})
    assert "width" in studio.error and "multiples of 64; try 64 or 128" in studio.error
    assert studio.error_param == "width"  # the form marks that field
    studio.error = "something else"  # an error set without a parameter marks none
    assert studio.error_param == ""
    assert studio.status["phase"] == "error" and not studio.busy
    msg(studio, {"type": "generate", "params": {"width": 64, "sampling_method": "eulr"}})
    assert "sampling_method" in studio.error and "euler" in studio.error
    msg(studio, {"type": "generate", "params": {"sampling_method": "", "seed": "abc", "random_seed": False}})
    assert "seed" in studio.error and studio.status["phase"] == "error"
    msg(studio, {"type": "clear_error"})
    assert studio.error == "" and studio.status["phase"] == "idle"  # dismissed: the label no longer says Error
    msg(studio, {"type": "reuse_seed", "id": "img-none"})
    assert "no image" in studio.error
    msg(studio, {"type": "init_image", "name": "notes.txt"}, [b"not an image"])
    assert "notes.txt is not a PNG or JPEG" in studio.error
    msg(studio, {"type": "no_such_message"})  # ignored, not an error
    msg(studio, {"type": "upscale", "id": "img-none"})
    assert "no image" in studio.error

    empty = Studio()
    msg(empty, {"type": "generate"})
    assert "load a model first" in empty.error
    with pytest.raises(qvac_nb.UnknownParameterError, match="stps"):
        Studio(sd1_id, stps=3)


def test_guidance_model_and_its_errors(flux2_id: str) -> None:
    studio = Studio(flux2_id, **SMALL)
    assert studio.model_info["uses_guidance"] is True
    assert studio.model_info["family"] == "flux2"
    # The family table: FLUX.2 runs at cfg 1 (no unconditional pass); klein is step-distilled (4 steps).
    assert studio.model_info["defaults"] == {"cfg_scale": 1.0, "steps": 4}
    assert set(studio.model_info["companions"]) == {"llm", "vae"}  # the model bar names the files it loaded with
    studio.set_init_image(png_of((10, 200, 30)), "green.png")
    msg(studio, {"type": "generate"})
    assert "flux2_flow" in studio.error  # FLUX.2 img2img needs the flux2_flow prediction
    assert not studio.busy


def test_flux2_init_image_is_resized_and_said(flux2_edit_id: str) -> None:
    studio = Studio(flux2_edit_id, prompt="a cat", width=64, height=64, steps=1, seed=3, cfg_scale=1.0, output_dir=None)
    assert studio.model_info["prediction"] == "flux2_flow"
    studio.set_init_image(png_of((10, 200, 30), size=40), "odd.png")  # 40 is no multiple of 16
    assert studio.init_image["note"].startswith("resized from 40×40 to 32×32")
    studio.generate()
    wait_idle(studio)
    assert studio.status["phase"] == "done", studio.error
    assert _record(studio.images[0])["init_image_used"] is True

    sd_like = Studio(output_dir=None)  # no model: nothing to fit yet
    sd_like.set_init_image(png_of((10, 200, 30), size=40), "odd.png")
    assert "note" not in sd_like.init_image or sd_like.init_image["note"] == ""


# -- the history folder -----------------------------------------------------------------------


def test_history_survives_a_new_studio(sd1_id: str, tmp_path: Path) -> None:
    folder = tmp_path / "outs"
    studio = Studio(sd1_id, **SMALL, seed=11, output_dir=folder)
    assert studio.output_dir == str(folder.resolve()) and studio.gallery == []
    studio.generate(batch_count=2)
    wait_idle(studio)
    assert studio.status["phase"] == "done", studio.error
    studio.generate(prompt="a green kite", seed=30, batch_count=1)
    wait_idle(studio)
    pngs = studio.images  # newest run first, a batch in its order: the kite, then seeds 11 and 12

    records = qvac_nb.history(folder)
    assert [r.parameters["seed"] for r in records] == [30, 11, 12]
    assert [r.path.read_bytes() for r in records] == pngs
    assert records[0].extra["family"] == "sd1" and records[0].extra["model"] == sd1_id
    assert records[0].extra["random_seed"] is False  # the form's seed policy (a fixed seed) is saved with it

    # As after a kernel restart: a new Studio (no images in memory) shows the folder's images, and its
    # form starts from the newest one's settings, seed policy included.
    again = Studio(output_dir=folder)
    rec = Recorder(again)
    assert [e["seed"] for e in again.gallery] == [30, 11, 12]
    restored = {k: again.params[k] for k in ("prompt", "width", "height", "steps", "seed", "random_seed")}
    assert restored == {"prompt": "a green kite", "width": 64, "height": 64, "steps": 1, "seed": 30,
                        "random_seed": False}
    assert again.gallery[0]["params"]["prompt"] == "a green kite" and again.gallery[0]["family"] == "sd1"
    msg(again, {"type": "image", "id": again.gallery[1]["id"]})
    assert rec.of_type("image")[-1][1] == [pngs[1]]  # full size read back from the file
    # Where widgets cannot render (nbviewer, GitHub), the output's HTML shows the thumbnails and parameters.
    data, _meta = again._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/html"].count("data:image/jpeg;base64,") == 3 and "a green kite" in data["text/html"]
    # It names no local folder and only the parameters that made an SD 1.x txt2img image (cfg, not guidance).
    assert str(folder) not in data["text/html"] and f"saved in {folder.name}" in data["text/html"]
    assert "<b>cfg_scale</b>" in data["text/html"] and "<b>guidance</b>" not in data["text/html"]
    assert "<b>strength</b>" not in data["text/html"]
    msg(again, {"type": "reuse_all", "id": again.gallery[0]["id"]})
    assert again.params["prompt"] == "a green kite" and again.params["seed"] == 30

    # The Gallery browses a folder, filtered by prompt.
    assert [e["seed"] for e in Gallery.from_folder(folder).images] == [30, 11, 12]
    kites = Gallery.from_folder(folder, prompt="KITE")
    assert [e["seed"] for e in kites.images] == [30] and kites.pngs == [pngs[0]]

    # Download all: one zip of the shown (filtered) images, named as in the folder.
    msg(again, {"type": "download_zip", "ids": [e["id"] for e in again.gallery[1:]]})
    content, buffers = rec.of_type("zip")[-1]
    assert content["count"] == 2 and content["name"].endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(buffers[0])) as archive:
        assert sorted(archive.namelist()) == sorted(r.path.name for r in records[1:])
        assert sorted(archive.read(n) for n in archive.namelist()) == sorted(pngs[1:])


def _saved_image(folder: Path, record: dict[str, Any], **extra: Any) -> None:
    """An image carrying `record`, saved into a history folder as a Studio saves one (`extra`: its index extras)."""
    from qvac_nb import history_folder
    from qvac_nb.png import encode_png

    pixels = Image.new("RGB", (16, 16), (90, 120, 200))
    history_folder.save(encode_png(np.asarray(pixels), record), record, folder, extra={"kind": "diffusion", **extra})
    time.sleep(0.01)  # the folder lists by time saved: the next one is newer


SD1_RECORD = {"prompt": "an older lake", "negative_prompt": "fog", "width": 128, "height": 192, "steps": 7,
              "cfg_scale": 5.5, "sampling_method": "euler", "scheduler": "karras", "seed": 42}
FLUX2_RECORD = {"prompt": "the newest lighthouse", "negative_prompt": "", "width": 1024, "height": 768, "steps": 4,
                "cfg_scale": 1.0, "guidance": 4.0, "sampling_method": "euler", "seed": 9}


def test_a_new_studio_starts_from_the_newest_images_settings(sd1_id: str, tmp_path: Path) -> None:
    # A shared folder: an SD 1.x image saved with a fixed seed, then a FLUX.2 image saved without a seed policy.
    folder = tmp_path / "shared"
    _saved_image(folder, SD1_RECORD, family="sd1", model="sd1.gguf#1", random_seed=False)
    _saved_image(folder, FLUX2_RECORD, family="flux2", model="klein.gguf#2")
    assert Studio(output_dir=tmp_path / "empty").params == initial_form({})  # nothing saved: the defaults

    # No model: the newest image's settings; no policy saved: a random seed (the image's shown, greyed out).
    fresh = Studio(output_dir=folder)
    assert {k: fresh.params[k] for k in FLUX2_RECORD} == FLUX2_RECORD and fresh.params["random_seed"] is True
    # What the Studio is given wins over the image's.
    given = Studio(output_dir=folder, prompt="mine", steps=12, seed=3)
    assert (given.params["prompt"], given.params["steps"], given.params["seed"]) == ("mine", 12, 3)
    assert given.params["random_seed"] is False and given.params["width"] == 1024
    # The first model chosen is of another family: the prompts and seed stay, the rest goes to its defaults.
    fresh.select_model(sd1_id)
    assert (fresh.params["prompt"], fresh.params["seed"]) == ("the newest lighthouse", 9)
    moved = {k: fresh.params[k] for k in ("width", "height", "steps", "cfg_scale", "guidance", "sampling_method")}
    assert moved == {"width": 512, "height": 512, "steps": 20, "cfg_scale": 7.0, "guidance": 3.5, "sampling_method": ""}

    # With a model: the newest image of its family, kept as saved with its seed policy; the fields the record
    # does not carry hold the model's defaults.
    sd1 = Studio(sd1_id, output_dir=folder)
    assert {k: sd1.params[k] for k in SD1_RECORD} == SD1_RECORD and sd1.params["random_seed"] is False
    assert sd1.params["clip_skip"] == initial_form({})["clip_skip"]
    # Only once: from now on a model switch moves (only) the fields at the model's defaults, as ever.
    assert sd1._restored is None and fresh._restored is None


def test_an_upscale_lists_its_sources_parameters(sd1_upscale_id: str, tmp_path: Path) -> None:
    # A FLUX.2 image (cfg 1 with guidance: its cfg did nothing) upscaled by an SD 1.x model's upscaler: the new
    # entry says what made the image it enlarges, so the full-size view lists that image's parameters.
    folder = tmp_path / "outs"
    _saved_image(folder, FLUX2_RECORD, family="flux2", model="klein.gguf#2", unused=["cfg_scale"])
    studio = Studio(sd1_upscale_id, output_dir=folder)
    source = studio.gallery[0]
    assert source["unused"] == ["cfg_scale"] and source["family"] == "flux2"
    msg(studio, {"type": "upscale", "id": source["id"]})
    wait_idle(studio)
    assert studio.status["phase"] == "done", studio.error
    up = studio.gallery[0]
    assert (up["kind"], up["source"], up["width"]) == ("upscale", source["id"], 64)
    assert (up["family"], up["model"], up["unused"]) == ("flux2", "klein.gguf#2", ["cfg_scale"])
    assert qvac_nb.history(folder)[0].extra["family"] == "flux2"


def test_a_video_entry_marks_what_its_model_did_not_use() -> None:
    from qvac_nb import families
    from qvac_nb.video_files import Video
    from qvac_nb.widgets.family_form import rules_for

    studio = Studio(output_dir=None)
    studio.form_rules = rules_for(families.VIDEO_FAMILIES["wan"])  # a Wan 2.1 model: no high-noise expert
    record = {"kind": "video", "prompt": "a cat", "width": 64, "height": 64, "video_frames": 5, "fps": 16,
              "steps": 2, "cfg_scale": 6.0, "flow_shift": 3.0, "seed": 7, "high_noise_steps": -1,
              "high_noise_cfg_scale": 3.5, "high_noise_sampling_method": None, "moe_boundary": 0.875,
              "output_format": "webp"}
    clip = Video(b"RIFF-not-decoded-here", np.zeros((5, 64, 64, 3), np.uint8), 16, "webp", record)
    entry = studio._keep_video(clip, studio._made_by("wan.gguf#1"))
    # Its high-noise settings did not apply (the lightbox leaves them out); cfg and flow shift did.
    assert entry["unused"] == ["high_noise_cfg_scale", "high_noise_sampling_method", "high_noise_steps", "moe_boundary"]
    assert entry["params"]["cfg_scale"] == 6.0 and entry["params"]["flow_shift"] == 3.0


def test_output_dir_default_and_off(sd1_id: str, tmp_path: Path) -> None:
    studio = Studio(sd1_id, **SMALL)  # the working folder (tmp_path here) gets qvac_nb_outputs/
    assert studio.output_dir == str((tmp_path / "qvac_nb_outputs").resolve())
    studio.generate()
    wait_idle(studio)
    assert len(qvac_nb.history()) == 1 and studio.gallery[0]["file"] == qvac_nb.history()[0].path.name

    off = Studio(sd1_id, **SMALL, output_dir=None)
    assert off.output_dir == "" and off.gallery == []  # no folder: no history shown either
    off.generate(seed=2)
    wait_idle(off)
    assert len(off.gallery) == 1 and len(qvac_nb.history()) == 1
    rec = Recorder(off)
    msg(off, {"type": "download_zip"})
    _content, buffers = rec.of_type("zip")[-1]
    with zipfile.ZipFile(io.BytesIO(buffers[0])) as archive:
        assert [archive.read(n) for n in archive.namelist()] == off.images


# -- gallery actions --------------------------------------------------------------------------


def test_gallery_actions(sd1_upscale_id: str) -> None:
    studio = Studio(sd1_upscale_id, **SMALL, seed=77, negative_prompt="blurry")
    rec = Recorder(studio)
    assert studio.model_info["has_upscaler"] and studio.model_info["upscale_factor"] == 4
    studio.generate()
    wait_idle(studio)
    first = studio.gallery[0]
    image_id = first["id"]

    # Download: the full PNG, with its parameters embedded, as a binary buffer.
    msg(studio, {"type": "image", "id": image_id, "purpose": "download"})
    content, buffers = rec.of_type("image")[-1]
    assert content == {"type": "image", "id": image_id, "purpose": "download"}
    assert buffers == [studio.images[0]]
    assert qvac_nb.read_parameters(buffers[0])["seed"] == 77
    msg(studio, {"type": "image", "id": "img-gone"})
    assert rec.of_type("image")[-1] == ({"type": "image", "id": "img-gone", "purpose": "view", "missing": True}, [])

    # Reuse seed: only the seed comes back (and the random toggle goes off).
    studio.params = merge_form(studio.params, {"seed": -1, "random_seed": True, "prompt": "something else"})
    msg(studio, {"type": "reuse_seed", "id": image_id})
    assert studio.params["seed"] == 77 and studio.params["random_seed"] is False
    assert studio.params["prompt"] == "something else"

    # Reuse all: prompt, negative prompt, size, steps, sampler...
    studio.params = merge_form(studio.params, {"steps": 9, "width": 128, "negative_prompt": ""})
    msg(studio, {"type": "reuse_all", "id": image_id})
    for key in ("prompt", "negative_prompt", "width", "height", "steps", "seed", "sampling_method", "scheduler"):
        assert studio.params[key] == first["params"][key], key

    # Use as init: the image becomes the init image and the next run is image-to-image.
    msg(studio, {"type": "use_as_init", "id": image_id})
    assert studio.init_image["width"] == 64 and studio.init_image["thumb"].startswith(b"\xff\xd8")
    studio.generate(strength=0.5)
    wait_idle(studio)
    assert studio.status["phase"] == "done", studio.error
    record = _record(studio.images[0])
    assert record["init_image_used"] is True and record["strength"] == 0.5
    msg(studio, {"type": "clear_init"})
    assert studio.init_image == {}

    # Upscale: the paired ESRGAN runs on the gallery image; the result joins the gallery.
    rec.statuses.clear()
    msg(studio, {"type": "upscale", "id": image_id})
    wait_idle(studio)
    assert studio.status["phase"] == "done", studio.error
    assert "upscaling" in rec.phases()
    up = studio.gallery[0]
    assert (up["kind"], up["source"], up["width"], up["height"]) == ("upscale", image_id, 256, 256)
    assert up["seed"] == 77  # the upscaled PNG keeps the source's parameters
    assert_real_image(studio.images[0], 256, 256)
    assert len(studio.gallery) == 3


def _record(png: bytes) -> dict:
    from qvac_nb.png import stored_record

    return stored_record(png)


def test_load_model_from_the_widget(sd1_model: Any) -> None:
    # threads=1: not the config of the session's sd1 fixture, so this is a load of its own (with progress).
    studio = Studio(model_config={"threads": 1, **sd1_model.model_config()})
    rec = Recorder(studio)
    msg(studio, {"type": "load_model", "source": "/no/such/model.gguf"})
    wait_idle(studio)
    assert studio.status["phase"] == "error" and "/no/such/model.gguf" in studio.error
    before = set(qvac_nb.loaded_models())
    msg(studio, {"type": "load_model", "source": str(sd1_model.primary)})
    wait_idle(studio)
    loaded_here = set(qvac_nb.loaded_models()) - before
    try:
        assert studio.status["phase"] == "done", studio.error
        assert studio.current_model in studio.loaded and loaded_here == {studio.current_model}
        assert studio.current_model.startswith("sd1-tiny-q4_0.gguf#")  # ids stay readable
        assert studio.model_info["family"] == "sd1" and studio.model_info["default_sampler"]
        loading = [s for s in rec.statuses if s.get("kind") == "load" and s["phase"] == "loading"]
        assert loading and max(s["percent"] for s in loading) == 100.0
        assert studio.samplers and "euler" in studio.samplers and "karras" in studio.schedulers
        # Load again (a second click, a re-run): load_model hands back the copy already loaded.
        first = studio.current_model
        msg(studio, {"type": "load_model", "source": str(sd1_model.primary)})
        wait_idle(studio)
        assert studio.current_model == first and set(qvac_nb.loaded_models()) - before == {first}
    finally:
        for model_id in loaded_here:  # only what this test loaded: the session fixtures stay
            qvac_nb.unload_model(model_id=model_id)


def test_cancel_stops_a_download_in_the_studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QVAC_NB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    studio = Studio()
    before = set(qvac_nb.loaded_models())
    with serving() as server:
        server.files["/big.gguf"] = os.urandom(2_000_000)
        server.hold = threading.Event()  # the body waits for Cancel: it lands mid-download, on any machine
        msg(studio, {"type": "load_model", "source": server.url("/big.gguf")})
        wait_for(lambda: bool(server.requests), timeout=60)
        msg(studio, {"type": "cancel"})
        server.hold.set()
        wait_idle(studio)
    assert studio.status["phase"] == "cancelled" and studio.status["kind"] == "load", studio.status
    assert "was cancelled" in studio.status["message"] and studio.error == ""
    assert set(qvac_nb.loaded_models()) == before and not studio.busy


def test_cancel_stops_an_engine_load_and_ends_its_worker(sd1_model: Any) -> None:
    stop = threading.Event()
    phases: list[str] = []

    def progress(info: dict) -> None:
        phases.append(info["phase"])
        if info["phase"] == "load":  # the engine has begun reading tensors: cancel now
            stop.set()

    me = psutil.Process()
    children_before = {child.pid for child in me.children()}
    before = set(qvac_nb.loaded_models())
    # threads=1: not the config of any shared copy, so this is a real load (a reused id would not tick).
    config = {"threads": 1, **sd1_model.model_config()}
    with pytest.raises(CancelledError, match="was cancelled"):
        models.load_model_until(stop, str(sd1_model.primary), model_config=config, on_progress=progress)
    assert "load" in phases
    assert set(qvac_nb.loaded_models()) == before

    def workers_left() -> set[int]:
        alive = {c.pid for c in me.children() if c.is_running() and c.status() != psutil.STATUS_ZOMBIE}
        return alive - children_before

    wait_for(lambda: not workers_left(), timeout=30)
    # Not cancelled, the same load goes through (the cancel left nothing behind that blocks it).
    model_id = models.load_model_until(threading.Event(), str(sd1_model.primary), model_config=config)
    try:
        assert model_id in qvac_nb.loaded_models()
    finally:
        qvac_nb.unload_model(model_id=model_id)


def test_studio_follows_loads_and_unloads_in_code(sd1_model: Any, sd1_id: str) -> None:
    studio = Studio(sd1_id)
    config = {"threads": 1, **sd1_model.model_config()}
    mine: list[str] = []

    def load(**kwargs: Any) -> str:
        mine.append(qvac_nb.load_model(str(sd1_model.primary), model_config=config, **kwargs))
        return mine[-1]

    try:
        other = load()
        assert other in studio.loaded  # loaded in code: the model bar lists it
        fresh = load(reload=True)
        assert fresh != other and other not in studio.loaded and fresh in studio.loaded
        studio.select_model(fresh)
        copy = load(reload=True)
        assert studio.current_model == copy  # a reload of the Studio's model: it follows to the new copy
        qvac_nb.unload_model(model_id=copy)
        assert copy not in studio.loaded and studio.current_model == "" and studio.model_info == {}
        assert "was unloaded" in studio.status["message"]
        msg(studio, {"type": "generate"})
        assert "load a model first" in studio.error  # said plainly, not a failure deep in a job
    finally:
        for model_id in mine:
            if model_id in qvac_nb.loaded_models():
                qvac_nb.unload_model(model_id=model_id)


def test_select_model(sd1_id: str, upscaler_id: str) -> None:
    studio = Studio()
    assert sd1_id in studio.loaded and upscaler_id not in studio.loaded  # only diffusion models are offered
    msg(studio, {"type": "select_model", "model_id": sd1_id})
    assert studio.current_model == sd1_id
    msg(studio, {"type": "select_model", "model_id": upscaler_id})
    assert "mode='upscale'" in studio.error and studio.current_model == sd1_id


# -- standalone upscaler, Gallery, JobView ----------------------------------------------------


def test_upscale_helper_with_an_upscale_model(upscaler_id: str) -> None:
    from qvac_nb.widgets.upscaling import upscale_image

    job = upscale_image(upscaler_id, png_of((200, 40, 40)))
    assert isinstance(job, qvac_nb.UpscaleJob)
    (png,) = job.outputs.result(JOB_TIMEOUT_S)
    assert Image.open(io.BytesIO(png)).size == (128, 128)


def test_gallery_widget() -> None:
    red, blue = png_of((200, 30, 30)), Image.open(io.BytesIO(png_of((30, 30, 200), 48)))
    gallery = Gallery([red, blue])
    rec = Recorder(gallery)
    assert [(e["width"], e["height"]) for e in gallery.images] == [(32, 32), (48, 48)]
    assert all(e["thumb"].startswith(b"\xff\xd8") for e in gallery.images)
    msg(gallery, {"type": "image", "id": gallery.images[0]["id"]})
    assert rec.sent[-1][1] == [red]
    gallery.add(png_of((0, 0, 0)))
    assert len(gallery.pngs) == 3


class _FakeDisplay:
    """IPython's display(..., display_id=True) as a kernel runs it: each output and its updates, as HTML."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    def display(self, obj: Any, display_id: bool = False) -> Any:
        index = len(self.shown)
        self.shown.append(obj.data)
        outer = self

        class Handle:
            def update(self, new: Any) -> None:
                outer.shown[index] = new.data

        return Handle() if display_id else None

    def latest(self) -> str:
        return self.shown[0] if self.shown else ""


def test_job_mimebundle_fallback_and_live(sd1_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job = qvac_nb.diffusion(model_id=sd1_id, **SMALL, seed=3)
    bundle = job_display.job_mimebundle(job)  # no kernel here: the first PNG (blocks for it)
    assert bundle["image/png"] == job.outputs.result()[0]
    assert "DiffusionJob" in bundle["text/plain"]

    monkeypatch.setattr(live_module, "widgets_live", lambda: True)
    copies = _FakeDisplay()
    monkeypatch.setattr("IPython.display.display", copies.display)
    live = qvac_nb.diffusion(model_id=sd1_id, **SMALL, seed=4)
    bundle = live._repr_mimebundle_()  # what IPython calls
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/html" not in bundle
    view = job_display._views[live]
    # Beside the widget, a saved copy (an ordinary HTML output) a reopened notebook shows instead of it.
    [first] = copies.shown
    assert f"qvac-static-output qvac-for-{view.static_key}" in first and "still running" in first
    rec = Recorder(view)
    wait_for(lambda: view.status.get("phase") == "done")
    wait_for(lambda: len(view.images) == 1)
    assert view.images[0]["seed"] == 4
    wait_for(lambda: "data:image/jpeg;base64," in copies.latest())  # the copy now holds the image
    assert view.static_key in copies.latest() and "seed</b>: 4" in copies.latest()
    assert job_display.job_mimebundle(live) == bundle  # one view per job (and one more copy)
    msg(view, {"type": "image", "id": view.images[0]["id"]})
    assert rec.sent[-1][1] == live.outputs.result()


def test_jobview_cancel_and_error(sd1_id: str) -> None:
    job = qvac_nb.diffusion(model_id=sd1_id, **{**SMALL, "steps": 40})
    view = JobView(job)
    wait_for(lambda: view.status.get("phase") == "sampling")
    msg(view, {"type": "cancel"})
    wait_for(lambda: view.status.get("phase") == "cancelled")
    assert view.images == [] and view.error == ""

    failing = qvac_nb.DiffusionJob(sd1_id, {"batch_count": 1})
    failing._finish(None, None, qvac_nb.EngineError("simulated engine failure"))  # as the worker reports one
    view = JobView(failing)
    wait_for(lambda: view.status.get("phase") == "error")
    assert view.error == "simulated engine failure"
    failing.outputs.exception()


# -- pure parts -------------------------------------------------------------------------------


def test_progress_tracker_rates_and_throttle() -> None:
    now = [0.0]
    tracker = ProgressTracker(batch=2, min_interval=0.1, clock=lambda: now[0])
    assert tracker.update(1, 8, 1000, "sample", 0)  # phase change
    now[0] = 0.05
    assert not tracker.update(2, 8, 1500, "sample", 0)  # too soon
    assert tracker.status["its"] == 2.0 and tracker.status["eta"] == 3.0
    now[0] = 0.2
    assert tracker.update(4, 8, 2500, "sample", 0)
    assert tracker.update(4, 8, 2600, "decode", 0)  # phase change always goes out
    tracker.update(5, 8, 5000, "sample", 1)  # across images: the decode time is not a step
    assert tracker.status["its"] == 2.0
    final = tracker.finish("done")
    assert final["percent"] == 100.0 and final["step"] == 8 and final["eta"] is None


def test_progress_tracker_batch_steps_and_decode_eta() -> None:
    now = [0.0]
    tracker = ProgressTracker(batch=2, min_interval=0, clock=lambda: now[0])
    tracker.update(1, 8, 1000, "sample", 0)
    tracker.update(2, 8, 1500, "sample", 0)
    status = tracker.status
    assert (status["image_step"], status["image_total"]) == (2, 4)  # the engine's 2/8 is image 1's step 2/4
    assert status["eta"] == 3.0 and status["eta_decode"] is False  # 6 steps at 2 it/s; no decode measured yet
    tracker.update(4, 8, 2500, "sample", 0)
    tracker.update(4, 8, 2500, "decode", 0)
    tracker.update(4, 8, 3500, "decode", 0)
    assert status["phase"] == "decoding" and status["decode_elapsed"] == 1.0
    tracker.update(5, 8, 4500, "sample", 1)  # that decode took 2 s
    assert (status["image_index"], status["image_step"]) == (1, 1)
    assert status["eta"] == 3.5 and status["eta_decode"] is True  # 3 steps at 2 it/s, then one 2 s decode
    tracker.update(8, 8, 6000, "decode", 1)
    now[0] = 7.0
    tracker.update(8, 8, 7000, "decode", 1)
    assert status["eta"] == 1.0  # what is left of this decode: 2 s measured, 1 s done
    assert tracker.finish("done")["image_step"] == 4


def test_poll_sends_the_live_state_from_the_handler() -> None:
    studio = Studio(output_dir=None)
    sent: list[list[str]] = []
    studio.send_state = lambda keys=None: sent.append(list(keys or []))  # type: ignore[method-assign]
    msg(studio, {"type": "poll", "seen": 0})
    assert sent[-1] == ["status", "busy", "error"]  # the gallery (thumbnails) only when the count differs
    msg(studio, {"type": "poll", "seen": 3})
    assert sent[-1] == ["status", "busy", "error", "gallery"]


def test_form_params() -> None:
    form = initial_form({"seed": 5, "upscale": {"repeats": 2}, "sampling_method": None})
    assert form["random_seed"] is False and form["upscale"] and form["upscale_repeats"] == 2
    assert form["sampling_method"] == ""
    merged = merge_form(form, {"width": "128", "seed": "18446744073709551", "cfg_scale": "4.5", "bogus": 1})
    assert merged["width"] == 128 and merged["seed"] == 18446744073709551 and merged["cfg_scale"] == 4.5
    assert "bogus" not in merged
    assert params_to_json(merged)["seed"] == "18446744073709551"  # JS numbers can't hold it
    assert params_from_json(params_to_json(merged))["seed"] == 18446744073709551
    kwargs = diffusion_kwargs(merged, "m#1", None, has_upscaler=False)
    assert "upscale" not in kwargs and kwargs["seed"] == 18446744073709551 and kwargs["preview"] is True
    assert diffusion_kwargs(merged, "m#1", b"png", has_upscaler=True)["upscale"] == {"repeats": 2}
    assert diffusion_kwargs({**merged, "random_seed": True}, "m#1", None, False)["seed"] == -1


def test_schema_trait_drives_the_form() -> None:
    from qvac_nb import engine, families, schema, video_schema

    studio = Studio()
    params = {p["name"]: p for p in studio.schema["params"]}
    assert params["steps"]["max"] == schema.MAX_STEPS and params["width"]["max"] == schema.MAX_SIDE
    assert params["sampling_method"]["choices"] == list(engine.enum_names()["sample_method"])
    assert params["prompt"]["control"] == "textarea" and params["seed"]["control"] == "seed"
    assert studio.schema["families"]["flux2"]["defaults"]["cfg_scale"] == 1.0
    base = form_schema.schema_json(engine.enum_names())
    # diffusion()'s fields, then video()'s own (shown for a video model), and the video families' rows too
    assert studio.schema["params"][:len(base["params"])] == base["params"]
    assert [p["name"] for p in studio.schema["params"][len(base["params"]):]] == [
        p.name for p in video_schema.form_params()]
    assert studio.schema["families"] == {**base["families"], "wan": families.VIDEO_FAMILIES["wan"].as_json()}
    assert Studio.class_traits()["schema"].help  # documented trait
    assert studio.size_presets and all(len(size) == 2 for size in studio.size_presets)
    assert Gallery().schema == studio.schema  # the gallery labels an image's (or a video's) parameters from it


def test_studio_feature_inputs_reach_the_generation(sd1_id: str, tmp_path: Path) -> None:
    # The LoRA picker's choice and the painted mask change the image the Studio makes, and only where they apply.
    from testmodels import registry

    from qvac_nb.png import stored_record

    lora = registry.get("sd1_lora").files["kohya"]
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / lora.name).write_bytes(lora.read_bytes())
    studio = Studio(sd1_id, **SMALL, seed=7, output_dir=None, lora_dir=tmp_path / "loras")
    assert studio.inputs_shown == {"ref_images": False, "control_image": False, "end_image": False, "mask": True,
                                   "lora": True}
    assert [f["name"] for f in studio.lora_files] == [lora.name]

    def make() -> tuple[bytes, dict]:
        msg(studio, {"type": "generate", "params": {**studio.params, "seed": "7", "random_seed": False}})
        wait_idle(studio)
        assert studio.error == ""
        return studio.images[0], stored_record(studio.images[0])  # the PNG's record: what diffusion was given

    plain, _ = make()
    studio.lora = [[studio.lora_files[0]["source"], 1.0]]  # what the picker sets
    with_lora, params = make()
    assert with_lora != plain and params["lora"][0]["name"] == lora.name
    studio.lora = []

    msg(studio, {"type": "init_image", "name": "i.png"}, [png_of((200, 40, 40), 64)])
    no_mask, params = make()
    assert not params.get("mask_image_used")
    painted = bytes([255] * (64 * 32) + [0] * (64 * 32))  # repaint the top half only
    msg(studio, {"type": "mask", "width": 64, "height": 64}, [painted])
    masked, params = make()
    assert params["mask_image_used"] and masked != no_mask
    msg(studio, {"type": "mask", "width": 32, "height": 32}, [bytes(32 * 32)])  # painted for another image
    assert "init image is 64x64" in studio.error  # shown in the widget, as every handler's error is
    msg(studio, {"type": "clear_init"})
    assert studio.mask == {}
