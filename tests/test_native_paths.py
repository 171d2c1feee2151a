"""The engine's context fields qvac_nb passes from model_config: companion files and load-time switches.

clip_vision, llm_vision, high_noise_diffusion_model and photo_maker files, the embeddings array, and the
switches of the newer families (Chroma's masks, Qwen-Image's zero_cond_t), circular padding, the TAE preview
mode, the SDXL VAE scale and the VRAM budget. The engine's own text of its context struct
(sd_ctx_params_to_str) shows what it reads at each field, so a field bound at the wrong offset fails here.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import pixels
from peer import peer_images
from testmodels.embedding import write_embedding
from testmodels.formats import TensorSpec, write_safetensors

import qvac_nb
from qvac_nb import engine, models
from qvac_nb.worker import opening

# One tensor each under names the SD 1.x model does not read: enough for the engine to open the file under
# the companion's prefix, and nothing it would use.
PROBE_TENSORS = {
    "clip_vision_model_src": "vision_model.post_layernorm.weight",
    "llm_vision_model_src": "blocks.0.norm1.weight",
    "high_noise_diffusion_model_src": "qvac_probe.weight",
    "photo_maker_model_src": "id_encoder.qvac_probe.weight",
}
# What the engine logs when it opens each file (stable-diffusion.cpp's new_sd_ctx).
ENGINE_LINES = {
    "clip_vision_model_src": "loading clip_vision from '{}'",
    "llm_vision_model_src": "loading llm vision from '{}'",
    "high_noise_diffusion_model_src": "loading high noise diffusion model from '{}'",
}
SWITCHES = {"chroma_use_dit_mask": False, "chroma_use_t5_mask": True, "chroma_t5_mask_pad": 7, "circular_x": True,
            "circular_y": True, "max_vram": 2.5, "qwen_image_zero_cond_t": True, "force_sdxl_vae_conv_scale": True,
            "tae_preview_only": True}
# One step at cfg 1 (one U-Net pass): enough for the probes to show they change nothing, and for circular
# padding, which every convolution of the U-Net and the VAE reads, to show it changes the image.
CALL = {"prompt": "a red boat", "seed": 7, "width": 64, "height": 64, "steps": 1, "cfg_scale": 1.0,
        "sampling_method": "euler_a", "scheduler": "discrete", "eta": 0.0}


@pytest.fixture(scope="module")
def plain(sd1_id: str) -> bytes:
    """The session's SD 1.x model's PNG of CALL: what both tests below compare with (made once)."""
    (png,) = qvac_nb.diffusion(model_id=sd1_id, **CALL).outputs.result(timeout=300)
    return png


def _probe_files(folder: Path, keys: tuple[str, ...] = tuple(PROBE_TENSORS)) -> dict[str, str]:
    out = {}
    for key in keys:
        path = folder / f"{key.removesuffix('_model_src')}.safetensors"
        write_safetensors(path, [(TensorSpec(PROBE_TENSORS[key], (8,), "ones"), "f32")])
        out[key] = str(path)
    return out


def _engine_view(config: dict, model_src: str) -> dict[str, str]:
    """What the engine would read from the ContextConfig a worker builds for `config` (no load)."""
    engine.ensure_loaded()
    model = models._prepare(model_src, "diffusion", config, None)
    spec = model.worker_spec()
    cc = opening._context_config(spec["files"], spec["role"], spec)
    view = dict(line.split(": ", 1) for line in cc.engine_view().splitlines() if ": " in line)
    view["_cc"] = cc  # the fields the engine's text leaves out are read back from the binding
    return view


def test_the_engine_reads_each_new_path_and_switch_at_its_field(sd1_model, tmp_path: Path) -> None:
    files = _probe_files(tmp_path)
    embedding = str(write_embedding(tmp_path / "qvacstyle.safetensors"))
    view = _engine_view({**files, **SWITCHES, "embeddings": {"QvacStyle": embedding}}, str(sd1_model.primary))
    for key, field in (("clip_vision_model_src", "clip_vision_path"), ("llm_vision_model_src", "llm_vision_path"),
                       ("high_noise_diffusion_model_src", "high_noise_diffusion_model_path"),
                       ("photo_maker_model_src", "photo_maker_path")):
        assert view[field] == files[key], field
    assert view["model_path"] == str(sd1_model.primary)
    chroma = (view["chroma_use_dit_mask"], view["chroma_use_t5_mask"], view["chroma_t5_mask_pad"])
    assert chroma == ("false", "true", "7")
    assert (view["circular_x"], view["circular_y"], view["max_vram"]) == ("true", "true", "2.500")
    cc = view["_cc"]
    assert cc.qwen_image_zero_cond_t and cc.force_sdxl_vae_conv_scale and cc.tae_preview_only
    assert cc.embeddings == [("QvacStyle", os.fsencode(embedding))]


def test_switches_left_out_keep_the_engines_defaults(sd1_model) -> None:
    view = _engine_view({}, str(sd1_model.primary))
    chroma = (view["chroma_use_dit_mask"], view["chroma_use_t5_mask"], view["chroma_t5_mask_pad"])
    assert chroma == ("true", "false", "1")
    assert (view["circular_x"], view["max_vram"], view["clip_vision_path"], view["photo_maker_path"]) == \
        ("false", "0.000", "", "")
    assert view["_cc"].embeddings == [] and not view["_cc"].qwen_image_zero_cond_t


def _wait_for_lines(caplog: pytest.LogCaptureFixture, wanted: list[str], timeout: float = 30.0) -> list[str]:
    """The wanted engine lines not seen within `timeout` (the worker forwards its log in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [r.getMessage() for r in caplog.records if r.name == "qvac_nb.engine"]
        missing = [w for w in wanted if not any(w in line for line in seen)]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.1)


