// @ts-check
// The LoRA picker: the LoRA files the kernel found (a folder, the download cache), each with an
// on/off switch and a weight slider. The choice is the widget's `lora` trait: [[source, weight], ...],
// which the kernel passes to diffusion(lora=...).
import { LORA_REFRESH } from "./messages.js";
import { h } from "./util.js";

export const WEIGHT_MIN = -2;
export const WEIGHT_MAX = 2;
export const WEIGHT_STEP = 0.05;

/**
 * model traits: `lora_files` ([{name, source}], from the kernel), `lora_folders` (where it looks) and `lora`
 * (the current choice). A row per file; changing a switch or a weight writes `lora` back (save_changes).
 * Opening the section, or "Look again", has the kernel look for files added since.
 * @param {import("./types.js").StudioModel} model
 */
export function createLoraPicker(model) {
  const list = h("div", { class: "qvac-lora-list", role: "group", "aria-label": "LoRA files" });
  const emptyText = h("span", {});
  const again = h("button", { class: "qvac-btn qvac-small", name: "lora_refresh", type: "button" }, "Look again");
  const empty = h("div", { class: "qvac-lora-empty" }, emptyText, " ", again);
  const el = h("details", { class: "qvac-lora" }, h("summary", {}, "LoRA"), list, empty);
  const lookAgain = () => model.send({ type: LORA_REFRESH });
  again.addEventListener("click", lookAgain);
  el.addEventListener("toggle", () => {
    if (el.open) lookAgain();
  });

  /** The LoRAs switched on: source -> weight. */
  function chosen() {
    /** @type {Map<string, number>} */
    const out = new Map();
    for (const item of model.get("lora") || []) {
      if (Array.isArray(item) && item.length === 2) out.set(String(item[0]), Number(item[1]));
    }
    return out;
  }

  /** @param {Map<string, number>} next */
  function write(next) {
    model.set("lora", [...next.entries()].map(([source, weight]) => [source, weight]));
    model.save_changes();
  }

  /**
   * @param {{name: string, source: string}} file
   * @param {Map<string, number>} current
   */
  function row(file, current) {
    const on = current.has(file.source);
    const weight = on ? current.get(file.source) : 1;
    const id = `qvac-lora-${file.source.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const toggle = h("input", { type: "checkbox", id, name: "lora_on", checked: on, value: file.source });
    const slider = h("input", {
      type: "range", name: "lora_weight", min: WEIGHT_MIN, max: WEIGHT_MAX, step: WEIGHT_STEP,
      value: String(weight), disabled: !on, "aria-label": `weight of ${file.name}`,
    });
    const shown = h("span", { class: "qvac-lora-weight" }, weight.toFixed(2));
    toggle.addEventListener("change", () => {
      const next = chosen();
      if (toggle.checked) next.set(file.source, Number(slider.value));
      else next.delete(file.source);
      write(next);
    });
    slider.addEventListener("input", () => {
      shown.textContent = Number(slider.value).toFixed(2);
    });
    slider.addEventListener("change", () => {
      const next = chosen();
      next.set(file.source, Number(slider.value));
      write(next);
    });
    return h("div", { class: "qvac-lora-row" }, toggle, h("label", { for: id, title: file.source }, file.name), slider, shown);
  }

  function render() {
    const files = model.get("lora_files") || [];
    const current = chosen();
    list.replaceChildren(...files.map((file) => row(file, current)));
    empty.hidden = files.length > 0;
    const folders = model.get("lora_folders") || [];
    emptyText.textContent = `No LoRA files found${folders.length ? ` in ${folders.join(", ")}` : ""}: put .safetensors, .gguf, .ckpt or .pt files there.`;
    const count = [...current.keys()].filter((s) => files.some((f) => f.source === s)).length;
    el.querySelector("summary").textContent = count ? `LoRA (${count} on)` : "LoRA";
  }

  return { el, render };
}
