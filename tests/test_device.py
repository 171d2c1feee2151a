"""model_config["device"]: 'cpu' keeps every part of the model on the CPU, on any build.

Our test build is CPU-only, so these tests check what reaches the engine (the context flags a
worker sets, the GPU devices it hides) rather than where the work ran.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import THREADS
from helpers import assert_real_image
from testmodels import registry

import qvac_nb
from qvac_nb import _engine, engine, engine_mapping, models, schema
from qvac_nb.worker import opening


def _worker_context_config(model: registry.TestModel, config: dict) -> _engine.ContextConfig:
    """The ContextConfig a worker builds for this model and config (built here, in this process)."""
    engine.ensure_loaded()
    spec = models._prepare(str(model.primary), "diffusion", {"threads": 2, **config}, None).worker_spec()
    return opening._context_config(spec["files"], spec["role"], spec)


def test_device_cpu_sets_the_engines_keep_on_cpu_flags(sd1_model: registry.TestModel) -> None:
    on_cpu = _worker_context_config(sd1_model, {"device": "cpu"})
    assert (on_cpu.clip_on_cpu, on_cpu.vae_on_cpu, on_cpu.control_net_on_cpu) == (True, True, True)
    default = _worker_context_config(sd1_model, {})
    assert (default.clip_on_cpu, default.vae_on_cpu, default.control_net_on_cpu) == (False, False, False)
    # (device='gpu' through load_model would spend test_api's warn-once check; the mapping is what matters.)
    assert engine_mapping.engine_fields({"device": "gpu"}, schema.MODEL_CONFIG, engine.enum_names()) == {}
    # An explicit flag still wins over what device implies.
    mixed = _worker_context_config(sd1_model, {"device": "cpu", "vae_on_cpu": False})
    assert (mixed.clip_on_cpu, mixed.vae_on_cpu) == (True, False)
    assert engine_mapping.engine_fields({"device": "cpu"}, schema.MODEL_CONFIG, engine.enum_names()) == dict.fromkeys(
        schema.CPU_FLAGS, True)


def test_device_cpu_hides_the_gpus_from_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in opening.HIDE_GPUS_ENV:
        monkeypatch.delenv(key, raising=False)  # restored after the test
    assert opening.keep_on_cpu({"device": "gpu"}) == {} and "CUDA_VISIBLE_DEVICES" not in os.environ
    assert opening.keep_on_cpu({}) == {}
    hidden = opening.keep_on_cpu({"device": "cpu"})
    assert set(hidden) >= {"CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GGML_VK_VISIBLE_DEVICES"}
    assert all(os.environ[key] == "" for key in hidden)


def test_a_model_loaded_with_device_cpu_generates_the_same_pixels(sd1_model: registry.TestModel,
                                                                   sd1_id: str) -> None:
    """On this CPU build the flags move nothing, so the image is the default device's, bit for bit."""
    settings = {"prompt": "a red boat", "width": 64, "height": 64, "steps": 2, "seed": 4}
    cpu_id = qvac_nb.load_model(str(sd1_model.primary),
                                model_config={"threads": THREADS, "device": "cpu", **sd1_model.model_config()})
    try:
        assert qvac_nb.models.get_model(cpu_id).config["device"] == "cpu"
        (on_cpu,) = qvac_nb.diffusion(model_id=cpu_id, **settings).outputs.result(timeout=600)
    finally:
        qvac_nb.unload_model(model_id=cpu_id)
    (default,) = qvac_nb.diffusion(model_id=sd1_id, **settings).outputs.result(timeout=600)
    assert np.array_equal(assert_real_image(on_cpu, 64, 64), assert_real_image(default, 64, 64))
