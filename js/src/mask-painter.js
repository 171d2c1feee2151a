// @ts-check
// The inpainting mask painter: brush and eraser over the init image, size, invert, clear.
// The mask is kept as one byte a pixel at the init image's size (255 = repaint, 0 = keep) and sent
// to the kernel as those raw bytes: the kernel makes the PNG, so no canvas encoder is needed and the
// painting logic runs (and is tested) without a canvas.
import { h } from "./util.js";

export const MIN_BRUSH = 1;
export const MAX_BRUSH = 256;

/**
 * A width x height mask of zeros, with disc stamping along strokes.
 * @param {number} width
 * @param {number} height
 */
export function createMask(width, height) {
  const data = new Uint8Array(width * height);

  /**
   * Set every pixel within `radius` of (cx, cy) to `value`.
   * @param {number} cx
   * @param {number} cy
   * @param {number} radius
   * @param {number} value
   */
  function stamp(cx, cy, radius, value) {
    const r2 = radius * radius;
    const x0 = Math.max(0, Math.floor(cx - radius));
    const x1 = Math.min(width - 1, Math.ceil(cx + radius));
    const y0 = Math.max(0, Math.floor(cy - radius));
    const y1 = Math.min(height - 1, Math.ceil(cy + radius));
    for (let y = y0; y <= y1; y++) {
      const dy = y + 0.5 - cy;
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx;
        if (dx * dx + dy * dy <= r2) data[y * width + x] = value;
      }
    }
  }

  /**
   * A stroke segment: discs close enough together that the line has no gaps.
   * @param {number} ax
   * @param {number} ay
   * @param {number} bx
   * @param {number} by
   * @param {number} radius
   * @param {number} value
   */
  function line(ax, ay, bx, by, radius, value) {
    const length = Math.hypot(bx - ax, by - ay);
    const steps = Math.max(1, Math.ceil(length / Math.max(0.5, radius / 2)));
    for (let i = 0; i <= steps; i++) {
      const t = i / steps;
      stamp(ax + (bx - ax) * t, ay + (by - ay) * t, radius, value);
    }
  }

  return {
    width,
    height,
    data,
    stamp,
    line,
    clear: () => data.fill(0),
    invert: () => {
      for (let i = 0; i < data.length; i++) data[i] = 255 - data[i];
    },
    painted: () => data.some((v) => v !== 0),
  };
}

/** @typedef {ReturnType<typeof createMask>} Mask */

/**
 * The painter over an image of `width` x `height` pixels.
 * onChange(mask) runs when a stroke ends or the mask is cleared/inverted (mask.painted() says if any).
 * @param {{width: number, height: number, imageUrl?: string, onChange?: (mask: Mask) => void}} options
 */
export function createMaskPainter({ width, height, imageUrl = "", onChange = () => {} }) {
  const mask = createMask(width, height);
  let tool = "brush";
  let size = Math.max(MIN_BRUSH, Math.round(Math.min(width, height) / 12));
  /** @type {[number, number] | null} */
  let last = null;

  const image = h("img", { class: "qvac-mask-image", alt: "init image under the mask", src: imageUrl });
  const canvas = h("canvas", { class: "qvac-mask-canvas", width, height, "aria-label": "mask: paint where to repaint" });
  const brush = h("button", { class: "qvac-btn qvac-small", name: "mask_brush", "aria-pressed": "true", onclick: () => setTool("brush") }, "Brush");
  const eraser = h("button", { class: "qvac-btn qvac-small", name: "mask_eraser", "aria-pressed": "false", onclick: () => setTool("eraser") }, "Eraser");
  const sizeInput = h("input", { type: "range", name: "mask_size", min: MIN_BRUSH, max: MAX_BRUSH, value: String(size), "aria-label": "brush size in pixels" });
  const sizeLabel = h("span", { class: "qvac-mask-size" }, `${size} px`);
  const invert = h("button", { class: "qvac-btn qvac-small", name: "mask_invert", onclick: () => { mask.invert(); changed(); } }, "Invert");
  const clear = h("button", { class: "qvac-btn qvac-small", name: "mask_clear", onclick: () => { mask.clear(); changed(); } }, "Clear mask");
  const stage = h("div", { class: "qvac-mask-stage" }, image, canvas);
  const tools = h("div", { class: "qvac-mask-tools", role: "toolbar", "aria-label": "mask tools" }, brush, eraser, sizeInput, sizeLabel, invert, clear);
  const el = h("div", { class: "qvac-mask" }, stage, tools);

  sizeInput.addEventListener("input", () => setSize(Number(sizeInput.value)));

  /** @param {string} name "brush" or "eraser" */
  function setTool(name) {
    tool = name === "eraser" ? "eraser" : "brush";
    brush.setAttribute("aria-pressed", String(tool === "brush"));
    eraser.setAttribute("aria-pressed", String(tool === "eraser"));
  }

  /** @param {number} px */
  function setSize(px) {
    size = Math.min(MAX_BRUSH, Math.max(MIN_BRUSH, Math.round(px) || MIN_BRUSH));
    sizeInput.value = String(size);
    sizeLabel.textContent = `${size} px`;
  }

  /**
   * The pointer's position in mask pixels (the canvas may be shown scaled).
   * @param {PointerEvent} event
   * @returns {[number, number]}
   */
  function toMask(event) {
    const rect = canvas.getBoundingClientRect();
    const sx = rect.width ? width / rect.width : 1;
    const sy = rect.height ? height / rect.height : 1;
    return [(event.clientX - rect.left) * sx, (event.clientY - rect.top) * sy];
  }

  /** @param {[number, number]} point */
  function paintTo(point) {
    const value = tool === "brush" ? 255 : 0;
    const [x, y] = point;
    if (last) mask.line(last[0], last[1], x, y, size / 2, value);
    else mask.stamp(x, y, size / 2, value);
    last = point;
    draw();
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    if (canvas.setPointerCapture && event.pointerId !== undefined) {
      try {
        canvas.setPointerCapture(event.pointerId);
      } catch {
        // a synthetic event has no active pointer to capture
      }
    }
    last = null;
    paintTo(toMask(event));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (last) paintTo(toMask(event));
  });
  for (const name of ["pointerup", "pointercancel", "pointerleave"]) {
    canvas.addEventListener(name, () => {
      if (!last) return;
      last = null;
      changed();
    });
  }

  function changed() {
    draw();
    onChange(mask);
  }

  /** Show the mask as a translucent red overlay (jsdom has no 2D context: nothing to draw there). */
  function draw() {
    const ctx = canvas.getContext ? canvas.getContext("2d") : null;
    if (!ctx || typeof ctx.createImageData !== "function") return;
    const img = ctx.createImageData(width, height);
    for (let i = 0; i < mask.data.length; i++) {
      const on = mask.data[i] !== 0;
      img.data[i * 4] = 255;
      img.data[i * 4 + 3] = on ? 140 : 0;
    }
    ctx.putImageData(img, 0, 0);
  }

  return { el, mask, canvas, setTool, setSize, tool: () => tool, size: () => size, draw };
}
