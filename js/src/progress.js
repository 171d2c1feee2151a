// @ts-check
// The progress bar: phase, step/total, it/s and ETA, from the `status` dict the kernel sends.
import { formatRate, formatSeconds, h } from "./util.js";

export const PHASE_LABELS = {
  idle: "Ready",
  queued: "Queued",
  loading: "Loading",
  downloading: "Downloading",
  sampling: "Sampling",
  decoding: "Decoding",
  upscaling: "Upscaling",
  done: "Done",
  cancelled: "Cancelled",
  error: "Error",
};
const DECODE_TICK_MS = 500;
export const RUNNING = new Set(["queued", "loading", "downloading", "sampling", "decoding", "upscaling"]);

/** @typedef {import("./types.js").Status} Status */

/**
 * The one-line description of a status, e.g. "Sampling · step 3/6 · 2.10 it/s · ETA 1.4 s".
 * @param {Status | null} [status]
 */
export function describeStatus(status) {
  const s = status || {};
  const phase = s.phase || "idle";
  const parts = [PHASE_LABELS[phase] || phase];
  if (s.kind === "load") {
    if (RUNNING.has(phase) && s.percent) parts.push(`${Math.round(s.percent)}%`);
    if (s.message && phase !== "error") parts.push(s.message);
    return parts.join(" · ");
  }
  if (phase === "queued") return `Queued (${s.ahead || 1} ahead)`;
  if (phase === "idle" && s.message) return `${parts[0]} · ${s.message}`;
  // A Studio grid: which cell runs (its steps follow), or what the whole grid made.
  if (s.kind === "grid" && (phase === "done" || phase === "cancelled") && s.message) parts.push(s.message);
  else if (s.kind === "grid" && s.grid_cells && phase !== "error") parts.push(`grid cell ${s.grid_cell || 1}/${s.grid_cells}`);
  if (RUNNING.has(phase)) {
    const batch = s.batch > 1 && phase !== "upscaling";
    if (batch) parts.push(`image ${(s.image_index || 0) + 1}/${s.batch}`);
    // In a batch the engine counts steps over all images: show this image's own (image_step/image_total).
    if (batch && s.image_total) parts.push(`step ${s.image_step}/${s.image_total}`);
    else if (s.total && phase !== "decoding") parts.push(`step ${s.step}/${s.total}`);
    if (phase === "decoding" && s.decode_elapsed !== null && s.decode_elapsed !== undefined) parts.push(formatSeconds(s.decode_elapsed));
    if (phase === "sampling" && s.its) parts.push(formatRate(s.its));
    if ((phase === "sampling" || phase === "decoding") && s.eta !== null && s.eta !== undefined) {
      // Until one decode is measured the ETA covers sampling only, and says so.
      parts.push(`ETA ${formatSeconds(s.eta)}${s.eta_decode === false && phase === "sampling" ? " + decoding" : ""}`);
    }
  } else if (phase === "done") {
    if (s.elapsed) parts.push(formatSeconds(s.elapsed));
    if (s.seed !== null && s.seed !== undefined && s.seed >= 0) parts.push(`seed ${s.seed}`);
  }
  return parts.join(" · ");
}

/**
 * A bar whose fill follows status.percent; `update(status)` redraws it.
 * @param {{compact?: boolean}} [options] compact: the JobView's one-line bar
 */
export function createProgress({ compact = false } = {}) {
  const fill = h("div", { class: "qvac-progress-fill" });
  const label = h("div", { class: "qvac-progress-label" });
  const bar = h("div", { class: "qvac-progress-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": "progress" }, fill);
  // Screen readers hear phase changes (Sampling, Done, Cancelled...), not every step.
  const announce = h("div", { class: "qvac-sr-only", "aria-live": "polite", role: "status" });
  const el = h("div", { class: `qvac-progress${compact ? " qvac-compact" : ""}`, "data-phase": "idle" }, bar, label, announce);
  let announced = "";
  let clock = null; // while decoding: the label counts on between the kernel's updates
  /** @type {Status} */
  let shown = {};
  let received = 0;

  /** While decoding the engine reports nothing until it is done: count the elapsed time and ETA here. */
  function tick() {
    if (!el.isConnected && clock) return stopClock();
    const dt = (Date.now() - received) / 1000;
    const s = { ...shown };
    if (s.decode_elapsed !== null && s.decode_elapsed !== undefined) s.decode_elapsed += dt;
    // An ETA run out while still decoding says nothing true: leave it out rather than show 0.
    if (s.eta !== null && s.eta !== undefined) s.eta = s.eta - dt > 0 ? s.eta - dt : null;
    label.textContent = describeStatus(s);
  }

  function stopClock() {
    if (clock) clearInterval(clock);
    clock = null;
  }

  /** @param {Status | null} [status] */
  function update(status) {
    const s = status || {};
    const phase = s.phase || "idle";
    shown = s;
    received = Date.now();
    if (phase === "decoding" && !clock) clock = setInterval(tick, DECODE_TICK_MS);
    else if (phase !== "decoding") stopClock();
    if (phase !== announced) {
      announced = phase;
      announce.textContent = phase === "idle" ? "" : describeStatus(s);
    }
    const percent = phase === "done" ? 100 : Math.max(0, Math.min(100, Number(s.percent) || 0));
    el.dataset.phase = phase;
    fill.style.width = `${percent}%`;
    bar.setAttribute("aria-valuenow", String(Math.round(percent)));
    label.textContent = describeStatus(s);
  }
  return { el, update };
}
