"""The model catalogue and the error hierarchy."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from qvac_nb import catalog, errors
from qvac_nb.catalog import CATALOG, CONSTANTS, ModelEntry, UnknownModelError, get_entry

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models.json"
HF_URL = re.compile(r"https://huggingface\.co/[^/]+/[^/]+/resolve/[^/]+/.+")


def _shared_models() -> list[dict]:
    if not SHARED_MODELS.is_file():
        pytest.skip(f"{SHARED_MODELS} (the facts the catalogue was built from) is not present in this checkout")
    return json.loads(SHARED_MODELS.read_text(encoding="utf-8"))["models"]


def test_catalog_has_exactly_the_shared_models() -> None:
    assert set(CATALOG) == {model["name"] for model in _shared_models()}


@pytest.mark.parametrize("field", ["family", "role", "size", "sha256", "notes"])
def test_catalog_facts_equal_the_shared_facts(field: str) -> None:
    for model in _shared_models():
        assert getattr(CATALOG[model["name"]], field) == model.get(field, ""), model["name"]


def test_catalog_sources_equal_the_shared_sources() -> None:
    for model in _shared_models():
        entry = CATALOG[model["name"]]
        assert entry.source == model["source"]
        if model["source"] == "hf":
            assert (entry.repo, entry.revision, entry.path) == (model["repo"], model["revision"], model["path"])
            assert entry.url == f"https://huggingface.co/{model['repo']}/resolve/{model['revision']}/{model['path']}"
        else:
            assert entry.url == model["url"]


def test_entries_are_well_formed() -> None:
    for name, entry in CATALOG.items():
        assert entry.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), name
        assert entry.size > 0
        assert entry.filename == entry.url.rsplit("/", 1)[-1]
        assert entry.role in {"model", "diffusion_model", "vae", "llm", "upscaler"}
        if entry.source == "hf":
            assert HF_URL.fullmatch(entry.url), entry.url
            assert entry.hf_uri == f"hf://{entry.repo}/{entry.path}@{entry.revision}"
        else:
            assert entry.url.startswith("https://") and entry.hf_uri is None


def test_constants_are_the_names() -> None:
    assert CONSTANTS == {name: name for name in CATALOG}
    assert CONSTANTS["SD_V2_1_1B_Q8_0"] == "SD_V2_1_1B_Q8_0"


def test_get_entry_returns_the_entry() -> None:
    entry = get_entry("SDXL_BASE_1_0_3B_Q4_0")
    assert entry is CATALOG["SDXL_BASE_1_0_3B_Q4_0"]
    assert get_entry(entry) is entry


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("SD_V2_1_1B_Q8", "SD_V2_1_1B_Q8_0"),
        ("sd_v2_1_1b_q8_0", "SD_V2_1_1B_Q8_0"),
        ("FLUX_2_KLEIN_4B_VEA", "FLUX_2_KLEIN_4B_VAE"),
    ],
)
def test_unknown_name_suggests_the_closest(typo: str, meant: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        get_entry(typo)
    assert isinstance(info.value, KeyError) and isinstance(info.value, errors.QvacError)
    message = str(info.value)
    assert f"did you mean {meant!r}?" in message
    assert not message.startswith(("'", '"'))  # not KeyError's quoted repr


def test_unknown_name_without_close_match() -> None:
    with pytest.raises(KeyError) as info:
        get_entry("completely-different")
    assert "did you mean" not in str(info.value)
    assert "SD_V2_1_1B_Q8_0" in str(info.value)  # the known names are listed


def test_flux_companions_resolve_to_existing_entries() -> None:
    flux = [e for e in CATALOG.values() if e.name.startswith("FLUX_2_KLEIN_4B_") and e.role == "diffusion_model"]
    assert len(flux) == 3
    for entry in flux:
        assert entry.companions == {"llm_model_src": "QWEN3_4B_Q4_K_M", "vae_model_src": "FLUX_2_KLEIN_4B_VAE"}
        assert get_entry(entry.companions["llm_model_src"]).role == "llm"
        assert get_entry(entry.companions["vae_model_src"]).role == "vae"


def test_every_companion_exists() -> None:
    for entry in CATALOG.values():
        for key, name in entry.companions.items():
            assert key.endswith("_model_src")
            assert name in CATALOG, f"{entry.name}.{key} -> {name}"


def test_default_configs() -> None:
    for entry in CATALOG.values():
        expected = {"prediction": "v"} if entry.family == "sd2" else {}
        assert entry.default_config == expected, entry.name


def test_entry_is_frozen_and_hashable() -> None:
    entry = CATALOG["REALESRGAN_X4PLUS"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.size = 1  # type: ignore[misc]
    assert {entry: 1}[entry] == 1
    assert isinstance(entry, ModelEntry)


def test_catalog_json_ships_with_the_package() -> None:
    assert (Path(catalog.__file__).parent / "catalog.json").is_file()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.InvalidParameterError, ValueError),
        (errors.InvalidTypeError, TypeError),
        (errors.UnknownParameterError, TypeError),
        (errors.ModelFileError, FileNotFoundError),
        (errors.CorruptModelError, ValueError),
        (errors.ModelNotLoadedError, KeyError),
        (errors.UnsupportedOperationError, ValueError),
        (errors.DownloadError, OSError),
        (errors.EngineError, RuntimeError),
        (errors.CancelledError, Exception),
    ],
)
def test_error_hierarchy(cls: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(cls, errors.QvacError) and issubclass(cls, builtin)


def test_model_not_loaded_message_is_not_quoted() -> None:
    assert str(errors.ModelNotLoadedError("no model 'abc'")) == "no model 'abc'"
    assert str(errors.ModelNotLoadedError()) == ""


def test_suggest() -> None:
    assert errors.suggest("stpes", ["steps", "seed"]) == " (did you mean 'steps'?)"
    assert errors.suggest("zzz", ["steps", "seed"]) == ""
    assert errors.suggest("x", []) == ""
