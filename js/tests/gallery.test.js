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

describe("Gallery filters", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });
  const made = (id, model, prompt = "a red boat") => entry(id, { model, params: { ...entry(id).params, prompt } });
  const shownIds = (el) => [...el.querySelectorAll(".qvac-card")].filter((c) => !c.hidden).map((c) => c.dataset.id);
  const choose = (select, value) => {
    select.value = value;
    select.dispatchEvent(new Event("change", { bubbles: true }));
  };

  it("filters by model: one choice per model name, a session's '#n' left out, 'all models' first", () => {
    // A shared folder: a FLUX.2 session's images beside two SD 1.x sessions' (the same file loaded twice).
    ctx = setup([made("img1", "flux2-klein-4b.gguf#2", "a lighthouse"), made("img2", "sd15.gguf#1"), made("img3", "sd15.gguf#3"), entry("img4")]);
    const { el, model } = ctx;
    const select = el.querySelector("select[name=model_filter]");
    expect(select.hidden).toBe(false);
    expect([...select.options].map((o) => [o.value, o.textContent])).toEqual([["", "all models"], ["flux2-klein-4b.gguf", "flux2-klein-4b.gguf"], ["sd15.gguf", "sd15.gguf"]]);
    expect(select.value).toBe("");
    expect(shownIds(el)).toEqual(["img1", "img2", "img3", "img4"]);
    choose(select, "flux2-klein-4b.gguf");
    expect(shownIds(el)).toEqual(["img1"]);
    choose(select, "sd15.gguf");
    expect(shownIds(el)).toEqual(["img2", "img3"]);
    // With the prompt filter too; Download all takes only what is shown.
    const text = el.querySelector("input[name=filter]");
    text.value = "lighthouse";
    text.dispatchEvent(new Event("input"));
    expect(shownIds(el)).toEqual([]);
    expect(el.textContent).toContain("No image matches the filter.");
    text.value = "";
    text.dispatchEvent(new Event("input"));
    el.querySelector("button[name=download_all]").click();
    expect(model.sentOfType("download_zip")[0].content.ids).toEqual(["img2", "img3"]);
    // The chosen model's images gone: back to all models.
    model.update("images", [made("img1", "flux2-klein-4b.gguf#2"), made("img5", "other.gguf#4")]);
    expect(select.value).toBe("");
    expect(shownIds(el)).toEqual(["img1", "img5"]);
  });

  it("matches the text filter against the model name too", () => {
    ctx = setup([made("img1", "flux2-klein-4b.gguf#2", "a lighthouse"), made("img2", "sd15.gguf#1", "a FLUX capacitor")]);
    const { el } = ctx;
    const text = el.querySelector("input[name=filter]");
    expect(text.placeholder).toContain("model");
    text.value = "KLEIN";
    text.dispatchEvent(new Event("input"));
    expect(shownIds(el)).toEqual(["img1"]);
    text.value = "flux";
    text.dispatchEvent(new Event("input"));
    expect(shownIds(el)).toEqual(["img1", "img2"]); // the model's name, or the prompt
  });

  it("hides the model filter while the images come from one model (or none is known)", () => {
    ctx = setup([made("img1", "sd15.gguf#1"), made("img2", "sd15.gguf#2"), entry("img3")]);
    expect(ctx.el.querySelector("select[name=model_filter]").hidden).toBe(true);
    ctx.model.update("images", [made("img1", "sd15.gguf#1"), made("img4", "flux2.gguf#5")]);
    expect(ctx.el.querySelector("select[name=model_filter]").hidden).toBe(false);
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

  it("leaves out advanced settings nobody changed, and a single image's batch size", async () => {
    const { entryDetails } = await import("../src/gallery-grid.js");
    const { default: schema } = await import("./fixtures/schema.json");
    const advanced = schema.params.filter((q) => q.group === "advanced").map((q) => q.name);
    expect(advanced).toEqual(expect.arrayContaining(["vae_tiling", "clip_skip"]));
    const withBatch = { ...schema, params: schema.params.map((q) => (q.name === "batch_count" ? { ...q, replayable: true } : q)) };
    const keys = (params) => entryDetails({ ...entry("a"), params, family: "sd1" }, withBatch).map(([k]) => k);
    const base = { prompt: "p", seed: 1, cfg_scale: 7, batch_count: 1, vae_tiling: false, clip_skip: -1 };
    expect(keys(base)).toEqual(["Size", "Prompt", "CFG scale", "Seed"]);
    expect(keys({ ...base, clip_skip: 2, vae_tiling: true, batch_count: 2 })).toEqual(expect.arrayContaining(["CLIP skip", "VAE tiling", "Batch"]));
  });

  // The flags of the schema the Studio ships (form_schema()): a param's `families` names image families only
  // (cfg_scale and flow_shift do not list "wan"); the video family's row `makes` "video"; video() rows have none.
  const VIDEO_SCHEMA = {
    params: [
      { name: "prompt", label: "Prompt", replayable: true, families: null },
      { name: "width", label: "Width", replayable: true, families: null },
      { name: "height", label: "Height", replayable: true, families: null },
      { name: "steps", label: "Steps", replayable: true, families: null },
      { name: "cfg_scale", label: "CFG scale", replayable: true, families: ["sd1", "flux2"] },
      { name: "guidance", label: "Guidance", replayable: true, families: ["flux", "flux2"] },
      { name: "seed", label: "Seed", replayable: true, families: null },
      { name: "strength", label: "Strength", replayable: true, families: ["sd1", "flux"] },
      { name: "flow_shift", label: "Flow shift", replayable: true, families: ["flux"] },
      { name: "video_frames", label: "Frames", replayable: true, families: null },
      { name: "fps", label: "Fps", replayable: true, families: null },
      { name: "high_noise_cfg_scale", label: "High noise cfg scale", replayable: true, families: null },
      { name: "moe_boundary", label: "Moe boundary", replayable: true, families: null },
      { name: "output_format", label: "Output format", replayable: true, families: null },
    ],
    families: {
      sd1: { makes: "image", hidden: ["guidance"] },
      flux2: { makes: "image", hidden: ["strength"] },
      wan: { makes: "video", hidden: ["guidance", "img_cfg_scale"] },
    },
  };
  const WAN = { prompt: "a cat", width: 832, height: 480, steps: 20, cfg_scale: 6, guidance: 3.5, flow_shift: 3, seed: 7, video_frames: 33, fps: 16, high_noise_cfg_scale: 3.5, moe_boundary: 0.875, output_format: "mp4" };
  const clip = { ...entry("v"), width: 832, height: 480, kind: "video", family: "wan", video: "vid-v", frames: 33, fps: 16, format: "mp4", params: WAN };

  it("lists a Wan video's cfg and flow shift, not guidance nor what its Video row says", async () => {
    const { entryDetails } = await import("../src/gallery-grid.js");
    const rows = entryDetails(clip, VIDEO_SCHEMA);
    const keys = rows.map(([k]) => k);
    expect(keys.slice(0, 7)).toEqual(["Size", "Video", "Prompt", "Steps", "CFG scale", "Seed", "Flow shift"]);
    for (const left of ["Guidance", "Strength", "Frames", "Fps", "Output format"]) expect(keys).not.toContain(left);
    expect(rows).toContainEqual(["CFG scale", 6]);
    expect(rows).toContainEqual(["Flow shift", 3]);
    expect(rows).toContainEqual(["Video", "33 frames at 16 fps (MP4)"]);
    // The Studio marks what its form hid for the model (a Wan 2.1 model has no high-noise expert): left out.
    const studioMade = { ...clip, unused: ["high_noise_cfg_scale", "moe_boundary"] };
    expect(entryDetails(studioMade, VIDEO_SCHEMA).map(([k]) => k)).toEqual(["Size", "Video", "Prompt", "Steps", "CFG scale", "Seed", "Flow shift"]);
  });

  it("leaves out what the Studio saw hidden for an image's model, and an upscale lists its source's", async () => {
    const { entryDetails } = await import("../src/gallery-grid.js");
    const params = { prompt: "p", steps: 4, cfg_scale: 1, guidance: 3.5, seed: 3, strength: 0.75 };
    const klein = { ...entry("a"), family: "flux2", params, unused: ["cfg_scale"] }; // cfg 1 with guidance: no cfg pass
    expect(entryDetails(klein, VIDEO_SCHEMA).map(([k]) => k)).toEqual(["Size", "Prompt", "Steps", "Guidance", "Seed"]);
    const up = { ...klein, kind: "upscale", source: "img1", width: 256, height: 256 };
    expect(entryDetails(up, VIDEO_SCHEMA)).toEqual([["Size", "256×256"], ["Prompt", "p"], ["Steps", 4], ["Guidance", 3.5], ["Seed", 3], ["Upscaled from", "img1"]]);
  });

  it("lists a grid sheet's base parameters, less the ones its axes vary", async () => {
    const { entryDetails, entryParams, matchesPrompt } = await import("../src/gallery-grid.js");
    const base = { prompt: "a grey cat", width: 64, height: 64, steps: 2, cfg_scale: 4, seed: 11, strength: 0.75 };
    const sheet = { ...entry("g"), kind: "grid", seed: null, params: {}, family: "sd1", width: 150, height: 90, grid: "x: cfg_scale = 4, 7", grid_axes: { x: ["cfg_scale", [4, 7]], y: null }, grid_base: base };
    expect(entryDetails(sheet, VIDEO_SCHEMA)).toEqual([["Size", "150×90"], ["Cell size", "64×64"], ["Prompt", "a grey cat"], ["Steps", 2], ["Seed", 11], ["Grid", "x: cfg_scale = 4, 7"]]);
    expect(entryParams(sheet).prompt).toBe("a grey cat");
    expect(matchesPrompt(sheet, "grey cat")).toBe(true);
  });

  it("titles a grid sheet's lightbox with its prompt", () => {
    const sheet = { ...entry("g"), kind: "grid", seed: null, params: {}, grid_axes: { x: ["seed", [1, 2]], y: null }, grid_base: { prompt: "a grey cat", seed: 1 } };
    const model = mockModel({ images: [sheet], error: "" });
    const el = document.createElement("div");
    document.body.append(el);
    const cleanup = gallery.render({ model, el });
    el.querySelector(".qvac-thumb").click();
    expect(el.querySelector(".qvac-lightbox-title").textContent).toBe("a grey cat");
    cleanup();
    el.remove();
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
