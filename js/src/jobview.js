// @ts-check
// JobView: a job's compact progress bar (with Cancel), then its images at full size.
import "./jobview.css";
import { createImageFetcher, fileName, saveBlob, typedBlob, videoPlayer } from "./images.js";
import { createProgress, RUNNING } from "./progress.js";
import { createConnection, createPoller, DEAD_TEXT } from "./connection.js";
import { CANCEL } from "./messages.js";
import { hideStaticCopies } from "./static-copies.js";
import { h, objectUrl, revoke } from "./util.js";

/** @typedef {import("./types.js").JobViewModel} JobViewModel */

/** @param {import("./types.js").RenderProps<JobViewModel>} props */
function render({ model: anyModel, el }) {
  const live = createConnection(anyModel, el, (dead) => onConnection(dead));
  /** @type {JobViewModel} */
  const model = { ...anyModel, send: (content, _callbacks, buffers) => live.send(content, buffers) };
  const fetcher = createImageFetcher(model, live);
  const deadNote = h("div", { class: "qvac-dead", role: "alert", hidden: true }, DEAD_TEXT);
  const progress = createProgress({ compact: true });
  const cancel = h("button", { class: "qvac-btn qvac-small", name: "cancel", title: "cancel the job", onclick: () => model.send({ type: CANCEL }) }, "Cancel");
  const error = h("div", { class: "qvac-error", role: "alert", hidden: true });
  const images = h("div", { class: "qvac-job-images" });
  const root = h("div", { class: "qvac-jobview" }, deadNote, h("div", { class: "qvac-job-head" }, progress.el, cancel), error, images);
  el.append(root);
  /** @type {Map<string, {figure: HTMLElement, url: string}>} */
  const shown = new Map(); // id -> {figure, url}

  function onStatus() {
    const status = model.get("status") || {};
    progress.update(status);
    const running = RUNNING.has(status.phase || "loading");
    cancel.hidden = !running || live.isDead();
    root.dataset.phase = status.phase || "loading";
    // A finished job keeps its one-line summary; the bar itself goes once its images are shown.
    root.classList.toggle("qvac-finished", status.phase === "done" && (model.get("images") || []).length > 0);
  }

  /** @param {boolean} dead */
  function onConnection(dead) {
    deadNote.hidden = !dead;
    root.classList.toggle("qvac-disconnected", dead);
    if (dead) fetcher.fail(DEAD_TEXT);
    for (const button of root.querySelectorAll("button")) button.disabled = dead;
    onStatus();
  }

  function onError() {
    const text = model.get("error") || "";
    error.textContent = text;
    error.hidden = !text;
  }

  function onImages() {
    for (const entry of model.get("images") || []) {
      if (shown.has(entry.id)) continue;
      // The thumbnail shows at once (and in a notebook reopened without a kernel); the full PNG replaces it.
      const thumbUrl = entry.thumb ? objectUrl(entry.thumb, "image/jpeg") : "";
      const img = h("img", { class: "qvac-job-img", src: thumbUrl, width: entry.width, height: entry.height, alt: `seed ${entry.seed ?? ""}` });
      const isVideo = Boolean(entry.video);
      const fileId = isVideo ? entry.video : entry.id;
      const label = isVideo ? String(entry.format || "mp4").toUpperCase() : "PNG";
      const save = h("button", { class: "qvac-btn qvac-small", title: `download the ${label} (parameters embedded)` }, label);
      save.addEventListener("click", () =>
        fetcher.get(fileId).then((blob) => saveBlob(typedBlob(entry, blob), fileName(entry))),
      );
      const caption = [`${entry.width}×${entry.height}`, isVideo ? `${entry.frames} frames · ${entry.fps} fps` : null, entry.seed !== null && entry.seed !== undefined ? `seed ${entry.seed}` : null].filter(Boolean).join(" · ");
      const figure = h("figure", { class: "qvac-job-figure", "data-id": entry.id }, img, h("figcaption", {}, caption, " ", save));
      images.append(figure);
      const item = { figure, url: thumbUrl };
      shown.set(entry.id, item);
      if (isVideo) {
        // The first frame stays as the poster until the file arrives; a WebP plays as an image.
        fetcher.get(fileId).then((blob) => {
          item.url = URL.createObjectURL(typedBlob(entry, blob));
          img.replaceWith(videoPlayer(entry, item.url, { cls: entry.format === "webp" ? "qvac-job-img qvac-full" : "qvac-job-video", poster: thumbUrl, fetch: fetcher.get }));
        }, () => {});
        continue;
      }
      fetcher.get(entry.id).then((blob) => {
        revoke(item.url);
        item.url = objectUrl(blob);
        img.src = item.url;
        img.classList.add("qvac-full");
      }, () => {});
    }
    onStatus();
  }

  /** @type {[import("./types.js").ModelEvent<import("./types.js").JobViewTraits>, (...args: any[]) => void][]} */
  const listeners = [
    ["change:status", onStatus],
    ["change:error", onError],
    ["change:images", onImages],
    ["msg:custom", (msg, buffers) => fetcher.handle(msg, buffers)],
  ];
  for (const [name, fn] of listeners) model.on(name, fn);
  onStatus();
  onError();
  onImages();
  live.check();
  const stopPolling = createPoller(anyModel, model.send, () => RUNNING.has((model.get("status") || {}).phase || "loading"), () => (model.get("images") || []).length);
  const stopHiding = hideStaticCopies(el, model.get("static_key") || "");
  return () => {
    stopPolling();
    stopHiding();
    live.dispose();
    for (const [name, fn] of listeners) model.off(name, fn);
    for (const item of shown.values()) revoke(item.url);
  };
}

export default { render };
