// @ts-check
// The Studio widget: model bar, form, live progress with latent preview, and the session's gallery.
import "./studio.css";
import { createForm } from "./form.js";
import { createGalleryGrid } from "./gallery-grid.js";
import { createImageFetcher, handleZip, typedBlob, videoPlayer } from "./images.js";
import { createFeatureInputs } from "./feature-inputs.js";
import { createGridPanel } from "./grid-panel.js";
import { createInitImage } from "./init-image.js";
import { createModelBar } from "./model-bar.js";
import { createProgress, RUNNING } from "./progress.js";
import { createConnection, createPoller, DEAD_TEXT, freezeControls } from "./connection.js";
import { CANCEL, CLEAR_ERROR, DOWNLOAD_ZIP, GENERATE, GRID_AXES, PREVIEW, REUSE_ALL, REUSE_SEED, UPSCALE, USE_AS_INIT } from "./messages.js";
import { hideStaticCopies } from "./static-copies.js";
import { h, isolateKeys, objectUrl, revoke } from "./util.js";

/** @typedef {import("./types.js").StudioModel} StudioModel */
/** @typedef {import("./types.js").GalleryEntry} GalleryEntry */
/** @typedef {typeof REUSE_SEED | typeof REUSE_ALL | typeof USE_AS_INIT | typeof UPSCALE} GalleryMessage a card's button */

// Images from elsewhere carry no generation parameters to reuse; a grid sheet (the labelled grid) has no one seed,
// but its "All" puts back its base parameters and axes (kept with it since grids kept them).
/** @param {GalleryEntry} entry */
const hasRecord = (entry) => entry.seed !== null && entry.seed !== undefined;
/** @param {GalleryEntry} entry */
const noRecord = (entry) => (entry.kind === "grid" ? "a grid sheet has no one seed: reuse a cell's image instead" : "this image carries no generation parameters");
/** @param {GalleryEntry} entry */
const gridKept = (entry) => entry.kind === "grid" && Boolean(entry.grid_axes);
/** @param {GalleryEntry} entry */
const noGrid = (entry) => (entry.kind === "grid" ? "this grid sheet was saved without its axes (an older qvac_nb): reuse a cell's image instead" : noRecord(entry));
/** @type {import("./gallery-grid.js").GalleryAction<GalleryMessage>[]} */
const GALLERY_ACTIONS = [
  { name: "download", label: "PNG", title: "download the PNG (parameters embedded)" },
  { name: REUSE_SEED, label: "Seed", title: "reuse this seed", enabled: (entry) => entry.kind !== "grid" && hasRecord(entry), why: noRecord },
  { name: REUSE_ALL, label: "All", title: "reuse all parameters (a grid: its parameters and axes)", enabled: (entry) => (entry.kind === "grid" ? gridKept(entry) : hasRecord(entry)), why: noGrid },
  { name: USE_AS_INIT, label: "Init", title: "use as init image" },
];
// Gallery controls that work without a kernel (the filters) and those of the lightbox.
/** @param {import("./connection.js").FormControl} control */
const WORKS_OFFLINE = (control) => control.name === "filter" || control.name === "model_filter" || Boolean(control.closest(".qvac-lightbox"));

