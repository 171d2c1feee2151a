import { afterEach, beforeEach, describe, expect, it } from "vitest";
import studio from "../src/studio.js";
import SCHEMA from "./fixtures/schema.json";
import { entry, fakeImage, flush, mockModel } from "./mock-model.js";
import { PARAMS, PRESETS, SD1, rulesOf, setup } from "./studio-setup.js";

describe("Studio rendering", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it("fills the form from params and lists samplers with the model's default", () => {
    ctx = setup();
    const { $ } = ctx;
    expect($("textarea[name=prompt]").value).toBe("a red boat");
    expect($("input[name=width]").value).toBe("64");
    expect($("input[name=steps]").value).toBe("4");
    expect($("input[name=seed]").disabled).toBe(true); // random seed
    const options = [...$("select[name=sampling_method]").options].map((o) => o.textContent);
    expect(options).toEqual(["default (euler_a)", "euler", "euler_a", "dpm++2m"]);
    expect($("select[name=loaded]").value).toBe("sd1#1");
  });

  it("shows cfg for SD models and guidance for FLUX models, as the kernel's form rules say", () => {
    ctx = setup();
    const { $, model } = ctx;
    expect($("[data-param=cfg_scale]").hidden).toBe(false);
    expect($("[data-param=guidance]").hidden).toBe(true);
    model.update("model_info", { ...SD1, family: "flux", uses_guidance: true });
    model.update("form_rules", rulesOf("distilled"));
    expect($("[data-param=cfg_scale]").hidden).toBe(true);
    expect($("[data-param=negative_prompt]").hidden).toBe(true); // cfg 1: no unconditional pass reads it
    expect($("[data-param=guidance]").hidden).toBe(false);
  });

  it("enables upscaling only when the model has an upscaler", () => {
    ctx = setup();
    const { $, model } = ctx;
    expect($("input[name=upscale]").disabled).toBe(true);
    model.update("model_info", { ...SD1, has_upscaler: true, upscale_factor: 4 });
    expect($("input[name=upscale]").disabled).toBe(false);
    expect($(".qvac-upscale").textContent).toContain("×4");
  });

  it("writes edits back to params, snapping sizes to the family's size step", () => {
    ctx = setup();
    const { $, model } = ctx;
    const width = $("input[name=width]");
    expect(width.step).toBe("64"); // the SD-like row's size_multiple
    width.value = "101";
    width.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("params").width).toBe(128);
    expect(model.saves).toBeGreaterThan(0);
    model.update("form_rules", rulesOf("distilled")); // a DiT: multiples of 8
    width.value = "101";
    width.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("params").width).toBe(104);
    const size = $("select[name=size]");
    size.value = "768x512";
    size.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("params").width).toBe(768);
    expect(model.get("params").height).toBe(512);
  });

  it("puts kernel-side changes (reuse seed) into the form", () => {
    ctx = setup();
    const { $, model } = ctx;
    model.update("params", { ...PARAMS, seed: "12345", random_seed: false, prompt: "a cat" });
    expect($("input[name=seed]").value).toBe("12345");
    expect($("input[name=seed]").disabled).toBe(false);
    expect($("textarea[name=prompt]").value).toBe("a cat");
  });
});

