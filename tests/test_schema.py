"""The parameter schema: what derives from it (docs, README, JSON, errors, engine request) and the family defaults."""

from __future__ import annotations

import importlib.util
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import pixels

import qvac_nb
from qvac_nb import _engine, engine, engine_mapping, families, generation, records, request_types, schema
from qvac_nb.widgets import form_schema
from qvac_nb.worker import engine_calls

SMALL = {"width": 64, "height": 64, "steps": 2}
README = Path(__file__).resolve().parent.parent / "README.md"


def run(model_id: str, **kw: object) -> tuple[bytes, dict]:
    job = qvac_nb.diffusion(model_id=model_id, prompt="a castle", **{**SMALL, **kw})
    return job.outputs.result(timeout=600)[0], job.params


# ---------------------------------------------------------------- derived text


def test_diffusion_docstring_names_every_parameter_with_range_and_default() -> None:
    doc = qvac_nb.diffusion.__doc__ or ""
    flat = " ".join(doc.split())
    for p in schema.DIFFUSION:
        assert f"{p.name} : " in doc, p.name
        assert f"Default: {' '.join(p.default_text().split())}." in flat, p.name
        if p.values_text():
            assert " ".join(p.values_text().split()) in flat, p.name
    # The per-family defaults follow the schema's (the family table's order; more rows come with more families).
    assert "1-150" in flat and "Default: 7.0 (FLUX.1: 1.0, FLUX.1 Kontext: 1.0, " in flat and "Chroma: 4.0, " in flat
    for fn, params in ((qvac_nb.upscale, schema.UPSCALE), (qvac_nb.load_model, schema.MODEL_CONFIG)):
        assert all(p.name in (fn.__doc__ or "") for p in params), fn.__name__


def test_signature_is_the_schema() -> None:
    import inspect

    sig = inspect.signature(qvac_nb.diffusion)
    assert list(sig.parameters) == list(schema.DIFFUSION_PARAMS)
    # None: the model family's default (Z-Image Turbo takes 8 steps, FLUX.1 cfg 1).
    assert sig.parameters["steps"].default is None and sig.parameters["cfg_scale"].default is None


def test_cli_flags_come_from_the_schema() -> None:
    from qvac_nb import cli

    gen = cli.build_parser()._subparsers._group_actions[0].choices["generate"]  # type: ignore[union-attr]
    flags = {opt: action for action in gen._actions for opt in action.option_strings}
    for p in schema.DIFFUSION:
        if p.cli is not None:
            assert flags[(p.cli or (f"--{p.name.replace('_', '-')}",))[-1]].dest == p.name
    steps_help = flags["--steps"].help or ""
    assert "--vae-tile-size" in flags and "1-150" in steps_help and "(default 20; Z-Image: 8)" in steps_help


