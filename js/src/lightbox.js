// Full-size view of one image over the widget, with its parameters; Escape or a click outside closes it.
import { h } from "./util.js";

export function openLightbox(host, { title, details = [], actions = [], load }) {
  const img = h("img", { class: "qvac-lightbox-img", alt: title || "image" });
  const status = h("div", { class: "qvac-lightbox-status" }, "loading full size…");
  const close = () => {
    overlay.remove();
    if (img.src) URL.revokeObjectURL(img.src);
    document.removeEventListener("keydown", onKey, true);
  };
  const onKey = (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      close();
    }
  };
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
      h("div", { class: "qvac-lightbox-actions" }, buttons, h("button", { class: "qvac-btn", onclick: close }, "Close")),
    ),
  );
  const overlay = h("div", { class: "qvac-lightbox", role: "dialog" }, panel);
  overlay.addEventListener("click", (event) => {
    if (event.target === overlay) close();
  });
  document.addEventListener("keydown", onKey, true);
  host.append(overlay);
  Promise.resolve(load())
    .then((blob) => {
      img.src = URL.createObjectURL(blob);
      status.remove();
    })
    .catch((err) => {
      status.textContent = String(err.message || err);
    });
  return { el: overlay, close };
}
