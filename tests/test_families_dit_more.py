"""Ovis-Image, ERNIE-Image (and Turbo), Anima: loaded through qvac_nb with their LLM and VAE, pixel-equal to the peer.

Each family's generation leaves cfg_scale, the sampler and the scheduler to qvac_nb; the peer's
generate_image (stable-diffusion-cpp-python, in a process of its own) gets the same files with the
family's documented settings spelled out, so equal pixels say the family table's defaults reached
the engine. The engine request and the PNG record are checked to say the same. A second prompt
must change the image: the LLM's features reach the DiT. The test models (testmodels/ovis_image.py,
ernie_image.py, anima.py) are the engine's architectures at the smallest geometry it accepts; each
family is loaded once, and the peer loads each once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import THREADS, _model
from helpers import assert_real_image, pixels
from peer import SIZE, peer_images
from peer import record_has as _record_has
from testmodels import ernie_image
from testmodels.formats import TensorSpec, write_gguf
from testmodels.layers import typed

import qvac_nb
from qvac_nb import engine, families, generation, models, records
from qvac_nb.errors import CorruptModelError, InvalidParameterError, UnsupportedOperationError
from qvac_nb.modelfiles.detection import dit_heads
from qvac_nb.modelfiles.reading import inspect_file

# The cfg_scale each family's doc runs it at; euler and the discrete schedule are the engine's pick for every DiT.
DOC_CFG = {"ovis_image": 5.0, "ernie_image": 5.0, "anima": 6.0}
ENGINE_SAMPLING = {"sampling_method": "euler", "scheduler": "discrete"}
PROMPT = "a red boat"


def _load(name: str) -> Iterator[str]:
    model = _model(name)
    model_id = qvac_nb.load_model(str(model.primary), model_config={"threads": THREADS, **model.model_config()})
    yield model_id
    qvac_nb.unload_model(model_id=model_id)


@pytest.fixture(scope="module")
def ovis_id() -> Iterator[str]:
    yield from _load("ovis_image")


@pytest.fixture(scope="module")
def ernie_id() -> Iterator[str]:
    yield from _load("ernie_image")


@pytest.fixture(scope="module")
def anima_id() -> Iterator[str]:
    yield from _load("anima")


def _generate(model_id: str, **params: Any) -> bytes:
    (png,) = qvac_nb.diffusion(model_id=model_id, **SIZE, seed=7, **params).outputs.result(timeout=600)
    return png


def _peer(files: dict[str, Path], out: Path, *generations: dict[str, Any]) -> list[np.ndarray]:
    """The peer's generate_image for each of `generations` on `files` (role -> path), in one process of its own."""
    return peer_images(files, out, *generations)


def _peer_defaults(recipe: str) -> dict[str, Any]:
    """The family's documented one-step generation, spelled out for the peer."""
    return {"prompt": PROMPT, "sample_steps": 1, "cfg_scale": DOC_CFG[recipe], "sample_method": "euler",
            "scheduler": "discrete"}


def _check_defaults(model_id: str, recipe: str) -> np.ndarray:
    """One step with the family's defaults: the family, the engine request and the PNG record agree on them."""
    family = families.get(recipe)
    cfg = DOC_CFG[recipe]
    assert models.get_model(model_id).family == recipe and family.default("cfg_scale", None) == cfg
    assert "guidance" in family.hidden  # no distilled-guidance input: real cfg only
    engine.ensure_loaded()
    from qvac_nb.worker.engine_calls import _request

    request = generation.validate_diffusion(model_id=model_id, prompt=PROMPT, steps=1, **SIZE)
    assert _request(request, recipe).cfg_scale == cfg and records.record(request)["cfg_scale"] == cfg
    png = _generate(model_id, prompt=PROMPT, steps=1)
    _record_has(png, cfg_scale=cfg, steps=1, **ENGINE_SAMPLING)
    return assert_real_image(png, 64, 64)


# ---------------------------------------------------------------- Ovis-Image


