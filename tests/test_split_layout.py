"""U-Net-only files: SDXL's split layout loads and generates; SD 1.x/2.x's is refused with the reason."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import THREADS
from helpers import assert_real_image
from reliability_files import GgufLayout, GgufTensor, gguf_kv, write_gguf
from testmodels import registry
from testmodels.formats import GGML_TYPES
from testmodels.layers import typed
from testmodels.lora import write_safetensors
from testmodels.unet_family import SD1_TINY, unet

import qvac_nb
from qvac_nb.worker import split_unet

SETTINGS = {"prompt": "a tiny house", "width": 64, "height": 64, "steps": 1, "seed": 21, "cfg_scale": 1.0}


def _generate(model_src: Path, config: dict) -> tuple[np.ndarray, str]:
    model_id = qvac_nb.load_model(str(model_src), model_config={"threads": THREADS, **config})
    try:
        model = qvac_nb.models.get_model(model_id)
        assert model.family == "sdxl"
        (png,) = qvac_nb.diffusion(model_id=model_id, **SETTINGS).outputs.result(timeout=900)
        return assert_real_image(png, 64, 64), model.role
    finally:
        qvac_nb.unload_model(model_id=model_id)


def test_sdxl_unet_only_file_with_clip_l_clip_g_and_vae_generates_the_checkpoints_image() -> None:
    """The split files hold the tensors of one SDXL checkpoint: loading either gives the same pixels."""
    model = registry.get("sdxl_split")
    split, role = _generate(model.primary, model.model_config())
    assert role == "diffusion_model"
    # The same VAE file for both: the engine scales an SDXL checkpoint's own VAE convolutions (1/32, its
    # fp16 overflow guard) but not an external VAE's.
    whole, whole_role = _generate(model.files["checkpoint"], {"vae_model_src": str(model.files["vae"])})
    assert whole_role == "model"
    assert np.array_equal(split, whole)


def test_the_marker_is_a_gguf_with_one_unused_tensor() -> None:
    from qvac_nb.modelfiles.reading import inspect_file

    info = inspect_file(split_unet.marker_file(), "marker")
    assert info.format == "gguf" and info.tensors == {split_unet.MARKER_TENSOR: (1,)}
    assert split_unet.needs_marker("sdxl", "diffusion_model", {"diffusion_model": "u.gguf"})
    assert not split_unet.needs_marker("sdxl", "model", {"model": "x.gguf"})
    assert not split_unet.needs_marker("flux2", "diffusion_model", {"diffusion_model": "d.gguf"})


def test_sdxl_unet_only_file_without_its_encoders_is_refused_before_loading() -> None:
    model = registry.get("sdxl_split")
    config = {k: v for k, v in model.model_config().items() if k != "clip_g_model_src"}
    with pytest.raises(qvac_nb.InvalidParameterError, match="clip_g_model_src") as caught:
        qvac_nb.load_model(str(model.primary), model_config={"threads": THREADS, **config})
    assert caught.value.param == "model_config.clip_g_model_src"


def test_sd1_unet_only_file_is_refused_with_the_layouts_that_work(tmp_path: Path) -> None:
    # The tiny SD 1.x U-Net's tensors (names, shapes, q4_0 types) over sparse zero data: the refusal reads the header.
    unet_only = tmp_path / "sd1-unet-q4_0.gguf"
    tensors = [GgufTensor(spec.name, tuple(reversed(spec.shape)), GGML_TYPES[dtype][0])
               for spec, dtype in typed(unet(SD1_TINY, prefix=""))]
    write_gguf(unet_only, GgufLayout(3, gguf_kv("general.alignment", 4, struct.pack("<I", 32)), 1, tensors))
    with pytest.raises(qvac_nb.UnsupportedOperationError, match="single checkpoint") as caught:
        qvac_nb.load_model(str(unet_only), model_config={"threads": THREADS})
    assert "SDXL" in str(caught.value) and caught.value.param == "model_src"


def test_a_file_the_engine_cannot_place_gets_the_layouts_that_load(tmp_path: Path) -> None:
    """The engine's own "get sd version from file failed" comes back with the list of layouts that work."""
    unknown = tmp_path / "mystery.safetensors"
    write_safetensors(unknown, {"blocks.0.proj.weight": np.zeros((32, 32), np.float16)})
    with pytest.raises(qvac_nb.EngineError, match="get sd version from file failed") as caught:
        qvac_nb.load_model(str(unknown), model_config={"threads": THREADS})
    assert "SDXL U-Net-only file with clip_l_model_src" in str(caught.value)
    assert str(caught.value).startswith("model_src:")
