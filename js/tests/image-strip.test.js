// The image strip (FLUX.2 reference images, a control image): uploads as messages with bytes, remove, clear, max.
import { describe, expect, it } from "vitest";
import { createImageStrip } from "../src/image-strip.js";
import { mockModel } from "./mock-model.js";

const thumb = new Uint8Array([0xff, 0xd8, 0xff]);
const file = (name, bytes = [1, 2, 3]) => new File([new Uint8Array(bytes)], name, { type: "image/png" });

function setup(max = 3, items = []) {
  const model = mockModel({ ref_images: items });
  const strip = createImageStrip(model, { slot: "ref_images", title: "Reference images", max });
  model.on("change:ref_images", strip.render);
  strip.render();
  return { model, strip, $: (sel) => strip.el.querySelector(sel), $$: (sel) => [...strip.el.querySelectorAll(sel)] };
}

describe("image strip", () => {
  it("sends each added file's bytes in a slot_add message, up to the room left", async () => {
    const { model, strip } = setup(2, [{ name: "a.png", width: 8, height: 8, thumb }]);
    await strip.send([file("b.png", [9, 8, 7, 6]), file("c.png")]);
    const adds = model.sentOfType("slot_add");
    expect(adds.map((m) => m.content)).toEqual([{ type: "slot_add", slot: "ref_images", name: "b.png", size: 4 }]);
    expect([...new Uint8Array(adds[0].buffers[0])]).toEqual([9, 8, 7, 6]);
  });

  it("shows the kernel's thumbnails with alt text, removes by index, clears, and stops adding at max", () => {
    const { model, $, $$ } = setup(2);
    expect($("[name=clear_ref_images]").hidden).toBe(true);
    model.update("ref_images", [
      { name: "a.png", width: 64, height: 32, thumb },
      { name: "b.png", width: 16, height: 16, thumb },
    ]);
    expect($$("img").map((i) => i.alt)).toEqual(["Reference images 1: a.png (64×32)", "Reference images 2: b.png (16×16)"]);
    expect($("[name=add_ref_images]").disabled).toBe(true);
    expect($(".qvac-strip-count").textContent).toBe("2/2");
    $$("[name=remove_ref_images]")[1].click();
    expect(model.sentOfType("slot_remove").map((m) => m.content)).toEqual([{ type: "slot_remove", slot: "ref_images", index: 1 }]);
    $("[name=clear_ref_images]").click();
    expect(model.sentOfType("slot_clear")).toHaveLength(1);
  });
});
