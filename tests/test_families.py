"""Every model family loads through qvac_nb and generates on the random-weight test models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import THREADS, _model
from helpers import assert_real_image, pixels
from peer import peer_images, record_has

import qvac_nb

DIFFUSION_FAMILIES = ["sd1", "sd2", "sdxl", "sd3", "flux2"]
UPSCALERS = ["esrgan_x4plus", "esrgan_x4plus_st", "esrgan_anime6b", "esrgan_anime6b_st"]


# The session's shared models where conftest has one (loaded with this same config); the others load here.
SHARED_IDS = {"sd1": "sd1_id", "flux2": "flux2_id"}
# SD3's test model has the engine's full-size MMDiT and T5-XXL: each call's prompt encoding is most of its time.
# Its repeat of seed 22 is the peer's image (same engine, its own process; tests/peer.py keeps its output), not a
# second call of ours: equal pixels say seed 22 gives the same image from any run, as a batch's second image
# too. The sampler is spelled out for both sides.
PEER_CHECKED = {"sd3": {"sampling_method": "euler", "scheduler": "discrete"}}


@pytest.mark.parametrize("name", DIFFUSION_FAMILIES)
def test_family_generates_and_repeats_byte_for_byte(name: str, request: pytest.FixtureRequest,
                                                     tmp_path: Path) -> None:
    model = _model(name)
    if name in SHARED_IDS:
        model_id = request.getfixturevalue(SHARED_IDS[name])
    else:
        model_id = qvac_nb.load_model(str(model.primary), model_config={"threads": THREADS, **model.model_config()})
    try:
        assert qvac_nb.models.get_model(model_id).family == name
        # cfg 1 skips the unconditioned pass: FLUX.2 is distilled; it halves the full-size SDXL/SD3 parts.
        cfg = {"cfg_scale": 1.0} if name in ("flux2", "sd3", "sdxl") else {}
        small = {"prompt": "a tiny house", "width": 64, "height": 64, "steps": 1, **cfg, **PEER_CHECKED.get(name, {})}
        # One prompt encoding makes seeds 21 and 22 (the engine's batch: seed + index); a later call with seed
        # 22 must give the batch's second PNG byte for byte (its record says seed 22, batch_count 1).
        pair = qvac_nb.diffusion(model_id=model_id, seed=21, batch_count=2, **small).outputs.result(timeout=600)
        first = assert_real_image(pair[0], 64, 64)
        second = assert_real_image(pair[1], 64, 64)
        assert not np.array_equal(second, first), "another seed gave the same image"
        record_has(pair[1], seed=22, batch_count=1)
        if name not in PEER_CHECKED:
            again = qvac_nb.diffusion(model_id=model_id, seed=22, **small).outputs.result(timeout=600)[0]
            assert again == pair[1], "same seed gave different PNG bytes"
    finally:
        if name not in SHARED_IDS:
            qvac_nb.unload_model(model_id=model_id)  # before the peer loads its own copy
    if name in PEER_CHECKED:
        sampling = PEER_CHECKED[name]
        (want,) = peer_images(model.files, tmp_path / "peer.npy",
                              {"prompt": small["prompt"], "seed": 22, "sample_steps": 1, "cfg_scale": 1.0,
                               "sample_method": sampling["sampling_method"], "scheduler": sampling["scheduler"]},
                              timeout=900)
        assert np.array_equal(second, want), "seed 22 gave other pixels than the peer's"


@pytest.mark.parametrize("name", UPSCALERS)
def test_upscaler_layouts_upscale_x4(name: str) -> None:
    model = _model(name)
    model_id = qvac_nb.load_model(str(model.primary), model_config={"threads": THREADS, "mode": "upscale"})
    try:
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        (png,) = qvac_nb.upscale(model_id=model_id, image=image).outputs.result(timeout=600)
        out = pixels(png)
        assert out.shape == (64, 64, 3)
        assert out.astype(np.float32).std() > 1.0
        (again,) = qvac_nb.upscale(model_id=model_id, image=image).outputs.result(timeout=600)
        assert png == again
    finally:
        qvac_nb.unload_model(model_id=model_id)
