// Choosing the model: load a catalogue name or a path (optionally with an upscaler), or pick a loaded one.
import { h, uid } from "./util.js";

export function createModelBar(model) {
  const listId = uid("models");
  const upListId = uid("upscalers");
  const source = h("input", { type: "text", class: "qvac-model-source", name: "model_source", list: listId, placeholder: "catalogue name or model file path" });
  const upscaler = h("input", { type: "text", class: "qvac-model-upscaler", name: "upscaler_source", list: upListId, placeholder: "upscaler (optional)" });
  const catalogList = h("datalist", { id: listId });
  const upscalerList = h("datalist", { id: upListId });
  const load = h("button", { class: "qvac-btn", name: "load" }, "Load");
  const loaded = h("select", { class: "qvac-loaded", name: "loaded", title: "loaded models" });
  const info = h("span", { class: "qvac-model-info" });

  const doLoad = () => {
    const src = source.value.trim();
    if (!src) return;
    model.send({ type: "load_model", source: src, upscaler: upscaler.value.trim() || null });
  };
  load.addEventListener("click", doLoad);
  source.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.ctrlKey && !event.metaKey) doLoad();
  });
  loaded.addEventListener("change", () => {
    if (loaded.value) model.send({ type: "select_model", model_id: loaded.value });
  });

  const el = h(
    "div",
    { class: "qvac-model-bar" },
    h("span", { class: "qvac-field-label" }, "Model"),
    loaded,
    source,
    upscaler,
    load,
    catalogList,
    upscalerList,
    info,
  );

  function render() {
    const catalog = model.get("catalog") || {};
    const fill = (list, names) => {
      if (list.children.length !== names.length) list.replaceChildren(...names.map((n) => h("option", { value: n })));
    };
    fill(catalogList, catalog.diffusion || []);
    fill(upscalerList, catalog.upscaler || []);
    const ids = model.get("loaded") || [];
    const current = model.get("current_model") || "";
    const options = [["", ids.length ? "choose a loaded model…" : "no model loaded"], ...ids.map((id) => [id, id])];
    loaded.replaceChildren(...options.map(([v, text]) => h("option", { value: v }, text)));
    loaded.value = current;
    loaded.disabled = ids.length === 0;
    const m = model.get("model_info") || {};
    info.textContent = current
      ? [m.family, m.uses_guidance ? "guidance" : "cfg", m.has_upscaler ? `upscaler ×${m.upscale_factor}` : null].filter(Boolean).join(" · ")
      : "";
    load.disabled = Boolean(model.get("busy"));
  }

  return { el, render, source, upscaler, load, loaded };
}
