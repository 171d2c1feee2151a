// @ts-check
// Is the kernel-side object still there? After a kernel restart (or a notebook reopened from its saved
// widget state) the widget still renders, but nothing answers: say so and stop offering actions.
import { POLL } from "./messages.js";

export const DEAD_TEXT = "Kernel restarted — run the cell again.";
const DISCONNECTED = "jupyter-widgets-disconnected"; // set by ipywidgets on a view whose comm is gone
const RESTARTING = new Set(["restarting", "autorestarting", "dead"]); // kernel statuses that end its objects

/**
 * What createConnection returns; `S`: the message types the widget's front-end sends.
 * @template {string} S
 * @typedef {object} Connection
 * @property {() => boolean} isDead
 * @property {(content: import("./types.js").OutMessage<S>, buffers?: (ArrayBuffer | ArrayBufferView)[]) => boolean} send false: not sent (dead)
 * @property {() => void} check
 * @property {() => void} dispose
 */

/**
 * Watches `el` for ipywidgets' disconnected mark and sends through `model.send`, catching the
 * "Cannot send" of a dead comm. onChange(dead) runs on every change; a failed send is final.
 * Call check() once the view is built: a view restored without a kernel starts disconnected.
 * @template {string} S
 * @param {import("./types.js").WidgetModel<object, S>} model
 * @param {HTMLElement} el
 * @param {(dead: boolean) => void} [onChange]
 * @returns {Connection<S>}
 */
export function createConnection(model, el, onChange = () => {}) {
  let marked = false; // whether ipywidgets marks the view disconnected (a reconnect clears it)
  let failed = false; // a send threw: the comm is gone for good
  const dead = () => marked || failed;

  function check() {
    const now = Boolean(el.closest && el.closest(`.${DISCONNECTED}`));
    if (now !== marked) {
      const before = dead();
      marked = now;
      if (dead() !== before) onChange(dead());
    }
  }

  function send(content, buffers) {
    if (dead()) return false;
    try {
      model.send(content, undefined, buffers);
      return true;
    } catch (err) {
      failed = true;
      onChange(true);
      return false;
    }
  }

  const observer = typeof MutationObserver === "undefined" ? null : new MutationObserver(check);
  if (observer) observer.observe(el, { attributes: true, attributeFilter: ["class"] });
  // The mark may be on an ancestor attached later: look again now and then (cheap: one closest()).
  const timer = setInterval(check, 2000);
  // A restart ends every kernel-side object at once: the kernel connection says so first.
  const kernel = model.widget_manager && model.widget_manager.kernel;
  const onKernelStatus = (_kernel, status) => {
    if (!failed && RESTARTING.has(status)) {
      failed = true;
      onChange(true);
    }
  };
  const signal = kernel && kernel.statusChanged;
  if (signal && typeof signal.connect === "function") signal.connect(onKernelStatus);
  return {
    isDead: dead,
    send,
    check,
    dispose() {
      if (observer) observer.disconnect();
      clearInterval(timer);
      if (signal && typeof signal.disconnect === "function") signal.disconnect(onKernelStatus);
    },
  };
}

/** @typedef {HTMLButtonElement | HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} FormControl */

/**
 * Disable every control under `root` (remembering which), or give back the ones it disabled.
 * @param {HTMLElement} root
 * @param {boolean} frozen
 * @param {(control: FormControl) => boolean} [keep] controls left alone
 */
export function freezeControls(root, frozen, keep = () => false) {
  if (frozen) {
    for (const control of /** @type {NodeListOf<FormControl>} */ (root.querySelectorAll("button, input, select, textarea"))) {
      if (!control.disabled && !keep(control)) {
        control.disabled = true;
        control.dataset.qvacFrozen = "1";
      }
    }
  } else {
    for (const control of /** @type {NodeListOf<FormControl>} */ (root.querySelectorAll("[data-qvac-frozen]"))) {
      control.disabled = false;
      delete control.dataset.qvacFrozen;
    }
  }
}

export const POLL_QUIET_MS = 1500;

/**
 * While `running()`, ask the kernel for its state when no status change arrived for POLL_QUIET_MS:
 * where updates sent from background threads are dropped (Colab), progress still shows.
 * `seen()` is how many images the view lists (the kernel then sends the list only if it changed).
 * @param {import("./types.js").WidgetModel<{status: import("./types.js").Status}, string>} model
 * @param {(content: import("./types.js").OutMessage<typeof POLL>) => unknown} send
 * @param {() => boolean} running
 * @param {() => number} seen
 * @returns {() => void} stops polling
 */
export function createPoller(model, send, running, seen, every = 500) {
  let last = Date.now();
  const heard = () => {
    last = Date.now();
  };
  model.on("change:status", heard);
  const timer = setInterval(() => {
    if (!running() || Date.now() - last < POLL_QUIET_MS) return;
    last = Date.now(); // one request per quiet period
    send({ type: POLL, seen: seen() });
  }, every);
  return () => {
    clearInterval(timer);
    model.off("change:status", heard);
  };
}
