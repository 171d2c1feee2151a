// The Studio form is built from the schema (qvac_nb.schema.schema_json): controls, limits, choices and
// family rules come from the fixture below, not from the front-end's code.
import { afterEach, describe, expect, it } from "vitest";
import { createForm } from "../src/form.js";
import FAMILIES from "./fixtures/families.json";
import SCHEMA from "./fixtures/schema.json";
import { mockModel } from "./mock-model.js";

const byName = Object.fromEntries(SCHEMA.params.map((p) => [p.name, p]));
const defaults = Object.fromEntries(SCHEMA.params.filter((p) => p.control !== "hidden").map((p) => [p.name, p.default]));
const PARAMS = { ...defaults, seed: "-1", random_seed: true, sampling_method: "", scheduler: "", cache_preset: "", eta: "" };

function setup(extra = {}) {
  const model = mockModel({ schema: SCHEMA, params: { ...PARAMS }, model_info: {}, current_model: "", ...extra });
  const form = createForm(model);
  for (const name of ["params", "schema", "model_info", "current_model", "form_rules", "init_image"]) model.on(`change:${name}`, form.render);
  document.body.append(form.el);
  form.render();
  const $ = (sel) => form.el.querySelector(sel);
  const change = (el, value) => {
    if (el.type === "checkbox") el.checked = value;
    else el.value = value;
    el.dispatchEvent(new Event("change", { bubbles: true }));
  };
  return { model, form, $, change };
}

const selectModel = (model, family, extra = {}) => {
  model.update("model_info", { id: `${family}#1`, family, has_upscaler: false, ...extra });
  model.update("current_model", `${family}#1`);
};

describe("form built from the schema", () => {
  let ctx;
  afterEach(() => ctx.form.el.remove());

  it("makes one control per shown parameter, by the schema's control type, with its label and doc", () => {
    ctx = setup();
    const { $, form } = ctx;
    const named = [...form.el.querySelectorAll("[name]")].map((el) => el.name);
    const shown = SCHEMA.params.filter((p) => !["hidden", "image"].includes(p.control)).map((p) => p.name);
    for (const name of shown) expect(named).toContain(name);
    expect(named).not.toContain("flow_shift"); // control: hidden
    expect(named).not.toContain("init_image"); // control: image (the init image's own control)
    expect($("textarea[name=negative_prompt]")).not.toBeNull();
    expect($("input[name=vae_tiling]").type).toBe("checkbox");
    expect($("input[name=strength]").type).toBe("range");
    expect($("select[name=cache_preset]")).not.toBeNull();
    expect($("[data-param=clip_skip] .qvac-field-label").textContent).toBe("CLIP skip");
    expect($("[data-param=steps]").title).toBe("sampling steps");
    // advanced parameters sit in the collapsed section
    expect($(".qvac-advanced [name=clip_skip]")).not.toBeNull();
    expect($(".qvac-advanced [name=steps]")).toBeNull();
  });

  it("takes limits and choice lists from the schema", () => {
    ctx = setup();
    const { $ } = ctx;
    const steps = $("input[name=steps]");
    expect([steps.min, steps.max, steps.step]).toEqual(["1", "120", "1"]);
    const width = $("input[name=width]");
    expect([width.min, width.max, width.step]).toEqual(["64", "2048", "8"]);
    expect($("input[name=cfg_scale]").max).toBe("30");
    const strength = $("input[name=strength]");
    expect([strength.min, strength.max, strength.step]).toEqual(["0.05", "1", "0.05"]);
    const options = (name) => [...$(`select[name=${name}]`).options].map((o) => o.value);
    expect(options("cache_preset")).toEqual(["", ...byName.cache_preset.choices]);
    expect(options("sampling_method")).toEqual(["", "euler", "euler_a", "dpm++2m"]);
    expect(options("upscale_repeats")).toEqual(["1", "2", "3"]); // not nullable: no empty option
  });

  it("follows a changed schema", () => {
    ctx = setup();
    const { $, model } = ctx;
    const params = SCHEMA.params.map((p) => (p.name === "steps" ? { ...p, max: 60 } : p.name === "cache_preset" ? { ...p, choices: ["fast"] } : p));
    model.update("schema", { ...SCHEMA, params });
    expect($("input[name=steps]").max).toBe("60");
    expect([...$("select[name=cache_preset]").options].map((o) => o.value)).toEqual(["", "fast"]);
  });

  it("snaps sizes to the schema's step within its limits", () => {
    ctx = setup();
    const { $, model, change } = ctx;
    change($("input[name=width]"), "101");
    expect(model.get("params").width).toBe(104);
    change($("input[name=height]"), "5000");
    expect(model.get("params").height).toBe(2048); // the fixture's max, not a number in the code
  });

  it("collect() returns every control's value, typed by the schema", () => {
    ctx = setup();
    const { $, form, change } = ctx;
    $("textarea[name=prompt]").value = "a lighthouse";
    $("input[name=steps]").value = "33";
    $("input[name=cfg_scale]").value = "4.5";
    $("select[name=sampling_method]").value = "euler";
    $("select[name=upscale_repeats]").value = "2";
    $("input[name=vae_tiling]").checked = true;
    $("input[name=eta]").value = "";
    change($("input[name=random_seed]"), false);
    $("input[name=seed]").value = "18446744073709551615";
    const out = form.collect();
    expect(out).toMatchObject({
      prompt: "a lighthouse", steps: 33, cfg_scale: 4.5, sampling_method: "euler", upscale_repeats: 2,
      vae_tiling: true, eta: null, random_seed: false, seed: "18446744073709551615", cache_preset: "",
    });
    expect(out).not.toHaveProperty("flow_shift"); // hidden parameters are not the form's
  });

  it("the dice picks a fixed seed within the schema's limits", () => {
    ctx = setup();
    const { $, model } = ctx;
    $("button[name=dice_seed]").click();
    const p = model.get("params");
    expect(p.random_seed).toBe(false);
    expect(Number(p.seed)).toBeGreaterThanOrEqual(0);
    expect(Number(p.seed)).toBeLessThanOrEqual(byName.seed.max);
    expect($("input[name=seed]").disabled).toBe(false);
  });
});