def test_ovis_image_matches_the_peer_with_its_defaults(ovis_id: str, tmp_path: Path) -> None:
    ours = _check_defaults(ovis_id, "ovis_image")
    (peer,) = _peer(_model("ovis_image").files, tmp_path / "peer.npy", _peer_defaults("ovis_image"))
    assert np.array_equal(ours, peer)
    # The prompt reaches the DiT through the LLM, the text RMSNorm and txt_in.
    assert not np.array_equal(pixels(_generate(ovis_id, prompt="a green field", steps=1)), ours)


# ---------------------------------------------------------------- ERNIE-Image

ERNIE_INIT = {"prompt": PROMPT, "strength": 0.5, "sample_steps": 2, "cfg_scale": 5.0}
ERNIE_TURBO = {"prompt": PROMPT, "sample_steps": 8, "cfg_scale": 1.0}


@pytest.fixture(scope="module")
def ernie_peer(picture: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The peer's ERNIE-Image images, one load: the defaults, img2img of `picture`, Turbo's 8 steps at cfg 1.

    Turbo's file is a hard link to the same tensors (testmodels/ernie_image.py), so the base files serve.
    """
    out = tmp_path_factory.mktemp("ernie_peer") / "peer.npy"
    images = _peer(_model("ernie_image").files, out, _peer_defaults("ernie_image"),
                   {**ERNIE_INIT, "init_image": str(picture)}, ERNIE_TURBO)
    return dict(zip(("defaults", "init", "turbo"), images, strict=True))


def test_ernie_image_matches_the_peer_with_its_defaults(ernie_id: str, ernie_peer: dict[str, np.ndarray]) -> None:
    ours = _check_defaults(ernie_id, "ernie_image")
    assert np.array_equal(ours, ernie_peer["defaults"])
    assert not np.array_equal(pixels(_generate(ernie_id, prompt="a green field", steps=1)), ours)
    # cfg_scale reaches the engine: the family's 5 against 1 (one pass, the prompt alone).
    assert not np.array_equal(pixels(_generate(ernie_id, prompt=PROMPT, steps=1, cfg_scale=1.0)), ours)


def test_ernie_image_repaints_an_init_image_like_the_peer(ernie_id: str, picture: Path,
                                                          ernie_peer: dict[str, np.ndarray]) -> None:
    """img2img is SDEdit: FLUX.2's VAE encodes the picture, strength re-noises it."""
    assert families.get("ernie_image").img2img == "sdedit"
    png = _generate(ernie_id, prompt=PROMPT, init_image=str(picture), strength=0.5, steps=2)
    ours = assert_real_image(png, 64, 64)
    _record_has(png, init_image_used=True, strength=0.5, steps=2, cfg_scale=5.0)
    assert np.array_equal(ours, ernie_peer["init"])
    assert not np.array_equal(ours, ernie_peer["defaults"])


def test_ernie_image_turbo_is_a_variant_told_by_its_name(ernie_peer: dict[str, np.ndarray]) -> None:
    """Turbo has ERNIE-Image's tensors; its name starts the form at 8 steps and cfg 1, which run like the peer's."""
    turbo = _model("ernie_image_turbo")
    detection = inspect_file(turbo.primary).detection
    assert (detection.family, detection.version) == ("ernie_image", "ERNIE_IMAGE")
    row = families.get("ernie_image")
    turbo_defaults = row.defaults_for(turbo.primary.name)
    assert (turbo_defaults["steps"], turbo_defaults["cfg_scale"]) == (8, 1.0)
    assert row.defaults_for(ernie_image.DIT_FILE) == {"cfg_scale": 5.0}  # the base model: the schema's 20 steps
    model_id = qvac_nb.load_model(str(turbo.primary), model_config={"threads": THREADS, **turbo.model_config()})
    try:
        assert models.get_model(model_id).family == "ernie_image"
        png = _generate(model_id, prompt=PROMPT, steps=8, cfg_scale=1.0)
    finally:
        qvac_nb.unload_model(model_id=model_id)
    _record_has(png, steps=8, cfg_scale=1.0)
    assert np.array_equal(assert_real_image(png, 64, 64), ernie_peer["turbo"])


# ---------------------------------------------------------------- Anima


def test_anima_matches_the_peer_with_its_defaults(anima_id: str, tmp_path: Path) -> None:
    ours = _check_defaults(anima_id, "anima")
    (peer,) = _peer(_model("anima").files, tmp_path / "peer.npy", _peer_defaults("anima"))
    assert np.array_equal(ours, peer)
    # The prompt reaches the DiT: the LLM's output and the prompt's T5 ids both go through the adapter.
    assert not np.array_equal(pixels(_generate(anima_id, prompt="a green field", steps=1)), ours)


# ---------------------------------------------------------------- companions (refused before the engine loads)


@pytest.mark.parametrize("recipe", ["ovis_image", "ernie_image", "anima"])
@pytest.mark.parametrize("key", ["llm_model_src", "vae_model_src"])
def test_a_missing_companion_is_named(recipe: str, key: str) -> None:
    """Unchecked, the engine fails to load without the LLM, and without a VAE loads only to crash generating."""
    model = _model(recipe)
    config = {k: v for k, v in model.model_config().items() if k != key}
    expected = rf"^model_config\.{key}: an? {families.get(recipe).label} diffusion model needs its"
    with pytest.raises(InvalidParameterError, match=expected) as caught:
        qvac_nb.load_model(str(model.primary), model_config={"threads": THREADS, **config})
    assert caught.value.param == f"model_config.{key}"


@pytest.mark.parametrize(("recipe", "key", "donor", "message"), [
    # Each family's test LLM has its own width (Ovis 64, ERNIE 96, Anima 1024): another family's does not fit.
    ("anima", "llm", "ovis_image", r"gives 64-wide text features but .* reads 1024-wide ones"),
    ("ernie_image", "llm", "ovis_image", r"gives 64-wide text features but .* reads 96-wide ones"),
    ("ovis_image", "llm", "ernie_image", r"gives 96-wide text features but .* reads 64-wide ones"),
    # Anima decodes with the Wan VAE, Ovis-Image with FLUX.1's, ERNIE-Image with FLUX.2's (32 channels).
    ("anima", "vae", "ovis_image", r"is an SD/FLUX-style VAE, but .* decodes with the Wan VAE"),
    ("ovis_image", "vae", "anima", r"is a Wan VAE"),
    ("ernie_image", "vae", "ovis_image", r"is a VAE for SD3/FLUX.1 latents, but .* needs a FLUX.2 VAE"),
])
def test_a_companion_of_another_family_is_refused(recipe: str, key: str, donor: str, message: str) -> None:
    """Unchecked, the engine loads these and then aborts (a matrix product of the wrong width) or crashes."""
    model = _model(recipe)
    files = {**model.files, key: _model(donor).files[key]}
    config_key = f"model_config.{key}_model_src"
    config = {"llm_model_src": str(files["llm"]), "vae_model_src": str(files["vae"])}
    with pytest.raises(UnsupportedOperationError, match=rf"^{config_key}: .*{message}") as caught:
        qvac_nb.load_model(str(model.primary), model_config={"threads": THREADS, **config})
    assert caught.value.param == config_key


def test_an_ernie_image_dit_with_narrow_heads_is_refused(tmp_path: Path) -> None:
    """The engine rotates 128 dimensions of every head: 64-wide ones abort it at the first step (checked: rc 134)."""
    narrow = [TensorSpec(s.name, (64,), "ones") if ".norm_q." in s.name or ".norm_k." in s.name else s
              for s in ernie_image.dit_tensors()]
    path = tmp_path / "ernie-image-narrow-heads.gguf"
    write_gguf(path, typed(narrow))
    config = {k: v for k, v in _model("ernie_image").model_config().items() if k.endswith("_model_src")}
    expected = r"^model_src: ernie-image-narrow-heads.gguf has head size 64 and width 256; ERNIE-Image"
    with pytest.raises(CorruptModelError, match=expected) as caught:
        qvac_nb.load_model(str(path), model_config={"threads": THREADS, **config})
    assert caught.value.param == "model_src"


def test_the_memory_guard_counts_each_dits_heads() -> None:
    """The attention estimate multiplies by the heads: read like the engine reads them (Anima's are fixed)."""
    heads = {name: dit_heads(inspect_file(_model(name).primary)) for name in ("ovis_image", "ernie_image", "anima")}
    assert heads == {"ovis_image": 2, "ernie_image": 2, "anima": 16}
