// The init image: upload or drop a file (sent to the kernel as a binary buffer), preview, strength, clear.
import { h, objectUrl, revoke } from "./util.js";

/** A File's bytes (FileReader where Blob.arrayBuffer is missing, e.g. older engines and jsdom). */
export function readBytes(file) {
  if (typeof file.arrayBuffer === "function") return file.arrayBuffer();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsArrayBuffer(file);
  });
}

// Parameters that only matter with an init image: their controls sit here, enabled once an image is set.
export const INIT_PARAMS = ["strength"];

/** form: the Studio's form, whose controls for INIT_PARAMS (built from the schema) are placed here. */
export function createInitImage(model, form) {
  const input = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp", hidden: true, name: "init_file" });
  const preview = h("img", { class: "qvac-init-preview", alt: "init image" });
  const name = h("span", { class: "qvac-init-name" });
  const note = h("div", { class: "qvac-init-note", "aria-live": "polite" });
  const clear = h("button", { class: "qvac-btn qvac-small", name: "clear_init", onclick: () => model.send({ type: "clear_init" }) }, "Clear");
  const pick = h("button", { class: "qvac-btn qvac-small", name: "pick_init", onclick: () => input.click() }, "Upload…");
  const zone = h(
    "div",
    { class: "qvac-drop", title: "drop an image here" },
    preview,
    h("div", { class: "qvac-drop-text" }, h("span", {}, "Init image: drop a PNG/JPEG or "), pick, name, clear),
  );
  const strength = h("div", { class: "qvac-strength" });
  const el = h("div", { class: "qvac-init" }, zone, note, strength, input);
  let url = "";

  async function send(file) {
    if (!file) return;
    const buffer = await readBytes(file);
    model.send({ type: "init_image", name: file.name, size: buffer.byteLength }, undefined, [buffer]);
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
    revoke(url);
    url = has ? objectUrl(init.thumb, "image/jpeg") : "";
    preview.src = url;
    preview.hidden = !has;
    name.textContent = has ? `${init.name} (${init.width}×${init.height})` : "";
    clear.hidden = !has;
    note.textContent = has && init.note ? init.note : "";
    el.classList.toggle("qvac-has-init", has);
    for (const param of INIT_PARAMS) {
      const control = form.take(param);
      if (!control) continue;
      if (control.field.parentNode !== strength) strength.append(control.field);
      control.input.disabled = !has;
    }
  }

  return { el, render, send, input, zone };
}
