// @ts-check
// A grid of thumbnails (from synced state) with per-image actions; full size opens in a lightbox.
import { openLightbox } from "./lightbox.js";
import { fileId, fileName, saveBlob, typedBlob, videoPlayer } from "./images.js";
import { appliesTo, familyInfo, SIZE } from "./form.js";
import { INIT_PARAMS } from "./init-image.js";
import { h, objectUrl, revoke } from "./util.js";

/** @typedef {import("./types.js").GalleryEntry} GalleryEntry */
/** @typedef {import("./types.js").Schema} Schema */

/**
 * A button of each card: its `name` goes to onAction (except "download", done here); enabled(entry) says whether it
 * works for that entry, why(entry) why not (the disabled button's tooltip). `A`: the names onAction gets.
 * @template {string} A
 * @typedef {object} GalleryAction
 * @property {A | "download"} name
 * @property {string} label
 * @property {string} [title]
 * @property {(entry: GalleryEntry) => boolean} [enabled]
 * @property {(entry: GalleryEntry) => string} [why]
 */

// A video's "Video" row already says these (frames made, fps, file format).
const VIDEO_ROW = ["video_frames", "fps", "output_format"];

/**
 * Whether a record's parameter made the image: not one the Studio saw hidden for the model (entry.unused), not one
 * of the init image without one, not one its family ignores. A param's `families` list names image families only,
 * so for a video family (its row `makes` "video") only the row's `hidden` list applies.
 * @param {import("./types.js").SchemaParam} param
 * @param {GalleryEntry} entry
 * @param {Schema | null | undefined} schema
 */
function applies(param, entry, schema) {
  if ((entry.unused || []).includes(param.name)) return false;
  if (!entry.img2img && INIT_PARAMS.includes(param.name)) return false;
  if (!entry.family) return true; // an image from elsewhere: show what it carries
  const info = familyInfo(schema, entry.family);
  if (info.makes === "video") return !(info.hidden || []).includes(param.name);
  return appliesTo(param, entry.family, info);
}

/**
 * The parameters an entry was made with: a grid sheet's are its base parameters (it has no record of its own).
 * @param {GalleryEntry} entry
 * @returns {Record<string, any>}
 */
export function entryParams(entry) {
  return (entry.kind === "grid" ? entry.grid_base : entry.params) || {};
}

/** The parameter names a grid sheet varies (its axes): no one value of theirs made it. @param {GalleryEntry} entry */
function gridVaried(entry) {
  const axes = (entry.kind === "grid" && entry.grid_axes) || {};
  return [axes.x, axes.y].filter(Array.isArray).map((axis) => axis[0]);
}

/**
 * [label, value] rows describing one gallery entry: its size, then the replayable parameters that made it (schema).
 * @param {GalleryEntry} entry
 * @param {Schema | null | undefined} schema
 * @returns {[string, unknown][]}
 */
export function entryDetails(entry, schema) {
  const p = entryParams(entry);
  const varied = gridVaried(entry);
  /** @type {[string, unknown][]} */
  const rows = [["Size", `${entry.width}×${entry.height}`]];
  if (entry.kind === "grid" && p.width && p.height) rows.push(["Cell size", `${p.width}×${p.height}`]);
  if (entry.video) rows.push(["Video", `${entry.frames} frames at ${entry.fps} fps (${String(entry.format || "mp4").toUpperCase()})`]);
  for (const param of (schema && schema.params) || []) {
    if (!param.replayable || param.type === "image" || SIZE.includes(param.name) || !applies(param, entry, schema)) continue;
    if (varied.includes(param.name) || (entry.video && VIDEO_ROW.includes(param.name))) continue;
    const value = p[param.name];
    if (value === undefined || value === null || value === "" || atDefault(param, value)) continue;
    rows.push([param.label || param.name, shown(value)]);
  }
  if (entry.kind === "upscale") rows.push(["Upscaled from", entry.source || "image"]);
  if (entry.kind === "grid" && entry.grid) rows.push(["Grid", entry.grid]);
  return rows;
}

/**
 * Whether a row would only repeat a default nobody chose: an advanced setting left as it was (VAE tile size 0,
 * clip skip -1), or the batch size of one image's record (always 1).
 * @param {import("./types.js").SchemaParam} param
 * @param {unknown} value
 */
function atDefault(param, value) {
  if (param.name === "batch_count") return value === 1;
  return param.group === "advanced" && JSON.stringify(value) === JSON.stringify(param.default);
}

/**
 * A record value as text: a list of LoRAs ({name, weight, ...}) as "name: weight, ...", other objects as JSON.
 * @param {any} value
 * @returns {any}
 */
export function shown(value) {
  if (Array.isArray(value)) return value.map((v) => (v && typeof v === "object" && "name" in v ? `${v.name}: ${v.weight}` : shown(v))).join(", ");
  return value && typeof value === "object" ? JSON.stringify(value) : value;
}

/** What a download of the entry is: "PNG", or a video's "MP4" / "WEBP". @param {GalleryEntry} entry */
export function downloadLabel(entry) {
  return entry.video ? String(entry.format || "mp4").toUpperCase() : "PNG";
}

