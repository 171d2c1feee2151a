import { describe, expect, it, vi } from "vitest";
import { createProgress, describeStatus } from "../src/progress.js";
import { snap } from "../src/form.js";
import { formatRate, formatSeconds } from "../src/util.js";

describe("describeStatus", () => {
  it("shows phase, image, step, rate and ETA while sampling", () => {
    const text = describeStatus({ phase: "sampling", step: 3, total: 8, its: 2.5, eta: 2, batch: 2, image_index: 0 });
    expect(text).toBe("Sampling · image 1/2 · step 3/8 · 2.50 it/s · ETA 2.0 s");
  });

  it("uses s/it for slow steps and names the other phases", () => {
    expect(describeStatus({ phase: "sampling", step: 1, total: 4, its: 0.25, batch: 1 })).toContain("4.00 s/it");
    expect(describeStatus({ phase: "decoding", step: 4, total: 4, batch: 1 })).toBe("Decoding"); // its time shows once known
    expect(describeStatus({ phase: "upscaling", step: 1, total: 2, batch: 2 })).toBe("Upscaling · step 1/2");
    expect(describeStatus({ phase: "loading", step: 0, total: 0 })).toBe("Loading");
  });

  it("reports the finished job's time and seed", () => {
    expect(describeStatus({ phase: "done", elapsed: 3.21, seed: 7 })).toBe("Done · 3.2 s · seed 7");
    expect(describeStatus({ phase: "cancelled" })).toBe("Cancelled");
  });

  it("shows model loading as a percentage", () => {
    expect(describeStatus({ phase: "downloading", kind: "load", percent: 41.6, message: "downloading model_src" })).toBe(
      "Downloading · 42% · downloading model_src",
    );
  });
});

describe("createProgress", () => {
  it("moves the bar with percent and marks the phase", () => {
    const bar = createProgress();
    bar.update({ phase: "sampling", step: 2, total: 4, percent: 50, batch: 1 });
    expect(bar.el.dataset.phase).toBe("sampling");
    expect(bar.el.querySelector(".qvac-progress-fill").style.width).toBe("50%");
    expect(bar.el.querySelector("[role=progressbar]").getAttribute("aria-valuenow")).toBe("50");
    bar.update({ phase: "done" });
    expect(bar.el.querySelector(".qvac-progress-fill").style.width).toBe("100%");
  });
});

describe("formatting", () => {
  it("formats rates, durations and sizes", () => {
    expect(formatRate(0)).toBe("");
    expect(formatSeconds(75)).toBe("1 min 15 s");
    const size = { multiple: 8, min: 64, max: 4096 };
    expect(snap(61, size)).toBe(64);
    expect(snap(517, size)).toBe(520);
    expect(snap(9000, size)).toBe(4096);
    expect(snap(10, { multiple: 16, min: 72, max: 200 })).toBe(80); // limits rounded inwards to the multiple
    expect(snap("abc", size)).toBe("abc");
  });
});

describe("queued jobs", () => {
  it("say how many jobs are ahead instead of Loading", () => {
    expect(describeStatus({ phase: "queued", ahead: 2, batch: 1 })).toBe("Queued (2 ahead)");
    expect(describeStatus({ phase: "idle", message: "model 'a#1' was unloaded" })).toBe("Ready · model 'a#1' was unloaded");
  });
});

describe("honest batch and decode status", () => {
  it("shows the image's own step in a batch, and an ETA that says when decoding is not in it", () => {
    const s = { phase: "sampling", step: 7, total: 24, image_index: 1, batch: 4, image_step: 1, image_total: 6, its: 2, eta: 8.5, eta_decode: false };
    expect(describeStatus(s)).toBe("Sampling · image 2/4 · step 1/6 · 2.00 it/s · ETA 8.5 s + decoding");
    expect(describeStatus({ ...s, eta: 12, eta_decode: true })).toBe("Sampling · image 2/4 · step 1/6 · 2.00 it/s · ETA 12 s");
    expect(describeStatus({ phase: "decoding", step: 6, total: 6, batch: 1, decode_elapsed: 1.5, eta: 0.5, eta_decode: true })).toBe("Decoding · 1.5 s · ETA 0.5 s");
  });
});

describe("decoding progress", () => {
  it("counts the decode's time and ETA between the kernel's updates, and stops when it is done", () => {
    vi.useFakeTimers();
    try {
      const progress = createProgress();
      document.body.append(progress.el);
      const label = () => progress.el.querySelector(".qvac-progress-label").textContent;
      progress.update({ phase: "decoding", step: 4, total: 4, batch: 1, decode_elapsed: 0, eta: 2 });
      expect(label()).toBe("Decoding · 0.0 s · ETA 2.0 s");
      vi.advanceTimersByTime(1500);
      expect(label()).toBe("Decoding · 1.5 s · ETA 0.5 s");
      vi.advanceTimersByTime(1500); // slower than measured: no "ETA 0.0 s" that never ends
      expect(label()).toBe("Decoding · 3.0 s");
      progress.update({ phase: "done", elapsed: 5, seed: 1 });
      vi.advanceTimersByTime(2000);
      expect(label()).toBe("Done · 5.0 s · seed 1");
      progress.el.remove();
    } finally {
      vi.useRealTimers();
    }
  });
});
