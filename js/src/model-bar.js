// Choosing the model: load a catalogue name or a path (with companions, prediction and an optional
// upscaler), or pick a loaded one.
import { h, uid } from "./util.js";

const COMPANION_FIELDS = [
  // [message field, model_config key, label]
  ["llm", "llm_model_src", "Text encoder (LLM)"],
  ["vae", "vae_model_src", "VAE"],
];

/** Whether Enter may load `text`: a whole catalogue name, or something shaped like a path or URL. */
export function completeSource(text, names) {
  const value = (text || "").trim();
  if (!value) return false;
  return names.includes(value) || /[/\\.:]/.test(value);
}

function labelled(text, control) {
  return h("label", { class: "qvac-bar-field" }, h("span", { class: "qvac-field-label" }, text), control);
}

export function createModelBar(model) {
  const listId = uid("models");
  const upListId = uid("upscalers");
  const source = h("input", { type: "text", class: "qvac-model-source", name: "model_source", list: listId, placeholder: "catalogue name or model file path", "aria-label": "Model to load: catalogue name or file path" });
  const upscaler = h("input", { type: "text", class: "qvac-model-upscaler", name: "upscaler_source", list: upListId, placeholder: "upscaler (optional)", "aria-label": "Upscaler to load with the model (optional)" });
  const catalogList = h("datalist", { id: listId });
  const upscalerList = h("datalist", { id: upListId });
  const companions = COMPANION_FIELDS.map(([field, key, label]) => {
    const listIdC = uid(field);
    const input = h("input", { type: "text", class: "qvac-model-companion", name: field, list: listIdC, placeholder: "optional", "aria-label": `${label} file or catalogue name` });
    return { field, key, label, input, list: h("datalist", { id: listIdC }), el: null };
  });
  for (const c of companions) c.el = labelled(c.label, c.input);
  const prediction = h("select", { name: "prediction", "aria-label": "Prediction type" });
  const extras = h("details", { class: "qvac-model-extras" }, h("summary", {}, "Companions & prediction"), h("div", { class: "qvac-row" }, companions.flatMap((c) => [c.el, c.list]), labelled("Prediction", prediction)));
  const load = h("button", { class: "qvac-btn", name: "load" }, "Load");
  const loaded = h("select", { class: "qvac-loaded", name: "loaded", title: "loaded models", "aria-label": "Loaded models" });
  const info = h("span", { class: "qvac-model-info" });

  const catalog = () => model.get("catalog") || {};

  const doLoad = () => {
    const src = source.value.trim();
    if (!src) return;
    const message = { type: "load_model", source: src, upscaler: upscaler.value.trim() || null, prediction: prediction.value || null };
    for (const c of companions) message[c.field] = c.input.value.trim() || null;
    model.send(message);
  };
  load.addEventListener("click", doLoad);
  source.addEventListener("keydown", (event) => {
    // Enter loads only a whole name (the datalist suggests as one types; a half-typed name is not loaded).
    if (event.key === "Enter" && !event.ctrlKey && !event.metaKey && completeSource(source.value, catalog().diffusion || [])) doLoad();
  });
  // A catalogue name brings its companions: show which, as the fields' placeholders.
  source.addEventListener("input", showCompanions);
  loaded.addEventListener("change", () => {
    if (loaded.value) model.send({ type: "select_model", model_id: loaded.value });
  });

  function showCompanions() {
    const brought = (catalog().companions || {})[source.value.trim()] || {};
    for (const c of companions) c.input.placeholder = brought[c.key] ? `from the catalogue: ${brought[c.key]}` : "optional";
    if (Object.keys(brought).length) extras.open = true;
  }

  const el = h("div", { class: "qvac-model-bar" }, h("span", { class: "qvac-field-label" }, "Model"), loaded, source, upscaler, load, catalogList, upscalerList, info, extras);

  function render() {
    const cat = catalog();
    const fill = (list, names) => {
      if (list.children.length !== names.length) list.replaceChildren(...names.map((n) => h("option", { value: n })));
    };
    fill(catalogList, cat.diffusion || []);
    fill(upscalerList, cat.upscaler || []);
    for (const c of companions) fill(c.list, cat[c.field] || []);
    const predictions = cat.predictions || ["auto"];
    if (prediction.options.length !== predictions.length) {
      prediction.replaceChildren(...predictions.map((p) => h("option", { value: p === "auto" ? "" : p }, p)));
    }
    const ids = model.get("loaded") || [];
    const current = model.get("current_model") || "";
    const options = [["", ids.length ? "choose a loaded model…" : "no model loaded"], ...ids.map((id) => [id, id])];
    loaded.replaceChildren(...options.map(([v, text]) => h("option", { value: v }, text)));
    loaded.value = current;
    loaded.disabled = ids.length === 0;
    const m = model.get("model_info") || {};
    const prediction_ = m.prediction && m.prediction !== "auto" ? m.prediction : null;
    info.textContent = current
      ? [m.family, m.uses_guidance ? "guidance" : "cfg", prediction_, m.has_upscaler ? `upscaler ×${m.upscale_factor}` : null].filter(Boolean).join(" · ")
      : "";
    load.disabled = Boolean(model.get("busy"));
  }

  return { el, render, source, upscaler, load, loaded, prediction, companions };
}
