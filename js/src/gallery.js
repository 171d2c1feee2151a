// Gallery: thumbnails of any list of images; click for full size, download the PNG.
import "./gallery.css";
import { createGalleryGrid } from "./gallery-grid.js";
import { createImageFetcher } from "./images.js";
import { h } from "./util.js";

function render({ model, el }) {
  const fetcher = createImageFetcher(model);
  const root = h("div", { class: "qvac-gallery" });
  const grid = createGalleryGrid({
    host: root,
    fetcher,
    schema: () => model.get("schema"),
    empty: "No images.",
    actions: [{ name: "download", label: "PNG", title: "download the PNG" }],
  });
  root.append(grid.el);
  el.append(root);
  const onImages = () => grid.update(model.get("images") || []);
  const onCustom = (msg, buffers) => fetcher.handle(msg, buffers);
  model.on("change:images", onImages);
  model.on("msg:custom", onCustom);
  onImages();
  return () => {
    model.off("change:images", onImages);
    model.off("msg:custom", onCustom);
    grid.dispose();
  };
}

export default { render };
