// The Studio's controls, bound to the `params` trait: edits are written back on change,
// and values the kernel sets (reuse seed, reuse all) are put into the fields.
import { h, uid } from "./util.js";

export const SIZE_PRESETS = [
  [512, 512],
  [768, 768],
  [1024, 1024],
  [512, 768],
  [768, 512],
  [832, 1216],
  [1216, 832],
  [1024, 576],
  [576, 1024],
];
export const CACHE_PRESETS = ["slow", "medium", "fast", "ultra"];

/** Round to the nearest multiple of 8 within [64, 4096]; non-numbers are left for the kernel to reject. */
export function snap8(value) {
  const n = Number(value);
  if (!Number.isFinite(n) || String(value).trim() === "") return value;
  return Math.min(4096, Math.max(64, Math.round(n / 8) * 8));
}

function numberOr(text, parse) {
  const trimmed = String(text).trim();
  const n = parse(trimmed);
  return trimmed === "" || Number.isNaN(n) ? trimmed : n;
}

function field(label, control, extra = {}) {
  return h("label", { class: `qvac-field ${extra.class || ""}`, title: extra.title }, h("span", { class: "qvac-field-label" }, label), control);
}

export function createForm(model) {
  const f = {}; // name -> element
  f.prompt = h("textarea", { class: "qvac-prompt", rows: 3, placeholder: "Prompt — Ctrl/Cmd+Enter generates", name: "prompt" });
  f.negative_prompt = h("textarea", { class: "qvac-negative", rows: 2, placeholder: "Negative prompt", name: "negative_prompt" });
  f.size = h("select", { name: "size" }, h("option", { value: "" }, "custom"), SIZE_PRESETS.map(([w, hgt]) => h("option", { value: `${w}x${hgt}` }, `${w}×${hgt}`)));
  f.width = h("input", { type: "number", min: 64, max: 4096, step: 8, name: "width" });
  f.height = h("input", { type: "number", min: 64, max: 4096, step: 8, name: "height" });
  f.steps = h("input", { type: "number", min: 1, max: 150, step: 1, name: "steps" });
  f.cfg_scale = h("input", { type: "number", min: 0, max: 50, step: 0.5, name: "cfg_scale" });
  f.guidance = h("input", { type: "number", min: 0, max: 50, step: 0.1, name: "guidance" });
  f.sampling_method = h("select", { name: "sampling_method" });
  f.scheduler = h("select", { name: "scheduler" });
  f.seed = h("input", { type: "text", inputmode: "numeric", name: "seed", class: "qvac-seed" });
  f.random_seed = h("input", { type: "checkbox", name: "random_seed" });
  f.batch_count = h("input", { type: "number", min: 1, max: 16, step: 1, name: "batch_count" });
  f.strength = h("input", { type: "range", min: 0.01, max: 1, step: 0.01, name: "strength" });
  f.strength_value = h("span", { class: "qvac-range-value" });
  f.upscale = h("input", { type: "checkbox", name: "upscale" });
  f.upscale_repeats = h("select", { name: "upscale_repeats" }, [1, 2, 3].map((n) => h("option", { value: String(n) }, `${n}×`)));
  f.vae_tiling = h("input", { type: "checkbox", name: "vae_tiling" });
  f.cache_preset = h("select", { name: "cache_preset" }, h("option", { value: "" }, "off"), CACHE_PRESETS.map((p) => h("option", { value: p }, p)));

  const cfgField = field("CFG scale", f.cfg_scale, { class: "qvac-cfg", title: "classifier-free guidance (SD models)" });
  const guidanceField = field("Guidance", f.guidance, { class: "qvac-guidance", title: "distilled guidance (FLUX models)" });
  const upscaleLabel = h("span", { class: "qvac-field-label" }, "Upscale");
  const el = h(
    "div",
    { class: "qvac-form" },
    field("Prompt", f.prompt, { class: "qvac-wide" }),
    field("Negative prompt", f.negative_prompt, { class: "qvac-wide" }),
    h("div", { class: "qvac-row" }, field("Size", f.size), field("Width", f.width), field("Height", f.height)),
    h("div", { class: "qvac-row" }, field("Steps", f.steps), cfgField, guidanceField, field("Batch", f.batch_count)),
    h("div", { class: "qvac-row" }, field("Sampler", f.sampling_method), field("Scheduler", f.scheduler)),
    h("div", { class: "qvac-row" }, field("Seed", f.seed), h("label", { class: "qvac-check" }, f.random_seed, "random")),
    h(
      "div",
      { class: "qvac-row" },
      h("label", { class: "qvac-check qvac-upscale", title: "run the model's paired ESRGAN upscaler on each image" }, f.upscale, upscaleLabel),
      field("Repeats", f.upscale_repeats),
      h("label", { class: "qvac-check", title: "decode in tiles: less memory for large images" }, f.vae_tiling, "VAE tiling"),
      field("Cache", f.cache_preset, { title: "reuse steps: faster, slightly different images" }),
    ),
  );

  function fillChoices(select, names, defaultName) {
    const want = [["", defaultName ? `default (${defaultName})` : "default"], ...names.map((n) => [n, n])];
    const have = [...select.options].map((o) => [o.value, o.textContent]);
    if (JSON.stringify(want) === JSON.stringify(have)) return;
    const value = select.value;
    select.replaceChildren(...want.map(([v, text]) => h("option", { value: v }, text)));
    select.value = value;
  }

  /** The form's current values as the `params` trait expects them. */
  function collect() {
    const base = model.get("params") || {};
    const width = snap8(f.width.value);
    const height = snap8(f.height.value);
    return {
      ...base,
      prompt: f.prompt.value,
      negative_prompt: f.negative_prompt.value,
      width: numberOr(width, Number),
      height: numberOr(height, Number),
      steps: numberOr(f.steps.value, Number),
      cfg_scale: numberOr(f.cfg_scale.value, Number),
      guidance: numberOr(f.guidance.value, Number),
      sampling_method: f.sampling_method.value,
      scheduler: f.scheduler.value,
      seed: String(f.seed.value).trim() || "-1",
      random_seed: f.random_seed.checked,
      batch_count: numberOr(f.batch_count.value, Number),
      strength: Number(f.strength.value),
      upscale: f.upscale.checked,
      upscale_repeats: Number(f.upscale_repeats.value),
      vae_tiling: f.vae_tiling.checked,
      cache_preset: f.cache_preset.value,
    };
  }

  function setValue(el, value) {
    if (el.ownerDocument.activeElement === el) return; // never fight the user's typing
    if (el.type === "checkbox") el.checked = Boolean(value);
    else if (String(el.value) !== String(value ?? "")) el.value = value ?? "";
  }

  /** Put the kernel's state into the fields. */
  function render() {
    const p = model.get("params") || {};
    const info = model.get("model_info") || {};
    fillChoices(f.sampling_method, model.get("samplers") || [], info.default_sampler);
    fillChoices(f.scheduler, model.get("schedulers") || [], info.default_scheduler);
    for (const name of ["prompt", "negative_prompt", "width", "height", "steps", "cfg_scale", "guidance", "sampling_method", "scheduler", "seed", "random_seed", "batch_count", "strength", "upscale", "vae_tiling", "cache_preset"]) {
      if (name in p) setValue(f[name], p[name]);
    }
    setValue(f.upscale_repeats, String(p.upscale_repeats ?? 1));
    f.size.value = SIZE_PRESETS.some(([w, hgt]) => w === Number(p.width) && hgt === Number(p.height)) ? `${p.width}x${p.height}` : "";
    f.seed.disabled = Boolean(p.random_seed);
    f.strength_value.textContent = Number(p.strength ?? 0.75).toFixed(2);
    const guidance = Boolean(info.uses_guidance);
    cfgField.hidden = guidance;
    guidanceField.hidden = !guidance;
    const canUpscale = Boolean(info.has_upscaler);
    f.upscale.disabled = !canUpscale;
    f.upscale_repeats.disabled = !canUpscale || !f.upscale.checked;
    upscaleLabel.textContent = canUpscale ? `Upscale ×${info.upscale_factor}` : "Upscale (no upscaler)";
  }

  function commit() {
    model.set("params", collect());
    model.save_changes();
  }

  el.addEventListener("change", (event) => {
    const target = event.target;
    if (target === f.size && f.size.value) {
      const [w, hgt] = f.size.value.split("x");
      f.width.value = w;
      f.height.value = hgt;
    }
    if (target === f.width || target === f.height) target.value = snap8(target.value);
    commit();
    render();
  });
  // The strength slider sits with the init image, outside this form's element.
  f.strength.addEventListener("input", () => {
    f.strength_value.textContent = Number(f.strength.value).toFixed(2);
  });
  f.strength.addEventListener("change", commit);

  return { el, fields: f, collect, render, commit, strengthRow: [f.strength, f.strength_value] };
}