describe("Studio messages", () => {
  let ctx;
  beforeEach(() => {
    ctx = setup();
  });
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it("Generate sends the form's params", () => {
    const { $, model } = ctx;
    $("textarea[name=prompt]").value = "a lighthouse";
    $("input[name=batch_count]").value = "2";
    $("button[name=generate]").click();
    const [msg] = model.sentOfType("generate");
    expect(msg.content.params.prompt).toBe("a lighthouse");
    expect(msg.content.params.batch_count).toBe(2);
    expect(model.get("params").prompt).toBe("a lighthouse");
  });

  it("an empty prompt still generates, with a hint that goes away once there is a prompt", () => {
    const { $, model } = ctx;
    $("textarea[name=prompt]").value = "  ";
    $("button[name=generate]").click();
    expect(model.sentOfType("generate")).toHaveLength(1);
    expect($(".qvac-prompt-hint").textContent).toContain("Empty prompt");
    $("textarea[name=prompt]").value = "a lighthouse";
    $("button[name=generate]").click();
    expect(model.sentOfType("generate")).toHaveLength(2);
    expect($(".qvac-prompt-hint").textContent).toBe("");
  });

  it("Ctrl+Enter and Cmd+Enter generate; plain keys in inputs stay in the widget", () => {
    const { $, model } = ctx;
    const prompt = $("textarea[name=prompt]");
    prompt.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", ctrlKey: true, bubbles: true }));
    prompt.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", metaKey: true, bubbles: true }));
    expect(model.sentOfType("generate")).toHaveLength(2);
    let escaped = false;
    document.addEventListener("keydown", () => (escaped = true), { once: true });
    prompt.dispatchEvent(new KeyboardEvent("keydown", { key: "a", bubbles: true }));
    prompt.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", shiftKey: true, bubbles: true }));
    expect(escaped).toBe(false);
    prompt.dispatchEvent(new KeyboardEvent("keydown", { key: "s", ctrlKey: true, bubbles: true }));
    expect(escaped).toBe(true); // Ctrl+S still saves the notebook
  });

  it("disables Generate while busy and sends cancel", () => {
    const { $, model } = ctx;
    expect($("button[name=cancel]").disabled).toBe(true);
    model.update("busy", true);
    model.update("status", { phase: "sampling", step: 1, total: 4, percent: 25, its: 2, eta: 1.5, batch: 1, kind: "diffusion" });
    expect($("button[name=generate]").disabled).toBe(true);
    expect($("button[name=cancel]").disabled).toBe(false);
    expect($(".qvac-progress-label").textContent).toContain("step 1/4");
    $("button[name=generate]").click();
    expect(model.sentOfType("generate")).toHaveLength(0);
    $("button[name=cancel]").click();
    expect(model.sentOfType("cancel")).toHaveLength(1);
  });

  it("lets Cancel stop a download or a load", () => {
    const { $, model } = ctx;
    model.update("busy", true);
    model.update("status", { phase: "downloading", kind: "load", percent: 12, message: "downloading model_src" });
    expect($("button[name=cancel]").disabled).toBe(false);
    $("button[name=cancel]").click();
    expect(model.sentOfType("cancel")).toHaveLength(1);
    model.update("busy", false);
    model.update("status", { phase: "cancelled", kind: "load", message: "loading x was cancelled" });
    expect($("button[name=cancel]").disabled).toBe(true);
    expect($("button[name=load]").disabled).toBe(false);
  });

  it("shows latent previews on the stage", () => {
    const { $, model } = ctx;
    model.message({ type: "preview", step: 1, total: 4 }, [fakeImage()]);
    expect($(".qvac-stage").dataset.kind).toBe("preview");
    expect($(".qvac-stage-img").src).toMatch(/^blob:mock/);
  });

  it("tells a failed load at the model bar, not under Generate", () => {
    ctx = setup();
    const { $, model } = ctx;
    model.update("status", { phase: "error", kind: "load", message: "model_src: no file", field: "" });
    model.update("error", "model_src: model file 'x.gguf' not found");
    expect($(".qvac-model-bar .qvac-bar-error").hidden).toBe(false);
    expect($(".qvac-model-bar .qvac-bar-error").textContent).toContain("not found");
    expect($(".qvac-controls .qvac-error").hidden).toBe(true);
    model.update("status", { phase: "error", kind: "diffusion", message: "steps" });
    model.update("error", "steps: must be between 1 and 150, got 0");
    expect($(".qvac-model-bar .qvac-bar-error").hidden).toBe(true);
    expect($(".qvac-controls .qvac-error").hidden).toBe(false);
  });

  it("marks the field an error is about until the error goes", () => {
    ctx = setup();
    const { $, model } = ctx;
    model.update("error_param", "width");
    model.update("error", "width: 65 is not a size this SD 1.x model can make");
    expect($("input[name=width]").getAttribute("aria-invalid")).toBe("true");
    expect($("input[name=height]").getAttribute("aria-invalid")).toBeNull();
    model.update("error", "");
    model.update("error_param", "");
    expect($("input[name=width]").getAttribute("aria-invalid")).toBeNull();
  });

  it("shows errors from the kernel and clears them on request", () => {
    const { $, model } = ctx;
    expect($(".qvac-error").hidden).toBe(true);
    model.update("error", "width: must be a multiple of 8, got 65 (try 64 or 72)");
    expect($(".qvac-error").hidden).toBe(false);
    expect($(".qvac-error").textContent).toContain("multiple of 8");
    $(".qvac-error button").click();
    expect(model.sentOfType("clear_error")).toHaveLength(1);
  });

  it("loads a model by name or picks a loaded one", () => {
    const { $, model } = ctx;
    $("input[name=model_source]").value = "SD_V2_1_1B_Q8_0";
    $("input[name=upscaler_source]").value = "REALESRGAN_X4PLUS";
    $("button[name=load]").click();
    expect(model.sentOfType("load_model")[0].content).toEqual({ type: "load_model", source: "SD_V2_1_1B_Q8_0", upscaler: "REALESRGAN_X4PLUS", prediction: null, vae: null, clip_l: null, t5xxl: null, llm: null });
    model.update("loaded", ["sd1#1", "flux#2"]);
    const select = $("select[name=loaded]");
    select.value = "flux#2";
    select.dispatchEvent(new Event("change"));
    expect(model.sentOfType("select_model")[0].content.model_id).toBe("flux#2");
  });

  it("loads FLUX.2 with companions and prediction; Enter loads only a whole name", () => {
    const { $, model } = ctx;
    model.update("catalog", { ...model.get("catalog"), diffusion: ["FLUX_2_KLEIN_4B_Q4_0"], upscaler: [],
      companions: { FLUX_2_KLEIN_4B_Q4_0: { llm_model_src: "QWEN3_4B_Q4_K_M", vae_model_src: "FLUX_2_KLEIN_4B_VAE" } },
      predictions: ["auto", "eps", "flux2_flow"] });
    const source = $("input[name=model_source]");
    source.value = "FLUX_2_KL"; // half typed: Enter does nothing, and the kernel is not asked about it
    source.dispatchEvent(new Event("input"));
    source.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(model.sentOfType("load_model")).toHaveLength(0);
    expect(model.sentOfType("source_info")).toHaveLength(0);
    source.value = "FLUX_2_KLEIN_4B_Q4_0";
    source.dispatchEvent(new Event("input"));
    expect(model.sentOfType("source_info").map((m) => m.content.source)).toEqual(["FLUX_2_KLEIN_4B_Q4_0"]);
    expect($("input[name=llm]").placeholder).toBe("from the catalogue: QWEN3_4B_Q4_K_M"); // brought by the name
    expect($("input[name=llm]").getAttribute("aria-label")).toContain("Text encoder");
    expect([...$("input[name=llm]").list.options].map((o) => o.value)).toEqual(["QWEN3_4B_Q4_K_M"]);
    $("select[name=prediction]").value = "flux2_flow";
    source.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(model.sentOfType("load_model")[0].content).toMatchObject({ source: "FLUX_2_KLEIN_4B_Q4_0", prediction: "flux2_flow", llm: null });
  });

  it("shows the values the kernel puts in the form for a new model, and changes none itself", () => {
    const { $, model } = ctx;
    const saves = model.saves;
    // The kernel moves untouched fields to the model's defaults (FLUX.2 klein: cfg 1, 4 steps) with its rules.
    model.update("params", { ...PARAMS, cfg_scale: 1, steps: 4 });
    model.update("form_rules", rulesOf("reference"));
    model.update("model_info", { ...SD1, id: "klein#2", family: "flux2", uses_guidance: true, defaults: { cfg_scale: 1, steps: 4 } });
    expect($("input[name=steps]").value).toBe("4");
    expect($("[data-param=strength]").hidden).toBe(true); // the reference image is not re-noised
    expect(model.saves).toBe(saves); // nothing written back: the front-end does not decide defaults
  });

  it("sends a dropped init image as a binary buffer and previews it", async () => {
    const { $, model, el } = ctx;
    const file = new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3])], "cat.png", { type: "image/png" });
    const drop = new Event("drop", { bubbles: true, cancelable: true });
    Object.defineProperty(drop, "dataTransfer", { value: { files: [file] } });
    $(".qvac-drop").dispatchEvent(drop);
    await flush();
    await flush();
    const [msg] = model.sentOfType("init_image");
    expect(msg.content.name).toBe("cat.png");
    expect(msg.buffers[0].byteLength).toBe(7);
    expect($("[data-param=strength]").hidden).toBe(true); // strength shows with an init image only
    model.update("init_image", { name: "cat.png", thumb: fakeImage(), width: 64, height: 64 });
    expect($(".qvac-init-preview").hidden).toBe(false);
    expect($("[data-param=strength]").hidden).toBe(false);
    expect($(".qvac-init [data-param=strength]")).not.toBeNull(); // beside the image
    expect(el.textContent).toContain("cat.png (64×64)");
    $("button[name=clear_init]").click();
    expect(model.sentOfType("clear_init")).toHaveLength(1);
  });
});