def _readme_tool() -> Any:
    spec = importlib.util.spec_from_file_location("gen_readme_tables", README.parent / "tools" / "gen_readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_match_the_schema() -> None:
    text = README.read_text(encoding="utf-8")
    assert "<!-- BEGIN schema:diffusion -->" in text
    assert "<!-- BEGIN schema:video -->" in text
    assert _readme_tool().render_readme(text) == text, "run: python tools/gen_readme_tables.py"


def test_readme_check_fails_on_drift(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8").replace("| `steps` |", "| `stepz` |")
    assert _readme_tool().render_readme(text) != text


def test_doc_enum_names_are_the_engines() -> None:
    # What the docs list (written without the engine) is what validation accepts with it.
    names = engine.enum_names()
    for p in (*schema.DIFFUSION, *schema.MODEL_CONFIG):
        if p.choices_from:
            assert p.allowed(None) == p.allowed(names), p.name


def test_studio_lists_are_flags_on_the_table() -> None:
    """The Grid's axes and the saved copy's summary rows come from the table, so a new parameter is one row."""
    axes = sorted((p.grid_axis, p.name) for p in schema.DIFFUSION if p.grid_axis)
    assert [place for place, _ in axes] == list(range(1, len(axes) + 1))  # one place each, no gaps
    assert {name for _, name in axes} <= schema.REPLAYABLE
    shipped = {p["name"]: p["grid_axis"] for p in form_schema.schema_json()["params"]}
    assert {name: shipped[name] for _, name in axes} == {name: place for place, name in axes}
    from qvac_nb.widgets import static_html

    assert static_html._SHOWN_PARAMS == tuple(p.name for p in schema.DIFFUSION if p.summary)
    assert "prompt" in static_html._SHOWN_PARAMS and "seed" not in static_html._SHOWN_PARAMS  # seed has its own row


def test_schema_json_shape() -> None:
    data = form_schema.schema_json(engine.enum_names(), family="flux2")
    keys = {"name", "type", "label", "doc", "default", "min", "max", "step", "choices", "nullable", "control",
            "group", "families", "replayable", "grid_axis"}
    by_name = {p["name"]: p for p in data["params"]}
    assert all(set(p) == keys for p in data["params"])
    assert {p["type"] for p in data["params"]} <= {"int", "float", "str", "bool", "choice", "image", "text"}
    assert by_name["steps"]["max"] == schema.MAX_STEPS and by_name["cfg_scale"]["default"] == 1.0
    assert by_name["sampling_method"]["choices"] == list(engine.enum_names()["sample_method"])
    assert by_name["strength"]["families"] is not None and "flux2" not in by_name["strength"]["families"]
    assert data["families"]["flux2"]["img2img"] == "reference" and data["families"]["sd1"]["dit"] is False


def test_a1111_text_layout() -> None:
    record = {"prompt": "p", "negative_prompt": "n", "steps": 3, "sampling_method": "euler", "scheduler": "karras",
              "cfg_scale": 7.0, "guidance": 3.5, "seed": 5, "width": 64, "height": 96, "model": "m.gguf",
              "strength": 0.5, "init_image_used": True, "cache_preset": None, "img_cfg_scale": None}
    assert records.a1111_text(record) == (
        "p\nNegative prompt: n\nSteps: 3, Sampler: euler, Schedule type: karras, CFG scale: 7.0, "
        "Distilled CFG Scale: 3.5, Seed: 5, Size: 64x96, Model: m.gguf, Denoising strength: 0.5, Version: qvac_nb"
    )


# ---------------------------------------------------------------- errors name their parameter


@pytest.mark.parametrize(
    "kwargs,param",
    [({"steps": 0}, "steps"), ({"width": 65}, "width"), ({"sampling_method": "eulr"}, "sampling_method"),
     ({"negative_promt": "x"}, "negative_promt"), ({"upscale": {"repeat": 2}}, "upscale"),
     ({"vae_tile_size": 2}, "vae_tile_size"), ({"img_cfg_scale": -2.0}, "img_cfg_scale")],
)
def test_errors_carry_the_parameter(sd1_id: str, kwargs: dict, param: str) -> None:
    with pytest.raises(qvac_nb.QvacError) as info:
        qvac_nb.diffusion(model_id=sd1_id, prompt="x", **{**SMALL, **kwargs})
    assert info.value.param == param


def test_config_errors_carry_the_key() -> None:
    with pytest.raises(qvac_nb.QvacError) as info:
        qvac_nb.models.normalize_config({"upscaler": {"tile_size": 4}})
    assert info.value.param == "model_config.upscaler.tile_size"
    assert qvac_nb.EngineLibraryError("x").param is None and issubclass(qvac_nb.EngineLibraryError, qvac_nb.QvacError)


def test_camel_case_aliases(sd1_id: str) -> None:
    job = qvac_nb.diffusion(model_id=sd1_id, prompt="x", negativePrompt="fog", batchCount=1, **SMALL)
    assert job.params["negative_prompt"] == "fog"
    job.outputs.result(timeout=600)


# ---------------------------------------------------------------- families


def test_family_table_replaces_the_branches() -> None:
    assert families.get("flux2").uses_guidance and families.get("flux2").dit
    assert families.get("sd3").dit and not families.get("sd3").uses_guidance
    assert families.get("sdxl").cache_mode == families.SD_CACHE_UCACHE
    assert families.get("flux").cache_mode == families.SD_CACHE_EASYCACHE
    assert families.get("nonsense") is families.UNKNOWN


def test_flux2_defaults_to_cfg_1(flux2_id: str, sd1_id: str) -> None:
    default, params = run(flux2_id, seed=4)
    assert params["cfg_scale"] == 1.0
    explicit, _ = run(flux2_id, seed=4, cfg_scale=1.0)
    assert np.array_equal(pixels(default), pixels(explicit))
    seven, params7 = run(flux2_id, seed=4, cfg_scale=7.0)
    assert params7["cfg_scale"] == 7.0 and not np.array_equal(pixels(default), pixels(seven))
    assert qvac_nb.diffusion(model_id=sd1_id, prompt="x", **SMALL).params["cfg_scale"] == 7.0


# ---------------------------------------------------------------- new parameters reach the engine


def test_engine_fields_cover_every_engine_mapped_parameter(sd1_id: str) -> None:
    request = generation.validate_diffusion(model_id=sd1_id, prompt="x", **SMALL, img_cfg_scale=2.5,
                                            vae_tile_size=8, vae_tile_overlap=0.25, cache_preset="fast")
    engine.ensure_loaded()  # the request is built here, in this process, as a worker builds it
    req = engine_calls._request(request, "sd1")
    assert (req.img_cfg_scale, req.vae_tile_x, req.vae_tile_y, req.vae_tile_overlap) == (2.5, 8, 8, 0.25)
    # The preset's own values (the engine's default threshold is positive too, so "> 0" would not tell).
    assert (req.cache_mode, req.cache_reuse_threshold) == (families.SD_CACHE_UCACHE, pytest.approx(0.6))
    assert req.steps == 2
    default = engine_calls._request(generation.validate_diffusion(model_id=sd1_id, prompt="x", **SMALL), "sd1")
    assert math.isinf(default.img_cfg_scale)  # unset: the engine reuses cfg_scale
    copy = pickle.loads(pickle.dumps(request))  # requests cross into worker processes
    assert type(copy) is request_types.DiffusionRequest and copy.vae_tile_size == 8 and copy.family == "sd1"
    assert default.vae_tile_overlap == pytest.approx(_engine.Request().vae_tile_overlap)


def test_every_converted_parameter_declares_its_engine_fields() -> None:
    # engine_fields skips a parameter without an engine mapping before looking for its converter: a converter
    # on such a row is never called (cache_preset was silently dropped that way).
    rows = {p.name: p for p in schema.DIFFUSION + schema.MODEL_CONFIG}
    undeclared = [name for name in engine_mapping._TO_ENGINE if rows[name].engine is None]
    assert not undeclared, undeclared


def test_vae_tile_size_changes_tiled_decoding(sd1_id: str) -> None:
    base, _ = run(sd1_id, seed=6, vae_tiling=True)
    same, params = run(sd1_id, seed=6, vae_tiling=True, vae_tile_size=0, vae_tile_overlap=0.5)
    small, small_params = run(sd1_id, seed=6, vae_tiling=True, vae_tile_size=4)
    assert np.array_equal(pixels(base), pixels(same))
    assert not np.array_equal(pixels(base), pixels(small))
    assert small_params["vae_tile_size"] == 4 and qvac_nb.read_parameters(small)["vae_tile_size"] == 4
    replay = qvac_nb.diffusion(model_id=sd1_id, **qvac_nb.read_parameters(small)).outputs.result(timeout=600)[0]
    assert np.array_equal(pixels(replay), pixels(small))


def test_img_cfg_scale_is_ignored_by_a_text_to_image_model(sd1_id: str) -> None:
    # The engine applies image guidance only to edit/inpainting models; elsewhere it must not change pixels.
    base, _ = run(sd1_id, seed=7)
    with_img_cfg, params = run(sd1_id, seed=7, img_cfg_scale=3.0)
    assert params["img_cfg_scale"] == 3.0 and np.array_equal(pixels(base), pixels(with_img_cfg))
