// @ts-check
// Choosing the model: load a catalogue name or a path (with companions, prediction and an optional
// upscaler), or pick a loaded one.
// The companion fields are the kernel's (catalog.companion_fields: every companion the family table
// names); which ones a model needs comes from the kernel too (`source_info`, asked for with a
// "source_info" message when the source changes): required ones say so, the others are optional.
import { LOAD_MODEL, SELECT_MODEL, SOURCE_INFO } from "./messages.js";
import { h, uid } from "./util.js";

/**
 * Whether Enter may load `text`: a whole catalogue name, or something shaped like a path or URL.
 * @param {string} text
 * @param {string[]} names
 */
export function completeSource(text, names) {
  const value = (text || "").trim();
  if (!value) return false;
  return names.includes(value) || /[/\\.:]/.test(value);
}

/**
 * What a companion field says about itself for the model being loaded.
 * @param {string} key model_config key of the field
 * @param {Record<string, string>} needs source_info.companions: key -> "required" | "one of" | "optional"
 * @param {Record<string, string>} labels key -> the field's label
 * @returns {{shown: boolean, need: string, note: string}} note: the words after the label
 */
export function companionNeed(key, needs, labels) {
  const need = needs[key];
  if (!need) return { shown: false, need: "", note: "" };
  if (need === "one of") {
    const others = Object.keys(needs).filter((k) => k !== key && needs[k] === "one of").map((k) => labels[k] || k);
    return { shown: true, need, note: others.length ? `required: this or ${others.join(" or ")}` : "required" };
  }
  return { shown: true, need, note: need };
}

/** @param {string} text @param {HTMLElement} control */
function labelled(text, control) {
  const note = h("span", { class: "qvac-need" });
  const el = h("label", { class: "qvac-bar-field" }, h("span", { class: "qvac-field-label" }, h("span", {}, text), note), control);
  return { el, note };
}