/** The line under a card: size, frames, seed, kind. @param {GalleryEntry} entry */
export function entryCaption(entry) {
  const bits = [`${entry.width}×${entry.height}`];
  if (entry.video) bits.push(`${entry.frames} frames · ${entry.fps} fps`);
  if (entry.seed !== null && entry.seed !== undefined) bits.push(`seed ${entry.seed}`);
  if (entry.kind === "upscale") bits.push("upscaled");
  if (entry.kind === "grid") bits.push("grid");
  return bits.join(" · ");
}

/** The name of the model that made an entry: its id without the "#n" of one session's copy ("" if not known). @param {GalleryEntry} entry */
export function modelName(entry) {
  return String(entry.model || "").replace(/#\d+$/, "");
}

/**
 * True if the entry's prompt or model name contains `text` (case-insensitive); an empty filter keeps everything.
 * @param {GalleryEntry} entry
 * @param {string} text
 */
export function matchesPrompt(entry, text) {
  const needle = (text || "").trim().toLowerCase();
  if (!needle) return true;
  return [entryParams(entry).prompt, modelName(entry)].some((s) => String(s || "").toLowerCase().includes(needle));
}

/** True if the entry was made by the model named `model` ("": any model). @param {GalleryEntry} entry @param {string} model */
export function matchesModel(entry, model) {
  return !model || modelName(entry) === model;
}

/**
 * actions: [{name, label, title, enabled?(entry), why?(entry)}]: why() is the tooltip of a disabled button;
 * "download" is handled here, others go to onAction(name, entry).
 * schema(): the parameter schema (qvac_nb.schema.schema_json) that labels the lightbox's parameter rows.
 * onDownloadAll(ids): "Download all" was clicked with these (shown, i.e. filtered) image ids.
 * The toolbar (`tools`: prompt filter and "Download all") is placed by the caller.
 * @template {string} A
 * @param {object} options
 * @param {HTMLElement} [options.host] where the lightbox opens (default: the grid)
 * @param {import("./images.js").ImageFetcher} options.fetcher
 * @param {() => Schema | null | undefined} [options.schema]
 * @param {GalleryAction<A>[]} [options.actions]
 * @param {(name: A, entry: GalleryEntry) => unknown} [options.onAction]
 * @param {string} [options.empty] what an empty grid says
 * @param {((ids: string[]) => unknown) | null} [options.onDownloadAll]
 */
export function createGalleryGrid({ host, fetcher, schema = () => null, actions = [], onAction = () => {}, empty = "", onDownloadAll = null }) {
  const el = h("div", { class: "qvac-grid" });
  const placeholder = h("div", { class: "qvac-grid-empty" }, empty);
  const filter = h("input", { type: "search", class: "qvac-filter", name: "filter", placeholder: "filter by prompt or model", "aria-label": "Filter images by prompt or model name" });
  // Shown once the entries come from two models or more (a shared folder): one option per model name.
  const modelFilter = h("select", { class: "qvac-filter qvac-model-filter", name: "model_filter", "aria-label": "Show the images of one model", hidden: true }, h("option", { value: "" }, "all models"));
  const downloadAll = h("button", { class: "qvac-btn qvac-small", name: "download_all", title: "the shown images as one zip file" }, "Download all");
  const tools = h("div", { class: "qvac-grid-tools" }, filter, modelFilter, onDownloadAll ? downloadAll : null);
  /** @type {Map<string, {card: HTMLElement, url: string, buttons: HTMLButtonElement[], img: HTMLImageElement}>} */
  const cards = new Map(); // id -> {card, url, buttons}
  /** @type {GalleryEntry[]} */
  let entries = [];

  function shown() {
    return entries.filter((entry) => matchesPrompt(entry, filter.value) && matchesModel(entry, modelFilter.value));
  }

  /** The model filter's options: the model names of the entries, sorted; a choice no longer present goes back to all. */
  function fillModels() {
    const names = [...new Set(entries.map(modelName).filter(Boolean))].sort();
    const want = ["", ...names];
    const have = [...modelFilter.options].map((o) => o.value);
    if (JSON.stringify(want) !== JSON.stringify(have)) {
      const value = modelFilter.value;
      modelFilter.replaceChildren(...want.map((name) => h("option", { value: name }, name || "all models")));
      modelFilter.value = want.includes(value) ? value : "";
    }
    modelFilter.hidden = names.length < 2 && !modelFilter.value;
  }

  function applyFilter() {
    const keep = new Set(shown().map((e) => e.id));
    for (const [id, item] of cards) item.card.hidden = !keep.has(id);
    downloadAll.disabled = keep.size === 0;
    placeholder.textContent = entries.length && !keep.size ? "No image matches the filter." : empty;
    if (entries.length && !keep.size) el.append(placeholder);
    else if (entries.length) placeholder.remove();
  }
  filter.addEventListener("input", applyFilter);
  modelFilter.addEventListener("change", applyFilter);
  downloadAll.addEventListener("click", () => onDownloadAll && onDownloadAll(shown().map((e) => e.id)));

  /** @param {GalleryEntry} entry */
  function download(entry) {
    return fetcher.get(fileId(entry)).then((blob) => saveBlob(typedBlob(entry, blob), fileName(entry)));
  }

  /** @param {A | "download"} name @param {GalleryEntry} entry */
  function run(name, entry) {
    if (name === "download") return download(entry);
    return onAction(/** @type {A} */ (name), entry);
  }

  /**
   * The entry's full-size view.
   * @param {GalleryEntry} entry
   * @returns {ReturnType<typeof openLightbox>}
   */
  function open(entry) {
    const thumb = cards.has(entry.id) ? cards.get(entry.id).img : null;
    return openLightbox(host || el, {
      title: entryParams(entry).prompt || "(no prompt)",
      details: entryDetails(entry, schema()),
      load: () => fetcher.get(fileId(entry)).then((blob) => typedBlob(entry, blob)),
      player: entry.video ? (url) => videoPlayer(entry, url, { cls: "qvac-lightbox-img qvac-lightbox-video", fetch: fetcher.get }) : null,
      actions: [{ label: `Download ${downloadLabel(entry)}`, title: `the ${downloadLabel(entry)} with its parameters embedded`, run: () => download(entry) }],
      returnTo: thumb,
      step: (delta) => {
        const list = shown();
        const at = list.findIndex((e) => e.id === entry.id);
        const next = list[(at + delta + list.length) % list.length];
        if (next) open(next);
      },
    });
  }

  /** @param {GalleryEntry} entry */
  function makeCard(entry) {
    const url = entry.thumb ? objectUrl(entry.thumb, "image/jpeg") : "";
    // One tab stop per card: the thumbnail (Enter opens it); the arrow keys reach the card's buttons.
    const img = h("img", { class: "qvac-thumb", src: url, alt: entryCaption(entry), title: "click for full size", loading: "lazy", tabindex: "0", role: "button", "aria-label": `open full size: ${entryParams(entry).prompt || entryCaption(entry)}` });
    img.addEventListener("click", () => open(current(entry.id) || entry));
    const buttons = actions.map((action) => {
      // A video's download button saves its MP4 or WebP, not its first frame.
      const video = action.name === "download" && entry.video;
      const label = video ? downloadLabel(entry) : action.label;
      const title = video ? `download the ${label} (parameters embedded)` : action.title || action.label;
      return h("button", { class: "qvac-btn qvac-small", "data-action": action.name, title, tabindex: "-1", onclick: () => run(action.name, current(entry.id)) }, label);
    });
    const card = h("figure", { class: "qvac-card", "data-id": entry.id, "data-video": entry.video ? entry.format || "mp4" : null }, img, h("figcaption", {}, entryCaption(entry)), h("div", { class: "qvac-card-actions" }, buttons));
    card.addEventListener("keydown", (event) => {
      const stops = [img, ...buttons.filter((b) => !b.disabled)];
      const at = stops.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
      if ((event.key === "Enter" || event.key === " ") && event.target === img) {
        event.preventDefault();
        open(current(entry.id) || entry);
      } else if ((event.key === "ArrowRight" || event.key === "ArrowLeft") && at >= 0) {
        event.preventDefault();
        stops[(at + (event.key === "ArrowRight" ? 1 : -1) + stops.length) % stops.length].focus();
      }
    });
    return { card, url, buttons, img };
  }

  /** @param {string} id */
  function current(id) {
    return entries.find((e) => e.id === id);
  }

  /** Each button works, or is disabled with its reason as its tooltip (action.why(entry)). */
  function refreshButtons() {
    for (const entry of entries) {
      const item = cards.get(entry.id);
      actions.forEach((action, i) => {
        const button = item.buttons[i];
        const usable = action.enabled ? action.enabled(entry) : true;
        button.disabled = !usable;
        if (!button.dataset.title) button.dataset.title = button.title;
        button.title = usable || !action.why ? button.dataset.title : action.why(entry);
      });
    }
  }

  /** Show these entries (the widget's listing trait), in this order. @param {GalleryEntry[] | null | undefined} next */
  function update(next) {
    entries = Array.isArray(next) ? next : [];
    const keep = new Set(entries.map((e) => e.id));
    for (const [id, item] of cards) {
      if (!keep.has(id)) {
        revoke(item.url);
        item.card.remove();
        cards.delete(id);
      }
    }
    entries.forEach((entry, index) => {
      if (!cards.has(entry.id)) cards.set(entry.id, makeCard(entry));
      const { card } = cards.get(entry.id);
      if (el.children[index] !== card) el.insertBefore(card, el.children[index] || null);
    });
    if (!entries.length) {
      placeholder.textContent = empty;
      if (empty) el.append(placeholder);
    } else {
      placeholder.remove();
    }
    fillModels();
    applyFilter();
    refreshButtons();
  }

  function dispose() {
    for (const item of cards.values()) revoke(item.url);
    cards.clear();
  }

  return { el, tools, update, refreshButtons, open, dispose, shown };
}
