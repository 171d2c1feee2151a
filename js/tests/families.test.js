// The Studio per model family, from what the kernel derives from the family table: the fixture holds
// the kernel's form rules and companion needs for made-up rows of every kind (tools/gen_family_fixture.py;
// tests/test_studio_families.py checks it is current), including instruct-pix2pix and edit rows.
import { afterEach, describe, expect, it } from "vitest";
import { companionNeed } from "../src/model-bar.js";
import FAMILIES from "./fixtures/families.json";
import { fakeImage } from "./mock-model.js";
import { SD1, setup } from "./studio-setup.js";

const ROWS = Object.entries(FAMILIES.families);
const IMAGE = { name: "cat.png", thumb: fakeImage(), width: 64, height: 64 };

/** The Studio with a model of the made-up family `name` loaded (its rules) and its source being typed. */
function studioFor(name, extra = {}) {
  const row = FAMILIES.families[name];
  const ctx = setup({ form_rules: row.form_rules, model_info: { ...SD1, family: name, label: row.label }, ...extra });
  const source = ctx.$("input[name=model_source]");
  source.value = `/models/${name}.gguf`;
  source.dispatchEvent(new Event("change"));
  ctx.model.update("source_info", { source: source.value, family: name, label: row.label, companions: row.companions });
  return ctx;
}

const field = (ctx, key) => {
  const { field: name } = FAMILIES.companion_fields.find((f) => f.key === key);
  return ctx.$(`input[name=${name}]`).closest("label");
};

describe("the init image, per family", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it.each(ROWS)("%s: labelled by its use, with its own fields beside it once set", (name, { form_rules: rules }) => {
    ctx = studioFor(name);
    const { $, model } = ctx;
    expect($(".qvac-init").hidden).toBe(!rules.init_label); // a family without init image shows none
    if (rules.init_label) expect($(".qvac-init-label").textContent).toBe(rules.init_label);
    model.update("init_image", IMAGE);
    for (const param of rules.init_params) {
      expect($(`.qvac-init [data-param=${param}]`), param).not.toBeNull();
      expect($(`[data-param=${param}]`).hidden, param).toBe(false);
    }
    expect($("[data-param=strength]").hidden).toBe(!rules.init_params.includes("strength"));
  });

  it("names the image by the family's img2img kind", () => {
    const labels = {};
    for (const name of ["sdedit", "edit", "reference", "pix2pix"]) {
      ctx = studioFor(name);
      labels[name] = ctx.$(".qvac-init-label").textContent;
      ctx.cleanup();
      ctx.el.remove();
    }
    ctx = studioFor("noinit");
    expect(labels).toEqual({ sdedit: "Init image", edit: "Image to edit", reference: "Image to edit", pix2pix: "Condition image" });
    expect(ctx.$(".qvac-init").hidden).toBe(true);
  });

  it("instruct-pix2pix: image guidance beside the condition image, no strength; edit: neither", () => {
    ctx = studioFor("pix2pix", { init_image: IMAGE });
    expect(ctx.$(".qvac-init [data-param=img_cfg_scale]").hidden).toBe(false);
    expect(ctx.$("[data-param=strength]").hidden).toBe(true);
    ctx.model.update("form_rules", FAMILIES.families.edit.form_rules);
    expect(ctx.$("[data-param=img_cfg_scale]").hidden).toBe(true);
    expect(ctx.$("[data-param=strength]").hidden).toBe(true);
    expect(ctx.$(".qvac-init-label").textContent).toBe("Image to edit");
  });
});

describe("the model bar's companions, per family", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it.each(ROWS)("%s: required ones say so, optional ones too, the rest are not offered", (name, { companions }) => {
    ctx = studioFor(name);
    for (const { key } of FAMILIES.companion_fields) {
      const label = field(ctx, key);
      const input = label.querySelector("input");
      const need = companions[key];
      expect(label.hidden, key).toBe(!need);
      if (!need) continue;
      expect(label.dataset.need).toBe(need);
      expect(input.required).toBe(need === "required");
      if (need === "required") expect(label.textContent).toContain("required");
      if (need === "optional") expect(label.textContent).toContain("optional");
      if (need === "one of") expect(label.textContent).toMatch(/required: this or /);
    }
    expect(ctx.$(".qvac-companions-for").textContent).toContain(FAMILIES.families[name].label);
    // A model that needs something there opens the section.
    expect(ctx.$(".qvac-model-extras").open).toBe(Object.values(companions).includes("required"));
  });

  it("names the other encoders a 'one of' field stands for", () => {
    const labels = { clip_l_model_src: "CLIP-L", t5_xxl_model_src: "T5-XXL" };
    const needs = { vae_model_src: "required", clip_l_model_src: "one of", t5_xxl_model_src: "one of" };
    expect(companionNeed("clip_l_model_src", needs, labels)).toEqual({ shown: true, need: "one of", note: "required: this or T5-XXL" });
    expect(companionNeed("vae_model_src", needs, labels).note).toBe("required");
    expect(companionNeed("llm_model_src", needs, labels).shown).toBe(false);
  });

  it("offers every field, optional, while the family is not known", () => {
    ctx = setup();
    const source = ctx.$("input[name=model_source]");
    source.value = "https://example.org/model.gguf";
    source.dispatchEvent(new Event("change"));
    expect(ctx.model.sentOfType("source_info").map((m) => m.content.source)).toEqual(["https://example.org/model.gguf"]);
    for (const { key } of FAMILIES.companion_fields) {
      expect(field(ctx, key).hidden).toBe(false);
      expect(field(ctx, key).dataset.need).toBe("optional");
    }
  });

  it("sends the shown fields only, and marks the field a failed load names", () => {
    ctx = studioFor("realcfg"); // needs an LLM and a VAE
    const { $, model } = ctx;
    $("input[name=clip_l]").value = "left over from another model"; // not shown for this family
    $("input[name=llm]").value = "/models/qwen3.gguf";
    $("button[name=load]").click();
    expect(model.sentOfType("load_model")[0].content).toMatchObject({ llm: "/models/qwen3.gguf", vae: null, clip_l: null });
    $(".qvac-model-extras").open = false;
    model.update("status", { phase: "error", kind: "load", field: "vae", message: "model_config.vae_model_src: ..." });
    expect($("input[name=vae]").getAttribute("aria-invalid")).toBe("true");
    expect($(".qvac-model-extras").open).toBe(true);
    $("input[name=vae]").value = "/models/vae.safetensors";
    $("input[name=vae]").dispatchEvent(new Event("input"));
    expect($("input[name=vae]").hasAttribute("aria-invalid")).toBe(false);
  });
});
