// The mask painter's logic: strokes, eraser, size, invert, clear, and pointer coordinates on a scaled canvas.
import { beforeAll, describe, expect, it } from "vitest";
import { createMask, createMaskPainter, MAX_BRUSH, MIN_BRUSH } from "../src/mask-painter.js";

beforeAll(() => {
  HTMLCanvasElement.prototype.getContext = () => null; // jsdom has no 2D context (it would log "not implemented")
});

const at = (mask, x, y) => mask.data[y * mask.width + x];

function pointer(canvas, type, x, y) {
  const event = new Event(type, { bubbles: true, cancelable: true });
  Object.assign(event, { clientX: x, clientY: y, pointerId: 1 });
  canvas.dispatchEvent(event);
}

function shownAt(canvas, width, height) {
  // jsdom has no layout: give the canvas the box it would have on the page
  canvas.getBoundingClientRect = () => ({ left: 10, top: 20, width, height, right: 10 + width, bottom: 20 + height });
}

describe("mask", () => {
  it("stamps a disc of the given radius and nothing else", () => {
    const mask = createMask(32, 32);
    mask.stamp(16, 16, 4, 255);
    expect(at(mask, 16, 16)).toBe(255);
    expect(at(mask, 19, 16)).toBe(255);
    expect(at(mask, 21, 16)).toBe(0);
    expect(at(mask, 0, 0)).toBe(0);
    const count = mask.data.filter((v) => v === 255).length;
    expect(count).toBeGreaterThan(Math.PI * 3.5 ** 2);
    expect(count).toBeLessThan(Math.PI * 4.5 ** 2);
  });

  it("draws a line without gaps, clipped to the image, then inverts and clears", () => {
    const mask = createMask(40, 10);
    mask.line(-5, 5, 45, 5, 1, 255);
    for (let x = 0; x < 40; x++) expect(at(mask, x, 5)).toBe(255);
    expect(at(mask, 20, 0)).toBe(0);
    mask.invert();
    expect(at(mask, 20, 5)).toBe(0);
    expect(at(mask, 20, 0)).toBe(255);
    mask.clear();
    expect(mask.painted()).toBe(false);
  });
});

describe("painter", () => {
  it("paints in image pixels through a canvas shown at half size, and reports each finished stroke", () => {
    const changes = [];
    const painter = createMaskPainter({ width: 64, height: 64, onChange: (m) => changes.push(m.painted()) });
    shownAt(painter.canvas, 32, 32);
    painter.setSize(4);
    pointer(painter.canvas, "pointerdown", 10 + 8, 20 + 8); // (16, 16) in the image
    pointer(painter.canvas, "pointermove", 10 + 24, 20 + 8); // (48, 16)
    expect(changes).toEqual([]); // not until the stroke ends
    pointer(painter.canvas, "pointerup", 10 + 24, 20 + 8);
    expect(changes).toEqual([true]);
    for (const x of [16, 32, 48]) expect(at(painter.mask, x, 16)).toBe(255);
    expect(at(painter.mask, 32, 40)).toBe(0);
  });

  it("erases with the eraser, clamps the size, and its buttons invert and clear", () => {
    const changes = [];
    const painter = createMaskPainter({ width: 16, height: 16, onChange: (m) => changes.push(m.painted()) });
    shownAt(painter.canvas, 16, 16);
    painter.el.querySelector("[name=mask_invert]").click(); // all repaint
    expect(painter.mask.data.every((v) => v === 255)).toBe(true);
    painter.el.querySelector("[name=mask_eraser]").click();
    expect(painter.tool()).toBe("eraser");
    expect(painter.el.querySelector("[name=mask_eraser]").getAttribute("aria-pressed")).toBe("true");
    painter.setSize(2);
    pointer(painter.canvas, "pointerdown", 10 + 8, 20 + 8);
    pointer(painter.canvas, "pointerup", 10 + 8, 20 + 8);
    expect(at(painter.mask, 8, 8)).toBe(0);
    expect(at(painter.mask, 0, 0)).toBe(255);
    painter.el.querySelector("[name=mask_clear]").click();
    expect(changes).toEqual([true, true, false]);
    painter.setSize(10_000);
    expect(painter.size()).toBe(MAX_BRUSH);
    painter.setSize(0);
    expect(painter.size()).toBe(MIN_BRUSH);
    const slider = painter.el.querySelector("[name=mask_size]");
    expect(slider.getAttribute("aria-label")).toMatch(/brush size/);
  });

  it("ignores pointer moves when no stroke is under way", () => {
    const painter = createMaskPainter({ width: 8, height: 8 });
    shownAt(painter.canvas, 8, 8);
    pointer(painter.canvas, "pointermove", 14, 24);
    expect(painter.mask.painted()).toBe(false);
  });
});
