// @ts-check
// Small DOM and formatting helpers shared by the three widgets.

/**
 * Create an element: h("button", { class: "x", onclick: fn }, "text", child). Attributes that are null,
 * undefined or false are left out; children are nodes, text or arrays of them (null, undefined, false skipped).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [attrs]
 * @param {...any} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/**
 * A Blob from what the widget protocol delivers: DataView, ArrayBuffer or a typed array.
 * @param {import("./types.js").Bytes} bytes
 * @returns {Blob}
 */
export function toBlob(bytes, type = "image/png") {
  if (bytes instanceof Blob) return bytes;
  if (bytes instanceof DataView) {
    bytes = new Uint8Array(/** @type {ArrayBuffer} */ (bytes.buffer), bytes.byteOffset, bytes.byteLength);
  }
  return new Blob([bytes], { type });
}

/**
 * An object URL for image bytes (jsdom has no createObjectURL: tests stub it).
 * @param {import("./types.js").Bytes} bytes
 */
export function objectUrl(bytes, type = "image/png") {
  return URL.createObjectURL(toBlob(bytes, type));
}

/** Give back an object URL made here ("" and other URLs are left alone). @param {string} url */
export function revoke(url) {
  if (url && url.startsWith("blob:")) URL.revokeObjectURL(url);
}

let counter = 0;
/** A page-unique id for label/datalist wiring when several widgets share a page. @param {string} prefix */
export function uid(prefix) {
  counter += 1;
  return `qvac-${prefix}-${counter}`;
}

/** Sampling speed as "2.10 it/s" (or "1.50 s/it" when slower than one a second). @param {number | null} [its] */
export function formatRate(its) {
  if (!its || !Number.isFinite(its)) return "";
  return its >= 1 ? `${its.toFixed(2)} it/s` : `${(1 / its).toFixed(2)} s/it`;
}

/** @param {number | null} [s] seconds */
export function formatSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "";
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

/** @param {number} n */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * Keep typing inside the widget from triggering the notebook's single-key shortcuts.
 * @param {HTMLElement} root
 * @param {(event: KeyboardEvent) => boolean} [onKey] true: the key was handled here (no default, no further)
 */
export function isolateKeys(root, onKey) {
  root.setAttribute("data-lm-suppress-shortcuts", "true");
  root.addEventListener("keydown", (event) => {
    if (onKey && onKey(event)) {
      event.preventDefault();
      event.stopPropagation();
      return;
    }
    // Plain and Shift+ keys are text (Shift+Enter too); Ctrl/Cmd/Alt chords such as Ctrl+S still reach the app.
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = event.target && /** @type {Element} */ (event.target).tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") event.stopPropagation();
  });
}
