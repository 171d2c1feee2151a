"""FLUX.1 dev, FLUX.1 Kontext, FLUX.1 Fill and Chroma: loaded through qvac_nb, pixel-equal to the peer.

The generations are compared with stable-diffusion-cpp-python's own generate_image (run in a
process of its own) given the same files and the family's defaults spelled out: qvac_nb's call
leaves them out, so equal pixels say the family table's defaults reached the engine, and the
PNG record is checked to say the same. The test models have no T5 (see testmodels/flux1.py: a
full-size T5 encode takes tens of seconds on two cores); FLUX.1 reads the prompt through CLIP-L's
pooled vector, Chroma gets the engine's empty condition.
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
from PIL import Image
from testmodels import flux1
from testmodels.formats import quantizable, write_gguf

import qvac_nb
from qvac_nb import engine, families, generation, models, records
from qvac_nb.errors import UnsupportedOperationError
from qvac_nb.modelfiles.reading import inspect_file


def _load(model: Any) -> Iterator[str]:
    model_id = qvac_nb.load_model(str(model.primary), model_config={"threads": THREADS, **model.model_config()})
    yield model_id
    qvac_nb.unload_model(model_id=model_id)


@pytest.fixture(scope="module")
def flux1_id() -> Iterator[str]:
    yield from _load(_model("flux1"))


@pytest.fixture(scope="module")
def kontext_id() -> Iterator[str]:
    yield from _load(_model("flux1_kontext"))


@pytest.fixture(scope="module")
def fill_id() -> Iterator[str]:
    yield from _load(_model("flux1_fill"))


@pytest.fixture(scope="module")
def chroma_id() -> Iterator[str]:
    yield from _load(_model("chroma"))


def _mask(tmp: Path, name: str, box: tuple[int, int, int, int]) -> Path:
    """A black 64x64 mask with the box (x0, y0, x1, y1) white (repainted)."""
    mask = np.zeros((64, 64), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    Image.fromarray(mask).save(tmp / name)
    return tmp / name


def _generate(model_id: str, **params: Any) -> bytes:
    (png,) = qvac_nb.diffusion(model_id=model_id, **SIZE, seed=7, **params).outputs.result(timeout=600)
    return png


def _peer(files: dict[str, Path], out: Path, **generate: Any) -> np.ndarray:
    """The peer's generate_image on `files` (role -> path), in its own process; images are passed as paths."""
    return peer_images(files, out, generate)[0]


# ---------------------------------------------------------------- FLUX.1 dev


def test_flux1_defaults_match_the_peer_and_the_record(flux1_id: str, tmp_path: Path) -> None:
    assert models.get_model(flux1_id).family == "flux"
    png = _generate(flux1_id, prompt="a red boat", steps=1)  # cfg_scale and guidance: the family's
    ours = assert_real_image(png, 64, 64)
    _record_has(png, cfg_scale=1.0, guidance=3.5)
    peer = _peer(_model("flux1").files, tmp_path / "peer.npy", prompt="a red boat", sample_steps=1, cfg_scale=1.0,
                 guidance=3.5)
    assert np.array_equal(ours, peer)
    # The distilled guidance reaches the engine (3.5 is the engine's own default too: another value must tell).
    assert not np.array_equal(pixels(_generate(flux1_id, prompt="a red boat", steps=1, guidance=8.0)), ours)


# ---------------------------------------------------------------- FLUX.1 Kontext


def test_kontext_edits_the_init_image_like_the_peer(kontext_id: str, picture: Path, tmp_path: Path) -> None:
    assert models.get_model(kontext_id).family == "flux_kontext"  # told by its file name
    source = np.asarray(Image.open(picture).convert("RGB"))
    png = _generate(kontext_id, prompt="make it blue", init_image=source, steps=1)
    ours = assert_real_image(png, 64, 64)
    _record_has(png, cfg_scale=1.0, guidance=2.5, init_image_used=True)
    # The engine gets the picture as a reference image (in-context), not as an SDEdit init image.
    peer = _peer(_model("flux1_kontext").files, tmp_path / "peer.npy", prompt="make it blue", sample_steps=1,
                 cfg_scale=1.0, guidance=2.5, ref_images=[str(picture)])
    assert np.array_equal(ours, peer)
    plain = pixels(_generate(kontext_id, prompt="make it blue", steps=1))
    assert not np.array_equal(plain, ours), "the reference image changed nothing"


