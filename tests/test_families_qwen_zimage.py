"""Z-Image, Qwen-Image and Qwen-Image-Edit (2509, 2511): loaded through qvac_nb, pixel-equal to the peer.

Each generation is compared with stable-diffusion-cpp-python's own generate_image (run in a
process of its own) given the same files and the family's defaults spelled out, while qvac_nb's
call leaves them out: equal pixels say the family table's defaults reached the engine, and the
PNG record and the engine request are checked to say the same.

Z-Image's test DiT has the engine's fixed full geometry (3.5 GB in q4_0; see testmodels/zimage.py),
so it makes one 1-step image on each side, with nothing else of this file loaded, and is unloaded
before the peer loads its own copy. The Qwen-Image models are one full-width block deep. Their LLM
is random, so the prompt barely moves the pixels: what the prompt and negative prompt do is checked
in the engine request, and inputs are shown to count through seeds and reference images. Qwen-Image-Edit
is tested without the vision tower (it makes an edit take about a minute, see testmodels/qwen_image.py):
the engine then edits from the reference image's latent alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import THREADS, _model
from helpers import assert_real_image, pixels
from peer import SEED, SIZE, peer_images
from peer import record_has as _record_has
from testmodels import qwen_image
from testmodels.formats import TensorSpec, write_gguf
from testmodels.layers import typed

import qvac_nb
from qvac_nb import engine, families, generation, models, records
from qvac_nb.errors import InvalidParameterError, QvacError, UnsupportedOperationError
from qvac_nb.modelfiles.detection import QWEN_2511_TENSOR, Detection, detect
from qvac_nb.modelfiles.reading import inspect_file

PEER_TIMEOUT_S = 600  # Z-Image's peer loads 3.5 GB and runs one full-size DiT pass on two shared cores


def _load(primary: Path, model: Any) -> str:
    return qvac_nb.load_model(str(primary), model_config={"threads": THREADS, **model.model_config()})


def _generate(model_id: str, **params: Any) -> bytes:
    (png,) = qvac_nb.diffusion(model_id=model_id, **SIZE, seed=SEED, **params).outputs.result(timeout=600)
    return png


def _peer(files: dict[str, Path], out: Path, **generate: Any) -> np.ndarray:
    """The peer's generate_image on `files` (role -> path) in a process of its own; images are passed as paths."""
    return peer_images(files, out, generate, timeout=PEER_TIMEOUT_S)[0]


def _engine_request(model_id: str, **params: Any) -> tuple[Any, Any]:
    """The validated request and the engine's Request built from it, as a job would send them."""
    engine.ensure_loaded()
    from qvac_nb.worker.engine_calls import _request

    request = generation.validate_diffusion(model_id=model_id, **SIZE, **params)
    return request, _request(request, models.get_model(model_id).family)


# ---------------------------------------------------------------- what a file is (no engine)


def test_edit_files_are_told_by_name_and_2511_by_its_marker_tensor() -> None:
    dit = {"transformer_blocks.0.img_mod.1.weight": (18432, 3072), "img_in.weight": (3072, 64)}
    cases = {
        "qwen-image-Q4_0.gguf": ("qwen_image", ""),
        "Qwen_Image_Edit-Q8_0.gguf": ("qwen_image_edit", ""),
        "Qwen-Image-Edit-2509-Q4_K_S.gguf": ("qwen_image_edit", "2509"),
        "qwen-image-edit-2511-Q4_K_M.gguf": ("qwen_image_edit", "2511"),
    }
    for name, (family, variant) in cases.items():
        assert detect(dit, f"/models/{name}") == Detection(family, "QWEN_IMAGE", variant), name
    # 2511 as ComfyUI ships it: the marker tensor tells it whatever the name.
    marked = {**dit, QWEN_2511_TENSOR: (1,)}
    assert detect(marked, "/models/some-finetune.safetensors") == Detection("qwen_image_edit", "QWEN_IMAGE", "2511")


def test_family_rows() -> None:
    qwen, edit, zimage = families.get("qwen_image"), families.get("qwen_image_edit"), families.get("zimage")
    assert (qwen.img2img, edit.img2img, zimage.img2img) == ("sdedit", "edit", "sdedit")
    assert edit.init_as_reference and "strength" in edit.hidden and "guidance" in qwen.hidden
    for family in (qwen, edit, zimage):
        assert family.required_companions == ("llm_model_src", "vae_model_src") and family.dit
        assert family.name not in families.ENGINE_ONLY
    # Turbo is the default; Base (same tensors) is told by its name in the Studio's form.
    assert zimage.defaults_for("z_image_turbo-Q4_0.gguf") == {"cfg_scale": 1.0, "steps": 8}
    assert zimage.defaults_for("/data/base/Z-Image-Base-Q8_0.gguf") == {"cfg_scale": 5.0, "steps": 28}
    assert zimage.defaults_for("/data/base/z_image_turbo_bf16.safetensors") == {"cfg_scale": 1.0, "steps": 8}


