import { afterEach, describe, expect, it } from "vitest";
import gallery from "../src/gallery.js";
import { entry, fakeImage, flush, mockModel } from "./mock-model.js";

function setup(images) {
  const model = mockModel({ images, error: "" });
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = gallery.render({ model, el });
  return { model, el, cleanup };
}

describe("Gallery", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it("shows one card per image with size and seed", () => {
    ctx = setup([entry("img1"), entry("img2", { seed: null, params: {}, width: 32, height: 48 })]);
    const captions = [...ctx.el.querySelectorAll(".qvac-card figcaption")].map((c) => c.textContent);
    expect(captions).toEqual(["64×64 · seed 42", "32×48"]);
  });

  it("says when there are no images", () => {
    ctx = setup([]);
    expect(ctx.el.textContent).toContain("No images.");
    ctx.model.update("images", [entry("img1")]);
    expect(ctx.el.textContent).not.toContain("No images.");
  });

  it("asks for the full image once and reuses it", async () => {
    ctx = setup([entry("img1")]);
    const { el, model } = ctx;
    el.querySelector(".qvac-thumb").click();
    model.message({ type: "image", id: "img1" }, [fakeImage(80)]);
    await flush();
    el.querySelector(".qvac-lightbox").click(); // click outside the panel closes it
    expect(el.querySelector(".qvac-lightbox")).toBeNull();
    el.querySelector(".qvac-thumb").click();
    await flush();
    expect(model.sentOfType("image")).toHaveLength(1);
    expect(el.querySelector(".qvac-lightbox-img").src).toMatch(/^blob:mock/);
  });

  it("reports an image the kernel no longer has", async () => {
    ctx = setup([entry("img1")]);
    const { el, model } = ctx;
    el.querySelector(".qvac-thumb").click();
    model.message({ type: "image", id: "img1", missing: true }, []);
    await flush();
    expect(el.querySelector(".qvac-lightbox-status").textContent).toContain("no longer in the kernel");
  });
});

describe("Gallery with videos", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });
  const clip = (id, format = "mp4") =>
    entry(id, { video: `vid-${id}`, format, mime: format === "mp4" ? "video/mp4" : "image/webp", frames: 9, fps: 16, video_file: `clip-${id}.${format}` });

  it("plays an MP4 in the lightbox from the video file, not the first frame", async () => {
    ctx = setup([clip("img1"), entry("img2")]);
    const { el, model } = ctx;
    const cards = el.querySelectorAll(".qvac-card");
    expect(cards[0].dataset.video).toBe("mp4");
    expect(cards[1].dataset.video).toBeUndefined();
    expect(cards[0].querySelector("figcaption").textContent).toBe("64×64 · 9 frames · 16 fps · seed 42");
    expect(cards[0].querySelector('[data-action="download"]').textContent).toBe("MP4");
    expect(cards[1].querySelector('[data-action="download"]').textContent).toBe("PNG");
    el.querySelector(".qvac-thumb").click();
    expect(model.sentOfType("image").map((m) => m.content.id)).toEqual(["vid-img1"]);
    model.message({ type: "image", id: "vid-img1" }, [fakeImage(80)]);
    await flush();
    const player = el.querySelector(".qvac-lightbox video");
    expect(player).not.toBeNull();
    expect(player.src).toMatch(/^blob:mock/);
    expect(player.muted).toBe(true);
    expect(el.querySelector(".qvac-lightbox").textContent).toContain("9 frames at 16 fps (MP4)");
    expect(el.querySelector(".qvac-lightbox").textContent).toContain("Download MP4");
  });

  it("falls back to the animated WebP where the browser cannot play the MP4", async () => {
    ctx = setup([{ ...clip("img1"), webp: "vid-img1-webp" }]);
    const { el, model } = ctx;
    el.querySelector(".qvac-thumb").click();
    model.message({ type: "image", id: "vid-img1" }, [fakeImage(80)]);
    await flush();
    const player = el.querySelector(".qvac-lightbox video");
    expect(model.sentOfType("image").map((m) => m.content.id)).toEqual(["vid-img1"]); // no WebP until needed
    player.dispatchEvent(new Event("error"));
    expect(model.sentOfType("image").map((m) => m.content.id)).toEqual(["vid-img1", "vid-img1-webp"]);
    model.message({ type: "image", id: "vid-img1-webp" }, [fakeImage(60)]);
    await flush();
    expect(el.querySelector(".qvac-lightbox video")).toBeNull();
    expect(el.querySelector(".qvac-lightbox img.qvac-lightbox-video").alt).toContain("cannot play the MP4");
  });

  it("shows an animated WebP as an image in the lightbox", async () => {
    ctx = setup([clip("img1", "webp")]);
    const { el, model } = ctx;
    el.querySelector(".qvac-thumb").click();
    model.message({ type: "image", id: "vid-img1" }, [fakeImage(80)]);
    await flush();
    expect(el.querySelector(".qvac-lightbox video")).toBeNull();
    expect(el.querySelector(".qvac-lightbox img.qvac-lightbox-video").src).toMatch(/^blob:mock/);
  });
});

