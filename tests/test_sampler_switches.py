"""flow_shift, timestep_shift, skip-layer guidance and sigmas: each changes the image, like the peer's.

Every switch is compared with the same call without it (the image must change: a value the engine
ignored would leave it as it was) and with stable-diffusion-cpp-python's own generate_image given the
same values (equal pixels: the value reached the engine as the peer sends it). The peer makes all of
its images in one child process (kept in the peer-output cache, tests/peer.py). The models are the
tiny test models: SD 1.x for sigmas, SDXL for timestep_shift (the engine shifts timesteps for SDXL
only), FLUX.1 for flow_shift and skip-layer guidance (one double and one single block: skip layers 0
and 1). Both sides run euler (the peer always sends eta 0, which euler does not read) and cfg_scale 1
(one network pass per step).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from conftest import THREADS, _load, _model
from helpers import assert_real_image, pixels
from peer import cached_outputs

import qvac_nb
from qvac_nb import engine, generation, records, schema
from qvac_nb.checks import tables
from qvac_nb.errors import InvalidParameterError, InvalidTypeError, UnsupportedOperationError
from qvac_nb.png import stored_record
from qvac_nb.widgets import form_schema
from qvac_nb.worker.engine_calls import _request

SIZE = {"width": 64, "height": 64}
PROMPT = "a red boat"
SEED = 7
SWITCHES = ("flow_shift", "timestep_shift", "slg_scale", "skip_layers", "skip_layer_start", "skip_layer_end",
            "sigmas")
# Each model's call without any switch: ours, and the peer's spelling of it.
BASE = {"sd1": {"steps": 2, "cfg_scale": 1.0, "sampling_method": "euler"},
        "sdxl": {"steps": 1, "cfg_scale": 1.0, "sampling_method": "euler"},
        "flux1": {"steps": 2, "sampling_method": "euler"}}
PEER_BASE = {"sd1": {"sample_steps": 2, "cfg_scale": 1.0, "sample_method": "euler"},
             "sdxl": {"sample_steps": 1, "cfg_scale": 1.0, "sample_method": "euler"},
             "flux1": {"sample_steps": 2, "cfg_scale": 1.0, "guidance": 3.5, "sample_method": "euler"}}
PEER_FILES = {"model": "model_path", "diffusion_model": "diffusion_model_path", "clip_l": "clip_l_path",
              "vae": "vae_path"}
SIGMAS = [14.6, 3.5, 0.0]
# Two FLUX.1 steps make 3 noise levels: SLG runs at steps s with int(start x 3) < s < int(end x 3), so
# end 1.0 gives steps 1 and 2 (the default 0.2 gives none), start 0.34 only step 2, end 0.67 only step 1.
SLG = {"slg_scale": 3.0, "skip_layers": [1], "skip_layer_end": 1.0}
# name: (model, our switches, the peer's spelling of them, the call the image must differ from).
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "sigmas": ("sd1", {"sigmas": SIGMAS}, {"sigmas": ",".join(map(str, SIGMAS))}),
    "timestep_shift": ("sdxl", {"timestep_shift": 500}, {"timestep_shift": 500}),
    "slg": ("flux1", SLG, SLG),
    "slg_start": ("flux1", {**SLG, "skip_layer_start": 0.34}, {**SLG, "skip_layer_start": 0.34}),
    "flow_shift": ("flux1", {"flow_shift": 3.0}, {"flow_shift": 3.0}),
}


@pytest.fixture(scope="module")
def model_ids(sd1_id: str) -> Iterator[dict[str, str]]:
    """The three models, loaded once for the module (sd1 is the session's)."""
    sdxl, flux1 = _load(_model("sdxl")), _load(_model("flux1"))
    ids = {"sd1": sd1_id, "sdxl": next(sdxl), "flux1": next(flux1)}
    yield ids
    for loader in (sdxl, flux1):
        next(loader, None)  # unloads


@pytest.fixture(scope="module")
def ours(model_ids: dict[str, str]) -> Callable[..., bytes]:
    """generate(model, **switches): our PNG of the model's base call with the switches, made once per call."""
    made: dict[str, bytes] = {}

    def generate(model: str, **switches: Any) -> bytes:
        key = json.dumps([model, switches], sort_keys=True)
        if key not in made:
            job = qvac_nb.diffusion(model_id=model_ids[model], prompt=PROMPT, seed=SEED, **SIZE, **BASE[model],
                                    **switches)
            (made[key],) = job.outputs.result(timeout=600)
        return made[key]

    return generate


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The peer's image of every case, made in one child process (each model loaded once); its outputs are kept
    in the peer-output cache (tests/peer.py)."""
    folder = tmp_path_factory.mktemp("peer")
    plan: dict[str, list[Any]] = {}
    inputs = {}
    for name, (model, _ours, switches) in CASES.items():
        files = {PEER_FILES[role]: str(path) for role, path in _model(model).files.items()}
        inputs.update({f"{model}.{role}": path for role, path in _model(model).files.items()})
        entry = plan.setdefault(model, [files, []])
        entry[1].append([name, {"prompt": PROMPT, "seed": SEED, **SIZE, **PEER_BASE[model], **switches}])
    code = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        import numpy as np
        from stable_diffusion_cpp import StableDiffusion
        for files, images in json.load(open(sys.argv[1])):
            sd = StableDiffusion(**files, n_threads={THREADS}, rng_type="cuda", vae_decode_only=False,
                                 verbose=False)
            for name, kwargs in images:
                np.save(Path(sys.argv[2]) / f"{{name}}.npy", np.asarray(sd.generate_image(**kwargs)[0].convert("RGB")))
            del sd
    """)

    def run() -> list[np.ndarray]:
        (folder / "plan.json").write_text(json.dumps(list(plan.values())))
        # subprocess.run kills the child if it overruns.
        done = subprocess.run([sys.executable, "-c", code, str(folder / "plan.json"), str(folder)],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        return [np.load(folder / f"{name}.npy") for name in CASES]

    images = cached_outputs("sampler-switches", inputs, {"script": code, "plan": list(plan.values())}, run)
    return dict(zip(CASES, images, strict=True))


# ---------------------------------------------------------------- each switch reaches the engine


@pytest.mark.parametrize("case", list(CASES))
def test_the_switch_changes_the_image_like_the_peers(case: str, ours: Callable[..., bytes],
                                                     peer: dict[str, np.ndarray]) -> None:
    model, switches, _ = CASES[case]
    png = ours(model, **switches)
    image = assert_real_image(png, 64, 64)
    assert not np.array_equal(image, pixels(ours(model))), f"{case} left the image as it was"
    assert np.array_equal(image, peer[case])
    # The record has what was set (lists as JSON gives them back), and none of the switches left alone.
    record = stored_record(png)
    window = {"skip_layer_start": 0.01, "skip_layer_end": 0.2} if "slg_scale" in switches else {}
    assert {key: record.get(key) for key in SWITCHES if key in record} == {**window, **switches}


def test_the_skip_layer_settings_each_change_the_guided_image(ours: Callable[..., bytes]) -> None:
    guided = pixels(ours("flux1", **SLG))
    for change in ({"skip_layers": [0]}, {"skip_layer_start": 0.34}, {"skip_layer_end": 0.67}):
        assert not np.array_equal(pixels(ours("flux1", **{**SLG, **change})), guided), change


def test_a_record_replays_its_switches(ours: Callable[..., bytes], model_ids: dict[str, str]) -> None:
    png = ours("flux1", **SLG)
    params = qvac_nb.read_parameters(png)
    assert (params["slg_scale"], params["skip_layers"], params["skip_layer_end"]) == (3.0, [1], 1.0)
    assert not {"flow_shift", "sigmas", "timestep_shift"} & set(params)
    (replay,) = qvac_nb.diffusion(model_id=model_ids["flux1"], **params).outputs.result(timeout=600)
    assert np.array_equal(pixels(replay), pixels(png))


def test_the_engine_request_gets_the_values_and_keeps_its_own_defaults(model_ids: dict[str, str]) -> None:
    engine.ensure_loaded()  # the request is built here, in this process, as a worker builds it
    flux1 = model_ids["flux1"]
    default = _request(generation.validate_diffusion(model_id=flux1, prompt="x", **SIZE), "flux")
    # Unset: the engine's own values (inf = the model's flow shift, an empty schedule = the scheduler's).
    assert math.isinf(default.flow_shift) and default.sigmas == [] and default.slg_scale == 0.0
    assert default.shifted_timestep == 0 and default.skip_layers == [7, 8, 9]
    assert default.skip_layer_start == pytest.approx(0.01) and default.skip_layer_end == pytest.approx(0.2)
    given = generation.validate_diffusion(model_id=flux1, prompt="x", **SIZE, steps=2, slg_scale=2.5,
                                          skip_layers="0, 1", skip_layer_start=0.0, skip_layer_end=1.0)
    req = _request(given, "flux")
    assert (req.slg_scale, req.skip_layers, req.skip_layer_start, req.skip_layer_end) == (2.5, [0, 1], 0.0, 1.0)
    schedule = _request(generation.validate_diffusion(model_id=flux1, prompt="x", **SIZE, steps=3,
                                                      sigmas=np.array([1.0, 0.6, 0.25, 0.0])), "flux")
    assert schedule.sigmas == pytest.approx([1.0, 0.6, 0.25, 0.0])
    sdxl = generation.validate_diffusion(model_id=model_ids["sdxl"], prompt="x", **SIZE, timestep_shift=250)
    assert _request(sdxl, "sdxl").shifted_timestep == 250
    # With slg_scale 0 the engine reads no other SLG setting: the record leaves them out, as it leaves out
    # every switch at its default (records of calls without them stay as they were).
    off = generation.validate_diffusion(model_id=flux1, prompt="x", **SIZE, skip_layers=[0], skip_layer_end=1.0)
    assert not set(SWITCHES) & set(records.record(off))
    assert {"slg_scale", "skip_layers", "skip_layer_start"} <= set(records.record(given))


# ---------------------------------------------------------------- refused values name the parameter


@pytest.mark.parametrize(("model", "given", "param", "error", "words"), [
    ("sd1", {"sigmas": [14.6, 3.5, 0.0], "steps": 3}, "sigmas", InvalidParameterError, "pass steps=2"),
    ("sd1", {"sigmas": [3.5, 14.6, 0.0]}, "sigmas", InvalidParameterError, "must not rise"),
    ("sd1", {"sigmas": [14.6, float("nan"), 0.0]}, "sigmas", InvalidParameterError, "finite numbers >= 0"),
    ("sd1", {"sigmas": [14.6, -1.0, -2.0]}, "sigmas", InvalidParameterError, "finite numbers >= 0"),
    ("sd1", {"sigmas": [0.0, 0.0, 0.0]}, "sigmas", InvalidParameterError, "must be above 0"),
    ("sd1", {"sigmas": [1.0], "steps": 1}, "sigmas", InvalidParameterError, "give 2-151 noise levels"),
    ("sd1", {"sigmas": "14.6, x, 0"}, "sigmas", InvalidTypeError, "'x' is not a number"),
    ("sd1", {"sigmas": 14.6}, "sigmas", InvalidTypeError, "expected a list"),
    ("flux1", {"sigmas": [14.6, 3.5, 0.0]}, "sigmas", InvalidParameterError, "flow model"),
    ("flux1", {"flow_shift": 0.0}, "flow_shift", InvalidParameterError, "(0.0, 50.0]"),
    ("flux1", {"flow_shift": 51.0}, "flow_shift", InvalidParameterError, "(0.0, 50.0]"),
    ("flux1", {"flow_shift": 3.0, "sigmas": [1.0, 0.5, 0.0]}, "flow_shift", InvalidParameterError,
     "no effect with sigmas"),
    ("sd1", {"flow_shift": 3.0}, "flow_shift", UnsupportedOperationError, "SD3, FLUX.1"),
    ("sd1", {"timestep_shift": 1001}, "timestep_shift", InvalidParameterError, "between 0 and 1000"),
    ("sd1", {"timestep_shift": 250}, "timestep_shift", UnsupportedOperationError, "SDXL models only"),
    ("flux1", {"timestep_shift": 250}, "timestep_shift", UnsupportedOperationError, "SDXL models only"),
    ("sd1", {"slg_scale": 2.5}, "slg_scale", UnsupportedOperationError, "not for this SD 1.x model"),
    ("flux1", {"slg_scale": -1.0}, "slg_scale", InvalidParameterError, "[0.0, 50.0]"),
    # The engine's default layers are SD3.5 Medium's: this FLUX.1 has two blocks.
    ("flux1", {"slg_scale": 2.5, "skip_layer_end": 1.0}, "skip_layers", InvalidParameterError,
     "has 2 blocks, numbered 0-1 (1 double, then 1 single blocks); 7, 8, 9 are past the last"),
    ("flux1", {"slg_scale": 2.5, "skip_layers": [], "skip_layer_end": 1.0}, "skip_layers", InvalidParameterError,
     "at least one block"),
    ("flux1", {"slg_scale": 2.5, "skip_layers": [-1]}, "skip_layers", InvalidParameterError, "run from 0"),
    ("flux1", {"slg_scale": 2.5, "skip_layers": [1.5]}, "skip_layers", InvalidTypeError, "whole numbers"),
    # Two steps at the default window (0.01-0.2) would guide no step.
    ("flux1", {"slg_scale": 2.5, "skip_layers": [1]}, "skip_layer_end", InvalidParameterError,
     "would run at no step"),
    ("flux1", {"slg_scale": 2.5, "skip_layers": [1], "skip_layer_start": 0.5, "skip_layer_end": 0.4},
     "skip_layer_start", InvalidParameterError, "must be below skip_layer_end"),
    ("flux1", {"skip_layer_end": 1.5}, "skip_layer_end", InvalidParameterError, "[0.0, 1.0]"),
])
def test_bad_values_are_refused_naming_the_parameter(model_ids: dict[str, str], model: str, given: dict[str, Any],
                                                     param: str, error: type, words: str) -> None:
    call = {"prompt": "x", **SIZE, **BASE[model], **given}
    with pytest.raises(error) as info:
        qvac_nb.diffusion(model_id=model_ids[model], **call)
    assert info.value.param == param and str(info.value).startswith(f"{param}: ")
    assert words in str(info.value)


# ---------------------------------------------------------------- where they show


def test_the_studio_shows_each_switch_for_its_families_only() -> None:
    shown = {p["name"]: p for p in form_schema.schema_json()["params"]}
    assert all(shown[name]["group"] == "advanced" for name in SWITCHES)
    for name in ("slg_scale", "skip_layers", "skip_layer_start", "skip_layer_end"):
        assert "sd3" in shown[name]["families"] and "flux" in shown[name]["families"], name
        assert not {"sd1", "sdxl", "qwen_image", "zimage"} & set(shown[name]["families"]), name
    assert "sd3" in shown["flow_shift"]["families"] and "zimage" in shown["flow_shift"]["families"]
    assert not {"sd1", "sdxl", "flux2"} & set(shown["flow_shift"]["families"])
    assert shown["timestep_shift"]["families"] == ["sdxl"] and shown["sigmas"]["families"] is None
    # The list parameters are text fields (the form sends "7,8,9"; validation reads that as a list).
    assert shown["skip_layers"]["type"] == shown["sigmas"]["type"] == "str"
    assert shown["skip_layers"]["default"] == (7, 8, 9)


def test_the_cli_takes_the_switches_as_text() -> None:
    from qvac_nb import cli

    args = cli.build_parser().parse_args(["generate", "x", "--skip-layers", "0,1", "--sigmas", "1,0.5,0",
                                          "--slg-scale", "2.5", "--flow-shift", "3", "--timestep-shift", "250",
                                          "--skip-layer-start", "0.1", "--skip-layer-end", "0.9"])
    given = cli._given(args, schema.DIFFUSION)
    checked = tables.validate(schema.DIFFUSION, given, where="diffusion", fill=False)
    assert checked == {"flow_shift": 3.0, "timestep_shift": 250, "slg_scale": 2.5, "skip_layers": (0, 1),
                       "skip_layer_start": 0.1, "skip_layer_end": 0.9, "sigmas": (1.0, 0.5, 0.0)}
