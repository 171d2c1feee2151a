// @ts-check
// A widget's saved copies (qvac_nb/widgets/static_copies.py): ordinary HTML outputs in the same cell that a
// reopened or exported notebook shows instead of the widget. While the live widget is on the page they
// would repeat its images, so it hides them; the kernel may replace them at any time (display updates),
// so they are hidden again whenever the cell's outputs change.

const MAX_LEVELS = 8; // from the widget's element up to the cell's output area
const FIND_EVERY_MS = 250;
const FIND_FOR_MS = 10_000; // the element may be attached to the page after render() returns

/**
 * Hide the outputs marked with `key` near `el` (its cell); returns a function that stops watching.
 * @param {HTMLElement} el
 * @param {string} key
 * @returns {() => void}
 */
export function hideStaticCopies(el, key) {
  if (!key || !/^[a-z0-9]+$/i.test(key)) return () => {};
  const selector = `.qvac-static-output.qvac-for-${key}`;
  let observer = /** @type {MutationObserver | null} */ (null);
  let timer = /** @type {ReturnType<typeof setInterval> | null} */ (null);

  /** The nearest ancestor of `el` that holds a copy, or null. */
  function scope() {
    let node = el.parentElement;
    for (let level = 0; node && level < MAX_LEVELS; level += 1, node = node.parentElement) {
      if (node.querySelector(selector)) return node;
    }
    return null;
  }

  /** Hide each copy's whole output (the child of `root` holding it: its prompt and margins too). */
  function hide(root) {
    for (const copy of root.querySelectorAll(selector)) {
      let box = /** @type {HTMLElement} */ (copy);
      while (box.parentElement && box.parentElement !== root) box = box.parentElement;
      if (box.style.display !== "none") box.style.display = "none";
    }
  }

  function attach() {
    const root = scope();
    if (!root) return false;
    hide(root);
    if (typeof MutationObserver !== "undefined") {
      observer = new MutationObserver(() => hide(root));
      observer.observe(root, { childList: true, subtree: true });
    }
    return true;
  }

  if (!attach()) {
    const started = Date.now();
    timer = setInterval(() => {
      if (attach() || Date.now() - started > FIND_FOR_MS) {
        if (timer) clearInterval(timer);
        timer = null;
      }
    }, FIND_EVERY_MS);
  }
  return () => {
    if (timer) clearInterval(timer);
    if (observer) observer.disconnect();
  };
}
