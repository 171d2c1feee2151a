import { afterEach, describe, expect, it } from "vitest";
import jobview from "../src/jobview.js";
import { entry, fakeImage, flush, mockModel } from "./mock-model.js";

function setup(extra = {}) {
  const model = mockModel({ kind: "diffusion", status: { phase: "loading", batch: 1 }, images: [], error: "", ...extra });
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = jobview.render({ model, el });
  return { model, el, cleanup, $: (sel) => el.querySelector(sel) };
}

describe("JobView", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it("follows progress with a Cancel button while running", () => {
    ctx = setup();
    const { $, model } = ctx;
    expect($("button[name=cancel]").hidden).toBe(false);
    model.update("status", { phase: "sampling", step: 2, total: 4, percent: 50, batch: 1, its: 3 });
    expect($(".qvac-progress-label").textContent).toBe("Sampling · step 2/4 · 3.00 it/s");
    $("button[name=cancel]").click();
    expect(model.sentOfType("cancel")).toHaveLength(1);
  });

  it("shows thumbnails at once, then the full-size PNGs it asks for", async () => {
    ctx = setup();
    const { el, model } = ctx;
    model.update("images", [entry("img1"), entry("img2", { seed: 43 })]);
    model.update("status", { phase: "done", elapsed: 1.5, seed: 42 });
    const imgs = el.querySelectorAll(".qvac-job-img");
    expect(imgs).toHaveLength(2);
    expect(imgs[0].src).toMatch(/^blob:mock/);
    expect(model.sentOfType("image").map((m) => m.content.id)).toEqual(["img1", "img2"]);
    model.message({ type: "image", id: "img1" }, [fakeImage(64)]);
    await flush();
    expect(imgs[0].classList.contains("qvac-full")).toBe(true);
    expect(imgs[1].classList.contains("qvac-full")).toBe(false);
    expect(el.querySelector(".qvac-jobview").classList.contains("qvac-finished")).toBe(true);
    expect(el.querySelector(".qvac-progress-label").textContent).toBe("Done · 1.5 s · seed 42");
    expect(el.querySelector("button[name=cancel]").hidden).toBe(true);
    expect(el.textContent).toContain("seed 43");
  });

  it("shows the job's error", () => {
    ctx = setup();
    ctx.model.update("status", { phase: "error", message: "boom" });
    ctx.model.update("error", "EngineError: boom");
    expect(ctx.$(".qvac-error").hidden).toBe(false);
    expect(ctx.$(".qvac-error").textContent).toBe("EngineError: boom");
    expect(ctx.$(".qvac-progress").dataset.phase).toBe("error");
  });
});

describe("JobView where background updates are dropped (Colab)", () => {
  it("asks the kernel for its state when progress goes quiet while running", async () => {
    const { vi } = await import("vitest");
    vi.useFakeTimers();
    const model = mockModel({ kind: "diffusion", status: { phase: "sampling", step: 1, total: 9, batch: 1 }, images: [], error: "" });
    const el = document.createElement("div");
    document.body.append(el);
    const cleanup = jobview.render({ model, el });
    try {
      vi.advanceTimersByTime(1000);
      expect(model.sentOfType("poll")).toHaveLength(0); // recent enough
      vi.advanceTimersByTime(1500);
      expect(model.sentOfType("poll")).toEqual([{ content: { type: "poll", seen: 0 }, buffers: [] }]);
      model.update("status", { phase: "done", step: 9, total: 9, batch: 1 });
      vi.advanceTimersByTime(5000);
      expect(model.sentOfType("poll")).toHaveLength(1); // finished: no more polling
    } finally {
      cleanup();
      el.remove();
      vi.useRealTimers();
    }
  });
});