def test_companion_files_reach_the_engines_load(sd1_model, plain: bytes, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from conftest import THREADS

    files = _probe_files(tmp_path, tuple(ENGINE_LINES))
    with caplog.at_level(logging.INFO, logger="qvac_nb.engine"):
        model_id = models.load_copy(str(sd1_model.primary), model_config={"threads": THREADS, **files})
        try:
            (png,) = qvac_nb.diffusion(model_id=model_id, **CALL).outputs.result(timeout=300)
        finally:
            qvac_nb.unload_model(model_id=model_id)
        missing = _wait_for_lines(caplog, [line.format(files[key]) for key, line in ENGINE_LINES.items()])
    assert not missing, f"the engine did not open: {missing}"
    # The probes' tensors are nothing an SD 1.x model reads: the image is the model's own.
    assert np.array_equal(pixels(png), pixels(plain))


def test_a_photo_maker_file_without_its_encoder_fails_the_load_naming_the_key(sd1_model, tmp_path: Path) -> None:
    from conftest import THREADS

    files = _probe_files(tmp_path, ("photo_maker_model_src",))
    with pytest.raises(qvac_nb.EngineError) as caught:
        models.load_copy(str(sd1_model.primary), model_config={"threads": THREADS, **files})
    assert str(caught.value).startswith("model_config.photo_maker_model_src: the engine could not load")
    assert caught.value.param == "model_config.photo_maker_model_src"


def test_wrong_files_and_values_are_refused_before_the_load(sd1_model, tmp_path: Path) -> None:
    model = str(sd1_model.primary)
    with pytest.raises(qvac_nb.UnsupportedOperationError,
                       match=r"^model_config.clip_vision_model_src: .* SD 1.x model"):
        qvac_nb.load_model(model, model_config={"clip_vision_model_src": model})
    t5_like = tmp_path / "t5.safetensors"
    write_safetensors(t5_like, [(TensorSpec("encoder.block.0.layer.0.SelfAttention.q.weight", (8, 8)), "f32")])
    with pytest.raises(qvac_nb.UnsupportedOperationError,
                       match=r"^model_config.high_noise_diffusion_model_src: .* text_encoder file, not a diffusion"):
        qvac_nb.load_model(model, model_config={"high_noise_diffusion_model_src": str(t5_like)})
    with pytest.raises(qvac_nb.ModelFileError, match=r"^model_config.llm_vision_model_src: .*not found"):
        qvac_nb.load_model(model, model_config={"llm_vision_model_src": str(tmp_path / "missing.gguf")})
    for key, value, error in (("chroma_t5_mask_pad", -1, qvac_nb.InvalidParameterError),
                              ("max_vram", -0.5, qvac_nb.InvalidParameterError),
                              ("circular_x", "yes", qvac_nb.InvalidTypeError),
                              ("qwenImageZeroCondT", 1, qvac_nb.InvalidTypeError)):
        with pytest.raises(error) as caught:
            qvac_nb.load_model(model, model_config={key: value})
        assert caught.value.param.startswith("model_config."), key


def test_circular_padding_matches_the_peer(sd1_model, plain: bytes, tmp_path: Path) -> None:
    """circular_x/circular_y change the image, exactly as the peer's StableDiffusion(circular_x=...) does."""
    from conftest import THREADS

    model_id = models.load_copy(str(sd1_model.primary), model_config={"threads": THREADS, "circular_x": True,
                                                                      "circular_y": True})
    try:
        (png,) = qvac_nb.diffusion(model_id=model_id, **CALL).outputs.result(timeout=300)
    finally:
        qvac_nb.unload_model(model_id=model_id)
    assert not np.array_equal(pixels(png), pixels(plain)), "circular padding changed nothing"
    (peer,) = peer_images({"model": sd1_model.primary}, tmp_path / "peer.npy",
                          {"prompt": CALL["prompt"], "sample_steps": 1, "cfg_scale": 1.0, "sample_method": "euler_a",
                           "scheduler": "discrete"}, options={"circular_x": True, "circular_y": True})
    assert np.array_equal(pixels(png), peer)