/** @param {import("./types.js").StudioModel} model */
export function createModelBar(model) {
  const listId = uid("models");
  const upListId = uid("upscalers");
  const source = h("input", { type: "text", class: "qvac-model-source", name: "model_source", list: listId, placeholder: "catalogue name or model file path", "aria-label": "Model to load: catalogue name or file path" });
  const upscaler = h("input", { type: "text", class: "qvac-model-upscaler", name: "upscaler_source", list: upListId, placeholder: "upscaler (optional)", "aria-label": "Upscaler to load with the model (optional)" });
  const catalogList = h("datalist", { id: listId });
  const upscalerList = h("datalist", { id: upListId });
  const prediction = h("select", { name: "prediction", "aria-label": "Prediction type" });
  const fieldsRow = h("div", { class: "qvac-row qvac-companions" });
  const forFamily = h("div", { class: "qvac-companions-for" });
  const extras = h("details", { class: "qvac-model-extras" }, h("summary", {}, "Companions & prediction"), forFamily, fieldsRow, h("div", { class: "qvac-row" }, labelled("Prediction", prediction).el));
  const load = h("button", { class: "qvac-btn", name: "load" }, "Load");
  const loaded = h("select", { class: "qvac-loaded", name: "loaded", title: "loaded models", "aria-label": "Loaded models" });
  const info = h("span", { class: "qvac-model-info" });
  /** @type {{field: string, key: string, label: string, input: HTMLInputElement, list: HTMLElement, el: HTMLElement, note: HTMLElement}[]} */
  let companions = [];
  /** @type {import("./types.js").CompanionField[] | null} */
  let builtFrom = null;
  let asked = ""; // the source whose companions the kernel was last asked for
  let shownFor = ""; // what the section was last opened for (source, family known, load error)

  const catalog = () => model.get("catalog") || {};

  /** One field per companion the kernel lists (built again when that list changes). */
  function buildCompanions() {
    const fields = catalog().companion_fields || [];
    if (builtFrom === fields) return;
    builtFrom = fields;
    const kept = new Map(companions.map((c) => [c.field, c.input.value]));
    companions = fields.map(({ field, key, label, names }) => {
      const listIdC = uid(field);
      const input = h("input", { type: "text", class: "qvac-model-companion", name: field, list: listIdC, placeholder: "file or catalogue name", "aria-label": `${label} file or catalogue name` });
      input.value = kept.get(field) || "";
      input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
      const list = h("datalist", { id: listIdC }, (names || []).map((n) => h("option", { value: n })));
      const { el, note } = labelled(label, input);
      return { field, key, label, input, list, el, note };
    });
    fieldsRow.replaceChildren(...companions.flatMap((c) => [c.el, c.list]));
  }

  const doLoad = () => {
    const src = source.value.trim();
    if (!src) return;
    /** @type {import("./types.js").OutMessage<typeof LOAD_MODEL>} */
    const message = { type: LOAD_MODEL, source: src, upscaler: upscaler.value.trim() || null, prediction: prediction.value || null };
    for (const c of companions) message[c.field] = c.el.hidden ? null : c.input.value.trim() || null;
    model.send(message);
  };
  load.addEventListener("click", doLoad);
  source.addEventListener("keydown", (event) => {
    // Enter loads only a whole name (the datalist suggests as one types; a half-typed name is not loaded).
    if (event.key === "Enter" && !event.ctrlKey && !event.metaKey && completeSource(source.value, catalog().diffusion || [])) doLoad();
  });
  // A whole catalogue name, or a path once typed (change), asks the kernel what the model needs.
  source.addEventListener("input", () => {
    if ((catalog().diffusion || []).includes(source.value.trim())) ask();
    render();
  });
  source.addEventListener("change", () => {
    ask();
    render();
  });
  loaded.addEventListener("change", () => {
    if (loaded.value) model.send({ type: SELECT_MODEL, model_id: loaded.value });
  });

  function ask() {
    const value = source.value.trim();
    if (value === asked) return;
    asked = value;
    model.send({ type: SOURCE_INFO, source: value });
  }

  /** The companion fields for the source being loaded: its family's, required ones first, saying what they are. */
  function showCompanions() {
    const value = source.value.trim();
    const sourceInfo = model.get("source_info") || {};
    const known = sourceInfo.source === value && value !== "";
    const needs = (known && sourceInfo.companions) || Object.fromEntries(companions.map((c) => [c.key, "optional"]));
    const brought = (catalog().companions || {})[value] || {};
    const labels = Object.fromEntries(companions.map((c) => [c.key, c.label]));
    const order = { required: 0, "one of": 1, optional: 2 };
    let missing = false;
    for (const c of companions) {
      const { shown, need, note } = companionNeed(c.key, needs, labels);
      c.el.hidden = !shown;
      c.el.dataset.need = need;
      c.el.style.order = String(order[need] ?? 3);
      c.note.textContent = shown ? ` · ${brought[c.key] ? "from the catalogue" : note}` : "";
      c.input.required = need === "required" && !brought[c.key];
      c.input.placeholder = brought[c.key] ? `from the catalogue: ${brought[c.key]}` : "file or catalogue name";
      if (c.input.required && !c.input.value.trim()) missing = true;
    }
    forFamily.textContent = known && sourceInfo.label ? `${sourceInfo.label} model: what it loads with` : "";
    // A load that failed over a companion marks its field. The section opens once for each new answer
    // that needs something there (or brings companions), and for each such failure; the user may close it.
    const status = model.get("status") || {};
    const flagged = status.phase === "error" && status.kind === "load" ? status.field || "" : "";
    const reason = flagged || missing || Object.keys(brought).length ? `${value}|${known}|${flagged && status.message}` : "";
    if (reason && reason !== shownFor) {
      extras.open = true;
      for (const c of companions) if (c.field === flagged) c.input.setAttribute("aria-invalid", "true");
    }
    shownFor = reason;
  }

  const el = h("div", { class: "qvac-model-bar" }, h("span", { class: "qvac-field-label" }, "Model"), loaded, source, upscaler, load, catalogList, upscalerList, info, extras);

  function render() {
    buildCompanions();
    const cat = catalog();
    /** @param {HTMLDataListElement} list @param {string[]} names */
    const fill = (list, names) => {
      if (list.children.length !== names.length) list.replaceChildren(...names.map((n) => h("option", { value: n })));
    };
    fill(catalogList, cat.diffusion || []);
    fill(upscalerList, cat.upscaler || []);
    const predictions = cat.predictions || ["auto"];
    if (prediction.options.length !== predictions.length) {
      prediction.replaceChildren(...predictions.map((p) => h("option", { value: p === "auto" ? "" : p }, p)));
    }
    showCompanions();
    const ids = model.get("loaded") || [];
    const current = model.get("current_model") || "";
    const options = [["", ids.length ? "choose a loaded model…" : "no model loaded"], ...ids.map((id) => [id, id])];
    loaded.replaceChildren(...options.map(([v, text]) => h("option", { value: v }, text)));
    loaded.value = current;
    loaded.disabled = ids.length === 0;
    const m = model.get("model_info") || {};
    const prediction_ = m.prediction && m.prediction !== "auto" ? m.prediction : null;
    info.textContent = current
      ? [m.label || m.family, m.uses_guidance ? "guidance" : "cfg", prediction_, m.has_upscaler ? `upscaler ×${m.upscale_factor}` : null].filter(Boolean).join(" · ")
      : "";
    load.disabled = Boolean(model.get("busy"));
  }

  return { el, render, source, upscaler, load, loaded, prediction, companions: () => companions };
}