describe("entry details", () => {
  it("lists what mattered for the image's model", async () => {
    const { entryDetails } = await import("../src/gallery-grid.js");
    const { default: schema } = await import("./fixtures/schema.json");
    const params = { prompt: "p", seed: 1, cfg_scale: 7, guidance: 3.5, strength: 0.75, batch_count: 2 };
    const keys = (e) => entryDetails(e, schema).map(([k]) => k);
    // Labels come from the schema; batch_count is not replayable; sd1 hides guidance, strength needs an init image.
    expect(keys({ ...entry("a"), params, family: "sd1" })).toEqual(["Size", "Prompt", "CFG scale", "Seed"]);
    expect(keys({ ...entry("a"), params, family: "sd1", img2img: true })).toEqual(["Size", "Prompt", "CFG scale", "Seed", "Strength"]);
    expect(keys({ ...entry("a"), params, family: "flux" })).toEqual(["Size", "Prompt", "Guidance", "Seed"]);
    expect(keys({ ...entry("a"), params, family: "flux2", img2img: true })).toEqual(["Size", "Prompt", "CFG scale", "Guidance", "Seed"]);
  });

  it("shows a record's LoRAs by file name and weight", async () => {
    const { entryDetails, shown } = await import("../src/gallery-grid.js");
    const schema = { params: [{ name: "lora", label: "Lora", type: "str", replayable: true }], families: {} };
    const lora = [{ source: "/x/a.safetensors", name: "a.safetensors", sha256: "ab", weight: 0.5 }, { name: "b.gguf", weight: 1 }];
    expect(entryDetails({ ...entry("a"), params: { lora }, family: "sd1" }, schema)).toContainEqual(["Lora", "a.safetensors: 0.5, b.gguf: 1"]);
    expect(shown({ repeats: 2 })).toBe('{"repeats":2}');
    expect(shown(7)).toBe(7);
  });
});

describe("filter and Download all", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it("filters the cards by prompt and zips only the shown ones", () => {
    const boat = entry("img1");
    const kite = entry("img2", { params: { prompt: "A green Kite", seed: 3 } });
    const model = mockModel({ images: [boat, kite], error: "" });
    const el = document.createElement("div");
    document.body.append(el);
    ctx = { model, el, cleanup: gallery.render({ model, el }) };
    const filter = el.querySelector("input[name=filter]");
    filter.value = "kite";
    filter.dispatchEvent(new Event("input"));
    const visible = [...el.querySelectorAll(".qvac-card")].filter((c) => !c.hidden).map((c) => c.dataset.id);
    expect(visible).toEqual(["img2"]);
    el.querySelector("button[name=download_all]").click();
    expect(model.sentOfType("download_zip")[0].content.ids).toEqual(["img2"]);
    filter.value = "nothing like it";
    filter.dispatchEvent(new Event("input"));
    expect(el.textContent).toContain("No image matches the filter.");
    expect(el.querySelector("button[name=download_all]").disabled).toBe(true);
  });

  it("saves the kernel's zip reply as a file", () => {
    const model = mockModel({ images: [entry("img1")], error: "" });
    const el = document.createElement("div");
    document.body.append(el);
    ctx = { model, el, cleanup: gallery.render({ model, el }) };
    const clicked = [];
    const orig = HTMLAnchorElement.prototype.click;
    HTMLAnchorElement.prototype.click = function () {
      clicked.push(this.download);
    };
    try {
      model.message({ type: "zip", name: "qvac_nb-images.zip", count: 1 }, [fakeImage(40)]);
    } finally {
      HTMLAnchorElement.prototype.click = orig;
    }
    expect(clicked).toEqual(["qvac_nb-images.zip"]);
  });
});

describe("keyboard", () => {
  it("one tab stop per card; Enter opens, the arrows step, Escape closes and gives focus back", async () => {
    const model = mockModel({ images: [entry("img1"), entry("img2", { params: { prompt: "second" } })], error: "" });
    const el = document.createElement("div");
    document.body.append(el);
    const cleanup = gallery.render({ model, el });
    try {
      const [first] = el.querySelectorAll(".qvac-card");
      expect(first.querySelector(".qvac-thumb").getAttribute("tabindex")).toBe("0");
      expect([...first.querySelectorAll("button")].every((b) => b.getAttribute("tabindex") === "-1")).toBe(true);
      const thumb = first.querySelector(".qvac-thumb");
      thumb.focus();
      thumb.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
      expect(document.activeElement.dataset.action).toBe("download"); // the arrows reach the card's buttons
      thumb.focus();
      thumb.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
      expect(el.querySelector(".qvac-lightbox")).not.toBeNull();
      expect(document.activeElement.name).toBe("close"); // the dialog takes focus
      document.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
      expect(el.querySelector(".qvac-lightbox-title").textContent).toBe("second");
      document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
      expect(el.querySelector(".qvac-lightbox")).toBeNull();
      expect(document.activeElement).toBe(el.querySelectorAll(".qvac-thumb")[1]);
      await flush();
    } finally {
      cleanup();
      el.remove();
    }
  });
});
