"""Fixtures: random-weight test models (built once into a cache) loaded through qvac_nb."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import configuration as hypothesis_configuration
from hypothesis import settings as hypothesis_settings

sys.path.insert(0, str(Path(__file__).parent))

from testmodels import registry  # noqa: E402
from testmodels.registry import TestModel  # noqa: E402

THREADS = int(os.environ.get("QVAC_NB_TEST_THREADS", "2"))
# Tests write only into temporary folders: hypothesis would keep its example database and constants
# cache in tests/.hypothesis of the checkout.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="qvac_nb-hypothesis-")
hypothesis_configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME)
hypothesis_settings.register_profile("qvac_nb", database=None)
hypothesis_settings.load_profile("qvac_nb")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
# ipykernels without widget subshells (Colab runs 6.x; 7.0-7.3 have subshells but no comm routing), for
# the tests of the blocked-wait pump, each with what the venv lacks for it. Kept outside the repository
# and the venv: a kernel gets one first on PYTHONPATH, shadowing the venv's ipykernel.
OLD_IPYKERNELS = {"6.29.5": ("ipykernel==6.29.5", "nest_asyncio==1.6.0"), "7.3.0": ("ipykernel==7.3.0",)}


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


@pytest.fixture(scope="session")
def old_ipykernel() -> Callable[[str], Path]:
    """old_ipykernel(version): a folder holding that ipykernel (pip-installed there once, without dependencies)."""
    # Next to the test models' cache (QVAC_NB_TEST_MODELS, else ~/.cache/qvac_nb/test-models).
    base = Path(os.environ.get("QVAC_NB_TEST_MODELS") or Path.home() / ".cache" / "qvac_nb" / "test-models").parent

    def get(version: str) -> Path:
        target = base / f"ipykernel-{version}"
        if (target / "ipykernel" / "__init__.py").exists():
            return target
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        packages = OLD_IPYKERNELS[version]
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp), *packages]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"could not install {' '.join(packages)} for the pump tests "
                        f"({' '.join(cmd)}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        if target.exists():  # another session installed it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.replace(target)
        return target

    return get


@pytest.fixture(scope="session")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x64 RGB picture with structure at every scale (gradients and seeded noise): an init image."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:64, 0:64]
    rgb = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1) + rng.integers(0, 40, (64, 64, 3))
    path = tmp_path_factory.mktemp("inputs") / "picture.png"
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)
    return path
