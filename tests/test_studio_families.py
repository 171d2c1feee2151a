"""The Studio's form follows the loaded model's family, from the family table's data alone.

For every family row with a test model: the form a Studio holds once the model is loaded from the
widget, the defaults diffusion() gives that model, what Generate passes and the PNG record of the
image it makes all agree; fields the family ignores are hidden and never passed. The form rules and
the model bar's companions are checked against `Family.as_json()` for every row and variant of the
table, and against made-up rows (instruct-pix2pix, edit) of the kind the table is growing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from conftest import THREADS
from testmodels import registry
from widget_driver import msg, wait_idle, work_in_tmp  # noqa: F401 - work_in_tmp: autouse

import qvac_nb
from qvac_nb import families, models, schema
from qvac_nb.generation import validate_diffusion
from qvac_nb.png import stored_record
from qvac_nb.widgets import Studio
from qvac_nb.widgets import studio as studio_module
from qvac_nb.widgets.family_form import IMAGE_PARAMS, companion_fields, companion_needs, form_rules, rules_for
from qvac_nb.widgets.params import FORM_DEFAULTS, params_to_json

ROOT = Path(__file__).resolve().parent.parent
LOAD_TIMEOUT_S = 300
SMALL = {"width": 64, "height": 64, "steps": 1, "seed": 7, "random_seed": False}
# The form's fields that are diffusion() parameters (upscale_repeats is the form's own).
FIELDS = [p.name for p in schema.form_params() if p is not schema.UPSCALE_REPEATS]
DIFFUSION_ROWS = [f for f in families.FAMILIES.values() if f.kind in ("unet", "dit")]


def _variant_rows() -> list[families.Family]:
    """Every family row, and each of its variants as a model of it resolves (families.for_model)."""
    out = []
    for row in DIFFUSION_ROWS:
        out.append(row)
        for v in row.variant_rows:
            out.append(row.resolve(v.versions[0] if v.versions else None, v.marker))
    return out


# Families whose only test models take minutes here (full-size text encoders or a full-size DiT): the
# Studio's path is the same data-driven code for every row, and each of these families' own test file
# checks its defaults against diffusion(), the record and the peer.
_SLOW_TO_LOAD = {"sd3", "sdxl", "zimage", "anima"}


def _test_models() -> list[str]:
    """One test model per family row: the smallest-named recipe of it (sd1, not sd1_full)."""
    by_family: dict[str, str] = {}
    for name in sorted(registry.recipes(), key=lambda n: (len(n), n)):
        family = registry.recipes()[name].family
        if family in _SLOW_TO_LOAD:
            continue
        if family in families.FAMILIES and families.FAMILIES[family].kind in ("unet", "dit"):
            by_family.setdefault(family, name)
    return sorted(by_family.values())


# -- the rules, for every row of the table ---------------------------------------------------------


@pytest.mark.parametrize("row", _variant_rows(), ids=lambda r: f"{r.name}-{r.variant}" if r.variant else r.name)
def test_form_rules_follow_as_json(row: families.Family) -> None:
    data = row.as_json()
    rules = form_rules(data)
    hidden, cfg = set(rules["hidden"]), data["defaults"].get("cfg_scale")
    assert set(data["hidden"]) <= hidden  # the row's own list, always
    # cfg_scale: hidden for a guidance-distilled model run at cfg 1; the negative prompt with it.
    assert ("cfg_scale" in hidden) == ("cfg_scale" in data["hidden"] or (data["uses_guidance"] and cfg == 1))
    no_uncond = cfg == 1 and "cfg_scale" in hidden
    assert ("negative_prompt" in hidden) == ("negative_prompt" in data["hidden"] or no_uncond)
    # strength: only where the init image is re-noised; beside the init image, once one is set.
    assert ("strength" in hidden) == ("strength" in data["hidden"] or data["img2img"] != "sdedit")
    assert rules["init_params"] == [p for p in IMAGE_PARAMS if p not in hidden]
    assert rules["init_label"] == {"sdedit": "Init image", "edit": "Image to edit", "reference": "Image to edit",
                                   "pix2pix": "Condition image", "none": ""}[data["img2img"]]
    assert rules["mask"] == (data["img2img"] == "sdedit" or data["inpaints"])
    assert rules["ref_images"] == (data["img2img"] == "reference")
    assert rules["size_multiple"] == data["size_multiple"]
    assert hidden <= set(FORM_DEFAULTS) | set(data["hidden"])  # only the form's fields (or the row's)


def test_form_rules_of_rows_to_come() -> None:
    """Rows the table will grow (instruct-pix2pix, an edit model) need no change to the form."""
    pix2pix = families.Family("p2p", "Instruct-pix2pix", "unet", img2img="pix2pix", hidden=("guidance",),
                              shows=("img_cfg_scale",))
    rules = rules_for(pix2pix)
    assert rules["init_label"] == "Condition image"
    assert rules["init_params"] == ["img_cfg_scale"] and "strength" in rules["hidden"] and not rules["mask"]
    edit = families.Family("ed", "Edit DiT", "dit", uses_guidance=True, img2img="edit",
                           defaults=MappingProxyType({"cfg_scale": 1.0, "guidance": 2.5}))
    rules = rules_for(edit)
    assert rules["init_label"] == "Image to edit" and rules["init_params"] == []
    assert {"cfg_scale", "negative_prompt", "strength", "img_cfg_scale"} <= set(rules["hidden"])
    assert "guidance" not in rules["hidden"] and not rules["mask"]
    # No model: every field but those of other img2img kinds, strength once an init image is set.
    none = rules_for(None)
    assert none["init_label"] == "Init image" and none["init_params"] == ["strength"] and none["mask"]


def test_js_fixture_is_current() -> None:
    """js/tests/fixtures/families.json is what the kernel sends for the made-up rows the vitest tests use."""
    spec = importlib.util.spec_from_file_location("gen_family_fixture", ROOT / "tools" / "gen_family_fixture.py")
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_family_fixture", tool)
    spec.loader.exec_module(tool)
    assert tool.FIXTURE.read_text(encoding="utf-8") == tool.text(), "run: python tools/gen_family_fixture.py"


@pytest.mark.parametrize("row", DIFFUSION_ROWS, ids=lambda r: r.name)
def test_companions_follow_the_table(row: families.Family) -> None:
    needs = companion_needs(row)
    assert set(needs) == {*row.required_companions, *row.text_encoders, "vae_model_src"}
    assert all(needs[key] == "required" for key in row.required_companions)
    fields = {f["key"]: f for f in companion_fields()}
    assert set(needs) <= set(fields)  # the model bar has a field for each
    for key, need in needs.items():
        if key not in row.required_companions:
            assert need == ("one of" if key in row.text_encoders and row.requires_text_encoder and row.split_layout
                            else "optional")
    assert companion_needs(None) == dict.fromkeys(fields, "optional")  # no family known yet: every field


def test_model_bar_asks_for_the_companions_of_the_source() -> None:
    studio = Studio(output_dir=None)
    assert {f["field"] for f in studio.catalog["companion_fields"]} >= {"vae", "llm", "clip_l", "t5xxl"}
    msg(studio, {"type": "source_info", "source": "FLUX_2_KLEIN_4B_Q4_0"})  # a catalogue name: its family
    assert studio.source_info == {"source": "FLUX_2_KLEIN_4B_Q4_0", "family": "flux2", "label": "FLUX.2",
                                  "companions": {"llm_model_src": "required", "vae_model_src": "required"}}
    kontext = registry.get("flux1_kontext").primary  # a file: told by its header (and, for Kontext, its name)
    msg(studio, {"type": "source_info", "source": str(kontext)})
    assert studio.source_info["family"] == "flux_kontext"
    assert studio.source_info["companions"]["vae_model_src"] == "required"
    msg(studio, {"type": "source_info", "source": "/no/such/model.gguf"})
    assert studio.source_info["family"] == "" and set(studio.source_info["companions"].values()) == {"optional"}
    assert studio.error == ""


def test_a_missing_required_companion_names_the_field_and_the_key(tmp_path: Path) -> None:
    model = registry.get("flux1")
    config = {k: v for k, v in model.model_config().items() if k != "vae_model_src"}
    studio = Studio(model_config={"threads": THREADS, **config}, output_dir=None)
    studio.load(str(model.primary)).join(LOAD_TIMEOUT_S)
    assert studio.status["phase"] == "error" and studio.status["field"] == "vae"
    assert "the model bar's 'VAE' field" in studio.error and "model_config['vae_model_src']" in studio.error
    assert studio.current_model == ""


# -- the Studio on every family's test model ---------------------------------------------------------


def _name_only_variant_keys(model: Any) -> set[str]:
    """Defaults of a variant told by a name only (FLUX.2 klein): they start the form, diffusion() keeps the family's."""
    row = families.for_model(model)
    variant = next((v for v in families.get(model.family).variant_rows if v.name == row.variant), None)
    return set(variant.defaults) if variant is not None and not variant.versions else set()