describe("model families", () => {
  let ctx;
  afterEach(() => ctx.form.el.remove());
  const withImage = { name: "cat.png", thumb: new Uint8Array([1]), width: 64, height: 64 };
  const hiddenFields = (form) => [...form.controls()].filter(([, ctl]) => ctl.field.hidden).map(([name]) => name).sort();

  it("hides exactly what the kernel's form rules say, for every kind of family row", () => {
    ctx = setup();
    const { form, model } = ctx;
    for (const [name, { form_rules: rules }] of Object.entries(FAMILIES.families)) {
      model.update("form_rules", rules);
      model.update("init_image", {});
      const expected = [...form.controls().keys()].filter((n) => rules.hidden.includes(n) || rules.init_params.includes(n)).sort();
      expect(hiddenFields(form), name).toEqual(expected);
      model.update("init_image", withImage); // the init image's own fields show once one is set
      expect(hiddenFields(form), name).toEqual([...form.controls().keys()].filter((n) => rules.hidden.includes(n)).sort());
    }
  });

  it("follows rows of each img2img kind: SDEdit, guidance-distilled, edit, instruct-pix2pix", () => {
    ctx = setup({ init_image: withImage });
    const { $, model } = ctx;
    const shown = (name) => !$(`[data-param=${name}]`).hidden;
    model.update("form_rules", FAMILIES.families.sdedit.form_rules);
    expect([shown("cfg_scale"), shown("guidance"), shown("strength"), shown("img_cfg_scale")]).toEqual([true, false, true, false]);
    model.update("form_rules", FAMILIES.families.distilled.form_rules); // cfg 1, distilled guidance
    expect([shown("cfg_scale"), shown("negative_prompt"), shown("guidance")]).toEqual([false, false, true]);
    model.update("form_rules", FAMILIES.families.edit.form_rules); // the init image is the image to edit
    expect([shown("strength"), shown("cfg_scale"), shown("guidance")]).toEqual([false, false, true]);
    model.update("form_rules", FAMILIES.families.pix2pix.form_rules); // a condition image with image guidance
    expect([shown("strength"), shown("img_cfg_scale"), shown("cfg_scale")]).toEqual([false, true, true]);
  });

  it("never moves values itself when the model changes: the kernel does", () => {
    ctx = setup();
    const { model } = ctx;
    model.update("form_rules", FAMILIES.families.reference.form_rules);
    model.update("model_info", { id: "klein#1", family: "flux2", defaults: { cfg_scale: 1, steps: 4 } });
    model.update("current_model", "klein#1");
    expect(model.get("params").steps).toBe(PARAMS.steps);
    expect(model.saves).toBe(0);
  });

  it("shows the model's own default in an empty nullable number field", () => {
    ctx = setup({ params: { ...PARAMS, cfg_scale: null } });
    expect(ctx.$("input[name=cfg_scale]").placeholder).toBe(String(byName.cfg_scale.default));
    selectModel(ctx.model, "flux", { defaults: { cfg_scale: 1 } });
    expect(ctx.$("input[name=cfg_scale]").placeholder).toBe("1");
  });

  it("snaps sizes to the family's size step", () => {
    ctx = setup({ form_rules: FAMILIES.families.reference.form_rules }); // size_multiple 16
    const { $, model, change } = ctx;
    change($("input[name=width]"), "100");
    expect(model.get("params").width).toBe(96);
    expect($("input[name=width]").step).toBe("16");
  });

  it("uses the model's default sampler in the default option's label", () => {
    ctx = setup();
    selectModel(ctx.model, "sd1", { engine_defaults: ["euler_a", "discrete"] });
    expect(ctx.$("select[name=sampling_method]").options[0].textContent).toBe("default (euler_a)");
    expect(ctx.$("select[name=scheduler]").options[0].textContent).toBe("default (discrete)");
  });
});
