// @ts-check
// The init image: upload or drop a file (sent to the kernel as a binary buffer), preview, strength, clear.
// What it is called and which parameters sit beside it follow the model's family (the kernel's
// `form_rules`: init_label "Image to edit", "Init image", "Condition image"; "" = the family takes none).
import { CLEAR_INIT, INIT_IMAGE } from "./messages.js";
import { h, objectUrl, revoke } from "./util.js";

/**
 * A File's bytes (FileReader where Blob.arrayBuffer is missing, e.g. older engines and jsdom).
 * @param {Blob} file
 * @returns {Promise<ArrayBuffer>}
 */
export function readBytes(file) {
  if (typeof file.arrayBuffer === "function") return file.arrayBuffer();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(/** @type {ArrayBuffer} */ (reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsArrayBuffer(file);
  });
}

// Parameters a gallery image only carries meaningfully when it was made from an init image.
export const INIT_PARAMS = ["strength"];
const DEFAULT_LABEL = "Init image";

/**
 * form: the Studio's form; the controls of the family's init parameters (form_rules.init_params, built
 * from the schema) are placed here, and the form shows them once an image is set.
 * @param {import("./types.js").StudioModel} model
 * @param {import("./form.js").Form} form
 */
export function createInitImage(model, form) {
  const input = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp", hidden: true, name: "init_file" });
  const preview = h("img", { class: "qvac-init-preview", alt: "init image" });
  const label = h("span", { class: "qvac-init-label" }, DEFAULT_LABEL);
  const name = h("span", { class: "qvac-init-name" });
  const note = h("div", { class: "qvac-init-note", "aria-live": "polite" });
  const clear = h("button", { class: "qvac-btn qvac-small", name: "clear_init", onclick: () => model.send({ type: CLEAR_INIT }) }, "Clear");
  const pick = h("button", { class: "qvac-btn qvac-small", name: "pick_init", onclick: () => input.click() }, "Upload…");
  const zone = h(
    "div",
    { class: "qvac-drop", title: "drop an image here" },
    preview,
    h("div", { class: "qvac-drop-text" }, h("span", {}, label, ": drop a PNG/JPEG or"), pick, name, clear),
  );
  const strength = h("div", { class: "qvac-strength" });
  const el = h("div", { class: "qvac-init" }, zone, note, strength, input);
  let url = "";

  /** @param {File | null | undefined} file */
  async function send(file) {
    if (!file) return;
    const buffer = await readBytes(file);
    model.send({ type: INIT_IMAGE, name: file.name, size: buffer.byteLength }, undefined, [buffer]);
  }

  input.addEventListener("change", () => {
    send(input.files && input.files[0]);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.stopPropagation();
    zone.classList.add("qvac-dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("qvac-dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    event.stopPropagation(); // keep the notebook from treating it as a file drop
    zone.classList.remove("qvac-dragging");
    const file = event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files[0];
    send(file);
  });

  function render() {
    const init = model.get("init_image") || {};
    const has = Boolean(init.thumb);
    const rules = model.get("form_rules") || {};
    const use = rules.init_label ?? DEFAULT_LABEL;
    el.hidden = !use; // the family takes no init image
    label.textContent = use || DEFAULT_LABEL;
    preview.alt = (use || DEFAULT_LABEL).toLowerCase();
    zone.title = `drop the ${(use || DEFAULT_LABEL).toLowerCase()} here`;
    input.setAttribute("aria-label", use || DEFAULT_LABEL);
    revoke(url);
    url = has ? objectUrl(init.thumb, "image/jpeg") : "";
    preview.src = url;
    preview.hidden = !has;
    name.textContent = has ? `${init.name} (${init.width}×${init.height})` : "";
    clear.hidden = !has;
    note.textContent = has && init.note ? init.note : "";
    el.classList.toggle("qvac-has-init", has);
    // Placed here once; the form hides them for a family that does not use them, or without an image.
    for (const param of rules.init_params || []) {
      const control = form.take(param);
      if (control && control.field.parentNode !== strength) strength.append(control.field);
    }
  }

  return { el, render, send, input, zone };
}
