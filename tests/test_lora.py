"""diffusion(lora=...): the peer's prompt tags as the oracle, naming conventions, weights, the record, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import THREADS
from helpers import assert_real_image, pixels
from peer import peer_images
from testmodels import registry
from testmodels.lora import write_safetensors

import qvac_nb
from qvac_nb import cli, engine, generation, loras, schema
from qvac_nb.worker import engine_calls

# One step at cfg 1 (one U-Net/DiT pass per image): the LoRAs change the network's weights, which any step shows.
SD1 = {"width": 64, "height": 64, "steps": 1, "cfg_scale": 1.0, "seed": 7, "sampling_method": "euler_a",
       "scheduler": "discrete", "eta": 0.0}
FLUX2 = {"width": 64, "height": 64, "steps": 1, "seed": 7, "sampling_method": "euler", "scheduler": "discrete"}
PROMPT = "a red boat"


@pytest.fixture(scope="module")
def sd1_loras() -> registry.TestModel:
    return registry.get("sd1_lora")


@pytest.fixture(scope="module")
def flux2_loras() -> registry.TestModel:
    return registry.get("flux2_lora")


def generate(model_id: str, settings: dict, **kw: object) -> np.ndarray:
    """A fresh generation (where the check is about this very call)."""
    (png,) = qvac_nb.diffusion(model_id=model_id, prompt=PROMPT, **{**settings, **kw}).outputs.result(timeout=600)
    return assert_real_image(png, settings["width"], settings["height"])


@pytest.fixture(scope="module")
def made() -> Callable[..., bytes]:
    """made(model_id, settings, **kw): the PNG of that call, generated once for the module.

    For the images several tests compare with (the plain image, kohya's at weight 1 and 0.5); a check about a
    call itself (weight 0, a LoRA lasting one generation, a replay) makes its own.
    """
    pngs: dict[str, bytes] = {}

    def get(model_id: str, settings: dict, **kw: object) -> bytes:
        key = json.dumps([model_id, settings, kw], sort_keys=True)
        if key not in pngs:
            job = qvac_nb.diffusion(model_id=model_id, prompt=PROMPT, **{**settings, **kw})
            (pngs[key],) = job.outputs.result(timeout=600)
        return pngs[key]

    return get


def shared(made: Callable[..., bytes], model_id: str, settings: dict, **kw: object) -> np.ndarray:
    return assert_real_image(made(model_id, settings, **kw), settings["width"], settings["height"])


def _peer(files: dict[str, Path], lora: Path, out: Path, call: dict[str, object]) -> np.ndarray:
    """The peer's image of `call`, on `files` with LoRAs read from `lora`'s folder (named by prompt tags)."""
    (image,) = peer_images(files, out, call, options={"lora_model_dir": str(lora.parent)}, read={"lora": lora})
    return image


# ---------------------------------------------------------------- the peer's <lora:name:weight> tags


def test_sd1_lora_equals_the_peer_prompt_tag(sd1_model: registry.TestModel, sd1_id: str,
                                             sd1_loras: registry.TestModel, made: Callable[..., bytes],
                                             tmp_path: Path) -> None:
    kohya = sd1_loras.files["kohya"]
    ours = generate(sd1_id, SD1, lora={str(kohya): 0.7})
    # The peer takes LoRAs as prompt tags: it strips them and passes the files and weights to the engine.
    peer = _peer({"model": sd1_model.primary}, kohya, tmp_path / "peer.npy",
                 {"prompt": f"{PROMPT}<lora:{kohya.stem}:0.7>", "sample_steps": 1, "cfg_scale": 1.0, "seed": 7,
                  "sample_method": "euler_a", "scheduler": "discrete", "eta": 0.0})
    assert np.array_equal(ours, peer)
    assert not np.array_equal(ours, shared(made, sd1_id, SD1)), "the LoRA changed nothing"


def test_flux2_lora_equals_the_peer_prompt_tag(flux2_model: registry.TestModel, flux2_id: str,
                                               flux2_loras: registry.TestModel, made: Callable[..., bytes],
                                               tmp_path: Path) -> None:
    kohya = flux2_loras.files["kohya"]
    ours = generate(flux2_id, FLUX2, lora=[(str(kohya), 1.5)])
    files = {role: flux2_model.files[role] for role in ("diffusion_model", "llm", "vae")}
    peer = _peer(files, kohya, tmp_path / "peer.npy",
                 {"prompt": f"{PROMPT}<lora:{kohya.stem}:1.5>", "sample_steps": 1, "cfg_scale": 1.0, "guidance": 3.5,
                  "seed": 7, "sample_method": "euler", "scheduler": "discrete"})
    assert np.array_equal(ours, peer)
    assert not np.array_equal(ours, shared(made, flux2_id, FLUX2)), "the LoRA changed nothing"


# ---------------------------------------------------------------- conventions and weights


@pytest.mark.parametrize("family", ["sd1", "flux2"])
def test_every_naming_convention_gives_the_same_image(family: str, request: pytest.FixtureRequest,
                                                       made: Callable[..., bytes]) -> None:
    """kohya (with alpha), peft/diffusers and LDM names of one adapter: the same pixels, unlike no LoRA."""
    model_id = request.getfixturevalue(f"{family}_id")
    files = registry.get(f"{family}_lora").files
    settings = SD1 if family == "sd1" else FLUX2
    plain = shared(made, model_id, settings)
    images = {name: (shared(made, model_id, settings, lora=str(path)) if name == "kohya"
                     else generate(model_id, settings, lora=str(path))) for name, path in files.items()}
    assert len(images) >= 3
    reference = images["kohya"]
    assert not np.array_equal(reference, plain), "the LoRA changed nothing"
    assert np.abs(reference.astype(int) - plain).mean() > 1.0, "the LoRA barely changed the image"
    for name, image in images.items():
        assert np.array_equal(image, reference), f"{name} names give another image than kohya's"


def test_weight_zero_is_the_image_without_the_lora_and_weights_add(sd1_id: str, sd1_loras: registry.TestModel,
                                                                   made: Callable[..., bytes]) -> None:
    kohya, peft = str(sd1_loras.files["kohya"]), str(sd1_loras.files["peft"])
    plain = shared(made, sd1_id, SD1)
    assert np.array_equal(generate(sd1_id, SD1, lora={kohya: 0.0}), plain)
    half = shared(made, sd1_id, SD1, lora={kohya: 0.5})
    assert not np.array_equal(half, plain)
    assert not np.array_equal(half, shared(made, sd1_id, SD1, lora=kohya)), "the weight was ignored"
    # The same file twice adds up, as the peer's repeated prompt tags do.
    assert np.array_equal(generate(sd1_id, SD1, lora=[(kohya, 0.25), (kohya, 0.25)]), half)
    # Two LoRAs at once both apply: peft's copy of the adapter at 0.25 on top of kohya's at 0.25 is about
    # kohya's at 0.5 (the engine adds each LoRA's output in turn, so not to the last bit).
    quarter = generate(sd1_id, SD1, lora={kohya: 0.25})
    both = generate(sd1_id, SD1, lora=[(kohya, 0.25), (peft, 0.25)])
    assert not np.array_equal(both, quarter), "the second LoRA was ignored"
    assert np.abs(both.astype(int) - half).mean() < 0.2 * np.abs(quarter.astype(int) - half).mean()
    # A LoRA lasts one generation: the next one without it is the plain image again.
    assert np.array_equal(generate(sd1_id, SD1), plain)


def test_loras_reach_the_engine_request(sd1_id: str, sd1_loras: registry.TestModel) -> None:
    """The worker's engine Request carries loras/lora_count as (path, weight); weight 0 is left out."""
    kohya, peft = sd1_loras.files["kohya"], sd1_loras.files["peft"]
    request = generation.validate_diffusion(model_id=sd1_id, prompt="x", **SD1, lora={str(kohya): 0.5, str(peft): 0})
    engine.ensure_loaded()  # the request is built here, in this process, as a worker builds it
    req = engine_calls._request(pickle.loads(pickle.dumps(request)), "sd1")
    assert req.loras == [(os.fsencode(kohya), 0.5)]
    assert engine_calls._request(generation.validate_diffusion(model_id=sd1_id, prompt="x", **SD1), "sd1").loras == []


# ---------------------------------------------------------------- the PNG record


def test_record_keeps_name_hash_and_weight_and_replays(sd1_id: str, sd1_loras: registry.TestModel,
                                                        made: Callable[..., bytes]) -> None:
    kohya = sd1_loras.files["kohya"]
    png = made(sd1_id, SD1, lora={str(kohya): 0.5})
    params = qvac_nb.read_parameters(png)
    digest = hashlib.sha256(kohya.read_bytes()).hexdigest()
    assert params["lora"] == [{"source": str(kohya), "name": kohya.name, "sha256": digest, "weight": 0.5}]
    (again,) = qvac_nb.diffusion(model_id=sd1_id, **params).outputs.result(timeout=600)
    assert np.array_equal(pixels(again), pixels(png))
    # A record whose file has changed since is refused rather than replayed with another adapter.
    params["lora"][0]["sha256"] = "0" * 64
    with pytest.raises(qvac_nb.InvalidParameterError, match="SHA-256") as caught:
        qvac_nb.diffusion(model_id=sd1_id, **params)
    assert caught.value.param == "lora"
    # Without LoRAs the record says so.
    assert qvac_nb.read_parameters(made(sd1_id, SD1))["lora"] is None


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (123, qvac_nb.InvalidTypeError, "expected a source"),
        ([123], qvac_nb.InvalidTypeError, "entry 0"),
        ({"x.safetensors": "heavy"}, qvac_nb.InvalidTypeError, "weight must be a number"),
        ([{"weight": 1.0}], qvac_nb.InvalidTypeError, "needs 'source'"),
        ("", qvac_nb.InvalidParameterError, "empty"),
        ("no/such/lora.safetensors", qvac_nb.ModelFileError, "lora"),
    ],
)
def test_bad_values_name_lora(sd1_id: str, value: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as caught:
        qvac_nb.diffusion(model_id=sd1_id, prompt="x", lora=value)
    assert isinstance(caught.value, qvac_nb.QvacError)
    assert str(caught.value).startswith("lora") and caught.value.param == "lora"


def test_weights_out_of_range_and_non_lora_files_are_refused(sd1_id: str, sd1_model: registry.TestModel,
                                                             sd1_loras: registry.TestModel, tmp_path: Path) -> None:
    kohya = str(sd1_loras.files["kohya"])
    for weight in (float("nan"), 11.0, -11.0, True):
        with pytest.raises(qvac_nb.QvacError, match="weight") as caught:
            qvac_nb.diffusion(model_id=sd1_id, prompt="x", lora={kohya: weight})
        assert caught.value.param == "lora"
    # A model (not an adapter) and a file that is no model at all.
    with pytest.raises(qvac_nb.InvalidParameterError, match="not a LoRA") as caught:
        qvac_nb.diffusion(model_id=sd1_id, prompt="x", lora=str(sd1_model.primary))
    assert caught.value.param == "lora"
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(qvac_nb.CorruptModelError) as caught:
        qvac_nb.diffusion(model_id=sd1_id, prompt="x", lora=str(garbage))
    assert str(caught.value).startswith("lora:") and caught.value.param == "lora"
    # Tensors with LoRA names pass the check (here a one-tensor file in peft names).
    tiny = tmp_path / "tiny.safetensors"
    write_safetensors(tiny, {"unet.conv_in.lora_A.weight": np.zeros((1, 4), np.float16)})
    (entry,) = loras.check(str(tiny))
    assert entry["name"] == "tiny.safetensors" and entry["weight"] == 1.0
    with pytest.raises(qvac_nb.InvalidParameterError, match="at most"):
        loras.check([str(tiny)] * (loras.MAX_LORAS + 1))


def test_accepted_forms_are_one_value() -> None:
    """A path, a pair, pairs, a mapping and the record's dicts all validate to the same entries."""
    path = str(registry.get("sd1_lora").files["kohya"])
    forms = [path, Path(path), [path], (path, 1.0), [(path, 1.0)], {path: 1.0}, [{"source": path, "weight": 1.0}]]
    checked = [loras.check(form) for form in forms]
    assert all(c == checked[0] for c in checked)
    assert loras.check(None) == () and loras.check([]) == ()
    assert loras.engine_pairs(checked[0]) == [(path, 1.0)]
    json.dumps(loras.record_form(checked[0]))  # the record is plain JSON


# ---------------------------------------------------------------- the command line


def test_cli_lora_flag_is_repeatable_with_weights() -> None:
    args = cli.build_parser().parse_args(["generate", "x", "--lora", "a.safetensors:0.5", "--lora",
                                          "hf://o/r/b.safetensors", "--lora", "c.safetensors"])
    assert cli._given(args, schema.DIFFUSION)["lora"] == [("a.safetensors", 0.5), "hf://o/r/b.safetensors",
                                                          "c.safetensors"]
    assert loras.parse_cli("C:\\x\\y.safetensors") == "C:\\x\\y.safetensors"
    assert loras.parse_cli("https://h/x.safetensors:-0.25") == ("https://h/x.safetensors", -0.25)


def test_cli_generate_with_a_lora(tmp_path: Path, sd1_model: registry.TestModel,
                                  sd1_loras: registry.TestModel) -> None:
    out = tmp_path / "out.png"
    kohya = sd1_loras.files["kohya"]
    result = subprocess.run([sys.executable, "-m", "qvac_nb", "-q", "generate", PROMPT, "-m", str(sd1_model.primary),
                             "-o", str(out), "-W", "64", "-H", "64", "--steps", "1", "--seed", "3",
                             "--lora", f"{kohya}:0.5", "--threads", str(THREADS)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    (entry,) = qvac_nb.read_parameters(out)["lora"]
    assert (entry["name"], entry["weight"]) == (kohya.name, 0.5)
