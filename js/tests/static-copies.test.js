import { afterEach, describe, expect, it } from "vitest";
import { hideStaticCopies } from "../src/static-copies.js";
import { flush } from "./mock-model.js";

/** A cell's output area: [saved copy of `key`, saved copy of another widget, the widget's own output]. */
function cell(key) {
  const area = document.createElement("div");
  const output = (inner) => {
    const child = document.createElement("div");
    child.className = "output-child";
    child.innerHTML = inner;
    area.append(child);
    return child;
  };
  const mine = output(`<div class="qvac-static-output qvac-for-${key}"><img></div>`);
  const other = output('<div class="qvac-static-output qvac-for-zzz9"><img></div>');
  const own = output('<div class="widget"></div>');
  document.body.append(area);
  return { area, mine, other, el: own.querySelector(".widget") };
}

describe("saved copies beside a live widget", () => {
  let stop = () => {};
  afterEach(() => {
    stop();
    document.body.replaceChildren();
  });

  it("hides its own copy's whole output, not another widget's, and again after the kernel replaces it", async () => {
    const { area, mine, other, el } = cell("abc123");
    stop = hideStaticCopies(el, "abc123");
    expect(mine.style.display).toBe("none");
    expect(other.style.display).toBe("");
    // A display update: the front-end replaces the output with a new one holding the new copy.
    mine.remove();
    const updated = document.createElement("div");
    updated.innerHTML = '<div class="qvac-static-output qvac-for-abc123"><img><img></div>';
    area.prepend(updated);
    await flush();
    expect(updated.style.display).toBe("none");
  });

  it("waits for the widget to be attached to the page", async () => {
    const { el, mine } = cell("abc123");
    const holder = el.parentElement;
    el.remove();
    const detached = document.createElement("div"); // render() ran before the element was placed
    stop = hideStaticCopies(detached, "abc123");
    expect(mine.style.display).toBe("");
    holder.append(detached);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(mine.style.display).toBe("none");
  });

  it("ignores a missing or malformed key", () => {
    const { el, mine } = cell("abc123");
    stop = hideStaticCopies(el, "");
    expect(mine.style.display).toBe("");
    stop = hideStaticCopies(el, 'x"] *, [y');
    expect(mine.style.display).toBe("");
  });
});
