// The Studio form is built from the schema (qvac_nb.schema.schema_json): controls, limits, choices and
// family rules come from the fixture below, not from the front-end's code.
import { afterEach, describe, expect, it } from "vitest";
import { createForm } from "../src/form.js";
import SCHEMA from "./fixtures/schema.json";
import { mockModel } from "./mock-model.js";

const byName = Object.fromEntries(SCHEMA.params.map((p) => [p.name, p]));
const defaults = Object.fromEntries(SCHEMA.params.filter((p) => p.control !== "hidden").map((p) => [p.name, p.default]));
const PARAMS = { ...defaults, seed: "-1", random_seed: true, sampling_method: "", scheduler: "", cache_preset: "", eta: "" };

function setup(extra = {}) {
  const model = mockModel({ schema: SCHEMA, params: { ...PARAMS }, model_info: {}, current_model: "", ...extra });
  const form = createForm(model);
  for (const name of ["params", "schema", "model_info", "current_model"]) model.on(`change:${name}`, form.render);
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

  it("a family switch applies the family's defaults and hides what it ignores", () => {
    ctx = setup();
    const { $, model } = ctx;
    selectModel(model, "flux2");
    expect(model.get("params").cfg_scale).toBe(1);
    expect(model.get("params").steps).toBe(4);
    expect($("input[name=steps]").value).toBe("4");
    expect(model.saves).toBeGreaterThan(0);
    expect($("[data-param=strength]").hidden).toBe(true); // flux2: hidden ["strength"]
    expect($("[data-param=clip_skip]").hidden).toBe(true); // clip_skip: families sd1/sd2/sdxl
    expect($("[data-param=guidance]").hidden).toBe(false);
    // back to SD 1.x: the schema's defaults return, guidance hides, clip_skip shows
    selectModel(model, "sd1");
    expect(model.get("params").cfg_scale).toBe(7);
    expect(model.get("params").steps).toBe(20);
    expect($("[data-param=guidance]").hidden).toBe(true);
    expect($("[data-param=clip_skip]").hidden).toBe(false);
    expect($("[data-param=strength]").hidden).toBe(false);
  });

  it("leaves fields the user edited", () => {
    ctx = setup();
    const { $, model, change } = ctx;
    change($("input[name=steps]"), "30");
    change($("input[name=cfg_scale]"), "7"); // edited, even if to the old default
    selectModel(model, "flux2");
    expect(model.get("params").steps).toBe(30);
    expect(model.get("params").cfg_scale).toBe(7);
  });

  it("leaves values the kernel set that differ from the default (Studio(steps=8))", () => {
    ctx = setup({ params: { ...PARAMS, steps: 8 } });
    selectModel(ctx.model, "flux2");
    expect(ctx.model.get("params").steps).toBe(8);
    expect(ctx.model.get("params").cfg_scale).toBe(1);
  });

  it("uses the model's default sampler in the default option's label", () => {
    ctx = setup();
    selectModel(ctx.model, "sd1", { engine_defaults: ["euler_a", "discrete"] });
    expect(ctx.$("select[name=sampling_method]").options[0].textContent).toBe("default (euler_a)");
    expect(ctx.$("select[name=scheduler]").options[0].textContent).toBe("default (discrete)");
  });
});