/** @param {import("./types.js").RenderProps<StudioModel>} props */
function render({ model: anyModel, el }) {
  const live = createConnection(anyModel, el, (dead) => onConnection(dead));
  // Every message goes through the connection: a dead kernel-side object is reported, not a silent no-op.
  /** @type {StudioModel} */
  const model = { ...anyModel, send: (content, _callbacks, buffers) => live.send(content, buffers) };
  const fetcher = createImageFetcher(model, live);
  const root = h("div", { class: "qvac-studio" });
  const deadNote = h("div", { class: "qvac-dead", role: "alert", hidden: true }, DEAD_TEXT, " ", h("span", { class: "qvac-dead-more" }));
  const bar = createModelBar(model);
  const barError = h("div", { class: "qvac-bar-error", role: "alert", hidden: true });
  bar.el.append(barError);
  const form = createForm(model);
  const init = createInitImage(model, form);
  const features = createFeatureInputs(model);
  const gridPanel = createGridPanel(model, { collect: commitForm });
  const progress = createProgress();
  const generate = h("button", { class: "qvac-btn qvac-primary", name: "generate", title: "Ctrl/Cmd+Enter" }, "Generate");
  const cancel = h("button", { class: "qvac-btn", name: "cancel" }, "Cancel");
  const errorText = h("span", { class: "qvac-error-text" });
  const promptHint = h("div", { class: "qvac-prompt-hint", role: "status", "aria-live": "polite" });
  const error = h("div", { class: "qvac-error", role: "alert", hidden: true }, errorText, h("button", { class: "qvac-btn qvac-small", onclick: () => model.send({ type: CLEAR_ERROR }) }, "×"));
  const stageImg = h("img", { class: "qvac-stage-img", alt: "preview" });
  const stageNote = h("div", { class: "qvac-stage-note" }, "Images appear here");
  const stage = h("div", { class: "qvac-stage", "data-kind": "empty" }, stageImg, stageNote);
  const canUpscale = () => Boolean((model.get("model_info") || {}).has_upscaler) && !model.get("busy") && !live.isDead();
  const grid = createGalleryGrid({
    host: root,
    fetcher,
    schema: () => model.get("schema"),
    empty: "Images will be listed here, newest first (with those saved before in the output folder).",
    actions: [...GALLERY_ACTIONS, { name: UPSCALE, label: "Upscale", title: "upscale with the model's upscaler", enabled: canUpscale }],
    onAction: (name, entry) => model.send({ type: name, id: entry.id }),
    onDownloadAll: (ids) => model.send({ type: DOWNLOAD_ZIP, ids }),
  });
  const count = h("span", { class: "qvac-count" });
  const savedTo = h("span", { class: "qvac-saved-to" });

  root.append(
    deadNote,
    bar.el,
    h(
      "div",
      { class: "qvac-main" },
      h("div", { class: "qvac-controls" }, form.el, init.el, features.el, gridPanel.el, h("div", { class: "qvac-buttons" }, generate, cancel), promptHint, error),
      h("div", { class: "qvac-output" }, progress.el, stage),
    ),
    h("div", { class: "qvac-gallery-head" }, h("span", {}, "Gallery"), count, savedTo, grid.tools),
    grid.el,
  );
  el.append(root);

  /** The form's values, written to the `params` trait first: what a generate (or grid) message sends. */
  function commitForm() {
    model.set("params", form.collect());
    model.save_changes();
    return form.collect();
  }

  function startGeneration() {
    if (generate.disabled) return;
    const params = commitForm();
    // Not an error (an unconditioned image is a valid request), but rarely what a new user meant.
    promptHint.textContent = String(params.prompt ?? "").trim() ? "" : "Empty prompt: the model draws without a text to follow.";
    model.send({ type: GENERATE, params });
  }
  generate.addEventListener("click", startGeneration);
  cancel.addEventListener("click", () => model.send({ type: CANCEL }));
  isolateKeys(root, (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      startGeneration();
      return true;
    }
    return false;
  });

  // The stage shows the newest latent preview while sampling, then the newest image at full size.
  let stageUrl = "";
  let stageFor = "";
  /** @type {HTMLElement | null} */
  let stageVideo = null; // the newest video's player, shown instead of the image
  function clearStageVideo() {
    if (stageVideo) stageVideo.remove();
    stageVideo = null;
    stageImg.hidden = false;
  }

  /** @param {import("./types.js").Bytes} blob @param {string} kind "preview" or "image" */
  function showStage(blob, kind) {
    revoke(stageUrl);
    clearStageVideo();
    stageUrl = objectUrl(blob);
    stageImg.src = stageUrl;
    stage.dataset.kind = kind;
    stageNote.textContent = kind === "preview" ? "latent preview" : "";
  }

  /** @param {GalleryEntry} entry @param {Blob} blob */
  function showStageVideo(entry, blob) {
    revoke(stageUrl);
    clearStageVideo();
    stageUrl = URL.createObjectURL(typedBlob(entry, blob));
    stageVideo = videoPlayer(entry, stageUrl, { cls: "qvac-stage-img qvac-stage-video", fetch: fetcher.get });
    stageImg.hidden = true;
    stage.insertBefore(stageVideo, stageNote);
    stage.dataset.kind = "video";
    stageNote.textContent = "";
  }

  function showNewest() {
    const newest = (model.get("gallery") || [])[0];
    if (!newest || newest.id === stageFor) return;
    stageFor = newest.id;
    fetcher.get(newest.video || newest.id).then(
      (blob) => {
        if (stageFor !== newest.id) return;
        if (newest.video) showStageVideo(newest, blob);
        else showStage(blob, "image");
      },
      () => {
        if (stageFor === newest.id) stageFor = ""; // not there (kernel gone): ask again when it is back
      },
    );
  }

  function onStatus() {
    const status = model.get("status") || {};
    progress.update(status);
    const busy = Boolean(model.get("busy"));
    const running = RUNNING.has(status.phase);
    generate.disabled = busy || !model.get("current_model") || live.isDead();
    gridPanel.setEnabled(!generate.disabled);
    cancel.disabled = !busy || live.isDead();  // also while loading: Cancel stops a download or a load
    root.classList.toggle("qvac-busy", busy);
    if (status.phase === "done" && status.kind !== "load") showNewest();
    // A preview left from a cancelled or failed run is not a result: say so over it.
    if ((status.phase === "cancelled" || status.phase === "error") && stage.dataset.kind === "preview") {
      stage.dataset.kind = status.phase;
      stageNote.textContent = status.phase === "cancelled" ? "cancelled — last preview, not a result" : "failed — last preview, not a result";
    }
    if (running && status.phase === "loading" && status.kind !== "load") stageNote.textContent = "starting…";
    bar.render();
    grid.refreshButtons();
  }

  // An error about one parameter marks its field (aria-invalid, which the form's style shows) until the
  // error goes; the error box scrolls into view (it sits under the form, often below the fold).
  /** @type {HTMLElement | null} */
  let marked = null;
  function onError() {
    const text = model.get("error") || "";
    // A failed load is told at the model bar, where it was asked for, not under the Generate button.
    const status = model.get("status") || {};
    const atBar = Boolean(text) && status.kind === "load" && status.phase === "error";
    barError.textContent = atBar ? text : "";
    barError.hidden = !atBar;
    errorText.textContent = atBar ? "" : text;
    error.hidden = !text || atBar;
    if (marked) marked.removeAttribute("aria-invalid");
    marked = null;
    const ctl = text ? form.controls().get(model.get("error_param") || "") : null;
    if (ctl) {
      marked = ctl.input;
      marked.setAttribute("aria-invalid", "true");
    }
    const shown = atBar ? barError : error;
    if (text && typeof shown.scrollIntoView === "function") shown.scrollIntoView({ block: "nearest" });
  }

  function onGallery() {
    const gallery = model.get("gallery") || [];
    grid.update(gallery);
    const videos = gallery.filter((entry) => entry.video).length;
    const images = gallery.length - videos;
    count.textContent = [images ? `${images} image${images === 1 ? "" : "s"}` : "", videos ? `${videos} video${videos === 1 ? "" : "s"}` : ""].filter(Boolean).join(" · ");
    const folder = model.get("output_dir") || "";
    savedTo.textContent = folder ? `saved in ${folder}` : "not saved to disk";
    savedTo.title = folder ? "every image is saved here as a PNG with its parameters (qvac_nb.history)" : "";
  }

  function onModel() {
    bar.render();
    form.render();
    gridPanel.render(); // the parameters it offers follow the model's family
    onStatus();
  }

  function onSchema() {
    form.render(); // rebuilds the controls
    init.render(); // takes its controls back from the new form
    gridPanel.render();
  }

  function onInitImage() {
    init.render();
    form.render(); // the init image's own fields (strength) show once one is set
    gridPanel.render(); // strength is offered with an init image only
  }

  function onFormRules() {
    form.render(); // which fields the model's family uses
    init.render(); // what the init image is for, and the fields beside it
    gridPanel.render();
    showMode();
  }

  /** A video model: Generate makes a video, and the grid (of images) does not apply. */
  function showMode() {
    const video = Boolean((model.get("form_rules") || {}).video);
    generate.textContent = video ? "Generate video" : "Generate";
    gridPanel.el.hidden = video;
    root.dataset.mode = video ? "video" : "image";
  }

  /** @param {boolean} dead */
  function onConnection(dead) {
    deadNote.hidden = !dead;
    const folder = model.get("output_dir") || "";
    deadNote.lastChild.textContent = folder ? `Its images are saved in ${folder}; a new Studio lists them.` : "";
    root.classList.toggle("qvac-disconnected", dead);
    if (dead) {
      fetcher.fail(DEAD_TEXT);
      // The filters and the lightbox work without a kernel; everything else needs it.
      freezeControls(root, true, WORKS_OFFLINE);
    } else {
      freezeControls(root, false);
      onStatus();
    }
  }

  /** @param {import("./types.js").InMessage} msg @param {import("./types.js").Bytes[]} buffers */
  function onCustom(msg, buffers) {
    if (fetcher.handle(msg, buffers) || handleZip(msg, buffers)) return;
    if (msg && msg.type === GRID_AXES) {
      gridPanel.setAxes(msg.x, msg.y); // a grid card's "All": the kernel put its base parameters into the form
      return;
    }
    if (msg && msg.type === PREVIEW && buffers && buffers.length) {
      stageFor = "";
      showStage(buffers[0], "preview");
    }
  }

  /** @typedef {import("./types.js").ModelEvent<import("./types.js").StudioTraits>} StudioEvent */
  /** @type {[StudioEvent, (...args: any[]) => void][]} */
  const listeners = [
    ["change:params", form.render],
    ["change:model_info", onModel],
    ["change:current_model", onModel],
    ["change:loaded", bar.render],
    ["change:catalog", bar.render],
    ["change:schema", onSchema],
    ["change:form_rules", onFormRules],
    ["change:source_info", bar.render],
    ["change:size_presets", onSchema],
    ["change:status", onStatus],
    ["change:status", onError],
    ["change:busy", onStatus],
    ["change:error", onError],
    ["change:error_param", onError],
    ["change:gallery", onGallery],
    ["change:init_image", onInitImage],
    ...features.traits.map((trait) => /** @type {[StudioEvent, () => void]} */ ([`change:${trait}`, features.render])),
    ["msg:custom", onCustom],
  ];
  for (const [name, fn] of listeners) model.on(name, fn);

  form.render();
  init.render();
  features.render();
  showMode();
  onModel();
  onError();
  onGallery();
  // A restored view (page reload) shows the newest image rather than an empty stage.
  if ((model.get("gallery") || []).length) showNewest();
  live.check();
  const stopPolling = createPoller(anyModel, model.send, () => Boolean(model.get("busy")) || RUNNING.has((model.get("status") || {}).phase), () => (model.get("gallery") || []).length);

  const stopHiding = hideStaticCopies(el, model.get("static_key") || "");

  return () => {
    stopPolling();
    stopHiding();
    live.dispose();
    for (const [name, fn] of listeners) model.off(name, fn);
    grid.dispose();
    revoke(stageUrl);
    clearStageVideo();
  };
}

export default { render };
