"""The engine's U-Net variants: distilled (tiny U-Nets, SDXS, Vega, SSD-1B), inpainting, instruct-pix2pix.

Each variant is told by the engine version of its file (modelfiles.detection.detect, checked against
the engine in test_detection.py) and gets its own settings from the family table's variants:
SDXS starts at 1 step and cfg 1, inpainting models show img_cfg_scale, instruct-pix2pix models take
init_image as the engine's reference image (strength hidden) and show img_cfg_scale. Every model loads
through qvac_nb.load_model and generates at 64x64 pixel-equal to the peer's generate_image (run in a
process of its own with the same arguments, see test_features.peer_calls). The test models are the
real architectures with random weights (testmodels/unet_variants.py); the full-size SDXL ones use
cfg 1 to skip the unconditioned pass (their text encoders dominate the run time). SD 1.x inpainting is
compared with the peer in test_features.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import THREADS, _model
from helpers import assert_real_image, pixels
from peer import record_has as _record_has
from reliability_files import st_tensors, write_st
from test_features import peer_calls, picture, square_mask
from testmodels.kl_vae import kl_vae
from testmodels.sdxl_full import SDXL_BASE
from testmodels.unet_family import UNET, unet
from testmodels.unet_variants import with_in_channels

import qvac_nb
from qvac_nb import engine, families, generation, models
from qvac_nb.errors import UnsupportedOperationError
from qvac_nb.modelfiles.detection import loaded_version
from qvac_nb.modelfiles.reading import inspect_file
from qvac_nb.widgets import form_schema
from qvac_nb.worker.engine_calls import _request

SIZE = {"width": 64, "height": 64}
PROMPT = "a red boat"
SEED = 7


@contextmanager
def _loaded(name: str) -> Iterator[tuple[str, Any]]:
    """(model id, test model) of the recipe `name`, loaded for the block and unloaded after it."""
    model = _model(name)
    model_id = qvac_nb.load_model(str(model.primary), model_config={"threads": THREADS, **model.model_config()})
    try:
        yield model_id, model
    finally:
        qvac_nb.unload_model(model_id=model_id)


def _generate(model_id: str, **params: Any) -> bytes:
    (png,) = qvac_nb.diffusion(model_id=model_id, prompt=PROMPT, **SIZE, seed=SEED, **params).outputs.result(
        timeout=600)
    return png


def _peer(tmp_path: Path, model: Any, *calls: tuple[dict[str, Any], dict[str, Any]]) -> list[np.ndarray]:
    """The peer's images for (generate_image arguments, image arguments) calls on one load of `model`."""
    args: dict[str, Any] = {"model_path": str(model.primary)}
    if "prediction" in model.config:
        args["prediction"] = model.config["prediction"]
    calls_ = [({"prompt": PROMPT, **SIZE, "seed": SEED, **gen}, images) for gen, images in calls]
    return peer_calls(tmp_path, args, calls_)


def _variant(model_id: str, version: str) -> families.Family:
    """The loaded model's resolved family row, after checking the engine version its file has."""
    model = models.get_model(model_id)
    assert loaded_version(inspect_file(model.files[model.role]), model.role) == version
    return families.for_model(model)


# ---------------------------------------------------------------- the family table (no engine)


def test_variants_are_told_by_the_engine_version() -> None:
    sd1 = families.get("sd1")
    assert sd1.resolve("SD1").variant == "" and sd1.resolve("SD1") is sd1
    pix2pix = sd1.resolve("SD1_PIX2PIX")
    assert (pix2pix.variant, pix2pix.img2img, pix2pix.init_as_reference) == ("pix2pix", "pix2pix", True)
    assert "strength" in pix2pix.hidden_params and "img_cfg_scale" not in pix2pix.hidden_params
    inpaint = families.get("sdxl").resolve("SDXL_INPAINT")
    assert (inpaint.variant, inpaint.img2img, inpaint.inpaints) == ("inpaint", "sdedit", True)
    assert "img_cfg_scale" not in inpaint.hidden_params
    # The version decides; a name marker stands in only while the version is unknown.
    assert sd1.resolve("SD1", "my-inpainting-merge.safetensors").variant == ""
    assert sd1.resolve(None, "sd-v1-5-inpainting.ckpt").variant == "inpaint"
    assert families.get("sd2").resolve("SDXS_09").defaults_for("sdxs-09.safetensors")["steps"] == 1
    assert sd1.defaults_for("sdxs-512.gguf") == {"steps": 1, "cfg_scale": 1.0}  # the Studio's start (by name)
    assert sd1.defaults_for("bk-sdm-tiny.safetensors", version="SD1_TINY_UNET") == {}
    # Marker-only variants (name pairs in the table) keep working as before.
    assert families.get("flux").defaults_for("flux1-schnell-q4_0.gguf")["steps"] == 4