describe("Studio gallery", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it("renders thumbnails in the order given (newest first) and keeps existing cards", () => {
    ctx = setup({ gallery: [entry("img1")] });
    const { el, model } = ctx;
    const first = el.querySelector('.qvac-card[data-id="img1"]');
    model.update("gallery", [entry("img3"), entry("img2"), entry("img1")]);
    const ids = [...el.querySelectorAll(".qvac-card")].map((c) => c.dataset.id);
    expect(ids).toEqual(["img3", "img2", "img1"]);
    expect(el.querySelector('.qvac-card[data-id="img1"]')).toBe(first);
    expect(el.querySelector(".qvac-count").textContent).toBe("3 images");
  });

  it("sends each gallery action with the image id", () => {
    ctx = setup({ gallery: [entry("img7")], model_info: { ...SD1, has_upscaler: true, upscale_factor: 4 } });
    const { el, model } = ctx;
    for (const action of ["reuse_seed", "reuse_all", "use_as_init", "upscale"]) {
      el.querySelector(`.qvac-card button[data-action=${action}]`).click();
      expect(model.sentOfType(action)[0].content).toEqual({ type: action, id: "img7" });
    }
  });

  it("disables Seed on a grid sheet and All on one saved without its axes, saying why", () => {
    ctx = setup({ gallery: [entry("img8", { seed: null, params: {}, kind: "grid", grid: "x: seed" }), entry("img7")] });
    const [sheet, image] = ctx.el.querySelectorAll(".qvac-card");
    for (const action of ["reuse_seed", "reuse_all"]) {
      const off = sheet.querySelector(`button[data-action=${action}]`);
      expect(off.disabled).toBe(true);
      expect(off.title).toContain("grid sheet");
      expect(image.querySelector(`button[data-action=${action}]`).disabled).toBe(false);
    }
    expect(sheet.querySelector("button[data-action=reuse_all]").title).toContain("without its axes");
    expect(sheet.querySelector("button[data-action=use_as_init]").disabled).toBe(false);
  });

  it("a grid card's All restores the grid's axes and base parameters", () => {
    const base = { ...PARAMS, prompt: "a grey cat", steps: 3, cfg_scale: 4, seed: 11 };
    const sheet = entry("img9", { seed: null, params: {}, kind: "grid", grid: "x: cfg_scale = 4, 7; y: seed = 11, 12", grid_axes: { x: ["cfg_scale", [4, 7]], y: ["seed", [11, 12]] }, grid_base: base });
    ctx = setup({ gallery: [sheet] });
    const { $, model } = ctx;
    const seedButton = $(".qvac-card button[data-action=reuse_seed]");
    expect(seedButton.disabled).toBe(true); // a sheet still has no one seed
    expect(seedButton.title).toContain("no one seed");
    const all = $(".qvac-card button[data-action=reuse_all]");
    expect(all.disabled).toBe(false);
    all.click();
    expect(model.sentOfType("reuse_all").map((m) => m.content)).toEqual([{ type: "reuse_all", id: "img9" }]);
    // The kernel answers: the base parameters into the form (params), the axes to the Grid section (a message).
    model.update("params", { ...base, seed: "11", random_seed: false });
    model.message({ type: "grid_axes", x: ["cfg_scale", "4, 7"], y: ["seed", "11, 12"] });
    expect($("textarea[name=prompt]").value).toBe("a grey cat");
    expect($("input[name=steps]").value).toBe("3");
    expect($("details.qvac-grid-box").open).toBe(true);
    expect($("select[name=grid_x]").value).toBe("cfg_scale");
    expect($("input[name=grid_x_values]").value).toBe("4, 7");
    expect($("select[name=grid_y]").value).toBe("seed");
    expect($("input[name=grid_y_values]").value).toBe("11, 12");
    expect($("input[name=grid_y_values]").disabled).toBe(false);
    expect($(".qvac-grid-count").textContent).toBe("4 images");
    expect($(".qvac-grid-message").hidden).toBe(true);
    // Generate grid sends the grid again, as it was.
    $("button[name=generate_grid]").click();
    const [{ content }] = model.sentOfType("grid");
    expect(content.x).toEqual(["cfg_scale", [4, 7]]);
    expect(content.y).toEqual(["seed", [11, 12]]);
    expect(content.params.prompt).toBe("a grey cat");
  });

  it("says so when the current model cannot vary a restored grid axis, and clears a missing y axis", () => {
    ctx = setup();
    const { $, model } = ctx;
    $("select[name=grid_y]").value = "steps";
    $("input[name=grid_y_values]").value = "2, 4";
    // guidance is hidden for this SD 1.x-like model: it is not offered, and the section says why it is missing.
    model.message({ type: "grid_axes", x: ["guidance", "2.5, 3.5"], y: null });
    expect($("select[name=grid_y]").value).toBe("");
    expect($("input[name=grid_y_values]").value).toBe("");
    expect($("select[name=grid_x]").value).not.toBe("guidance");
    expect($(".qvac-grid-message").hidden).toBe(false);
    expect($(".qvac-grid-message").textContent).toContain("'guidance'");
  });

  it("greys out Upscale without an upscaler", () => {
    ctx = setup({ gallery: [entry("img7")] });
    expect(ctx.el.querySelector(".qvac-card button[data-action=upscale]").disabled).toBe(true);
  });

  it("downloads the full PNG the kernel sends as a buffer", async () => {
    ctx = setup({ gallery: [entry("img9")] });
    const { el, model } = ctx;
    const clicked = [];
    const original = HTMLAnchorElement.prototype.click;
    HTMLAnchorElement.prototype.click = function () {
      clicked.push(this.download);
    };
    try {
      el.querySelector(".qvac-card button[data-action=download]").click();
      expect(model.sentOfType("image")[0].content).toEqual({ type: "image", id: "img9" });
      model.message({ type: "image", id: "img9" }, [fakeImage(100)]);
      await flush();
      expect(clicked).toEqual(["qvac_nb-42-img9.png"]);
    } finally {
      HTMLAnchorElement.prototype.click = original;
    }
  });

  it("opens a lightbox with the full image and parameters; Escape closes it", async () => {
    ctx = setup({ gallery: [entry("img4")] });
    const { el, model } = ctx;
    el.querySelector(".qvac-thumb").click();
    const box = el.querySelector(".qvac-lightbox");
    expect(box).not.toBeNull();
    expect(box.textContent).toContain("a red boat");
    expect(box.textContent).toContain("euler_a");
    model.message({ type: "image", id: "img4" }, [fakeImage(100)]);
    await flush();
    expect(box.querySelector(".qvac-lightbox-img").src).toMatch(/^blob:mock/);
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
    expect(el.querySelector(".qvac-lightbox")).toBeNull();
  });

  it("shows the newest image full size when a job is done", async () => {
    ctx = setup();
    const { $, model } = ctx;
    model.update("gallery", [entry("img2"), entry("img1")]);
    model.update("status", { phase: "done", kind: "diffusion", elapsed: 1.2, seed: 42 });
    expect(model.sentOfType("image").map((m) => m.content.id)).toEqual(["img2"]);
    model.message({ type: "image", id: "img2" }, [fakeImage(100)]);
    await flush();
    expect($(".qvac-stage").dataset.kind).toBe("image");
  });

  it("with a video model: Generate makes a video, the grid hides, and the stage plays the newest clip", async () => {
    ctx = setup();
    const { $, model } = ctx;
    expect($("[name=generate]").textContent).toBe("Generate");
    model.update("form_rules", { ...rulesOf("sdedit"), video: true });
    expect($("[name=generate]").textContent).toBe("Generate video");
    expect($(".qvac-grid-box").hidden).toBe(true);
    const clip = entry("img3", { video: "vid3", format: "mp4", mime: "video/mp4", frames: 5, fps: 16 });
    model.update("gallery", [clip, entry("img1")]);
    model.update("status", { phase: "done", kind: "video", elapsed: 3, seed: 7 });
    expect(model.sentOfType("image").map((m) => m.content.id)).toEqual(["vid3"]);
    model.message({ type: "image", id: "vid3" }, [fakeImage(100)]);
    await flush();
    expect($(".qvac-stage").dataset.kind).toBe("video");
    expect($(".qvac-stage video").src).toMatch(/^blob:mock/);
    expect($(".qvac-stage-img").hidden).toBe(true);
    expect($(".qvac-count").textContent).toBe("1 image · 1 video");
    model.message({ type: "preview", step: 1, total: 2 }, [fakeImage(10)]); // the next run's preview replaces it
    expect($(".qvac-stage video")).toBeNull();
    expect($(".qvac-stage").dataset.kind).toBe("preview");
  });

  it("removes its listeners when the view is removed", () => {
    ctx = setup();
    expect(ctx.model.listenerCount()).toBeGreaterThan(0);
    ctx.cleanup();
    expect(ctx.model.listenerCount()).toBe(0);
    ctx.cleanup = () => {};
  });
});