def test_missing_or_misfit_companions_are_refused_naming_the_key() -> None:
    """Refused before any engine work: a split model without its LLM or VAE, or with another family's."""
    zimage, qwen = _model("zimage"), _model("qwen_image")
    for model in (zimage, qwen):
        for key in ("llm_model_src", "vae_model_src"):
            config = {k: v for k, v in model.model_config().items() if k != key}
            with pytest.raises(InvalidParameterError, match=f"^model_config.{key}: "):
                qvac_nb.load_model(str(model.primary), model_config={"threads": THREADS, **config})
    swaps = (
        # Qwen2.5-VL-7B is 3584 wide; Z-Image's caption embedder reads Qwen3-4B's 2560.
        (zimage, "llm_model_src", qwen.files["llm"], "gives 3584-wide text features"),
        (qwen, "llm_model_src", zimage.files["llm"], "gives 2560-wide text features"),
        # Qwen-Image decodes with the Wan VAE; Z-Image with FLUX.1's autoencoder. Both are 16-channel.
        (zimage, "vae_model_src", qwen.files["vae"], "is a Wan VAE"),
        (qwen, "vae_model_src", zimage.files["vae"], "is an SD/FLUX-style VAE"),
    )
    for model, key, path, message in swaps:
        config = {"threads": THREADS, **model.model_config(), key: str(path)}
        with pytest.raises(UnsupportedOperationError, match=f"^model_config.{key}: .*{message}") as caught:
            qvac_nb.load_model(str(model.primary), model_config=config)
        assert isinstance(caught.value, QvacError)


def test_a_vision_tower_is_an_llm_vision_file_not_an_llm(tmp_path: Path) -> None:
    """Qwen-Image-Edit's optional llm_vision_model_src (an mmproj) passes the file checks, and is no LLM.

    Its names start like an LLM's (v.blk.0.attn_q); taken for one, the LLM check refused it as incomplete.
    """
    mmproj = tmp_path / "Qwen2.5-VL-7B-Instruct.mmproj-Q8_0.gguf"
    write_gguf(mmproj, [(TensorSpec(name, (64, 64)), "f16") for name in
                        ("v.patch_embd.weight", "v.blk.0.attn_q.weight", "mm.0.weight")],
               {"general.architecture": "clip"})
    assert inspect_file(mmproj, "model_config.llm_vision_model_src").family == "vision_encoder"
    qwen = _model("qwen_image")
    config = {"threads": THREADS, **qwen.model_config(), "llm_model_src": str(mmproj)}
    with pytest.raises(UnsupportedOperationError, match="^model_config.llm_model_src: .* not an LLM"):
        qvac_nb.load_model(str(qwen.primary), model_config=config)


# ---------------------------------------------------------------- Z-Image (alone: its DiT is 3.5 GB)


def test_zimage_turbo_defaults_and_one_step_match_the_peer(tmp_path: Path) -> None:
    """One 1-step image on each side; the defaults (8 steps, cfg 1) are checked in the request and the record."""
    model = _model("zimage")
    model_id = _load(model.primary, model)
    try:
        assert models.get_model(model_id).family == "zimage"
        # Left out, steps and cfg_scale are Turbo's; the engine request and the record say so.
        request, req = _engine_request(model_id, prompt="a red boat", negative_prompt="blurry")
        assert (request.steps, request.cfg_scale) == (8, 1.0)
        assert (req.steps, req.cfg_scale, req.prompt, req.negative_prompt) == (8, 1.0, "a red boat", "blurry")
        assert (records.record(request)["steps"], records.record(request)["cfg_scale"]) == (8, 1.0)
        png = _generate(model_id, prompt="a red boat", steps=1)  # cfg_scale: the family's
        ours = assert_real_image(png, 64, 64)
        _record_has(png, cfg_scale=1.0, steps=1)
    finally:
        qvac_nb.unload_model(model_id=model_id)  # before the peer loads its own 3.5 GB copy
    peer = _peer(model.files, tmp_path / "peer.npy", prompt="a red boat", sample_steps=1, cfg_scale=1.0)
    assert np.array_equal(ours, peer)


# ---------------------------------------------------------------- Qwen-Image


@pytest.fixture(scope="module")
def qwen_model() -> Any:
    return _model("qwen_image")


@pytest.fixture(scope="module")
def qwen_id(qwen_model: Any) -> Iterator[str]:
    model_id = _load(qwen_model.primary, qwen_model)
    yield model_id
    qvac_nb.unload_model(model_id=model_id)


