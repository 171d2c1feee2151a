// The Studio's feature inputs: shown per model, and the painted mask goes to the kernel as raw bytes.
import { beforeAll, describe, expect, it } from "vitest";
import { createFeatureInputs } from "../src/feature-inputs.js";
import { mockModel } from "./mock-model.js";

beforeAll(() => {
  HTMLCanvasElement.prototype.getContext = () => null; // jsdom has no 2D context
});

const thumb = new Uint8Array([0xff, 0xd8, 0xff]);

function setup(state = {}) {
  const model = mockModel({ inputs_shown: {}, lora_files: [], lora: [], ref_images: [], control_image: [],
    init_image: {}, mask: {}, ...state });
  const inputs = createFeatureInputs(model);
  for (const trait of inputs.traits) model.on(`change:${trait}`, inputs.render);
  inputs.render();
  return { model, inputs, $: (sel) => inputs.el.querySelector(sel) };
}

function stroke(canvas, x, y) {
  canvas.getBoundingClientRect = () => ({ left: 0, top: 0, width: 8, height: 4 });
  for (const type of ["pointerdown", "pointerup"]) {
    const event = new Event(type, { bubbles: true, cancelable: true });
    Object.assign(event, { clientX: x, clientY: y, pointerId: 1 });
    canvas.dispatchEvent(event);
  }
}

describe("feature inputs", () => {
  it("shows only the inputs the kernel says apply", () => {
    const { model, $ } = setup();
    expect($(".qvac-lora").hidden).toBe(true);
    expect($("[data-slot=ref_images]").hidden).toBe(true);
    model.update("inputs_shown", { lora: true, ref_images: true, control_image: false, mask: false });
    expect($(".qvac-lora").hidden).toBe(false);
    expect($("[data-slot=ref_images]").hidden).toBe(false);
    expect($("[data-slot=control_image]").hidden).toBe(true);
    expect($(".qvac-mask-box").hidden).toBe(true);
  });

  it("paints a mask at the init image's size and sends its bytes; clearing sends mask_clear", () => {
    const { model, inputs, $ } = setup({ inputs_shown: { mask: true } });
    expect($(".qvac-mask-box").hidden).toBe(true); // no init image yet
    model.update("init_image", { name: "i.png", width: 8, height: 4, thumb });
    expect($(".qvac-mask-box").hidden).toBe(false);
    const painter = inputs.painter();
    painter.setSize(2);
    stroke(painter.canvas, 4, 2);
    const [sent] = model.sentOfType("mask");
    expect(sent.content).toEqual({ type: "mask", width: 8, height: 4 });
    const bytes = new Uint8Array(sent.buffers[0]);
    expect(bytes.length).toBe(32);
    expect(bytes[2 * 8 + 4]).toBe(255);
    expect(bytes[0]).toBe(0);
    inputs.el.querySelector("[name=mask_clear]").click();
    expect(model.sentOfType("mask_clear")).toHaveLength(1);
  });

  it("a new init image gets a new painter and drops the old mask", () => {
    const { model, inputs } = setup({ inputs_shown: { mask: true }, init_image: { name: "a.png", width: 8, height: 4, thumb } });
    const first = inputs.painter();
    model.update("mask", { width: 8, height: 4 });
    model.update("init_image", { name: "b.png", width: 16, height: 16, thumb });
    expect(inputs.painter()).not.toBe(first);
    expect(inputs.painter().mask.width).toBe(16);
    expect(model.sentOfType("mask_clear")).toHaveLength(1);
  });
});
