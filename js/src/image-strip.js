// @ts-check
// A strip of input images (FLUX.2 reference images; a ControlNet's control image with max 1):
// add by upload or drop, remove one, clear. Bytes go to the kernel in a message; the kernel keeps the
// images and sends back thumbnails in the `slot` trait ([{name, width, height, thumb}, ...]).
import { readBytes } from "./init-image.js";
import { SLOT_ADD, SLOT_CLEAR, SLOT_REMOVE } from "./messages.js";
import { h, objectUrl, revoke } from "./util.js";

/**
 * slot: the kernel's name for these images ("ref_images", "control_image"); title: what the user sees;
 * max: how many images the strip holds.
 * @param {import("./types.js").StudioModel} model
 * @param {{slot: "ref_images" | "control_image" | "end_image", title: string, max?: number}} options
 */
export function createImageStrip(model, { slot, title, max = 8 }) {
  const input = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp", hidden: true, multiple: max > 1, name: `${slot}_file` });
  const add = h("button", { class: "qvac-btn qvac-small", name: `add_${slot}`, onclick: () => input.click() }, "Add…");
  const clear = h("button", { class: "qvac-btn qvac-small", name: `clear_${slot}`, onclick: () => model.send({ type: SLOT_CLEAR, slot }) }, "Clear");
  const thumbs = h("ul", { class: "qvac-strip-thumbs", "aria-label": title });
  const count = h("span", { class: "qvac-strip-count" });
  const el = h("div", { class: "qvac-strip", "data-slot": slot },
    h("div", { class: "qvac-strip-head" }, h("span", {}, title), count, add, clear), thumbs, input);
  /** @type {string[]} */
  let urls = [];

  /** @param {FileList | File[]} files */
  async function send(files) {
    const room = max - (model.get(slot) || []).length;
    for (const file of [...files].slice(0, Math.max(0, room))) {
      const buffer = await readBytes(file);
      model.send({ type: SLOT_ADD, slot, name: file.name, size: buffer.byteLength }, undefined, [buffer]);
    }
  }

  input.addEventListener("change", () => {
    send(input.files || []);
    input.value = "";
  });
  el.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.stopPropagation();
  });
  el.addEventListener("drop", (event) => {
    event.preventDefault();
    event.stopPropagation(); // keep the notebook from treating it as a file drop
    send((event.dataTransfer && event.dataTransfer.files) || []);
  });

  function render() {
    const items = model.get(slot) || [];
    urls.forEach(revoke);
    urls = items.map((item) => objectUrl(item.thumb, "image/jpeg"));
    thumbs.replaceChildren(...items.map((item, index) => h("li", { class: "qvac-strip-item" },
      h("img", { src: urls[index], alt: `${title} ${index + 1}: ${item.name} (${item.width}×${item.height})` }),
      h("button", {
        class: "qvac-btn qvac-small", name: `remove_${slot}`, "aria-label": `remove ${item.name}`,
        onclick: () => model.send({ type: SLOT_REMOVE, slot, index }),
      }, "×"))));
    count.textContent = items.length ? `${items.length}/${max}` : "";
    add.disabled = items.length >= max;
    clear.hidden = items.length === 0;
  }

  return { el, render, send };
}