def test_kontext_takes_no_mask(kontext_id: str, picture: Path, tmp_path: Path) -> None:
    mask = _mask(tmp_path, "mask.png", (0, 0, 32, 32))
    with pytest.raises(UnsupportedOperationError, match="^mask_image: FLUX.1 Kontext models do not inpaint"):
        qvac_nb.diffusion(model_id=kontext_id, prompt="x", init_image=str(picture), mask_image=str(mask), **SIZE)


# ---------------------------------------------------------------- FLUX.1 Fill


def test_fill_inpaints_like_the_peer(fill_id: str, picture: Path, tmp_path: Path) -> None:
    assert models.get_model(fill_id).family == "flux_fill"
    mask = _mask(tmp_path, "mask.png", (16, 16, 48, 48))
    png = _generate(fill_id, prompt="a cat", init_image=str(picture), mask_image=str(mask), steps=1)
    ours = assert_real_image(png, 64, 64)
    _record_has(png, cfg_scale=1.0, guidance=30.0, strength=1.0, init_image_used=True, mask_image_used=True)
    peer = _peer(_model("flux1_fill").files, tmp_path / "peer.npy", prompt="a cat", sample_steps=1, cfg_scale=1.0,
                 guidance=30.0, strength=1.0, init_image=str(picture), mask_image=str(mask))
    assert np.array_equal(ours, peer)
    # The network reads the mask: another one gives another image.
    other = _mask(tmp_path, "other.png", (0, 0, 32, 64))
    moved = pixels(_generate(fill_id, prompt="a cat", init_image=str(picture), mask_image=str(other), steps=1))
    assert not np.array_equal(moved, ours)


# ---------------------------------------------------------------- Chroma


def test_chroma_is_chroma_not_flux(chroma_id: str) -> None:
    model = models.get_model(chroma_id)
    info = inspect_file(model.files["diffusion_model"])
    # The engine's version is FLUX (Chroma is its FLUX with pruned modulation); qvac_nb's family is Chroma's.
    assert (model.family, info.detection.version) == ("chroma", "FLUX")
    # Real classifier-free guidance: cfg 4 and the negative prompt reach the engine's request and the record;
    # distilled guidance is hidden (the engine sets Chroma's to 0). Taken for FLUX.1 it would get cfg 1.
    engine.ensure_loaded()
    from qvac_nb.worker.engine_calls import _request

    request = generation.validate_diffusion(model_id=chroma_id, prompt="a red boat", negative_prompt="blurry", **SIZE)
    req = _request(request, model.family)
    assert (req.cfg_scale, req.negative_prompt) == (4.0, "blurry")
    assert records.record(request)["cfg_scale"] == 4.0  # what the job's PNGs record
    assert families.get("flux").default("cfg_scale", 7.0) == 1.0 and "guidance" in families.get("chroma").hidden


def test_chroma_matches_the_peer(chroma_id: str, tmp_path: Path) -> None:
    """One step at cfg 1: Chroma's approximator makes 344 modulation vectors 5120 wide at every evaluation.

    Without T5 the engine gives every prompt (the negative one too) the same empty condition, so cfg
    could not change these pixels anyway; test_chroma_is_chroma_not_flux checks what reaches the engine.
    """
    png = _generate(chroma_id, prompt="a red boat", steps=1, cfg_scale=1.0)
    ours = assert_real_image(png, 64, 64)
    _record_has(png, cfg_scale=1.0, steps=1)
    peer = _peer(_model("chroma").files, tmp_path / "peer.npy", prompt="a red boat", sample_steps=1, cfg_scale=1.0)
    assert np.array_equal(ours, peer)


# ---------------------------------------------------------------- a family only the engine knows


def test_a_family_only_the_engine_knows_loads_with_a_warning(tmp_path: Path) -> None:
    """FLUX.1 Controls (img_in reads the control latent too) has no row: it loads, warned, with neutral defaults."""
    dev = _model("flux1")
    dit = tmp_path / "flux1-canny-dev-test-Q4_0.gguf"
    write_gguf(dit, [(s, quantizable(s, "q4_0")) for s in flux1.dit_tensors(img_in=128)])
    config = {"threads": THREADS, "vae_model_src": str(dev.files["vae"]), "clip_l_model_src": str(dev.files["clip_l"])}
    with pytest.warns(RuntimeWarning, match=r"Flux Control model \(the engine's VERSION_FLUX_CONTROLS\)"):
        model_id = qvac_nb.load_model(str(dit), model_config=config)
    try:
        assert models.get_model(model_id).family == "flux_controls"
        png = _generate(model_id, prompt="a red boat", steps=1)
        assert_real_image(png, 64, 64)
        _record_has(png, cfg_scale=7.0, guidance=3.5, steps=1)  # the schema's defaults
    finally:
        qvac_nb.unload_model(model_id=model_id)
