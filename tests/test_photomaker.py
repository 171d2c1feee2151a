"""PhotoMaker (SDXL ID images): pixel-equal to the peer, the ID images and style strength reach the engine,
and what the engine would abort on is refused first.

The `sdxl` test model (Vega layout, q4_0) loads with the random-weight PhotoMaker v1 file
(testmodels/photomaker.py) and model_config type 'f16': PhotoMaker merges its LoRA into the U-Net's
attention weights, which the engine cannot do for q4_0 (it aborts), so the weights are converted at load.
The peer (stable-diffusion-cpp-python's generate_image, in a process of its own) loads the same files with
wtype 'f16' and makes the same generations in the same order: the engine plans a generation's steps with
the style strength of the generation before it, so the order matters, and both sides start fresh.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import THREADS, _model
from helpers import assert_real_image, pixels
from peer import record_has
from test_features import peer_calls, picture

import qvac_nb
from qvac_nb import photomaker, schema
from qvac_nb.errors import (
    CorruptModelError,
    InvalidParameterError,
    InvalidTypeError,
    ModelFileError,
    UnsupportedOperationError,
)

PROMPT = "a photo of a man img"
# One step at cfg 1: the text encoders dominate; style strength 100 puts that step before the ID takes over
# (the engine's start_merge_step = strength / 100 * steps), 20 after it.
OURS = {"width": 64, "height": 64, "seed": 7, "steps": 1, "cfg_scale": 1.0, "sampling_method": "euler",
        "scheduler": "discrete"}
PEER = {"prompt": PROMPT, "width": 64, "height": 64, "seed": 7, "sample_steps": 1, "cfg_scale": 1.0,
        "sample_method": "euler", "scheduler": "discrete"}


@pytest.fixture(scope="module")
def id_images() -> list[np.ndarray]:
    # Sizes the engine's 224x224 resize covers exactly (97x97 would come out a pixel short).
    return [picture(80, 96, 1), picture(64, 64, 2)]


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return {"model": _model("sdxl").primary, "photo_maker": _model("photomaker_v1").files["photo_maker"]}


@pytest.fixture(scope="module")
def pm_id(files: dict[str, Path]) -> Iterator[str]:
    model_id = qvac_nb.load_model(str(files["model"]), model_config={
        "threads": THREADS, "type": "f16", "photo_maker_model_src": str(files["photo_maker"])})
    yield model_id
    qvac_nb.unload_model(model_id=model_id)


def _ours(model_id: str, **params: Any) -> bytes:
    (png,) = qvac_nb.diffusion(model_id=model_id, prompt=PROMPT, **{**OURS, **params}).outputs.result(timeout=600)
    return png


def test_photomaker_matches_the_peer_and_uses_ids_and_strength(pm_id: str, files: dict[str, Path],
                                                              id_images: list[np.ndarray], tmp_path: Path) -> None:
    # The first generation after loading is planned with strength 20 (the engine's default), whatever it asks
    # for; the second with the first's 100.
    first = _ours(pm_id, pm_id_images=id_images, pm_style_strength=100.0)
    second = _ours(pm_id, pm_id_images=id_images, pm_style_strength=100.0)
    # The peer's second call has no ID images (qvac_nb refuses that on a PhotoMaker model): the engine then turns
    # PhotoMaker off, and with the first call's strength 100 planning it every step uses the prompt's own
    # condition (a lower strength would need the ID condition and abort).
    peer = peer_calls(tmp_path, {"model_path": str(files["model"]), "photo_maker_path": str(files["photo_maker"]),
                                 "wtype": "f16"},
                      [({**PEER, "pm_style_strength": 100.0}, {"pm_id_images": id_images}), (PEER, {})])
    assert np.array_equal(assert_real_image(first, 64, 64), peer[0])
    assert not np.array_equal(pixels(first), pixels(second)), "pm_style_strength does not reach the engine"
    assert not np.array_equal(pixels(first), peer[1]), "the ID images do not reach the engine"
    # Recorded like init_image: whether ID images were given (not the images), and the strength they went with.
    record_has(first, pm_id_images_used=True, pm_style_strength=100.0)
    replay = qvac_nb.read_parameters(first)
    assert "pm_id_images" not in replay and replay["pm_style_strength"] == 100.0


def test_photomaker_refuses_what_the_engine_would_abort_on(pm_id: str, id_images: list[np.ndarray]) -> None:
    def refused(error: type[Exception], param: str, **params: Any) -> None:
        with pytest.raises(error) as info:
            qvac_nb.diffusion(model_id=pm_id, **{"prompt": PROMPT, **OURS, "pm_id_images": id_images, **params})
        assert info.value.param == param, info.value  # type: ignore[attr-defined]

    refused(UnsupportedOperationError, "pm_id_images", pm_id_images=None)  # the engine aborts without them
    refused(InvalidParameterError, "pm_id_images", pm_id_images=[])
    refused(InvalidParameterError, "pm_id_images", pm_id_images=id_images[:1] * (schema.MAX_PM_ID_IMAGES + 1))
    refused(InvalidTypeError, "pm_id_images", pm_id_images=id_images[0])
    refused(InvalidParameterError, "pm_id_images", pm_id_images=[picture(97, 97, 3)])
    refused(InvalidParameterError, "prompt", prompt="a photo of a man")  # no trigger word
    refused(InvalidParameterError, "prompt", prompt="img of a man")  # no class word before it
    refused(InvalidParameterError, "pm_style_strength", pm_style_strength=101.0)
    refused(InvalidParameterError, "pm_id_embed_path", pm_id_embed_path="id_embeds.bin")  # v1 takes none


def test_id_images_need_a_photomaker_sdxl_model(sd1_id: str, files: dict[str, Path],
                                                id_images: list[np.ndarray]) -> None:
    with pytest.raises(UnsupportedOperationError, match="loaded without a PhotoMaker file") as info:
        qvac_nb.diffusion(model_id=sd1_id, prompt=PROMPT, **OURS, pm_id_images=id_images)
    assert info.value.param == "pm_id_images"
    with pytest.raises(InvalidParameterError, match="go with pm_id_images"):
        qvac_nb.diffusion(model_id=sd1_id, prompt=PROMPT, **OURS, pm_id_embed_path="id_embeds.bin")
    # The checks before any engine call, on stand-ins: an SD 1.x model with a PhotoMaker file (the engine's
    # ID encoder fuses into SDXL's 2048-wide text condition only), and the test SDXL model's own q4_0 U-Net
    # weights, loaded as they are (the LoRA merge would abort).
    sd1 = SimpleNamespace(model_id="pm-sd1", family="sd1", config={}, role="model",
                          files={"model": files["model"], "photo_maker": files["photo_maker"]})
    with pytest.raises(UnsupportedOperationError, match="SDXL models only"):
        photomaker.check_inputs(sd1, {"prompt": PROMPT, "pm_id_images": id_images, "pm_id_embed_path": None})
    as_stored = SimpleNamespace(model_id="pm-as-stored", config={}, files={"model": files["model"]}, role="model")
    assert photomaker.lora_blocker(as_stored) == "q4_0"
    assert photomaker.lora_blocker(SimpleNamespace(model_id="pm-f16", config={"type": "f16"})) is None
    with_q8 = SimpleNamespace(model_id="pm-q8", family="sdxl", config={"type": "q8_0"}, role="model",
                              files={"model": files["model"], "photo_maker": files["photo_maker"]})
    with pytest.raises(UnsupportedOperationError, match="cannot do for q8_0 weights"):
        photomaker.check_inputs(with_q8, {"prompt": PROMPT, "pm_id_images": id_images,
                                                 "pm_id_embed_path": None})


def _embeds(path: Path, dims: tuple[int, ...], ttype: int = 0, cut: int = 0) -> Path:
    """An ID-embeddings file as the engine reads it: n_dims, name length, type, dims, name, floats."""
    name = b"id_embeds"
    raw = struct.pack(f"<3i{len(dims)}i", len(dims), len(name), ttype, *dims) + name
    raw += np.zeros(int(np.prod(dims)), "<f4").tobytes()
    path.write_bytes(raw[:len(raw) - cut])
    return path


def test_photomaker_v2_needs_matching_id_embeddings(tmp_path: Path, files: dict[str, Path],
                                                    id_images: list[np.ndarray]) -> None:
    # The engine tells v2 by "v2" in the file's path; the checks before any engine call, on a stand-in model.
    v2 = SimpleNamespace(model_id="pm-v2", family="sdxl", config={"type": "f16"}, role="model",
                         files={"model": files["model"], "photo_maker": tmp_path / "photomaker-v2.safetensors"})

    def check(**given: Any) -> dict[str, Any]:
        values = {"prompt": PROMPT, "pm_id_images": id_images, "pm_id_embed_path": None, **given}
        photomaker.check_inputs(v2, values)
        return values

    with pytest.raises(InvalidParameterError, match="is v2") as info:
        check()
    assert info.value.param == "pm_id_embed_path"
    good = _embeds(tmp_path / "good.bin", (512, 2))
    assert check(pm_id_embed_path=str(good))["pm_id_embed_path"] == str(good)
    with pytest.raises(ModelFileError):
        check(pm_id_embed_path=str(tmp_path / "missing.bin"))
    with pytest.raises(InvalidParameterError, match="2 image"):  # one embedding per image, in their order
        check(pm_id_embed_path=str(_embeds(tmp_path / "one.bin", (512, 1))))
    with pytest.raises(InvalidParameterError, match="2 image"):
        check(pm_id_embed_path=str(_embeds(tmp_path / "wide.bin", (768, 2))))
    for bad in (_embeds(tmp_path / "f16.bin", (512, 2), ttype=1), _embeds(tmp_path / "flat.bin", (1024,)),
                _embeds(tmp_path / "cut.bin", (512, 2), cut=4)):
        with pytest.raises(CorruptModelError):
            check(pm_id_embed_path=str(bad))