@pytest.mark.parametrize("name", _test_models())
def test_form_defaults_diffusion_and_the_record_agree(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    test_model = registry.get(name)
    sent: list[dict[str, Any]] = []  # what Generate passes to diffusion()
    real = studio_module.diffusion
    monkeypatch.setattr(studio_module, "diffusion", lambda **kwargs: sent.append(kwargs) or real(**kwargs))
    # As a person does it: a Studio with no model, then the model loaded from its model bar.
    studio = Studio(model_config={"threads": THREADS, **test_model.model_config()}, output_dir=None, prompt="a boat")
    before = dict(studio.params)
    studio.load(str(test_model.primary)).join(LOAD_TIMEOUT_S)
    model_id = studio.current_model
    assert model_id, studio.error
    try:
        model = models.get_model(model_id)
        row = families.for_model(model)
        rules = studio.form_rules
        # The family's rules, less what the model was loaded without (no ControlNet, no upscaler here).
        family_rules = form_rules(row.as_json())
        unused = {"control_strength", "upscale_repeats"}
        assert rules == {**family_rules, "hidden": sorted({*family_rules["hidden"], *unused})}
        assert studio.model_info["defaults"] == dict(row.defaults)
        # The form starts from the model's defaults (its family's and its variant's); the rest is as it was.
        assert studio.params == {**before, **{k: v for k, v in row.defaults.items() if k in FORM_DEFAULTS}}

        # One generation from the form as it stands, with values left in its hidden fields (set for another
        # model, say): those never reach the image.
        odd = {"cfg_scale": 13.0, "guidance": 13.0, "negative_prompt": "blurry", "img_cfg_scale": 13.0}
        odd = {k: v for k, v in odd.items() if k in rules["hidden"]}
        studio.generate(**SMALL, **odd)
        wait_idle(studio)
        assert studio.status["phase"] == "done", studio.error
        assert {k: studio.params[k] for k in odd} == odd  # the form holds them
        # Generate passes every field the form shows; none it hides, nor strength without an init image.
        shown = {f for f in FIELDS if f not in rules["hidden"] and f not in rules["init_params"]}
        assert {k for k in sent[-1] if k in FIELDS} == shown
        made = validate_diffusion(**{k: v for k, v in sent[-1].items() if k != "preview"})
        # diffusion()'s own defaults for the model: the same, but for a variant told only by a name.
        plain = validate_diffusion(model_id=model_id, prompt="a boat")
        name_only = _name_only_variant_keys(model)
        for field in set(FIELDS) - set(SMALL):
            if field in name_only:
                assert getattr(made, field) == row.defaults[field] != getattr(plain, field), field
            else:
                assert getattr(made, field) == getattr(plain, field), field
        # The image's record: what was passed, and diffusion()'s defaults for the rest (the hidden fields too).
        record = stored_record(studio.images[0])
        stored = [f for f in FIELDS if schema.param(f).stored]
        assert {f: record[f] for f in stored if f in record} == {f: getattr(made, f) for f in stored if f in record}
        # Switches recorded only when set (flow_shift, sigmas, ...) are absent at their default.
        assert all(getattr(made, f) in (None, schema.param(f).default) for f in stored if f not in record)
        assert {k: record[k] for k in odd} == {k: getattr(plain, k) for k in odd}
    finally:
        qvac_nb.unload_model(model_id=model_id)


def test_choosing_another_model_moves_only_untouched_fields(sd1_id: str) -> None:
    kontext = registry.get("flux1_kontext")
    kontext_id = models.load_copy(str(kontext.primary), model_config={"threads": THREADS, **kontext.model_config()})
    try:
        studio = Studio(sd1_id, steps=8, output_dir=None)  # steps: set on purpose
        assert (studio.params["cfg_scale"], studio.params["guidance"], studio.params["steps"]) == (7.0, 3.5, 8)
        studio.select_model(kontext_id)
        p = studio.params
        assert (p["cfg_scale"], p["guidance"], p["steps"]) == (1.0, 2.5, 8)  # Kontext's cfg 1, guidance 2.5
        assert studio.form_rules["init_label"] == "Image to edit" and "strength" in studio.form_rules["hidden"]
        assert studio.inputs_shown["mask"] is False
        # An edit in the widget (the front-end syncs its whole form, numbers as text) is the user's: it stays.
        studio.set_state({"params": {**params_to_json(studio.params), "guidance": "4"}})
        assert studio.params["guidance"] == 4.0
        studio.select_model(sd1_id)
        p = studio.params
        assert (p["cfg_scale"], p["guidance"], p["steps"]) == (7.0, 4.0, 8)
        assert studio.form_rules["init_label"] == "Init image" and studio.inputs_shown["mask"] is True
    finally:
        qvac_nb.unload_model(model_id=kontext_id)
