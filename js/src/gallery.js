// @ts-check
// Gallery: thumbnails of any list of images; click for full size, download the PNG.
import "./gallery.css";
import { createGalleryGrid } from "./gallery-grid.js";
import { createImageFetcher, handleZip } from "./images.js";
import { h } from "./util.js";
import { createConnection, DEAD_TEXT, freezeControls } from "./connection.js";
import { DOWNLOAD_ZIP } from "./messages.js";
import { hideStaticCopies } from "./static-copies.js";

/** @typedef {import("./types.js").GalleryModel} GalleryModel */

/** @param {import("./types.js").RenderProps<GalleryModel>} props */
function render({ model: anyModel, el }) {
  const live = createConnection(anyModel, el, (dead) => onConnection(dead));
  /** @type {GalleryModel} */
  const model = { ...anyModel, send: (content, _callbacks, buffers) => live.send(content, buffers) };
  const fetcher = createImageFetcher(model, live);
  const deadNote = h("div", { class: "qvac-dead", role: "alert", hidden: true }, DEAD_TEXT);
  const root = h("div", { class: "qvac-gallery" }, deadNote);
  const grid = createGalleryGrid({
    host: root,
    fetcher,
    schema: () => model.get("schema"),
    empty: "No images.",
    actions: [{ name: "download", label: "PNG", title: "download the PNG" }],
    onDownloadAll: (ids) => model.send({ type: DOWNLOAD_ZIP, ids }),
  });
  root.append(grid.tools, grid.el);
  el.append(root);
  const onImages = () => grid.update(model.get("images") || []);
  /** @param {import("./types.js").InMessage} msg @param {import("./types.js").Bytes[]} buffers */
  const onCustom = (msg, buffers) => fetcher.handle(msg, buffers) || handleZip(msg, buffers);
  model.on("change:images", onImages);
  model.on("msg:custom", onCustom);
  /** @param {boolean} dead */
  function onConnection(dead) {
    deadNote.hidden = !dead;
    if (dead) fetcher.fail(DEAD_TEXT);
    freezeControls(root, dead, (control) => control.name === "filter" || control.name === "model_filter" || Boolean(control.closest(".qvac-lightbox")));
  }
  onImages();
  live.check();
  const stopHiding = hideStaticCopies(el, model.get("static_key") || "");
  return () => {
    stopHiding();
    live.dispose();
    model.off("change:images", onImages);
    model.off("msg:custom", onCustom);
    grid.dispose();
  };
}

export default { render };