def test_img_cfg_scale_is_shown_only_where_the_engine_reads_it() -> None:
    """The Studio reads as_json(): img_cfg_scale is hidden for every family and shown by the variants that read it."""
    data = form_schema.schema_json(engine.enum_names())
    for name, row in data["families"].items():
        assert "img_cfg_scale" in row["hidden"], name
    sd1, sdxl = data["families"]["sd1"]["variants"], data["families"]["sdxl"]["variants"]
    for variants, variant in ((sd1, "pix2pix"), (sd1, "inpaint"), (sdxl, "pix2pix"), (sdxl, "inpaint")):
        assert "img_cfg_scale" not in variants[variant]["hidden"]
    assert sd1["pix2pix"] == {"label": "SD 1.x instruct-pix2pix", "defaults": {}, "img2img": "pix2pix",
                              "inpaints": False, "hidden": ["guidance", "strength"], "versions": ["SD1_PIX2PIX"],
                              "marker": "pix2pix"}
    assert sd1["inpaint"]["inpaints"] is True and sd1["inpaint"]["img2img"] == "sdedit"
    assert data["families"]["sd2"]["variants"]["sdxs"]["defaults"] == {"steps": 1, "cfg_scale": 1.0}
    assert sdxl["ssd1b"]["label"] == "SSD-1B" and sdxl["vega"]["versions"] == ["SDXL_VEGA"]
    # The form's per-parameter family list is not narrowed by it (a pix2pix model is an "sd1" model).
    by_name = {p["name"]: p for p in data["params"]}
    assert by_name["img_cfg_scale"]["families"] is None
    assert by_name["img_cfg_scale"]["default"] == -1.0  # unset: the engine uses cfg_scale, as its own default does


def test_a_split_sdxl_unet_is_told_its_variant(tmp_path: Path) -> None:
    """A U-Net-only SDXL file has no text encoder for `detect` to see; the engine reads it beside qvac_nb's marker."""
    specs = with_in_channels(unet(SDXL_BASE), 8)
    path = write_st(tmp_path / "sdxl-edit-unet.safetensors", st_tensors(
        (s.name.removeprefix(UNET), s.shape, "F16" if len(s.shape) > 1 else "F32") for s in specs))
    info = inspect_file(path, "model_src")
    assert (info.detection.family, info.detection.version) == ("sdxl", None)
    assert loaded_version(info, "diffusion_model") == "SDXL_PIX2PIX"
    assert families.get("sdxl").resolve(loaded_version(info, "diffusion_model")).img2img == "pix2pix"


def test_sdxs_refuses_a_vae_the_engine_would_ignore(tmp_path: Path) -> None:
    """SDXS decodes with the tiny autoencoder in its file; the engine files a VAE's tensors where none is read."""
    vae = write_st(tmp_path / "sd-vae.safetensors", st_tensors((s.name, s.shape, "F16" if len(s.shape) > 1 else "F32")
                                                               for s in kl_vae("", decoder_ch=32)))
    sdxs, before = _model("sdxs_512"), set(qvac_nb.loaded_models())
    with pytest.raises(UnsupportedOperationError, match=r"^model_config\.vae_model_src: .*SDXS \(512-DS\) model, "
                                                        r"which decodes with the tiny autoencoder"):
        qvac_nb.load_model(str(sdxs.primary), model_config={"threads": THREADS, "vae_model_src": str(vae)})
    assert set(qvac_nb.loaded_models()) == before


# ---------------------------------------------------------------- distilled U-Nets

# cfg 1 throughout, except where image guidance is the point: one U-Net pass per step, one text encoding.
ONE_STEP = {"steps": 1, "cfg_scale": 1.0}
PEER_ONE_STEP = {"sample_steps": 1, "cfg_scale": 1.0}
DISTILLED = [("sd1", "SD1_TINY_UNET", "tiny_unet"), ("sd2", "SD2_TINY_UNET", "tiny_unet"),
             ("sdxl", "SDXL_VEGA", "vega"), ("ssd1b", "SDXL_SSD1B", "ssd1b")]


@pytest.mark.parametrize(("name", "version", "variant"), DISTILLED, ids=[c[0] for c in DISTILLED])
def test_distilled_unet_matches_the_peer(name: str, version: str, variant: str, tmp_path: Path) -> None:
    with _loaded(name) as (model_id, model):
        assert _variant(model_id, version).variant == variant
        ours = assert_real_image(_generate(model_id, **ONE_STEP), 64, 64)
    (peer,) = _peer(tmp_path, model, (PEER_ONE_STEP, {}))
    assert np.array_equal(ours, peer)


