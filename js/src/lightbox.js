// @ts-check
// Full-size view of one image over the widget, with its parameters; Escape or a click outside closes it.
import { h } from "./util.js";

/**
 * step(delta): show the previous (-1) or next (+1) image instead (arrow keys); focus returns to `returnTo`.
 * player(url): for a video, the element that plays the loaded file (the image element otherwise).
 * @param {HTMLElement} host
 * @param {object} options
 * @param {string} [options.title]
 * @param {[string, unknown][]} [options.details] [label, value] rows of the side table
 * @param {{label: string, title?: string, run: (close: () => void) => unknown}[]} [options.actions] buttons beside Close
 * @param {() => Blob | Promise<Blob>} options.load the full-size file
 * @param {((delta: number) => void) | null} [options.step]
 * @param {HTMLElement | null} [options.returnTo]
 * @param {((url: string) => HTMLImageElement | HTMLVideoElement) | null} [options.player]
 * @returns {{el: HTMLElement, close: (refocus?: boolean) => void}}
 */
export function openLightbox(host, { title, details = [], actions = [], load, step = null, returnTo = null, player = null }) {
  /** @type {HTMLImageElement | HTMLVideoElement} */
  let img = h("img", { class: "qvac-lightbox-img", alt: title || "image" });
  const status = h("div", { class: "qvac-lightbox-status" }, "loading full size…");
  const close = (refocus = true) => {
    overlay.remove();
    if (img.src) URL.revokeObjectURL(img.src);
    document.removeEventListener("keydown", onKey, true);
    if (refocus && returnTo && returnTo.isConnected) returnTo.focus();
  };
  /** @param {KeyboardEvent} event */
  const onKey = (event) => {
    if (!overlay.isConnected) {
      // Its widget was removed with the lightbox open: stop listening rather than take keys from the page.
      document.removeEventListener("keydown", onKey, true);
      return;
    }
    if (event.key === "Escape") {
      event.stopPropagation();
      close();
    } else if (step && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      event.stopPropagation();
      event.preventDefault();
      close(false);
      step(event.key === "ArrowLeft" ? -1 : 1);
    }
  };
  const closeButton = h("button", { class: "qvac-btn", name: "close", onclick: () => close() }, "Close");
  const buttons = actions.map(({ label, run, title: hint }) => h("button", { class: "qvac-btn", title: hint, onclick: () => run(close) }, label));
  const panel = h(
    "div",
    { class: "qvac-lightbox-panel" },
    h("div", { class: "qvac-lightbox-frame" }, img, status),
    h(
      "div",
      { class: "qvac-lightbox-side" },
      h("div", { class: "qvac-lightbox-title" }, title || ""),
      h("table", { class: "qvac-params" }, h("tbody", {}, details.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, String(v)))))),
      h("div", { class: "qvac-lightbox-actions" }, buttons, closeButton),
    ),
  );
  const overlay = h("div", { class: "qvac-lightbox", role: "dialog", "aria-modal": "true", "aria-label": title || "image" }, panel);
  overlay.addEventListener("click", (event) => {
    if (event.target === overlay) close();
  });
  document.addEventListener("keydown", onKey, true);
  host.append(overlay);
  closeButton.focus(); // the dialog takes focus: Escape, Enter and the arrow keys work at once
  Promise.resolve(load())
    .then((blob) => {
      const url = URL.createObjectURL(blob);
      if (player) {
        const media = player(url);
        img.replaceWith(media);
        img = media; // close() revokes its URL
      } else {
        img.src = url;
      }
      status.remove();
    })
    .catch((err) => {
      status.textContent = String(err.message || err);
    });
  return { el: overlay, close };
}
