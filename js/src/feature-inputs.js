// @ts-check
// The Studio's inputs beyond the form: LoRA picker, FLUX.2 reference images, a control image and the
// inpainting mask painted over the init image. The kernel says which apply (`inputs_shown`).
import "./features.css";
import { createImageStrip } from "./image-strip.js";
import { createLoraPicker } from "./lora-picker.js";
import { createMaskPainter } from "./mask-painter.js";
import { MASK, MASK_CLEAR } from "./messages.js";
import { h, objectUrl, revoke } from "./util.js";

/** @param {import("./types.js").StudioModel} model */
export function createFeatureInputs(model) {
  const lora = createLoraPicker(model);
  const refs = createImageStrip(model, { slot: "ref_images", title: "Reference images", max: 8 });
  const control = createImageStrip(model, { slot: "control_image", title: "Control image", max: 1 });
  const endImage = createImageStrip(model, { slot: "end_image", title: "Last frame (first/last-frame video)", max: 1 });
  const maskBox = h("details", { class: "qvac-mask-box" }, h("summary", {}, "Inpainting mask"));
  const el = h("div", { class: "qvac-features" }, lora.el, refs.el, control.el, endImage.el, maskBox);
  /** @type {ReturnType<typeof createMaskPainter> | null} */
  let painter = null;
  let paintedFor = "";
  let thumbUrl = "";

  /** @param {import("./mask-painter.js").Mask} mask */
  function sendMask(mask) {
    if (mask.painted()) {
      const copy = mask.data.slice(); // the painter keeps drawing into its own buffer
      model.send({ type: MASK, width: mask.width, height: mask.height }, undefined, [copy.buffer]);
    } else {
      model.send({ type: MASK_CLEAR });
    }
  }

  /** A new painter for each new init image (the mask is painted at that image's size). @param {boolean} show */
  function renderMask(show) {
    const init = model.get("init_image") || {};
    const key = init.thumb ? `${init.name}:${init.width}x${init.height}` : "";
    maskBox.hidden = !show || !key;
    if (key === paintedFor) return;
    paintedFor = key;
    if (painter) painter.el.remove();
    painter = null;
    revoke(thumbUrl);
    thumbUrl = "";
    if (!key) return;
    thumbUrl = objectUrl(init.thumb, "image/jpeg");
    painter = createMaskPainter({ width: init.width, height: init.height, imageUrl: thumbUrl, onChange: sendMask });
    maskBox.append(painter.el);
    if ((model.get("mask") || {}).width) model.send({ type: MASK_CLEAR }); // a mask painted for the old image
  }

  function render() {
    const shown = model.get("inputs_shown") || {};
    lora.el.hidden = !shown.lora;
    refs.el.hidden = !shown.ref_images;
    control.el.hidden = !shown.control_image;
    endImage.el.hidden = !shown.end_image;
    lora.render();
    refs.render();
    control.render();
    endImage.render();
    renderMask(Boolean(shown.mask));
  }

  /** @type {(keyof import("./types.js").StudioTraits)[]} the traits render() shows */
  const traits = ["inputs_shown", "lora_files", "lora_folders", "lora", "ref_images", "control_image", "end_image", "init_image", "mask"];
  return { el, render, traits, painter: () => painter };
}