@pytest.mark.parametrize(("name", "version"), [("sdxs_512", "SDXS_512_DS"), ("sdxs_09", "SDXS_09")])
def test_sdxs_runs_one_step_at_cfg_1_like_the_peer(name: str, version: str, tmp_path: Path) -> None:
    """SDXS's defaults reach the request, the engine and the record; the tiny autoencoder in the file decodes."""
    with _loaded(name) as (model_id, model):
        assert _variant(model_id, version).variant == "sdxs"
        request = generation.validate_diffusion(model_id=model_id, prompt=PROMPT, **SIZE)
        engine.ensure_loaded()
        req = _request(request, models.get_model(model_id).family)
        assert (request.steps, request.cfg_scale, req.steps, req.cfg_scale) == (1, 1.0, 1, 1.0)
        png = _generate(model_id)  # steps and cfg_scale left to the variant
        ours = assert_real_image(png, 64, 64)
        _record_has(png, steps=1, cfg_scale=1.0)
        # A value given wins over the variant's default; None (cfg_scale's "the default") is the variant's.
        assert generation.validate_diffusion(model_id=model_id, prompt=PROMPT, steps=3, **SIZE).steps == 3
        assert generation.validate_diffusion(model_id=model_id, prompt=PROMPT, cfg_scale=None, **SIZE).cfg_scale == 1.0
    (peer,) = _peer(tmp_path, model, (PEER_ONE_STEP, {}))
    assert np.array_equal(ours, peer)


# ---------------------------------------------------------------- inpainting

# (recipe, engine version, whether another mask is tried too: once, on the cheaper SD 2.x model)
INPAINT = [("sd2_inpaint", "SD2_INPAINT", True), ("sdxl_inpaint", "SDXL_INPAINT", False)]


@pytest.mark.parametrize(("name", "version", "other_mask"), INPAINT, ids=[c[0] for c in INPAINT])
def test_inpainting_unet_reads_the_mask_like_the_peer(name: str, version: str, other_mask: bool,
                                                      tmp_path: Path) -> None:
    """The 9-channel U-Net sees the mask and the masked image: another mask gives another image."""
    src, mask = picture(64, 64, 1), square_mask(64, 64)
    with _loaded(name) as (model_id, model):
        family = _variant(model_id, version)
        assert (family.variant, family.inpaints, family.img2img) == ("inpaint", True, "sdedit")
        png = _generate(model_id, init_image=src, mask_image=mask, **ONE_STEP)
        ours = assert_real_image(png, 64, 64)
        _record_has(png, init_image_used=True, mask_image_used=True, strength=0.75, img_cfg_scale=-1.0)
        if other_mask:
            left = np.zeros_like(mask)
            left[:, :32] = 255
            moved = pixels(_generate(model_id, init_image=src, mask_image=left, **ONE_STEP))
            assert not np.array_equal(moved, ours), "mask_image did not change the inpainting model's output"
    (peer,) = _peer(tmp_path, model, (PEER_ONE_STEP, {"init_image": src, "mask_image": mask}))
    assert np.array_equal(ours, peer)


# ---------------------------------------------------------------- instruct-pix2pix


def test_sd1_pix2pix_edits_init_image_with_image_guidance_like_the_peer(tmp_path: Path) -> None:
    """init_image is the condition image (the engine's reference, not re-noised); img_cfg_scale is its guidance."""
    src = picture(64, 64, 2)
    with _loaded("sd1_pix2pix") as (model_id, model):
        family = _variant(model_id, "SD1_PIX2PIX")
        assert (family.variant, family.init_as_reference) == ("pix2pix", True)
        request = generation.validate_diffusion(model_id=model_id, prompt=PROMPT, init_image=src, **SIZE)
        engine.ensure_loaded()
        req = _request(request, family.name, None, family.init_as_reference)
        assert len(req.ref_images) == 1 and req.init_image is None
        assert math.isinf(req.img_cfg_scale)  # unset: the engine's own default (cfg_scale's value)
        png = _generate(model_id, init_image=src, **ONE_STEP)
        plain = assert_real_image(png, 64, 64)
        _record_has(png, init_image_used=True, img_cfg_scale=-1.0)
        guided_png = _generate(model_id, init_image=src, img_cfg_scale=1.5, **ONE_STEP)
        guided = pixels(guided_png)
        _record_has(guided_png, init_image_used=True, img_cfg_scale=1.5)
        refused = "^mask_image: SD 1.x instruct-pix2pix models do not inpaint"
        with pytest.raises(UnsupportedOperationError, match=refused):
            qvac_nb.diffusion(model_id=model_id, prompt=PROMPT, init_image=src, mask_image=square_mask(64, 64),
                              **SIZE)
    assert not np.array_equal(guided, plain), "img_cfg_scale did not reach the instruct-pix2pix model"
    # The peer takes the image as a reference image; without it the engine would edit an empty one.
    (peer,) = _peer(tmp_path, model, ({**PEER_ONE_STEP, "image_cfg_scale": 1.5}, {"ref_images": [src]}))
    assert np.array_equal(guided, peer)


def test_sdxl_pix2pix_edits_init_image_like_the_peer(tmp_path: Path) -> None:
    src = picture(64, 64, 4)
    with _loaded("sdxl_pix2pix") as (model_id, model):
        assert _variant(model_id, "SDXL_PIX2PIX").init_as_reference
        png = _generate(model_id, init_image=src, **ONE_STEP)
        ours = assert_real_image(png, 64, 64)
        _record_has(png, init_image_used=True, cfg_scale=1.0)
    (peer,) = _peer(tmp_path, model, (PEER_ONE_STEP, {"ref_images": [src]}))
    assert np.array_equal(ours, peer)
