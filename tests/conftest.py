"""Fixtures: random-weight test models (built once into a cache) loaded through qvac_nb."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from testmodels import registry  # noqa: E402
from testmodels.registry import TestModel  # noqa: E402

THREADS = int(os.environ.get("QVAC_NB_TEST_THREADS", "2"))


def _model(name: str) -> TestModel:
    return registry.get(name)


def _load(model: TestModel, **extra: object) -> Iterator[str]:
    import qvac_nb
    from qvac_nb import models

    config = {"threads": THREADS, **model.model_config(), **extra}
    # A private copy: a test's own load_model of the same file and config gets (and may unload) a model
    # of its own instead of this shared one, which load_model would otherwise hand out again.
    model_id = models.load_copy(str(model.primary), model_config=config)
    yield model_id
    if model_id in qvac_nb.loaded_models():
        qvac_nb.unload_model(model_id=model_id)


@pytest.fixture(scope="session")
def sd1_model() -> TestModel:
    return _model("sd1")


@pytest.fixture(scope="session")
def sd2_model() -> TestModel:
    return _model("sd2")


@pytest.fixture(scope="session")
def sdxl_model() -> TestModel:
    return _model("sdxl")


@pytest.fixture(scope="session")
def sd3_model() -> TestModel:
    return _model("sd3")


@pytest.fixture(scope="session")
def flux2_model() -> TestModel:
    return _model("flux2")


@pytest.fixture(scope="session")
def flux2_edit_model() -> TestModel:
    return _model("flux2_edit")


@pytest.fixture(scope="session")
def esrgan_model() -> TestModel:
    return _model("esrgan_anime6b")


@pytest.fixture(scope="session")
def sd1_id(sd1_model: TestModel) -> Iterator[str]:
    yield from _load(sd1_model)


@pytest.fixture(scope="session")
def sd1_upscale_id(sd1_model: TestModel, esrgan_model: TestModel) -> Iterator[str]:
    yield from _load(sd1_model, upscaler={"model_src": str(esrgan_model.primary), "tile_size": 64})


@pytest.fixture(scope="session")
def flux2_id(flux2_model: TestModel) -> Iterator[str]:
    yield from _load(flux2_model)


@pytest.fixture(scope="session")
def flux2_edit_id(flux2_edit_model: TestModel) -> Iterator[str]:
    yield from _load(flux2_edit_model)


@pytest.fixture(scope="session")
def upscaler_id(esrgan_model: TestModel) -> Iterator[str]:
    yield from _load(esrgan_model, mode="upscale")