@pytest.fixture(scope="module")
def edit_dit(qwen_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Qwen-Image test DiT under an Edit 2509 name (Edit has Qwen-Image's tensors)."""
    path = tmp_path_factory.mktemp("edit") / "Qwen-Image-Edit-2509-test-Q4_0.gguf"
    try:
        os.link(qwen_model.primary, path)  # a name of its own (the header cache keys on the resolved path)
    except OSError:
        shutil.copyfile(qwen_model.primary, path)
    return path


@pytest.fixture(scope="module")
def edit_2511_dit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same DiT weights plus Edit 2511's marker tensor, under a name that does not say "edit"."""
    path = tmp_path_factory.mktemp("edit2511") / "qwen-image-2511-test-Q4_0.gguf"
    tensors = typed(qwen_image.dit_tensors(qwen_image.DIT_LAYERS), "q4_0", qwen_image.EXACT_TYPES)
    tensors.append((TensorSpec(QWEN_2511_TENSOR, (1,), "zeros"), "f32"))
    write_gguf(path, tensors, {"general.architecture": "qwen_image"})
    return path


@pytest.fixture(scope="module")
def edit_id(edit_dit: Path, qwen_model: Any) -> Iterator[str]:
    model_id = _load(edit_dit, qwen_model)
    yield model_id
    qvac_nb.unload_model(model_id=model_id)


@pytest.fixture(scope="module")
def edited_2509(edit_id: str, picture: Path) -> bytes:
    """Edit 2509's 1-step edit of the picture (shared by the tests that compare with it)."""
    return _generate(edit_id, prompt="make it blue", init_image=str(picture), steps=1)


def test_qwen_image_defaults_match_the_peer_and_the_record(qwen_id: str, qwen_model: Any, tmp_path: Path) -> None:
    assert models.get_model(qwen_id).family == "qwen_image"
    request, req = _engine_request(qwen_id, prompt="a red boat", negative_prompt="blurry")
    # Real cfg: 2.5 and the negative prompt reach the engine; the schema's 20 steps stand.
    assert (req.cfg_scale, req.steps, req.prompt, req.negative_prompt) == (2.5, 20, "a red boat", "blurry")
    assert records.record(request)["cfg_scale"] == 2.5
    png = _generate(qwen_id, prompt="a red boat", negative_prompt="blurry", steps=1)
    ours = assert_real_image(png, 64, 64)
    _record_has(png, cfg_scale=2.5, steps=1, negative_prompt="blurry")
    peer = _peer(qwen_model.files, tmp_path / "peer.npy", prompt="a red boat", negative_prompt="blurry",
                 sample_steps=1, cfg_scale=2.5)
    assert np.array_equal(ours, peer)
    # The default is not inert: cfg 1 (one pass, no negative prompt) gives another image.
    other = pixels(_generate(qwen_id, prompt="a red boat", negative_prompt="blurry", steps=1, cfg_scale=1.0))
    assert not np.array_equal(other, ours)


# ---------------------------------------------------------------- Qwen-Image-Edit


def test_qwen_image_edit_edits_the_init_image_like_the_peer(edit_id: str, edit_dit: Path, qwen_model: Any,
                                                            picture: Path, edited_2509: bytes,
                                                            tmp_path: Path) -> None:
    model = models.get_model(edit_id)
    assert model.family == "qwen_image_edit" and inspect_file(edit_dit).detection.variant == "2509"
    ours = assert_real_image(edited_2509, 64, 64)
    _record_has(edited_2509, cfg_scale=2.5, steps=1, init_image_used=True)
    # The picture goes to the engine as the image to edit (a reference), not as an SDEdit init image.
    _request, req = _engine_request(edit_id, prompt="make it blue", init_image=str(picture))
    assert len(req.ref_images) == 1 and req.cfg_scale == 2.5
    peer = _peer({**qwen_model.files, "diffusion_model": edit_dit}, tmp_path / "peer.npy", prompt="make it blue",
                 sample_steps=1, cfg_scale=2.5, ref_images=[str(picture)])
    assert np.array_equal(ours, peer)
    plain = pixels(_generate(edit_id, prompt="make it blue", steps=1))
    assert not np.array_equal(plain, ours), "the image to edit changed nothing"


def test_qwen_image_edit_2511_uses_zero_cond_t_like_the_peer(edit_2511_dit: Path, qwen_model: Any, picture: Path,
                                                             edited_2509: bytes, tmp_path: Path) -> None:
    """2511's marker tensor makes the engine condition the reference at timestep zero (qwen_image.hpp zero_cond_t)."""
    model_id = _load(edit_2511_dit, qwen_model)
    try:
        assert models.get_model(model_id).family == "qwen_image_edit"
        assert inspect_file(edit_2511_dit).detection.variant == "2511"
        png = _generate(model_id, prompt="make it blue", init_image=str(picture), steps=1)
    finally:
        qvac_nb.unload_model(model_id=model_id)
    ours = assert_real_image(png, 64, 64)
    peer = _peer({**qwen_model.files, "diffusion_model": edit_2511_dit}, tmp_path / "peer.npy",
                 prompt="make it blue", sample_steps=1, cfg_scale=2.5, ref_images=[str(picture)])
    assert np.array_equal(ours, peer)
    # Same weights as the 2509 file: only zero_cond_t differs, and it changes the edit.
    assert not np.array_equal(ours, pixels(edited_2509))