describe("Studio status", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it("marks the last preview of a cancelled run as not a result", () => {
    ctx = setup();
    const { $, model } = ctx;
    model.update("busy", true);
    model.update("status", { phase: "sampling", step: 2, total: 40, batch: 1 });
    model.message({ type: "preview", step: 2, total: 40 }, [fakeImage()]);
    expect($(".qvac-stage").dataset.kind).toBe("preview");
    model.update("busy", false);
    model.update("status", { phase: "cancelled", step: 2, total: 40, batch: 1 });
    expect($(".qvac-stage").dataset.kind).toBe("cancelled");
    expect($(".qvac-stage-note").textContent).toContain("not a result");
  });
});

describe("Studio without its kernel-side object", () => {
  let ctx;
  afterEach(() => {
    ctx.cleanup();
    ctx.el.remove();
  });

  it("says the kernel restarted, disables its actions and fails full-size views at once", async () => {
    ctx = setup({ gallery: [entry("img1")], output_dir: "/nb/qvac_nb_outputs" });
    const { $, el, model } = ctx;
    expect($(".qvac-dead").hidden).toBe(true);
    el.classList.add("jupyter-widgets-disconnected"); // what ipywidgets does when the comm goes
    await flush();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect($(".qvac-dead").hidden).toBe(false);
    expect($(".qvac-dead").textContent).toContain("Kernel restarted — run the cell again.");
    expect($(".qvac-dead").textContent).toContain("/nb/qvac_nb_outputs");
    expect($("button[name=generate]").disabled).toBe(true);
    expect($(".qvac-card button[data-action=reuse_seed]").disabled).toBe(true);
    expect($("input[name=filter]").disabled).toBe(false); // filtering needs no kernel
    expect($("select[name=model_filter]").disabled).toBe(false);
    const asked = model.sentOfType("image").length; // the stage asked for the newest image before
    $(".qvac-thumb").click();
    await flush();
    expect($(".qvac-lightbox-status").textContent).toContain("Kernel restarted");
    expect(model.sentOfType("image")).toHaveLength(asked);
    // A reconnect (same kernel) gives the controls back.
    el.classList.remove("jupyter-widgets-disconnected");
    await flush();
    expect($(".qvac-dead").hidden).toBe(true);
    expect($("button[name=generate]").disabled).toBe(false);
  });

  it("goes dead when its kernel restarts", () => {
    const listeners = [];
    const kernel = { statusChanged: { connect: (fn) => listeners.push(fn), disconnect: () => listeners.splice(0) } };
    ctx = setup();
    ctx.cleanup();
    ctx.el.remove();
    const model = mockModel({ ...ctx.model.state });
    model.widget_manager = { kernel };
    const el = document.createElement("div");
    document.body.append(el);
    ctx = { el, cleanup: studio.render({ model, el }) };
    expect(el.querySelector(".qvac-dead").hidden).toBe(true);
    listeners.forEach((fn) => fn(kernel, "busy"));
    expect(el.querySelector(".qvac-dead").hidden).toBe(true);
    listeners.forEach((fn) => fn(kernel, "restarting"));
    expect(el.querySelector(".qvac-dead").hidden).toBe(false);
    expect(el.querySelector("button[name=generate]").disabled).toBe(true);
  });

  it("treats a send that throws (\"Cannot send\") as a dead comm", () => {
    const model = mockModel({ current_model: "sd1#1", model_info: SD1, loaded: ["sd1#1"], schema: SCHEMA, size_presets: PRESETS,
      params: { ...PARAMS }, status: { phase: "idle" }, busy: false, error: "", gallery: [], init_image: {} });
    model.send = () => {
      throw new Error("Cannot send");
    };
    const el = document.createElement("div");
    document.body.append(el);
    ctx = { el, cleanup: studio.render({ model, el }) };
    el.querySelector("button[name=generate]").click();
    expect(el.querySelector(".qvac-dead").hidden).toBe(false);
    expect(el.querySelector("button[name=generate]").disabled).toBe(true);
  });
});
